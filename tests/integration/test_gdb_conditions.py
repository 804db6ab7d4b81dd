"""Target-side breakpoint conditions and commands (ConditionalBreakpoints,
BreakpointCommands): the real gdb with `set breakpoint condition-evaluation
target` and `set dprintf-style agent`. dbgstub evaluates the agent bytecode
where the breakpoint stop is handled: a false condition or a dprintf never
reaches gdb as a stop reply (counted in the --log-packets log)."""
import os
import re
import sys
import unittest

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import harness  # noqa: E402
from harness import RspClient, Stub, free_port_args, program  # noqa: E402

CONDLOOP = program("condloop")
CONDTHREADS = program("condthreads")
TARGET_EVAL = "set breakpoint condition-evaluation target"


def stop_replies(stub):
    """Stop replies dbgstub sent at the address of the breakpoint that came
    with target-side conditions or commands (its pc in the expedited
    registers), from the packet log. gdb's own stops (the dynamic linker's
    breakpoint, its steps over breakpoints) are elsewhere."""
    m = re.search(r"<- \$Z0,([0-9a-f]+),1;(?:X|cmds)", stub.output())
    if not m:
        return []
    le = int(m.group(1), 16).to_bytes(8, "little").hex()
    return [l for l in stub.lines if re.search(r"-> \$T[0-9a-f]{2}.*;10:" + le + ";", l)]


class GdbConditions(harness.GdbTestCase):

    def run_gdb(self, prog, commands, args=(), timeout=120):
        with Stub("--log-packets", *free_port_args(prog, *args)) as stub:
            out = self.gdb_or_fail(stub, commands, prog, timeout)
            stub.wait()
        return out, stub

    def test_advertised(self):
        # From the reply itself: the packet log shortens long packets.
        with Stub(*free_port_args(CONDLOOP)) as stub, RspClient(stub.port) as c:
            features = c.handshake().split(";")
        self.assertIn("ConditionalBreakpoints+", features)
        self.assertIn("BreakpointCommands+", features)
        out, stub = self.run_gdb(CONDLOOP, ["continue"])
        self.assertIn("exited normally", out)

    def test_condition_stops_once(self):
        out, stub = self.run_gdb(CONDLOOP, [TARGET_EVAL, "break f if x == 3", "continue", "print x",
                                            "continue"])
        self.assertRegex(out, r"Breakpoint 1, f \(x=3\) at \S*condloop\.c:10")
        self.assertIn("$1 = 3\n", out)
        self.assertIn("exited normally", out)
        self.assertIn("condloop done total=45", stub.output())
        self.assertRegex(stub.output(), r"<- \$Z0,[0-9a-f]+,1;X[0-9a-f]+,[0-9a-f]+")
        # Of 10 hits, only the one at x == 3 was reported.
        self.assertEqual(len(stop_replies(stub)), 1, "".join(stop_replies(stub)))

    def test_never_true_over_1000_hits(self):
        out, stub = self.run_gdb(CONDLOOP, [TARGET_EVAL, "break f if x < 0", "continue"], args=("1000",))
        self.assertIn("exited normally", out)
        self.assertNotIn("Breakpoint 1,", out)
        self.assertIn("condloop done total=499500", stub.output())
        self.assertEqual(len(stop_replies(stub)), 0, "".join(stop_replies(stub)))

    def test_several_conditions_any_true(self):
        # Two breakpoints at one address: gdb sends both conditions; either stops.
        out, stub = self.run_gdb(CONDLOOP, [TARGET_EVAL, "break f if x == 2", "break f if x == 6",
                                            "continue", "print x", "continue", "print x", "continue"])
        self.assertRegex(stub.output(), r"<- \$Z0,[0-9a-f]+,1;X[0-9a-f]+,[0-9a-f]+X[0-9a-f]+,[0-9a-f]+")
        self.assertIn("$1 = 2\n", out)
        self.assertIn("$2 = 6\n", out)
        self.assertIn("exited normally", out)
        self.assertEqual(len(stop_replies(stub)), 2, "".join(stop_replies(stub)))

    def test_dprintf_agent(self):
        out, stub = self.run_gdb(CONDLOOP, ["set dprintf-style agent", 'dprintf f,"dp x=%d label=%s\\n",x,label',
                                            "continue"])
        self.assertIn("exited normally", out)
        self.assertRegex(stub.output(), r"<- \$Z0,[0-9a-f]+,1;cmds:[01],X[0-9a-f]+,")
        lines = re.findall(r"dp x=(\d+) label=(\w+)", stub.output())
        self.assertEqual(lines, [(str(i), "item") for i in range(10)])
        self.assertEqual(len(stop_replies(stub)), 0, "".join(stop_replies(stub)))

    def test_dprintf_agent_with_condition(self):
        out, stub = self.run_gdb(CONDLOOP, [TARGET_EVAL, "set dprintf-style agent",
                                            'dprintf f,"odd %d\\n",x', "condition 1 x % 2 == 1", "continue"])
        self.assertIn("exited normally", out)
        self.assertEqual(re.findall(r"odd (\d+)", stub.output()), ["1", "3", "5", "7", "9"])

    def test_threads_step_over(self):
        # Four threads run through the same conditional breakpoint 800 times;
        # one hit stops. The program checks every call ran exactly once.
        out, stub = self.run_gdb(CONDTHREADS, [TARGET_EVAL, "break g if t == 2 && i == 150", "continue",
                                               "print t", "print i", "continue"])
        self.assertRegex(out, r"Breakpoint 1, g \(t=2, i=150\)")
        self.assertIn("exited normally", out)
        self.assertIn("condthreads sums ok", stub.output())

    def test_threads_never_true(self):
        out, stub = self.run_gdb(CONDTHREADS, [TARGET_EVAL, "break g if i < 0", "continue"], args=("500",))
        self.assertIn("exited normally", out)
        self.assertIn("condthreads sums ok", stub.output())

    def test_next_while_other_threads_step_over(self):
        # gdb steps the main thread (`next`) while the workers keep meeting a
        # never-true condition: the main thread, stopped for their
        # step-overs, must go on stepping, not run away.
        out, stub = self.run_gdb(CONDTHREADS, ["break condthreads.c:29", "continue", "delete", TARGET_EVAL,
                                               "break g if i < 0"] + ["next"] * 20 + ["print k", "continue"],
                                 args=("20000",))
        self.assertEqual(out.count("spin += k; /* main loop */"), 11, out)
        self.assertIn("$1 = 10\n", out)
        self.assertIn("exited normally", out)
        self.assertIn("condthreads sums ok", stub.output())

    def test_host_evaluation_unchanged(self):
        out, stub = self.run_gdb(CONDLOOP, ["set breakpoint condition-evaluation host", "break f if x == 3",
                                            "continue", "print x", "continue"])
        self.assertIn("$1 = 3\n", out)
        self.assertIn("exited normally", out)
        self.assertNotRegex(stub.output(), r"<- \$Z0,[0-9a-f]+,1;X")


if __name__ == "__main__":
    unittest.main()
