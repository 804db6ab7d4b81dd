"""lldb as a client: the packets lldb relies on (qHostInfo, qProcessInfo,
auxv for the PIE slide, rewound breakpoint pcs, a reply to 'k')."""
import os
import re
import sys
import unittest

sys.path.insert(0, os.path.dirname(__file__))
from harness import Stub, free_port_args, lldb, program, main  # noqa: E402


class LldbClient(unittest.TestCase):
    def test_breakpoint_twice_registers_locals_kill(self):
        with Stub(*free_port_args(program("basic"))) as stub:
            out = lldb([f"gdb-remote 127.0.0.1:{stub.port}", "b add", "c", "c", "register read rip",
                        "frame variable", "kill"])
            stops = re.findall(r"stop reason = (.*)", out)
            self.assertEqual(stops, ["breakpoint 1.1", "breakpoint 1.1"], out)
            # Both stops at the breakpoint's own address, not one past it.
            bp = re.search(r"Breakpoint 1: where = basic`add \+ \d+ at basic.c:\d+:\d+, address = (0x[0-9a-f]+)",
                           out)
            self.assertIsNotNone(bp, out)
            frames = re.findall(r"frame #0: (0x[0-9a-f]+) basic`add\(a=(\d+), b=5\)", out)
            self.assertEqual([f[0] for f in frames], [bp.group(1)] * 2, out)
            self.assertEqual([f[1] for f in frames], ["0", "1"], out)
            self.assertRegex(out, r"rip = " + bp.group(1))
            self.assertRegex(out, r"\(int\) a = 1")
            self.assertRegex(out, r"\(int\) b = 5")
            self.assertRegex(out, r"Process \d+ exited with status = 9")
            self.assertNotIn("failed to send", out)
            self.assertNotIn("signal SIGTRAP", out)
            self.assertEqual(stub.wait(), 0)

    def test_run_to_exit(self):
        with Stub(*free_port_args(program("basic"), "3")) as stub:
            out = lldb([f"gdb-remote 127.0.0.1:{stub.port}", "c"])
            self.assertRegex(out, r"Process \d+ exited with status = 3")
            self.assertEqual(stub.wait(), 0)


if __name__ == "__main__":
    main()
