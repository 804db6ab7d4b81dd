"""The real gdb against dbgstub on tests/programs/signals.c and spin.c:
signal stops, delivery and suppression, QPassSignals, a fatal SIGSEGV,
`signal 0` / `signal SIG` / `queue-signal`, and interrupting a running
program (gdb's Ctrl-C, sent to the stub as the 0x03 byte)."""
import os
import re
import signal
import subprocess
import sys
import threading
import time
import unittest

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import harness  # noqa: E402
from harness import inferior_pid, Stub, eventually, free_port_args, gdb, program, process_state  # noqa: E402

SIGNALS = program("signals")
SPIN = program("spin")
SRC = r"\S*signals\.c"
# Stop replies use gdb's own signal numbers: SIGUSR1 is 30 (0x1e).
GDB_SIGUSR1 = "1e"




class GdbSignals(harness.GdbTestCase):

    def run_gdb(self, commands, args=(), stub_args=(), timeout=30):
        with Stub(*stub_args, *free_port_args(SIGNALS, *args)) as stub:
            out = self.gdb_or_fail(stub, commands, SIGNALS, timeout)
            stub.wait()
        return out, stub

    def test_sigusr1_stop_then_delivered(self):
        out, stub = self.run_gdb(["continue", "continue"])
        self.assertIn("Program received signal SIGUSR1, User defined signal 1.", out)
        self.assertRegex(out, r"\[Inferior 1 \(process \d+\) exited normally\]")
        # Continuing passed the signal on: the handler ran.
        self.assertIn("handled=10", stub.output())

    def test_pass_signals_without_stopping(self):
        """`handle nostop noprint pass` is sent as QPassSignals: the stub
        delivers SIGUSR1 itself instead of reporting a stop."""
        out, stub = self.run_gdb(["handle SIGUSR1 nostop noprint pass", "continue"],
                                 stub_args=("--log-packets",))
        self.assertNotIn("SIGUSR1", out.replace("handle SIGUSR1", ""))
        self.assertRegex(out, r"\[Inferior 1 \(process \d+\) exited normally\]")
        log = stub.output()
        self.assertIn("handled=10", log)
        passes = re.findall(r"<- \$QPassSignals:([0-9a-f;]*)", log)
        self.assertTrue(any(GDB_SIGUSR1 in p.split(";") for p in passes), passes)
        self.assertNotRegex(log, rf"-> \$T{GDB_SIGUSR1}", "SIGUSR1 was reported although it is passed")

    def test_detach_passes_the_reported_signal(self):
        """As gdbserver, a detach hands the program the signal of the stop
        gdb was told of: the handler runs after the detach."""
        out, stub = self.run_gdb(["continue", "detach"])
        self.assertIn("Program received signal SIGUSR1", out)
        self.assertRegex(out, r"\[Inferior 1 \(process \d+\) detached\]")
        self.assertTrue(eventually(lambda: "handled=" in stub.output(), 5), stub.output())
        self.assertIn("handled=10", stub.output())

    def test_detach_keeps_a_nopass_signal(self):
        """... unless gdb said the program doesn't get it (QProgramSignals)."""
        out, stub = self.run_gdb(["handle SIGUSR1 nopass", "continue", "detach"])
        self.assertIn("Program received signal SIGUSR1", out)
        self.assertRegex(out, r"\[Inferior 1 \(process \d+\) detached\]")
        self.assertTrue(eventually(lambda: "handled=" in stub.output(), 5), stub.output())
        self.assertIn("handled=0", stub.output())

    def test_interrupt_while_stopped_stops_next_resume(self):
        """A ^C that arrives while the program is stopped (it crossed a stop
        reply) is not lost: as with gdbserver, the next resume stops with
        SIGINT at once; the one after runs on (SIGINT is not delivered)."""
        with Stub(*free_port_args(program("basic"))) as stub:
            c = harness.RspClient(stub.port)
            self.addCleanup(c.close)
            c.handshake()
            stop = c.request("?")
            pc = re.search(r"10:([0-9a-f]+);", stop)
            c.send_raw(b"\x03")
            time.sleep(0.2)
            reply = c.request("vCont;c")
            self.assertTrue(reply.startswith("T02"), reply)
            self.assertEqual(re.search(r"10:([0-9a-f]+);", reply).group(1), pc.group(1), "the program ran")
            self.assertTrue(c.request("vCont;c").startswith("W00"))
            c.close()
            stub.wait()

    def test_interrupt_is_sigint_when_its_stops_were_overtaken(self):
        """A ^C's stop is SIGINT even when no thread stopped in our
        interrupt's own stop (a clone event or another stop came first for
        each): it was reported as signal 0, which gdb does not take for its
        interrupt (gdb.threads/detach-step-over's "interrupt" timed out)."""
        with Stub(*free_port_args(program("churn"))) as stub:
            c = harness.RspClient(stub.port)
            self.addCleanup(c.close)
            c.handshake()
            c.request("?")
            stops = []
            for _ in range(60):
                c.send("vCont;c")
                time.sleep(0.01)
                c.send_raw(b"\x03")
                stops.append(c.read_packet())
            self.assertEqual([s[:3] for s in stops if not s.startswith("T02")], [], stops[:3])
            c.send("k")
            c.close()
            stub.wait()

    def test_signal_zero_suppresses(self):
        out, stub = self.run_gdb(["continue", "signal 0"])
        self.assertIn("Program received signal SIGUSR1", out)
        self.assertRegex(out, r"\[Inferior 1 \(process \d+\) exited with code 01\]")
        self.assertIn("handled=0", stub.output())

    def test_queue_signal(self):
        """The first SIGUSR1 is discarded with `signal 0`; a queued one is
        delivered on the next resume."""
        out, stub = self.run_gdb([
            "continue", "break signals.c:13", "signal 0",
            "p handled", "queue-signal SIGUSR1", "continue",   # handler runs, back at the breakpoint
            "p handled", "delete", "continue",
        ])
        self.assertIn("Program received signal SIGUSR1", out)
        self.assertEqual(len(re.findall(rf"Breakpoint 1, main \(argc=1, argv=0x[0-9a-f]+\) at {SRC}:13", out)),
                         2, out)
        self.assertIn("$1 = 0\n", out)
        self.assertIn("$2 = 10\n", out)
        self.assertRegex(out, r"\[Inferior 1 \(process \d+\) exited normally\]")
        self.assertIn("handled=10", stub.output())

    def test_signal_command_delivers(self):
        out, stub = self.run_gdb([
            "handle SIGUSR1 nostop noprint pass",
            "break signals.c:12", "continue", "signal SIGUSR1",   # handler runs, then the breakpoint again
            "p handled", "delete", "continue",
        ])
        self.assertIn("Breakpoint 1, main", out)
        self.assertIn("$1 = 10\n", out)
        self.assertRegex(out, r"\[Inferior 1 \(process \d+\) exited normally\]")
        self.assertIn("handled=10", stub.output())

    def test_segv(self):
        out, stub = self.run_gdb(["handle SIGUSR1 nostop noprint pass", "continue", "bt 1",
                                  "continue", "info inferiors"], args=("segv",))
        self.assertIn("Program received signal SIGSEGV, Segmentation fault.", out)
        self.assertRegex(out, rf"main \(argc=2, argv=0x[0-9a-f]+\) at {SRC}:16\n16\s+\*p = 1;")
        self.assertRegex(out, rf"#0  (0x[0-9a-f]+ in )?main \(argc=2, argv=0x[0-9a-f]+\) at {SRC}:16")
        self.assertIn("Program terminated with signal SIGSEGV, Segmentation fault.", out)
        self.assertIn("The program no longer exists.", out)
        self.assertIn("killed by signal 11", stub.output())

    def test_siginfo(self):
        """`$_siginfo` at a signal stop (qXfer:siginfo:read, which gdbserver
        serves): the signal number and, for SIGSEGV, the faulting address."""
        out, _ = self.run_gdb(["continue", "p $_siginfo.si_signo", "p $_siginfo.si_code",
                               "continue", "p $_siginfo.si_signo", "p $_siginfo._sifields._sigfault.si_addr"],
                              args=("segv",))
        self.assertNotIn("Unable to read siginfo", out)
        self.assertIn("Program received signal SIGUSR1", out)
        self.assertIn("$1 = 10\n", out)
        self.assertIn("$2 = -6\n", out)          # SI_TKILL: raise() uses tgkill
        self.assertIn("Program received signal SIGSEGV", out)
        self.assertIn("$3 = 11\n", out)
        self.assertIn("$4 = (void *) 0x0\n", out)

    def test_interrupt(self):
        """Ctrl-C in gdb (SIGINT to the gdb process) while the program runs:
        the stub stops it and reports SIGINT; continuing and interrupting
        again works."""
        with Stub(*free_port_args(SPIN)) as stub:
            pid = inferior_pid(stub)
            cmd = ["gdb", "-nx", "-batch", "-ex", "set confirm off", "-ex", "set pagination off",
                   "-ex", "set width 0", "-ex", f"file {SPIN}", "-ex", f"target remote 127.0.0.1:{stub.port}",
                   "-ex", "continue", "-ex", "bt", "-ex", "p ticks > 0", "-ex", "info threads",
                   "-ex", "continue", "-ex", "bt 1"]
            proc = subprocess.Popen(cmd, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                                    stderr=subprocess.STDOUT, text=True, errors="replace")
            lines = []
            watchdog = threading.Timer(40, proc.kill)  # a hang fails the test instead of blocking it
            watchdog.start()
            try:
                def interrupt_when_running():
                    # Running means gdb has sent the resume and waits for a stop.
                    self.assertTrue(eventually(lambda: process_state(pid) in ("R", "S", "D"), timeout=20),
                                    f"program never ran: {process_state(pid)}")
                    time.sleep(0.3)
                    os.kill(proc.pid, signal.SIGINT)

                # The first time, also wait until main runs (spin prints its pid),
                # so that gdb is done with the shared-library stop of the startup.
                self.assertTrue(eventually(lambda: f"spin pid {pid}" in stub.output(), timeout=20),
                                "spin never started:\n" + stub.output())
                interrupt_when_running()
                stops = 0
                for line in proc.stdout:
                    lines.append(line)
                    if line.startswith("Program received signal SIGINT"):
                        stops += 1
                        if stops == 2:
                            break
                        interrupt_when_running()
                # Not communicate(): it reads the pipe directly and would lose
                # what the text wrapper has already buffered.
                lines.append(proc.stdout.read())
                proc.wait(30)
            finally:
                watchdog.cancel()
                if proc.poll() is None:
                    proc.kill()
                    proc.wait()
            stub.wait()
        out = "".join(lines) + f"\n[gdb exit status {proc.returncode}]"
        self.assertEqual(out.count("Program received signal SIGINT, Interrupt."), 2, out)
        # Almost always stopped in usleep's nanosleep; rarely in tick or main.
        self.assertRegex(out, r"#\d+  (0x[0-9a-f]+ in )?(usleep|tick|main) \(")
        self.assertRegex(out, r"#\d+  (0x[0-9a-f]+ in )?main \(\) at \S*spin\.c:1[2-5]")
        self.assertIn("$1 = 1\n", out)
        self.assertRegex(out, r"\* 1\s+Thread \d+\.\d+")
        self.assertEqual(out.count("\n#0  "), 2, out)  # `bt` after the first stop, `bt 1` after the second
        self.assertNotIn("exited", out)
        self.assertTrue(eventually(lambda: process_state(pid) is None, timeout=5))


if __name__ == "__main__":
    harness.main()
