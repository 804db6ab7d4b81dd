"""gdb against `dbgstub --attach HOST:PORT PID`: inspect a running program,
break in it, interrupt it, and let it go (detach or disconnect) so that it
keeps running untraced."""
import os
import re
import signal
import subprocess
import sys
import time
import unittest

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import harness  # noqa: E402
from harness import Stub, eventually, process_state, program, spawn, tracer_of  # noqa: E402

SPIN = program("spin")


class AttachTest(unittest.TestCase):
    def setUp(self):
        self.target = spawn("spin")
        self.addCleanup(harness.reap, self.target)
        first = self.target.stdout.readline()
        self.assertIn(f"spin pid {self.target.pid}", first)
        self.pid = self.target.pid

    def attach_stub(self, *extra):
        stub = Stub(*extra, "--attach", "127.0.0.1:0", str(self.pid))
        self.addCleanup(harness.close_stub, stub)
        self.assertIn(f"Attached; pid = {self.pid}", stub.output())
        self.assertEqual(tracer_of(self.pid), stub.proc.pid)
        return stub

    def assert_released(self, stub):
        """dbgstub ends by itself (not --multi) and the program runs on untraced."""
        self.assertEqual(stub.wait(15), 0, stub.output())
        time.sleep(0.5)
        self.assertTrue(harness.pid_alive(self.pid), "the attached program died")
        self.assertTrue(eventually(lambda: harness.running_untraced(self.pid), 5),
                        f"state={process_state(self.pid)} tracer={tracer_of(self.pid)}")
        self.assertIn(process_state(self.pid), ("S", "R"))
        self.assert_still_ticking()

    def assert_still_ticking(self):
        """The program really runs: attach once more and read `ticks` twice."""
        stub = self.attach_stub()
        out = harness.gdb_run(["p ticks"], args=[SPIN], pre=[f"target remote 127.0.0.1:{stub.port}"])
        # Let it run a little between the two reads.
        first = self.ticks(out)
        stub.wait(15)
        time.sleep(0.2)
        stub = self.attach_stub()
        out = harness.gdb_run(["p ticks"], args=[SPIN], pre=[f"target remote 127.0.0.1:{stub.port}"])
        second = self.ticks(out)
        self.assertGreater(second, first, "ticks did not advance after the detach")
        self.assertEqual(stub.wait(15), 0)
        self.assertTrue(eventually(lambda: harness.running_untraced(self.pid), 5))

    def ticks(self, out):
        m = re.search(r"^\$\d+ = (\d+)$", out, re.M)
        self.assertIsNotNone(m, out)
        return int(m.group(1))

    def test_bt_break_print_detach(self):
        stub = self.attach_stub()
        out = harness.gdb_run(
            ["bt", "break tick", "continue", "bt", "p ticks", "detach"],
            args=[SPIN], pre=[f"target remote 127.0.0.1:{stub.port}"])
        bt = [l for l in out.splitlines() if re.match(r"#\d+\s", l)]
        self.assertTrue(any(" main " in l or " main (" in l for l in bt), out)
        self.assertIn("Breakpoint 1, tick () at", out)
        self.assertRegex(out, r"#0\s+tick \(\) at \S*spin\.c:7")
        self.assertRegex(out, r"#1\s+0x[0-9a-f]+ in main \(\) at \S*spin\.c:13")
        self.assertGreater(self.ticks(out), 0)
        self.assertIn(f"[Inferior 1 (process {self.pid}) detached]", out)
        self.assertNotIn("Remote connection closed", out)
        self.assert_released(stub)

    def test_detach_after_killed_from_outside(self):
        """The program dies (SIGKILL from elsewhere) while stopped: detach
        still succeeds, as with gdbserver; nothing is left to release."""
        stub = self.attach_stub()
        out = harness.gdb_run(
            [f"shell kill -9 {self.pid}", "shell sleep 0.5", "detach", "info inferiors"],
            args=[SPIN], pre=[f"target remote 127.0.0.1:{stub.port}"])
        self.assertIn(f"[Inferior 1 (process {self.pid}) detached]", out)
        self.assertNotIn("Can't detach", out)
        self.assertEqual(stub.wait(15), 0, stub.output())
        self.assertTrue(harness.wait_gone(self.pid, 5))

    def test_disconnect_without_detach_releases(self):
        # --once: the debugger leaving ends the session (without it, a
        # stopped program waits for the next debugger, as with gdbserver).
        stub = self.attach_stub("--once")
        out = harness.gdb_run(["break tick", "continue", "disconnect"],
                              args=[SPIN], pre=[f"target remote 127.0.0.1:{stub.port}"])
        self.assertIn("Breakpoint 1, tick ()", out)
        self.assertNotIn("detached]", out)  # no D packet: the connection just closed
        # The breakpoint must be gone from the program's code, or it would
        # die of SIGTRAP on the next tick().
        self.assert_released(stub)

    def test_debugger_vanishes_releases(self):
        """The connection just drops (gdb killed): as a disconnect."""
        stub = self.attach_stub("--once")
        c = harness.RspClient(stub.port)
        self.assertIn("PacketSize", c.handshake())
        self.assertRegex(c.request("?"), r"^[TS]")
        c.close()
        self.assert_released(stub)

    def test_gdb_quits_while_attached_detaches(self):
        """gdb's own quit with an attached inferior detaches (qAttached=1)."""
        stub = self.attach_stub()
        out = harness.gdb_run(["info inferiors"], args=[SPIN], pre=[f"target remote 127.0.0.1:{stub.port}"])
        self.assertIn(f"process {self.pid}", out)
        self.assert_released(stub)

    def test_interrupt_running_attached_process(self):
        stub = self.attach_stub("--log-packets")
        g = harness.gdb_popen(["continue", "bt", "p ticks", "detach"],
                              args=[SPIN], pre=[f"target remote 127.0.0.1:{stub.port}"])
        self.addCleanup(harness.reap, g)
        # Wait until gdb has resumed the program, then press ^C.
        self.assertTrue(eventually(lambda: re.search(r"<- \$vCont;c|<- \$c", stub.output()), 15),
                        stub.output())
        time.sleep(0.3)
        self.assertIn(process_state(self.pid), ("S", "R"))
        g.send_signal(signal.SIGINT)
        try:
            out, _ = g.communicate(timeout=20)
        except Exception:
            g.kill()
            out, _ = g.communicate()
            self.fail("gdb did not finish after ^C:\n" + out + "\n--- stub:\n" + stub.output())
        self.assertIn("<- ^C", stub.output())
        self.assertIn("Program received signal SIGINT", out, out + "\n--- stub:\n" + stub.output())
        self.assertRegex(out, r"#\d+\s+0x[0-9a-f]+ in main \(\) at \S*spin\.c:\d+")
        self.assertGreater(self.ticks(out), 0)
        self.assertIn("detached]", out)
        self.assert_released(stub)


def tgkill(pid, tid, sig):
    """A signal for one thread (raise()'s kind), not the whole process's."""
    import ctypes
    libc = ctypes.CDLL(None, use_errno=True)
    if libc.syscall(234, pid, tid, sig) != 0:  # SYS_tgkill on x86-64
        raise OSError(ctypes.get_errno(), "tgkill")


class SignalBehindInterruptTest(unittest.TestCase):
    """A signal already queued for a thread when dbgstub's PTRACE_INTERRUPT
    stops it: the kernel takes the interrupt's stop first. The thread is
    let take the signal, so that its stop is seen (as gdbserver, whose
    SIGSTOP queues behind it, sees it). The program waits for a vfork child,
    a wait no signal ends, so the signal surely stays queued until the stop."""

    def start(self, sig):
        target = spawn("vforker")
        self.addCleanup(harness.reap, target)
        self.assertIn(f"vforker pid {target.pid}", target.stdout.readline())
        time.sleep(0.2)  # in the vfork wait (the child sleeps 2 s)
        tgkill(target.pid, target.pid, sig)
        return target

    def test_attach_stops_in_the_signal(self):
        """gdb.threads/attach-into-signal: $_siginfo after the attach is the
        raised signal's, not our interrupt's."""
        target = self.start(signal.SIGUSR1)
        with Stub("--attach", "127.0.0.1:0", str(target.pid)) as stub:
            with harness.RspClient(stub.port) as c:
                c.handshake()
                stop = c.request("?")
                siginfo = c.request("qXfer:siginfo:read::0,80")
                self.assertEqual(c.request("D"), "OK")
            stub.wait(15)
        self.assertTrue(stop.startswith("T1e"), stop)  # gdb's SIGUSR1
        self.assertEqual(int.from_bytes(siginfo[1:5].encode("latin-1"), "little"), signal.SIGUSR1, repr(siginfo))
        self.assertTrue(harness.pid_alive(target.pid))

    def test_interrupt_stop_siginfo_is_sigstop(self):
        """No signal waiting: the thread sits in our PTRACE_INTERRUPT stop,
        whose siginfo is SIGTRAP of ptrace's own; $_siginfo shows SIGSTOP
        there, as with gdbserver (attach-into-signal takes 14 or 19, not 5)."""
        target = spawn("spin")
        self.addCleanup(harness.reap, target)
        self.assertIn(f"spin pid {target.pid}", target.stdout.readline())
        with Stub("--attach", "127.0.0.1:0", str(target.pid)) as stub:
            with harness.RspClient(stub.port) as c:
                c.handshake()
                c.request("?")
                siginfo = c.request("qXfer:siginfo:read::0,80")
                self.assertEqual(c.request("D"), "OK")
            stub.wait(15)
        self.assertEqual(int.from_bytes(siginfo[1:5].encode("latin-1"), "little"), signal.SIGSTOP, repr(siginfo))

    def test_detach_does_not_leave_a_sigtrap(self):
        """A SIGTRAP queued behind the stop (an int3's, a single-step's) is
        the debugger's: a detach must not leave it to the program, which it
        kills (gdb.threads/detach-step-over and attach-many-short-lived-
        threads: the re-attach failed with EPERM, the program a zombie)."""
        target = self.start(signal.SIGTRAP)
        with Stub("--attach", "127.0.0.1:0", str(target.pid)) as stub:
            with harness.RspClient(stub.port) as c:
                c.handshake()
                stop = c.request("?")
                self.assertEqual(c.request("D"), "OK")
            stub.wait(15)
        self.assertTrue(stop.startswith("T05"), stop)
        time.sleep(0.5)
        self.assertIsNone(target.poll(), "the program died after the detach")
        self.assertIn(process_state(target.pid), ("S", "R", "D"))  # D: in the vfork wait


class ThreadIdTest(unittest.TestCase):
    """A thread's id is not a process. /proc/TID/task lists the whole thread
    group, so dbgstub used to seize the process and register it under the
    thread's id; now the attach is refused and names the process to use.
    The program is Python with one extra thread, which prints its id."""

    def setUp(self):
        code = ("import threading, time\n"
                "def worker():\n"
                "    print(threading.get_native_id(), flush=True)\n"
                "    time.sleep(600)\n"
                "threading.Thread(target=worker, daemon=True).start()\n"
                "time.sleep(600)\n")
        self.target = subprocess.Popen([sys.executable, "-c", code], stdout=subprocess.PIPE, text=True)
        self.addCleanup(harness.reap, self.target)
        self.tid = int(self.target.stdout.readline())
        self.assertNotEqual(self.tid, self.target.pid)
        self.why = f"{self.tid} is a thread of process {self.target.pid}, not a process: attach to {self.target.pid}"

    def assert_untouched(self):
        self.assertEqual(tracer_of(self.target.pid), 0)
        self.assertEqual(tracer_of(self.tid), 0)
        self.assertIsNone(self.target.poll())

    def test_command_line(self):
        stub = Stub("--attach", "127.0.0.1:0", str(self.tid), wait_listening=False)
        self.addCleanup(harness.close_stub, stub)
        self.assertNotEqual(stub.wait(15), 0)
        self.assertIn(self.why, stub.output())
        self.assert_untouched()

    def test_gdb_attach(self):
        stub = Stub("--multi", "--allow-attach", "127.0.0.1:0")
        self.addCleanup(harness.close_stub, stub)
        out = harness.gdb_run([f"attach {self.tid}", "monitor help"],
                              pre=[f"target extended-remote 127.0.0.1:{stub.port}"])
        self.assertIn(f"Attaching to process {self.tid} failed", out)
        self.assertIn("The following monitor commands are supported:", out)  # the session goes on
        self.assertTrue(harness.eventually(lambda: self.why in stub.output(), 5), stub.output())
        self.assert_untouched()
        # The process itself is still welcome.
        out = harness.gdb_run([f"attach {self.target.pid}", "detach"],
                              pre=[f"target extended-remote 127.0.0.1:{stub.port}"])
        self.assertIn(f"[Inferior 1 (process {self.target.pid}) detached]", out)


if __name__ == "__main__":
    harness.main()
