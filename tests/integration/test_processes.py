"""Processes with real gdb: fork children as inferiors, `kill inferiors`,
WinDbg's `monitor |*`, `|Ns`, `.kill [/h|/n]` and `.childdbg`, the `-o`
option, exec and vfork following, and `k` / `vKill` on the only process.

Every test starts its own dbgstub on a free port and drives gdb in batch
mode (`set confirm off`). The debugged programs print to dbgstub's own
stdout, which Stub.output() captures."""
import os
import re
import signal
import subprocess
import unittest

import harness
from harness import Stub, close_stub, eventually, free_port_args, program

FORKER = program("forker")
BASIC = program("basic")
SIGNALS = program("signals")
PROC_EXEC = program("proc_exec")

# gdb without fork/vfork events: children are the stub's business only.
NO_FORK_EVENTS = ("set remote fork-event-feature-packet off", "set remote vfork-event-feature-packet off")

PROCESS_LINE = re.compile(r"^([.# ]) +(\d+)\tid: ([0-9a-f]+)\t(create|attach|child)\tname: (.*)$", re.M)


def run_gdb(stub, commands, prog=None, pre=(), extended=False, timeout=45):
    """gdb in batch mode against `stub`, stdout and stderr in one ordered
    stream. On a timeout gdb is killed and the output so far is returned
    with a marker line, so that a hang fails an assertion readably."""
    cmd = ["gdb", "-nx", "-batch", "-ex", "set confirm off", "-ex", "set pagination off",
           "-ex", "set width 0", "-ex", "set height 0"]
    for c in pre:
        cmd += ["-ex", c]
    if prog:
        cmd += ["-ex", f"file {prog}"]
    cmd += ["-ex", f"target {'extended-remote' if extended else 'remote'} 127.0.0.1:{stub.port}"]
    for c in commands:
        cmd += ["-ex", c]
    p = subprocess.Popen(cmd, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                         text=True, errors="replace")
    try:
        out, _ = p.communicate(timeout=timeout)
    except subprocess.TimeoutExpired:
        p.kill()
        out, _ = p.communicate()
        out += "\n!!! gdb timed out (killed after %ss)\n" % timeout
    return out


def process_lines(text):
    """The `monitor |*` lines in text: (marker, index, pid, origin, name)."""
    return [(m[0], int(m[1]), int(m[2], 16), m[3], m[4]) for m in PROCESS_LINE.findall(text)]


def between(text, start, end):
    """The part of text after the first `start` and before the next `end`."""
    i = text.find(start)
    if i < 0:
        return ""
    i += len(start)
    j = text.find(end, i)
    return text[i:] if j < 0 else text[i:j]


def stub_pid(stub):
    m = re.search(r"created; pid = (\d+)", stub.output())
    return int(m.group(1)) if m else None


def new_child_pid(out):
    m = re.search(r"\[New inferior 2 \(process (\d+)\)\]", out)
    return int(m.group(1)) if m else None


class Base(unittest.TestCase):
    def stub(self, *args):
        s = Stub(*args)
        self.addCleanup(close_stub, s)
        return s

    def assertEventuallyIn(self, needle, stub, timeout=10):
        if not eventually(lambda: needle in stub.output(), timeout):
            self.fail(f"{needle!r} not in dbgstub's output:\n{stub.output()}")


# ---------------------------------------------------------------------------
# 1, 2: a fork child as a second inferior; ending it

class ForkChildTests(Base):
    START = ["set detach-on-fork off", "b parent_forked", "c"]

    def test_kill_inferiors_2_parent_sees_sigkill(self):
        stub = self.stub(*free_port_args(FORKER))
        parent = stub_pid(stub)
        out = run_gdb(stub, self.START + [
            "info inferiors",
            "echo ==LIST1==\\n", "monitor |*", "echo ==END1==\\n",
            "kill inferiors 2",
            "echo ==LIST2==\\n", "monitor |*", "echo ==END2==\\n",
            "c",
        ], prog=FORKER)
        child = new_child_pid(out)
        self.assertIsNotNone(child, out)
        self.assertIn("parent_forked (child=%d)" % child, out)
        infos = between(out, "Num  Description", "==LIST1==")
        self.assertRegex(infos, r"\* 1\s+process %d" % parent, out)
        self.assertRegex(infos, r"\n\s+2\s+process %d" % child, out)

        lines = process_lines(between(out, "==LIST1==", "==END1=="))
        self.assertEqual(len(lines), 2, out)
        self.assertEqual(lines[0], (".", 0, parent, "create", FORKER), out)
        self.assertEqual(lines[1][:4], (" ", 1, child, "child"), out)
        self.assertIn("forker", lines[1][4])
        # The exact layout: marker, index right-aligned in 4, tabs.
        self.assertIn(".   0\tid: %x\tcreate\tname: %s\n" % (parent, FORKER), out)
        self.assertIn("    1\tid: %x\tchild\tname: " % child, out)

        lines = process_lines(between(out, "==LIST2==", "==END2=="))
        self.assertEqual(lines, [(".", 0, parent, "create", FORKER)], out)

        self.assertIn("[Inferior 1 (process %d) exited normally]" % parent, out)
        self.assertEventuallyIn("parent: child killed by signal 9", stub)

    def test_select_child_and_dot_kill(self):
        """|1s + .kill: gdb learns of the child's exit when it resumes it;
        then the parent runs on and its waitpid sees SIGKILL."""
        stub = self.stub(*free_port_args(FORKER))
        parent = stub_pid(stub)
        out = run_gdb(stub, self.START + [
            "echo ==SEL==\\n", "monitor |1s", "echo ==END==\\n",
            "monitor .kill",
            "echo ==LIST==\\n", "monitor |*", "echo ==END2==\\n",
            # schedule-multiple is off: `c` resumes the current inferior
            # only, so resume the dead one to get its exit report.
            "inferior 2",
            "c",
            "info inferiors",
            "inferior 1",
            "c",
        ], prog=FORKER)
        child = new_child_pid(out)
        self.assertIsNotNone(child, out)
        sel = process_lines(between(out, "==SEL==", "==END=="))
        self.assertEqual([l[:4] for l in sel], [(" ", 1, child, "child")], out)
        self.assertIn("Terminated.  Exit thread and process events will occur.", out)
        lines = process_lines(between(out, "==LIST==", "==END2=="))
        self.assertEqual([l[1:4] for l in lines], [(0, parent, "create")], out)
        self.assertTrue("Program terminated with signal SIGKILL" in out
                        or re.search(r"\[Inferior 2 \(process %d\) exited with signal SIGKILL" % child, out), out)
        self.assertIn("[Inferior 1 (process %d) exited normally]" % parent, out)
        self.assertNotIn("timed out", out)
        self.assertEventuallyIn("parent: child killed by signal 9", stub)

    def test_dot_kill_child_then_continue_parent_at_breakpoint(self):
        """.kill of the child, then `c` in the parent, which is stopped at a
        breakpoint (gdb steps over it first, with vCont;s for the parent
        only). The child's exit must not leave gdb's step-over hanging: the
        parent runs to its end."""
        # Packets logged, shown if gdb times out: that log found the race
        # the next test replays (the child's exit taken for the answer to
        # the parent's step when it was seen after that step began).
        stub = self.stub("--log-packets", *free_port_args(FORKER))
        parent = stub_pid(stub)
        out = run_gdb(stub, self.START + [
            "monitor |1s",
            "monitor .kill",
            "c",
            "inferior 1",
            "c",
        ], prog=FORKER, timeout=25)
        self.assertIn("Terminated.  Exit thread and process events will occur.", out)
        self.assertNotIn("timed out", out, "\n".join(stub.lines[-80:]))
        self.assertIn("[Inferior 1 (process %d) exited normally]" % parent, out)
        self.assertEventuallyIn("parent: child killed by signal 9", stub)

    def test_exit_of_process_not_resumed_waits_for_its_own_resume(self):
        """A raw-protocol replay of the race behind the test above, made
        deterministic: the parent alone is continued (vCont;c:pPARENT.-1),
        and the child, stopped and not resumed, dies while the parent runs.
        That exit is no answer to the parent's resume: the parent runs to
        its end (its waitpid sees the SIGKILL) and the child's exit comes at
        the next resume that covers the child, as gdbserver keeps it."""
        stub = self.stub(*free_port_args(FORKER))
        parent = stub_pid(stub)
        with harness.RspClient(stub.port) as c:
            c.request("qSupported:multiprocess+;fork-events+;vContSupported+")
            stop = c.request("vCont;c")
            m = re.search(r"fork:p([0-9a-f]+)\.", stop)
            self.assertIsNotNone(m, stop)
            child = int(m.group(1), 16)
            c.send("vCont;c:p%x.-1" % parent)
            c.read_ack()
            # The parent blocks in waitpid once it runs; only then the kill,
            # so that the exit is seen while the target is running.
            self.assertTrue(eventually(lambda: harness.process_state(parent) == "S"),
                            harness.process_state(parent))
            os.kill(child, signal.SIGKILL)
            # The child's end sends the parent a SIGCHLD (GDB number 0x14; not passed: no
            # QPassSignals here); gdb would pass it on.
            stop = c.read_packet()
            self.assertTrue(stop.startswith("T14") and "thread:p%x." % parent in stop, stop)
            self.assertEqual(c.request("vCont;C14:p%x.-1" % parent), "W00;process:%x" % parent)
            self.assertEqual(c.request("vCont;c"), "X09;process:%x" % child)
        self.assertEventuallyIn("parent: child killed by signal 9", stub)


# ---------------------------------------------------------------------------
# 3: .kill /h and /n on a process stopped with SIGSEGV

class KillHandledTests(Base):
    def child_segv(self, how):
        stub = self.stub(*free_port_args(FORKER, "segv"))
        parent = stub_pid(stub)
        out = run_gdb(stub, [
            "set detach-on-fork off", "b parent_forked", "c",
            "inferior 2", "c",
            f"monitor .kill {how}".strip(),
            "c",
            "inferior 1", "c",
        ], prog=FORKER)
        self.assertIn("received signal SIGSEGV", out)
        self.assertIn("child_fault", out)
        self.assertIn("Terminated.  Exit thread and process events will occur.", out)
        self.assertIn("[Inferior 1 (process %d) exited normally]" % parent, out)
        return stub, out

    def test_child_kill_n_ends_by_sigsegv(self):
        stub, out = self.child_segv("/n")
        self.assertIn("Program terminated with signal SIGSEGV", out)
        self.assertEventuallyIn("parent: child killed by signal 11", stub)

    def test_child_kill_h_ends_by_sigkill(self):
        stub, out = self.child_segv("/h")
        self.assertIn("Program terminated with signal SIGKILL", out)
        self.assertEventuallyIn("parent: child killed by signal 9", stub)

    def test_child_kill_default_is_h(self):
        stub, out = self.child_segv("")
        self.assertIn("Program terminated with signal SIGKILL", out)
        self.assertEventuallyIn("parent: child killed by signal 9", stub)

    def single(self, how):
        stub = self.stub(*free_port_args(SIGNALS, "segv"))
        out = run_gdb(stub, ["c", "c", f"monitor .kill {how}", "c", "info inferiors"], prog=SIGNALS, timeout=30)
        self.assertIn("received signal SIGSEGV", out)
        self.assertIn("Terminated.  Exit thread and process events will occur.", out)
        self.assertNotIn("Remote connection closed", out)
        return stub, out

    def test_single_process_kill_n(self):
        stub, out = self.single("/n")
        self.assertIn("Program terminated with signal SIGSEGV", out)
        self.assertEqual(stub.wait(20), 0, stub.output())

    def test_single_process_kill_h(self):
        stub, out = self.single("/h")
        self.assertIn("Program terminated with signal SIGKILL", out)
        self.assertEqual(stub.wait(20), 0, stub.output())


# ---------------------------------------------------------------------------
# 4: .childdbg and -o

class ChildDebugTests(Base):
    def test_childdbg_show_and_set(self):
        stub = self.stub(*free_port_args(FORKER))
        out = run_gdb(stub, [
            "echo ==A==\\n", "monitor .childdbg",
            "echo ==B==\\n", "monitor .childdbg 1",
            "echo ==C==\\n", "monitor .childdbg",
            "echo ==D==\\n", "monitor .childdbg 0",
            "echo ==E==\\n",
        ], prog=FORKER)
        self.assertIn("will not be debugged", between(out, "==A==", "==B=="), out)
        self.assertIn("will be debugged", between(out, "==B==", "==C=="), out)
        self.assertNotIn("not", between(out, "==B==", "==C=="), out)
        self.assertIn("will be debugged", between(out, "==C==", "==D=="), out)
        self.assertIn("will not be debugged", between(out, "==D==", "==E=="), out)

    def test_dash_o_default_state(self):
        stub = self.stub("-o", *free_port_args(FORKER))
        out = run_gdb(stub, ["monitor .childdbg"], prog=FORKER)
        self.assertIn("Processes created by the current process will be debugged", out)
        self.assertNotIn("will not", out)

    def test_without_childdbg_child_runs_untraced(self):
        stub = self.stub(*free_port_args(FORKER))
        parent = stub_pid(stub)
        out = run_gdb(stub, [
            "b parent_forked", "c",
            "echo ==LIST==\\n", "monitor |*", "echo ==END==\\n",
            'eval "shell grep TracerPid /proc/%d/status", child',
            "info inferiors",
            "c",
        ], prog=FORKER, pre=NO_FORK_EVENTS)
        self.assertIn("parent_forked (child=", out)
        lines = process_lines(between(out, "==LIST==", "==END=="))
        self.assertEqual(lines, [(".", 0, parent, "create", FORKER)], out)
        self.assertRegex(out, r"TracerPid:\s+0\n")
        self.assertNotIn("inferior 2", out.lower())
        self.assertIn("[Inferior 1 (process %d) exited normally]" % parent, out)
        self.assertEventuallyIn("parent: child exited 3", stub)

    def childdbg_session(self, stub_args, before):
        stub = self.stub(*stub_args, *free_port_args(FORKER))
        parent = stub_pid(stub)
        out = run_gdb(stub, before + [
            "b parent_forked", "c",
            "echo ==LIST==\\n", "monitor |*", "echo ==END==\\n",
            'eval "shell grep TracerPid /proc/%d/status", child',
            "info inferiors",
            "c",
        ], prog=FORKER, pre=NO_FORK_EVENTS, timeout=30)
        return stub, parent, out

    def check_child_listed(self, stub, parent, out):
        lines = process_lines(between(out, "==LIST==", "==END=="))
        self.assertEqual([l[1:4] for l in lines][:1], [(0, parent, "create")], out)
        self.assertEqual(len(lines), 2, out)
        self.assertEqual(lines[1][1], 1, out)
        self.assertEqual(lines[1][3], "child", out)
        m = re.search(r"TracerPid:\s+(\d+)", out)
        self.assertIsNotNone(m, out)
        self.assertEqual(int(m.group(1)), stub.proc.pid, "the child is traced by dbgstub")

    def check_child_hidden_from_gdb(self, stub, parent, out):
        """gdb asked for no fork events: it is not told of the child; the
        session goes on as if there were none, and both run on."""
        self.assertNotIn("New inferior", out)
        self.assertNotIn("New Thread", out)
        self.assertNotIn("'g' packet reply is too long", out)
        self.assertNotIn("Cannot insert breakpoint", out)
        self.assertIn("parent_forked (child=", out)
        self.assertIn("[Inferior 1 (process %d) exited normally]" % parent, out)
        self.assertEventuallyIn("parent: child exited 3", stub)

    def test_childdbg_1_lists_child(self):
        stub, parent, out = self.childdbg_session([], ["monitor .childdbg 1"])
        self.check_child_listed(stub, parent, out)

    def test_childdbg_1_child_hidden_from_gdb(self):
        stub, parent, out = self.childdbg_session([], ["monitor .childdbg 1"])
        self.check_child_hidden_from_gdb(stub, parent, out)

    def test_dash_o_lists_child(self):
        stub, parent, out = self.childdbg_session(["-o"], [])
        self.check_child_listed(stub, parent, out)

    def test_dash_o_child_hidden_from_gdb(self):
        stub, parent, out = self.childdbg_session(["-o"], [])
        self.check_child_hidden_from_gdb(stub, parent, out)

    def test_bad_arguments(self):
        stub = self.stub(*free_port_args(FORKER))
        out = run_gdb(stub, [
            "echo ==1==\\n", "monitor .childdbg 2",
            "echo ==2==\\n", "monitor .childdbg 1 0",
            "echo ==3==\\n", "monitor .kill /x",
            "echo ==4==\\n", "monitor |9s",
            "echo ==5==\\n", "monitor |x",
            "echo ==6==\\n", "monitor .childdbg",
            "echo ==7==\\n", "monitor |*",
            "echo ==8==\\n",
        ], prog=FORKER)
        self.assertIn("Usage: .childdbg [0|1]", between(out, "==1==", "==2=="), out)
        self.assertIn("Usage: .childdbg [0|1]", between(out, "==2==", "==3=="), out)
        seg = between(out, "==3==", "==4==")
        self.assertIn("Usage: .kill [/h | /n]", seg, out)
        self.assertIn("/x", seg, out)
        self.assertIn("No process with index 9", between(out, "==4==", "==5=="), out)
        self.assertIn("Usage: |* (list)", between(out, "==5==", "==6=="), out)
        # Nothing changed by the refused commands; the process is intact.
        self.assertIn("will not be debugged", between(out, "==6==", "==7=="), out)
        self.assertEqual(len(process_lines(between(out, "==7==", "==8=="))), 1, out)
        self.assertNotIn("Terminated.", out)


# ---------------------------------------------------------------------------
# 5: exec and vfork

class ExecTests(Base):
    def test_catch_exec_then_break_in_new_program(self):
        stub = self.stub(*free_port_args(PROC_EXEC, BASIC))
        pid = stub_pid(stub)
        out = run_gdb(stub, ["catch exec", "c", "info inferiors", "b add", "c", "bt", "delete", "c"],
                      prog=PROC_EXEC)
        self.assertIn("process %d is executing new program: %s" % (pid, BASIC), out)
        self.assertIn("Catchpoint 1 (exec'd %s)" % BASIC, out)
        self.assertRegex(out, r"Breakpoint 2, add \(a=0, b=5\) at .*basic\.c")
        self.assertRegex(out, r"#1 .* compute \(n=5\)")
        self.assertIn("[Inferior 1 (process %d) exited normally]" % pid, out)
        self.assertEventuallyIn("proc_exec: executing " + BASIC, stub)
        self.assertEventuallyIn("compute=35 buffer=hello from basic", stub)

    def test_fork_child_exec_followed(self):
        stub = self.stub(*free_port_args(FORKER, "exec", BASIC))
        out = run_gdb(stub, ["set breakpoint pending on", "set follow-fork-mode child", "b add", "c", "bt", "delete",
                             "c"], prog=FORKER)
        self.assertRegex(out, r"process \d+ is executing new program: %s" % re.escape(BASIC))
        self.assertRegex(out, r"hit Breakpoint 1(\.\d+)?, add \(a=0, b=5\)|Breakpoint 1, add \(a=0, b=5\)")
        self.assertRegex(out, r"\[Inferior 2 \(process \d+\) exited normally\]")
        self.assertEventuallyIn("compute=35 buffer=hello from basic", stub)
        self.assertEventuallyIn("parent: child exited 0", stub)

    def test_vfork_exec_default_settings(self):
        stub = self.stub(*free_port_args(FORKER, "vfork", BASIC))
        pid = stub_pid(stub)
        out = run_gdb(stub, ["c"], prog=FORKER)
        self.assertRegex(out, r"\[Detaching after vfork from child process \d+\]")
        self.assertIn("[Inferior 1 (process %d) exited normally]" % pid, out)
        self.assertEventuallyIn("compute=35 buffer=hello from basic", stub)
        self.assertEventuallyIn("parent: child exited 0", stub)
        self.assertEqual(stub.wait(20), 0)

    def test_vfork_follow_child_breaks_in_execd_program(self):
        stub = self.stub(*free_port_args(FORKER, "vfork", BASIC))
        out = run_gdb(stub, ["set breakpoint pending on", "set follow-fork-mode child", "b add", "c", "bt",
                             "info inferiors", "delete", "c"], prog=FORKER)
        self.assertRegex(out, r"\[Attaching after .* vfork to child .*\]")
        self.assertRegex(out, r"process \d+ is executing new program: %s" % re.escape(BASIC))
        self.assertRegex(out, r"hit Breakpoint 1(\.\d+)?, add \(a=0, b=5\) at .*basic\.c")
        self.assertRegex(out, r"#2 .* main \(argc=1")
        self.assertRegex(out, r"\[Inferior 2 \(process \d+\) exited normally\]")
        self.assertEventuallyIn("compute=35 buffer=hello from basic", stub)
        self.assertEventuallyIn("parent: child exited 0", stub)


# ---------------------------------------------------------------------------
# 6: k and vKill on the only process

class KillOnlyProcessTests(Base):
    def test_gdb_kill_ends_dbgstub(self):
        stub = self.stub(*free_port_args(BASIC))
        pid = stub_pid(stub)
        out = run_gdb(stub, ["b add", "c", "kill", "info inferiors"], prog=BASIC)
        self.assertIn("Breakpoint 1, add", out)
        self.assertIn("[Inferior 1 (process %d) killed]" % pid, out)
        self.assertEqual(stub.wait(20), 0, stub.output())
        self.assertTrue(harness.wait_gone(pid), "the killed program is gone")

    def test_k_packet_ends_dbgstub(self):
        stub = self.stub(*free_port_args(BASIC))
        pid = stub_pid(stub)
        with harness.RspClient(stub.port) as c:
            c.handshake()
            self.assertTrue(c.request("?").startswith("T"))
            c.send("k")  # no reply is read for 'k'
            self.assertEqual(stub.wait(20), 0, stub.output())
        self.assertTrue(harness.wait_gone(pid))

    def test_vkill_packet_ends_dbgstub(self):
        stub = self.stub(*free_port_args(BASIC))
        pid = stub_pid(stub)
        with harness.RspClient(stub.port) as c:
            c.handshake()
            self.assertTrue(c.request("?").startswith("T"))
            self.assertEqual(c.request("vKill;%x" % pid), "OK")
            self.assertEqual(stub.wait(20), 0, stub.output())
        self.assertTrue(harness.wait_gone(pid))

    def test_multi_kill_then_second_gdb_runs(self):
        stub = self.stub("--multi", "--allow-run", *free_port_args())
        run = [f"set remote exec-file {BASIC}", "b add", "run", "bt 1", "kill", "info inferiors"]
        out1 = run_gdb(stub, run, prog=BASIC, extended=True)
        self.assertIn("Breakpoint 1, add (a=0, b=5)", out1)
        self.assertRegex(out1, r"\[Inferior 1 \(process \d+\) killed\]")
        self.assertIsNone(stub.proc.poll(), "dbgstub --multi keeps serving")
        out2 = run_gdb(stub, run + ["run", "delete", "c"], prog=BASIC, extended=True)
        self.assertNotIn("another debugger", out2)
        self.assertIn("Breakpoint 1, add (a=0, b=5)", out2)
        self.assertRegex(out2, r"\[Inferior 1 \(process \d+\) killed\]")
        self.assertRegex(out2, r"\[Inferior 1 \(process \d+\) exited normally\]")
        self.assertIsNone(stub.proc.poll(), "dbgstub --multi keeps serving")


if __name__ == "__main__":
    harness.main()
