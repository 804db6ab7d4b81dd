"""Non-stop mode with the real gdb: `set non-stop on` (threads stop and run
one by one; stops arrive as %Stop notifications drained with vStopped) and
gdb's all-stop mode on top of a non-stop target (`maint set target-non-stop
on`), on tests/programs/spinners.c (two workers counting while main stops)."""
import os
import re
import sys
import unittest

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import harness  # noqa: E402
from harness import Stub, free_port_args, gdb, inferior_pid, process_state, program  # noqa: E402

SPINNERS = program("spinners")
THREADS = program("threads")


class NonStop(harness.GdbTestCase):

    def run_gdb(self, prog, commands, pre, timeout=30):
        with Stub(*free_port_args(prog)) as stub:
            pid = inferior_pid(stub)
            try:
                out = gdb(commands, port=stub.port, file=prog, timeout=timeout, pre=pre)
            except Exception as e:  # a hang: show both sides
                self.fail(f"gdb did not finish: {e}\n--- dbgstub:\n{stub.output()[-3000:]}")
            stub.wait()
        self.assertTrue(harness.eventually(lambda: process_state(pid) is None, timeout=5),
                        f"program {pid} still exists")
        return out, stub, pid

    def test_other_threads_run_while_one_is_stopped(self):
        # main stops at main_paused; the workers go on counting, which two
        # reads of their counters a moment apart show (memory is read while
        # they run). Then main goes on, ends them, and the program exits.
        out, stub, pid = self.run_gdb(SPINNERS, [
            "break main_paused", "continue", "info threads",
            "print counters[0]", "shell sleep 0.3", "print counters[0]",
            "delete", "continue"], pre=["set non-stop on"])
        self.assertRegex(out, r"Thread 1(?: \"[^\"]*\")? hit Breakpoint 1, main_paused \(\)", out)
        self.assertRegex(out, r"\* 1 +Thread \d+\.\d+.* main_paused \(\)")
        self.assertEqual(len(re.findall(r"\(running\)", out)), 2, out)
        values = [int(v) for v in re.findall(r"^\$\d+ = (\d+)$", out, re.M)]
        self.assertEqual(len(values), 2, out)
        self.assertGreater(values[1], values[0], "worker 0 did not run while main was stopped\n" + out)
        self.assertIn("spinners done", stub.output())
        self.assertRegex(out, rf"\[Inferior 1 \(process {pid}\) exited normally\]")

    def test_interrupting_every_thread(self):
        # "interrupt -a" stops the workers (vCont;t): their counters stay
        # put. gdb in batch mode prints those stops late, so the counters
        # are what tells.
        out, stub, pid = self.run_gdb(SPINNERS, [
            "break main_paused", "continue", "interrupt -a", "shell sleep 0.3",
            "print counters[1]", "shell sleep 0.3", "print counters[1]"], pre=["set non-stop on"])
        values = [int(v) for v in re.findall(r"^\$\d+ = (\d+)$", out, re.M)]
        self.assertEqual(len(values), 2, out)
        self.assertGreater(values[0], 0, out)
        self.assertEqual(values[1], values[0], "worker 1 ran after interrupt -a\n" + out)

    def test_all_stop_on_a_non_stop_target(self):
        # gdb in all-stop mode stops the other threads itself (vCont;t) when
        # one reports: the same session as over a plain all-stop stub.
        out, stub, pid = self.run_gdb(THREADS, [
            "break worker_wait", "continue", "info threads", "continue", "continue", "continue",
            "delete", "continue"], pre=["maint set target-non-stop on"])
        hits = re.findall(r"Thread \d+(?: \"[^\"]*\")? hit Breakpoint 1, worker_wait \(id=(\d)\)", out)
        self.assertEqual(sorted(hits), ["0", "1", "2", "3"], out)
        self.assertNotIn("(running)", out)
        self.assertIn("threads done", stub.output(), out)
        self.assertRegex(out, rf"\[Inferior 1 \(process {pid}\) exited normally\]")


if __name__ == "__main__":
    unittest.main()
