"""Events kept across stops in multi-threaded programs (tests/programs/
thread_events.c): signals asked for in a resume that another thread's
pending event answered, or for a thread stopped by PTRACE_INTERRUPT; a
single-step overtaken by another thread's event; a leader that exited before
the other threads; fork children not reported yet; breakpoints in a vfork
child; the terminal given to the program."""
import os
import pty
import re
import socket
import subprocess
import sys
import time
import unittest

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import harness  # noqa: E402
from harness import RspClient, Stub, free_port_args, inferior_pid, program  # noqa: E402

PROG = program("thread_events")


def symbol(name):
    out = subprocess.run(["nm", PROG], stdout=subprocess.PIPE, text=True, check=True).stdout
    m = re.search(rf"^([0-9a-f]+) \w {name}$", out, re.M)
    assert m, f"no symbol {name} in {PROG}"
    return int(m.group(1), 16)


def load_base(pid):
    path = os.path.realpath(PROG)
    with open(f"/proc/{pid}/maps") as f:
        for line in f:
            if line.rstrip().endswith(path):
                return int(line.split("-")[0], 16)
    raise AssertionError(f"{path} is not mapped in {pid}")


def stop_thread(reply):
    m = re.search(r"thread:p([0-9a-f]+)\.([0-9a-f]+);", reply)
    assert m, f"no thread in stop reply {reply!r}"
    return int(m.group(2), 16)


def return_from_hit(c, pid, reply):
    """Makes the thread stopped at hit()'s breakpoint return from it (pc
    from the return address on its stack, as gdb would step over it)."""
    tid = stop_thread(reply)
    sp = int.from_bytes(bytes.fromhex(re.search(r"07:([0-9a-f]{16})", reply).group(1)), "little")
    ret = c.request("m%x,8" % sp)
    assert c.request("Hgp%x.%x" % (pid, tid)) == "OK"
    assert c.request("P10=" + ret) == "OK"
    assert c.request("P7=" + (sp + 8).to_bytes(8, "little").hex()) == "OK"


class ThreadEvents(harness.GdbTestCase):

    def stub(self, *args):
        stub = Stub(*free_port_args(PROG, *args))
        self.addCleanup(harness.close_stub, stub)
        return stub

    def test_signal_to_thread_stopped_by_interrupt(self):
        # Thread 1 sits in the stop dbgstub made with PTRACE_INTERRUPT
        # (worker 2 hit the breakpoint): the kernel ignores a signal given
        # to PTRACE_CONT there, so it must be sent some other way.
        stub = self.stub()
        out = self.gdb_or_fail(stub, ["break worker_stop", "continue", "thread 1", "signal SIGUSR1",
                                      "continue"], PROG, 30)
        self.assertIn("hit Breakpoint 1, worker_stop", out)
        self.assertEqual(stub.wait(), 0)
        self.assertIn("usr1 1 by main", stub.output(), out)

    def spin_client(self, mode):
        stub = self.stub(mode)
        pid = inferior_pid(stub)
        c = RspClient(stub.port)
        c.sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)  # many small exchanges
        self.addCleanup(c.close)
        c.handshake()
        c.request("?")
        base = load_base(pid)
        self.assertEqual(c.request("Z0,%x,1" % (base + symbol("hit"))), "OK")
        return stub, pid, base, c

    def test_step_overtaken_and_signal_kept(self):
        # B loops on a breakpoint; A spins. "step A, continue B" ends with
        # one of the two events pending. A step of A still pending when A
        # is then continued must be dropped (else gdb sees a SIGTRAP), and a
        # signal for A given while B's breakpoint is pending must reach A.
        stub, pid, base, c = self.spin_client("spin")
        first = c.request("vCont;c")
        self.assertIn("swbreak", first)
        b = stop_thread(first)
        tids = [int(t, 16) for t in re.findall(r"p[0-9a-f]+\.([0-9a-f]+)", c.request("qfThreadInfo"))]
        a = [t for t in tids if t not in (pid, b)][0]
        step_first, break_first, sent = 0, 0, 0
        return_from_hit(c, pid, first)
        for _ in range(1000):
            r = c.request("vCont;s:p%x.%x;c" % (pid, a))
            if stop_thread(r) == a:
                self.assertNotIn("swbreak", r)
                step_first += 1
                # B's breakpoint may be pending: then it answers this
                # resume, and the signal waits for A's next resume. (Only
                # when A has handled the last one: a second SIGUSR1 while
                # one is blocked or pending would merge with it.)
                handled = c.request("m%x,4" % (base + symbol("usr1_count")))
                if int.from_bytes(bytes.fromhex(handled), "little") == sent:
                    r = c.request("vCont;C1e:p%x.%x;c" % (pid, a))
                    sent += 1
                else:
                    r = c.request("vCont;c")
            else:
                break_first += 1
            self.assertEqual(stop_thread(r), b, r)
            self.assertIn("swbreak", r)
            return_from_hit(c, pid, r)
            r = c.request("vCont;c")
            self.assertIn("swbreak", r, "a stale step reported for a continued thread")
            self.assertEqual(stop_thread(r), b, r)
            return_from_hit(c, pid, r)
            if step_first >= 5 and break_first >= 5:
                break
        self.assertGreater(step_first, 0)
        self.assertGreater(break_first, 0)
        # Let A run its handlers, then count.
        self.assertEqual(c.request("z0,%x,1" % (base + symbol("hit"))), "OK")
        c.send("vCont;c")
        time.sleep(0.3)
        c.send_raw(b"\x03")
        c.read_packet()
        count = c.request("m%x,4" % (base + symbol("usr1_count")))
        self.assertEqual(int.from_bytes(bytes.fromhex(count), "little"), sent)

    def test_unreported_fork_child_not_listed(self):
        # B loops on a breakpoint while A forks: a fork that happens during
        # the stop of B's breakpoint is pending; its child is not listed
        # until the fork event is reported.
        stub, pid, base, c = self.spin_client("fork")
        c.request("qSupported:multiprocess+;swbreak+;fork-events+;vfork-events+")
        self.assertEqual(c.request("QPassSignals:11"), "OK")  # SIGCHLD
        forks = 0
        for _ in range(200):
            r = c.request("vCont;c")
            if "fork:" in r:
                forks += 1
                child = int(re.search(r"fork:p([0-9a-f]+)\.", r).group(1), 16)
                self.assertEqual(c.request("D;%x" % child), "OK")
                continue
            self.assertRegex(r, r"^T(05|14)")  # the breakpoint, or a SIGCHLD
            listed = re.findall(r"p([0-9a-f]+)\.[0-9a-f]+", c.request("qfThreadInfo"))
            self.assertEqual({int(p, 16) for p in listed}, {pid}, "a child of an unreported fork is listed")
            if forks >= 20:
                break
        self.assertGreater(forks, 0)

    def test_stop_after_leader_exited(self):
        # main called pthread_exit: a zombie that never stops; the stop of
        # the worker's breakpoint must not wait for it.
        stub = self.stub("leader")
        out = self.gdb_or_fail(stub, ["break worker_stop", "continue", "continue"], PROG, 20)
        self.assertIn("hit Breakpoint 1, worker_stop", out)
        self.assertIn("exited normally", out)
        self.assertIn("worker done", stub.output())

    def test_exit_code_is_the_leaders(self):
        # main ends with SYS_exit(1), then its workers with 2..5: the
        # process exited with 1. The kernel's final wait status carries a
        # worker's code instead (gdbserver reports that too); dbgstub takes
        # the leader's from its PTRACE_EVENT_EXIT stop.
        for _ in range(3):
            stub = self.stub("leader-code")
            out = self.gdb_or_fail(stub, ["continue"], PROG, 20)
            self.assertIn("exited with code 01]", out)

    def test_group_exit_under_scheduler_locking(self):
        # Only the worker runs (scheduler-locking) and it calls exit(0):
        # the stopped main thread dies with it. The process exited
        # normally; "no resumed threads" (gdb: "No unwaited-for children
        # left", which gdbserver says here) is not the news, and gdb hung
        # when it came first.
        for _ in range(4):
            stub = self.stub("thread-exit")
            out = self.gdb_or_fail(stub, ["break worker_stop", "continue", "set scheduler-locking on", "continue"],
                                   PROG, 20)
            self.assertIn("exited normally", out)
            self.assertNotIn("No unwaited-for children", out)

    def test_next_over_vfork_into_child(self):
        # Following the child, "next" over vfork(): gdb takes its
        # breakpoints out of the parent, then puts them (the step-resume
        # one) into the child, which shares the parent's memory.
        src = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "programs", "thread_events.c")
        with open(src) as f:
            line = next(n for n, text in enumerate(f, 1) if "pid_t c = vfork();" in text)
        stub = self.stub("vfork")
        out = self.gdb_or_fail(stub, ["set follow-fork-mode child", f"break {line}", "continue", "next",
                                      "bt 1", "continue"], PROG, 20)
        self.assertRegex(out, rf"#0  main \(.*\) at \S*thread_events\.c:{line + 1}\n")

    def test_program_reads_the_terminal(self):
        # dbgstub runs on a terminal (its controlling one, as when started
        # from a shell); the program it starts reads that terminal.
        master, slave = pty.openpty()

        def take_terminal():
            import fcntl
            import termios
            fcntl.ioctl(0, termios.TIOCSCTTY, 0)

        proc = subprocess.Popen([harness.DBGSTUB, "127.0.0.1:0", PROG, "read"], stdin=slave, stdout=slave,
                                stderr=slave, start_new_session=True, preexec_fn=take_terminal)
        os.close(slave)
        self.addCleanup(os.close, master)
        out = b""

        def read_until(pattern, timeout=20):
            nonlocal out
            deadline = time.time() + timeout
            while not re.search(pattern, out) and time.time() < deadline:
                try:
                    chunk = os.read(master, 4096)
                except OSError:
                    break
                out += chunk
            return re.search(pattern, out)

        try:
            m = read_until(rb"Listening on port (\d+)")
            self.assertTrue(m, out)
            port = int(m.group(1))
            os.write(master, b"hello\n")
            g = harness.gdb(["continue"], port=port, file=PROG, timeout=20)
            self.assertIn("exited normally", g)
            self.assertTrue(read_until(rb"read: hello"), out)
        finally:
            if proc.poll() is None:
                proc.terminate()
            proc.wait(10)


if __name__ == "__main__":
    harness.main()
