"""gdb's "target remote | dbgstub - PROG": the protocol over stdin/stdout,
the program's own output kept out of it."""
import os
import sys
import unittest

sys.path.insert(0, os.path.dirname(__file__))
from harness import DBGSTUB, gdb, program, main  # noqa: E402


class StdioTransport(unittest.TestCase):
    def test_pipe_session(self):
        out = gdb([f"target remote | {DBGSTUB} - {program('basic')} 7", "break add", "continue", "bt",
                   "info connections", "delete", "continue"], timeout=60)
        self.assertIn("Breakpoint 1, add (a=0, b=5)", out)
        self.assertRegex(out, r"#1 .* in compute \(n=5\)")
        self.assertIn("Remote target using gdb-specific protocol", out)
        # The program's stdout went to stderr, not into the protocol.
        self.assertIn("compute=35 buffer=hello from basic", out)
        self.assertRegex(out, r"\[Inferior 1 \(process \d+\) exited with code 07\]")
        self.assertNotIn("Ignoring packet", out)

    def test_extended_pipe_runs_twice(self):
        out = gdb([f"target extended-remote | {DBGSTUB} --multi --allow-run -", f"file {program('basic')}",
                   f"set remote exec-file {program('basic')}", "break add", "run", "run", "info inferiors"],
                  timeout=60)
        self.assertEqual(out.count("Breakpoint 1, add (a=0, b=5)"), 2, out)


if __name__ == "__main__":
    main()
