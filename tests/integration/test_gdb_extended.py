"""gdb against `dbgstub --multi` (extended-remote): run and re-run programs,
attach, refusals without --allow-run / --allow-attach, monitor commands."""
import os
import re
import sys
import unittest

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import harness  # noqa: E402
from harness import Stub, eventually, program, spawn, tracer_of  # noqa: E402

BASIC = os.path.abspath(program("basic"))
SPIN = os.path.abspath(program("spin"))

# Signs that gdb and dbgstub no longer agree on which reply answers which
# request (a reply gdb did not expect was taken for the answer to the next).
DESYNC = ("odd length", "Remote failure reply", "Bad register packet", "Invalid remote reply",
          "Remote connection closed", "Protocol error", "unexpected")


class ExtendedRemoteTest(unittest.TestCase):
    def stub(self, *flags):
        s = Stub("--multi", *flags, "127.0.0.1:0")
        self.addCleanup(harness.close_stub, s)
        return s

    def gdb(self, stub, commands, file=BASIC):
        pre = [f"target extended-remote 127.0.0.1:{stub.port}"]
        if file:
            pre = [f"set remote exec-file {file}", f"file {file}"] + pre
        return harness.gdb_run(commands, pre=pre)

    def assert_in_sync(self, out, stub=None):
        for s in DESYNC:
            self.assertNotIn(s, out, out + ("\n--- stub:\n" + stub.output() if stub else ""))

    def inferior_pid(self, out):
        m = re.findall(r"^\*?\s*1\s+process (\d+)", out, re.M)
        self.assertTrue(m, out)
        return [int(p) for p in m]

    def test_run_rerun_exit_and_monitor_exit(self):
        stub = self.stub("--allow-run")
        out = self.gdb(stub, [
            "break add", "run", "bt", "p a", "info inferiors",
            "run", "p b", "info inferiors",
            "delete", "continue", "info inferiors", "monitor exit"])
        hits = re.findall(r"Breakpoint 1, add \(a=0, b=5\) at \S*basic\.c:9", out)
        self.assertEqual(len(hits), 2, out)
        self.assertRegex(out, r"#2\s+0x[0-9a-f]+ in main \(argc=1, argv=0x[0-9a-f]+\) at \S*basic\.c:24")
        self.assertIn("$1 = 0", out)
        self.assertIn("$2 = 5", out)
        first, second = self.inferior_pid(out)
        self.assertNotEqual(first, second)
        self.assertTrue(harness.wait_gone(first, 5), "the first run's process was not killed by the re-run")
        self.assertRegex(out, rf"\[Inferior 1 \(process {second}\) exited normally\]")
        self.assert_in_sync(out, stub)
        self.assertEqual(stub.wait(15), 0, stub.output())
        self.assertTrue(harness.wait_gone(second, 5))

    def test_run_in_a_second_inferior(self):
        # A new inferior has no remote exec-file: gdb sends "vRun;" with no
        # program, which runs the last program again (as gdbserver), and
        # the first inferior's process stays.
        stub = self.stub("--allow-run")
        out = self.gdb(stub, [
            "break add", "run", "add-inferior", "inferior 2", f"file {BASIC}", "run",
            "info inferiors", "inferior 1", "finish", "kill inferiors 1 2", "monitor exit"])
        self.assertIn("Breakpoint 1, add (a=0, b=5)", out)
        self.assertRegex(out, r"Value returned is \$\d+ = 5\n")  # inferior 1 still there
        self.assertRegex(out, r"hit Breakpoint 1\.2, add \(a=0, b=5\)")
        first = re.search(r"(?m)^\s+1\s+process (\d+)", out)
        second = re.search(r"(?m)^\*\s+2\s+process (\d+)", out)
        self.assertTrue(first and second, out)
        self.assertNotEqual(first.group(1), second.group(1))
        self.assert_in_sync(out, stub)
        self.assertEqual(stub.wait(15), 0, stub.output())

    def test_hg_any_thread_keeps_the_current_one(self):
        # gdb attaches in a second inferior, sends Hgp0.0 then qC: the
        # answer must be the attached process (gdbserver keeps the current
        # thread for "any"), not the first process's thread.
        stub = self.stub("--allow-run", "--allow-attach")
        c = harness.RspClient(stub.port)
        self.addCleanup(c.close)
        c.handshake()
        c.request("!")
        self.assertTrue(c.request("vRun;" + BASIC.encode().hex()).startswith("T"))
        target = spawn("spin")  # after the run: a higher pid, listed second
        self.addCleanup(harness.reap, target)
        target.stdout.readline()
        self.assertIn(f"thread:p{target.pid:x}.{target.pid:x};", c.request(f"vAttach;{target.pid:x}"))
        self.assertEqual(c.request("Hgp0.0"), "OK")
        self.assertEqual(c.request("qC"), f"QCp{target.pid:x}.{target.pid:x}")
        c.request(f"D;{target.pid:x}")

    def test_run_with_arguments_exit_code(self):
        stub = self.stub("--allow-run")
        out = self.gdb(stub, ["run 3", "monitor exit"])
        self.assertIn("exited with code 03]", out)
        self.assert_in_sync(out, stub)
        self.assertEqual(stub.wait(15), 0, stub.output())

    def test_run_refused_without_allow_run(self):
        stub = self.stub()
        out = self.gdb(stub, ["break add", "run", "info inferiors", "monitor help"])
        self.assertIn("--allow-run", out, "the refusal is not visible in gdb:\n" + out)
        self.assertRegex(out, r"on the remote target failed|not allowed")
        self.assertNotIn("Breakpoint 1, add", out)
        # The session is still usable after the refusal.
        self.assertIn("The following monitor commands are supported:", out)
        self.assert_in_sync(out, stub)
        self.assertIsNone(stub.proc.poll(), "dbgstub ended after refusing run")
        # And the server keeps serving the next debugger.
        out2 = self.gdb(stub, ["monitor help"], file=None)
        self.assertIn("The following monitor commands are supported:", out2)
        self.assertIsNone(stub.proc.poll())

    def test_attach_allowed(self):
        target = spawn("spin")
        self.addCleanup(harness.reap, target)
        target.stdout.readline()
        stub = self.stub("--allow-attach")
        out = self.gdb(stub, [f"attach {target.pid}", "bt", "break tick", "continue", "p ticks",
                              "info inferiors", "detach"], file=SPIN)
        self.assertRegex(out, r"#\d+\s+0x[0-9a-f]+ in main \(\) at \S*spin\.c:14")
        self.assertIn("Breakpoint 1, tick () at", out)
        self.assertRegex(out, r"(?m)^\$1 = [1-9]\d*$")
        self.assertIn(f"process {target.pid}", out)
        self.assertIn(f"[Inferior 1 (process {target.pid}) detached]", out)
        self.assert_in_sync(out, stub)
        self.assertTrue(eventually(lambda: harness.running_untraced(target.pid), 5))
        # --multi: the server stays up with no process left.
        self.assertIsNone(stub.proc.poll())

    def test_attach_refused_without_allow_attach(self):
        target = spawn("spin")
        self.addCleanup(harness.reap, target)
        target.stdout.readline()
        stub = self.stub()
        out = self.gdb(stub, [f"attach {target.pid}", "info inferiors", "monitor help"], file=SPIN)
        self.assertIn(f"Attaching to process {target.pid} failed", out)
        # gdb 13 shows no text of an error reply to vAttach; dbgstub's log
        # must say why (gdb >= 15 with error-message+ would show it too).
        self.assertIn("--allow-attach", out + stub.output())
        self.assertIn("The following monitor commands are supported:", out)
        self.assert_in_sync(out, stub)
        self.assertEqual(tracer_of(target.pid), 0)
        self.assertIsNone(stub.proc.poll())

    def test_monitor_help_lists_commands(self):
        stub = self.stub()
        out = self.gdb(stub, ["monitor help", "monitor .session", "monitor no-such-command"], file=None)
        self.assertIn("The following monitor commands are supported:", out)
        for name in ("help", "exit", ".session"):
            self.assertRegex(out, rf"(?m)^\s+{re.escape(name)}\s+\S")
        self.assertIn("mode: user", out)
        self.assertIn("Unknown monitor command.", out)  # gdbserver's wording
        self.assertIsNone(stub.proc.poll())


if __name__ == "__main__":
    harness.main()
