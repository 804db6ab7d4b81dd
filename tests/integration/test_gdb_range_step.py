"""Range stepping (vCont;r) with the real gdb on tests/programs/rangeloop.c:
`next` over a line that loops thousands of times is one vCont;r, not a
vCont;s per instruction; the stop after it is right; a breakpoint inside the
range stops the range there; and dbgstub announces 'r' in its vCont? reply."""
import os
import re
import sys
import unittest

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import harness  # noqa: E402
from harness import Stub, free_port_args, program  # noqa: E402

RANGELOOP = program("rangeloop")
SRC = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "programs", "rangeloop.c")


def line_of(marker):
    with open(SRC) as f:
        for n, line in enumerate(f, 1):
            if marker in line:
                return n
    raise AssertionError(marker)


LOOP = line_of("/* LOOP_LINE */")
AFTER = line_of("/* AFTER_LINE */")


def sent(stub, prefix):
    """Packets gdb sent dbgstub that start with `prefix` (--log-packets)."""
    return re.findall(r"<- \$(" + re.escape(prefix) + r"[^\s]*)", stub.output())


class RangeStep(harness.GdbTestCase):

    def run_gdb(self, commands, iterations=3000):
        with Stub("--log-packets", *free_port_args(RANGELOOP, str(iterations))) as stub:
            out = self.gdb_or_fail(stub, [f"break rangeloop.c:{LOOP}", "continue", *commands], RANGELOOP, 60)
            stub.wait()
        return out, stub

    def test_vcont_query_announces_range_stepping(self):
        with Stub(*free_port_args(RANGELOOP)) as stub:
            with harness.RspClient(stub.port) as c:
                c.handshake()
                self.assertEqual(c.request("vCont?"), "vCont;c;C;s;S;t;r")

    def test_next_over_a_looping_line_is_one_range_step(self):
        out, stub = self.run_gdb(["next", "p s", "info line *$pc", "continue"], iterations=3000)
        self.assertRegex(out, rf"\n{AFTER}\s+printf\(\"rangeloop done")
        self.assertIn("$1 = 4498500\n", out)   # sum of 0..2999: the loop ran to its end
        self.assertRegex(out, rf"Line {AFTER} of \"\S*rangeloop\.c\" starts at address")
        self.assertIn("rangeloop done s=4498500", stub.output())
        ranges = sent(stub, "vCont;r")
        steps = sent(stub, "vCont;s")
        # The loop is ~8 instructions an iteration: 24,000 steps without
        # range stepping; gdb issues one vCont;r (plus a step off the
        # breakpoint it stopped at).
        self.assertGreaterEqual(len(ranges), 1, stub.output()[-3000:])
        self.assertLessEqual(len(ranges) + len(steps), 10, f"{len(ranges)} vCont;r, {len(steps)} vCont;s")
        m = re.match(r"vCont;r([0-9a-f]+),([0-9a-f]+):", ranges[0])
        self.assertTrue(m, ranges[0])
        self.assertLess(int(m.group(1), 16), int(m.group(2), 16))

    def test_breakpoint_inside_the_range_stops_there(self):
        # The loop line is: i = 0; jmp cond; body: s += i; i++; cond: ...
        # A breakpoint on the body (third instruction) is inside the range
        # gdb steps through, and is met in the first iteration.
        out, stub = self.run_gdb([
            "python ins = gdb.selected_frame().architecture().disassemble(gdb.selected_frame().pc(), count=3)",
            "python gdb.execute('break *%d' % ins[2]['addr'])",
            "python print('body at %#x' % ins[2]['addr'])",
            "next",
            "p $pc",
            "p i",
            "delete 2",
            "next",
            "p s",
        ], iterations=100)
        body = re.search(r"body at (0x[0-9a-f]+)", out)
        self.assertTrue(body, out)
        hit = re.search(rf"Breakpoint 2, (0x[0-9a-f]+) in main \(.*\) at \S*rangeloop\.c:{LOOP}", out)
        self.assertTrue(hit, out)
        self.assertEqual(int(hit.group(1), 16), int(body.group(1), 16))
        self.assertRegex(out, rf"\$1 = \(void \(\*\)\(\)\) {body.group(1)} <main\+\d+>")
        self.assertIn("$2 = 0\n", out)          # stopped in the first iteration
        self.assertRegex(out, rf"\n{AFTER}\s+printf")
        self.assertIn("$3 = 4950\n", out)
        self.assertGreaterEqual(len(sent(stub, "vCont;r")), 2)
        # The stop at the breakpoint is a T05 with swbreak or a plain trap,
        # never a signal gdb would show.
        self.assertNotIn("Program received signal", out)


if __name__ == "__main__":
    harness.main()
