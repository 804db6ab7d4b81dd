"""dbgstub's life cycle: one debugger at a time, what happens to the program
when the debugger goes away or dbgstub is told to stop, --once / --multi,
the default listen address, and robustness against bad input."""
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import unittest

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import harness  # noqa: E402
from harness import RspClient, Stub, eventually, process_state, program, spawn, tracer_of  # noqa: E402

BASIC = os.path.abspath(program("basic"))
SPIN = os.path.abspath(program("spin"))


def launched_pid(stub):
    m = re.search(r"created; pid = (\d+)", stub.output())
    assert m, stub.output()
    return int(m.group(1))


class LifecycleTest(harness.StubTestCase):
    # -- one debugger at a time ------------------------------------------

    def test_second_debugger_refused_first_undisturbed(self):
        stub = self.stub("127.0.0.1:0", SPIN)
        pid = launched_pid(stub)
        first = self.client(stub)
        self.assertIn("PacketSize=", first.handshake())
        out = harness.gdb_run(["info registers rip"], pre=[f"target remote 127.0.0.1:{stub.port}"],
                              args=[SPIN])
        self.assertNotIn("Remote debugging using", out)
        # The first session goes on as if nothing happened.
        self.assertRegex(first.request("?"), r"^[TS][0-9a-f]{2}")
        self.assertRegex(first.request("m0,1"), r"^E[0-9a-f]{2}$")
        self.assertEqual(first.request("vCont?")[:5], "vCont")
        self.assertTrue(harness.pid_alive(pid))
        self.assertIsNone(stub.proc.poll())
        # And the second one was told why.
        self.assertIn("already connected", out, "gdb does not show why it was refused:\n" + out +
                      "\n--- stub:\n" + stub.output())

    def test_second_raw_client_gets_message_and_close(self):
        stub = self.stub("127.0.0.1:0", SPIN)
        first = self.client(stub)
        first.handshake()
        second = self.client(stub)
        second.send("qSupported:multiprocess+")
        data = b""
        second.sock.settimeout(5)
        try:
            while True:
                chunk = second.sock.recv(4096)
                if not chunk:
                    break
                data += chunk
        except (ConnectionResetError, socket.timeout):
            pass
        self.assertIn(b"already connected", data)
        self.assertRegex(first.request("?"), r"^[TS]")

    # -- the debugger goes away ------------------------------------------

    def test_once_disconnect_while_stopped_kills_launched_program(self):
        stub = self.stub("--once", "127.0.0.1:0", SPIN)
        pid = launched_pid(stub)
        out = harness.gdb_run(["break tick", "continue", "disconnect"],
                              pre=[f"target remote 127.0.0.1:{stub.port}"], args=[SPIN])
        self.assertIn("Breakpoint 1, tick ()", out)
        self.assertTrue(harness.wait_gone(pid), f"launched program survived: state {process_state(pid)}")
        self.assertEqual(stub.wait(15), 0, stub.output())

    def test_disconnect_while_stopped_keeps_program_for_next_debugger(self):
        # gdb's "disconnect" without --once, as with gdbserver: the program
        # stays stopped where it was, and the next gdb carries on from there.
        stub = self.stub("127.0.0.1:0", SPIN)
        pid = launched_pid(stub)
        out = harness.gdb_run(["break tick", "continue", "print/x $pc", "disconnect"],
                              pre=[f"target remote 127.0.0.1:{stub.port}"], args=[SPIN])
        self.assertIn("Breakpoint 1, tick ()", out)
        pc = re.search(r"\$1 = (0x[0-9a-f]+)", out).group(1)
        time.sleep(0.5)
        self.assertIsNone(stub.proc.poll(), stub.output())
        self.assertEqual(process_state(pid), "t", "the program should wait, stopped, for the next debugger")
        out = harness.gdb_run(["print/x $pc", "print ticks", "break tick", "continue", "print ticks", "kill"],
                              pre=[f"target remote 127.0.0.1:{stub.port}"], args=[SPIN], timeout=30)
        self.assertIn(f"$1 = {pc}", out)
        before, after = (int(v) for v in re.findall(r"\$[23] = (\d+)", out))
        self.assertEqual(after, before + 1, out)  # it ran on to the next tick()
        self.assertTrue(harness.wait_gone(pid), f"killed program survived: state {process_state(pid)}")
        self.assertEqual(stub.wait(15), 0, stub.output())

    def test_disconnect_while_running_kills_launched_program(self):
        stub = self.stub("127.0.0.1:0", SPIN)
        pid = launched_pid(stub)
        c = self.client(stub)
        c.handshake()
        c.send("c")
        c.read_ack()
        self.assertTrue(eventually(lambda: process_state(pid) in ("R", "S"), 5))
        c.close()
        self.assertTrue(harness.wait_gone(pid), f"launched program survived: state {process_state(pid)}")
        self.assertEqual(stub.wait(15), 0, stub.output())

    def test_gdb_kill_ends_program_and_server(self):
        stub = self.stub("127.0.0.1:0", BASIC)
        pid = launched_pid(stub)
        out = harness.gdb_run(["break add", "continue", "kill"], pre=[f"target remote 127.0.0.1:{stub.port}"],
                              args=[BASIC])
        self.assertIn("Breakpoint 1, add", out)
        self.assertTrue(harness.wait_gone(pid))
        self.assertEqual(stub.wait(15), 0, stub.output())

    # -- --once and --multi ------------------------------------------------

    def test_once_multi_exits_after_first_client(self):
        stub = self.stub("--once", "--multi", "127.0.0.1:0")
        out = harness.gdb_run(["monitor help"], pre=[f"target extended-remote 127.0.0.1:{stub.port}"])
        self.assertIn("The following monitor commands are supported:", out)
        self.assertEqual(stub.wait(15), 0, stub.output())

    def test_multi_serves_again_after_disconnect(self):
        stub = self.stub("--multi", "--allow-run", "127.0.0.1:0")
        for i in range(2):
            out = harness.gdb_run(["run", "monitor .session"],
                                  pre=[f"set remote exec-file {BASIC}", f"file {BASIC}",
                                       f"target extended-remote 127.0.0.1:{stub.port}"])
            self.assertIn("exited normally", out, f"session {i}:\n{out}")
            self.assertIn("mode: user", out)
            time.sleep(0.2)
            self.assertIsNone(stub.proc.poll(), f"dbgstub ended after session {i}:\n{stub.output()}")

    def test_non_multi_exits_when_program_exits(self):
        stub = self.stub("127.0.0.1:0", BASIC)
        out = harness.gdb_run(["continue"], pre=[f"target remote 127.0.0.1:{stub.port}"], args=[BASIC])
        self.assertIn("exited normally", out)
        self.assertEqual(stub.wait(15), 0, stub.output())

    # -- --selftest --------------------------------------------------------

    def test_selftest_checks_codecs_and_ptrace(self):
        """gdbserver's --selftest output, which gdb.server/unittest.exp
        reads; the ptrace check really starts, steps and ends a program."""
        r = subprocess.run([harness.DBGSTUB, "--selftest"], stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                           text=True, timeout=60)
        self.assertEqual(r.returncode, 0, r.stdout)
        for name in ("rsp_framing", "kd_framing", "ptrace_program"):
            self.assertIn(f"Running selftest {name}.", r.stdout)
        self.assertIn("Ran 3 unit tests, 0 failed", r.stdout)

    # -- signals to dbgstub ------------------------------------------------

    def test_sigterm_right_after_listening_is_clean(self):
        """'Listening on port N' is what scripts wait for: from then on a
        SIGTERM must be the clean shutdown, not the default death."""
        codes = []
        for _ in range(8):
            stub = Stub("127.0.0.1:0", SPIN)
            pid = launched_pid(stub)
            stub.proc.send_signal(signal.SIGTERM)
            codes.append(stub.wait(15))
            harness.close_stub(stub)
            self.assertTrue(harness.wait_gone(pid), f"state {process_state(pid)}")
        self.assertEqual(codes, [0] * len(codes))

    def test_sigterm_kills_launched_stopped_program(self):
        stub = self.stub("127.0.0.1:0", SPIN)
        pid = launched_pid(stub)
        self.assertEqual(process_state(pid), "t")
        time.sleep(0.3)  # see test_sigterm_right_after_listening_is_clean
        stub.proc.send_signal(signal.SIGTERM)
        self.assertEqual(stub.wait(15), 0, stub.output())
        self.assertTrue(harness.wait_gone(pid), f"state {process_state(pid)}")

    def test_sigterm_with_connected_debugger_kills_launched_program(self):
        stub = self.stub("127.0.0.1:0", SPIN)
        pid = launched_pid(stub)
        c = self.client(stub)
        c.handshake()
        stub.proc.send_signal(signal.SIGTERM)
        self.assertEqual(stub.wait(15), 0, stub.output())
        self.assertTrue(harness.wait_gone(pid), f"state {process_state(pid)}")

    def test_sigterm_detaches_attached_program(self):
        target = spawn("spin")
        self.addCleanup(harness.reap, target)
        target.stdout.readline()
        stub = self.stub("--attach", "127.0.0.1:0", str(target.pid))
        self.assertEqual(tracer_of(target.pid), stub.proc.pid)
        time.sleep(0.3)  # see test_sigterm_right_after_listening_is_clean
        stub.proc.send_signal(signal.SIGTERM)
        self.assertEqual(stub.wait(15), 0, stub.output())
        time.sleep(0.5)
        self.assertTrue(harness.pid_alive(target.pid))
        self.assertTrue(eventually(lambda: harness.running_untraced(target.pid), 5),
                        f"state={process_state(target.pid)} tracer={tracer_of(target.pid)}")

    def test_sigterm_detaches_attached_running_program(self):
        """Released while the debugger has it running (not stopped)."""
        target = spawn("spin")
        self.addCleanup(harness.reap, target)
        target.stdout.readline()
        stub = self.stub("--attach", "127.0.0.1:0", str(target.pid))
        c = self.client(stub)
        c.handshake()
        c.send("vCont;c")
        c.read_ack()
        time.sleep(0.2)
        stub.proc.send_signal(signal.SIGTERM)
        self.assertEqual(stub.wait(15), 0, stub.output())
        time.sleep(0.5)
        self.assertTrue(harness.pid_alive(target.pid), "the attached program died")
        self.assertTrue(eventually(lambda: harness.running_untraced(target.pid), 5),
                        f"state={process_state(target.pid)} tracer={tracer_of(target.pid)}")

    # -- listen address ----------------------------------------------------

    def test_default_listen_address_is_loopback(self):
        stub = self.stub(":0", SPIN)
        listening = self.listeners(stub.port)
        self.assertTrue(listening, "port not found in /proc/net/tcp*")
        self.assertEqual(listening, {"127.0.0.1"}, listening)

    def test_explicit_all_interfaces(self):
        stub = self.stub("0.0.0.0:0", SPIN)
        self.assertEqual(self.listeners(stub.port), {"0.0.0.0"})

    def test_bad_listen_address_fails_before_the_program_starts(self):
        # As gdbserver: the address is resolved and bound first, so a name
        # that doesn't resolve or a port in use creates no process (GDB's
        # testsuite starts stubs on "udp123:::" and expects just the error).
        taken = socket.socket()
        self.addCleanup(taken.close)
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        for addr, error in (("udp123::::1", "cannot resolve name"),
                            (f"127.0.0.1:{taken.getsockname()[1]}", "Can't bind address: Address already in use.")):
            with self.subTest(addr=addr):
                r = subprocess.run([harness.DBGSTUB, "--once", addr, SPIN], capture_output=True, text=True,
                                   timeout=20)
                self.assertEqual(r.returncode, 1, r.stderr)
                self.assertIn(error, r.stderr)
                self.assertNotIn("created; pid", r.stderr)
                self.assertNotIn("launched", r.stderr)

    # -- where the log goes ------------------------------------------------

    def test_log_file_takes_the_log_and_packets_off_the_terminal(self):
        # What GDB's testsuite reads from the stub's terminal ("Listening on
        # port", "Process ... created") stays there; log lines and packets
        # go to the file, appended, each as it happens.
        path = os.path.join(self.tmpdir(), "stub.log")
        with open(path, "w") as f:
            f.write("# earlier line\n")
        stub = self.stub("--log-packets", f"--debug-file={path}", "127.0.0.1:0", SPIN)
        c = self.client(stub)
        c.handshake()
        self.assertRegex(c.request("?"), r"^[TS][0-9a-f]{2}")
        with open(path) as f:
            log = f.read()
        self.assertTrue(log.startswith("# earlier line\n"), log[:200])
        self.assertIn("launched", log)
        self.assertIn("<- $?\n", log)
        self.assertIn("created; pid", stub.output())
        self.assertNotIn("launched", stub.output())
        self.assertNotIn("<- $?", stub.output())

    def test_log_file_that_cannot_be_written(self):
        # A missing folder is an error, not something to create.
        path = os.path.join(self.tmpdir(), "missing", "x.log")
        r = subprocess.run([harness.DBGSTUB, f"--log-file={path}", "127.0.0.1:0", SPIN],
                           capture_output=True, text=True, timeout=20)
        self.assertEqual(r.returncode, 2, r.stderr)
        self.assertIn(f"cannot write the log to {path}: No such file or directory", r.stderr)
        self.assertFalse(os.path.exists(os.path.dirname(path)))

    def tmpdir(self):
        d = tempfile.mkdtemp(prefix="dbgstub-log-")
        self.addCleanup(shutil.rmtree, d, True)
        return d

    @staticmethod
    def listeners(port):
        """Local addresses in LISTEN state on `port` (IPv4 and IPv6)."""
        found = set()
        for path in ("/proc/net/tcp", "/proc/net/tcp6"):
            try:
                with open(path) as f:
                    lines = f.read().splitlines()[1:]
            except OSError:
                continue
            for line in lines:
                f = line.split()
                addr, p = f[1].split(":")
                if int(p, 16) != port or f[3] != "0A":
                    continue
                if len(addr) == 8:
                    found.add(socket.inet_ntop(socket.AF_INET, bytes.fromhex(addr)[::-1]))
                else:
                    raw = b"".join(bytes.fromhex(addr[i:i + 8])[::-1] for i in range(0, 32, 8))
                    found.add(socket.inet_ntop(socket.AF_INET6, raw))
        return found

    # -- robustness --------------------------------------------------------

    def test_bad_input_smoke(self):
        stub = self.stub("127.0.0.1:0", SPIN)
        pid = launched_pid(stub)
        c = self.client(stub)
        self.assertIn("PacketSize=", c.handshake())
        c.send_raw(b"garbage \x00\xff\x7f!!")
        # A bad checksum is nacked.
        c.send_raw(b"$?#00")
        self.assertEqual(c.read_ack(), "-")
        # Truncated/malformed frames, then a real request still works.
        c.send_raw(b"$m0,#zz")
        self.assertRegex(c.request("?"), r"^[TS][0-9a-f]{2}")
        # A huge read length: an error or a bounded reply, never a hang.
        for req in ("m0,ffffffffffffffff", "m7ffffffde000,7fffffff", "m1000,100000000", "mzz,10", "m,"):
            t = time.time()
            r = c.request(req, timeout=10)
            self.assertLess(time.time() - t, 5, req)
            self.assertTrue(re.fullmatch(r"E[0-9a-fA-F]{2}|E\..*", r) or
                            (re.fullmatch(r"[0-9a-f]*", r) and len(r) <= 0x20000), f"{req} -> {r[:80]}")
        # An oversized packet is dropped, not buffered without bound.
        c.send_raw(b"$" + b"A" * 200000 + b"#00")
        # Unknown packets get the empty reply.
        self.assertEqual(c.request("qDbgstubNoSuchPacket"), "")
        self.assertEqual(c.request("jDbgstubNoSuchPacket"), "")
        self.assertEqual(c.request("vNoSuchThing;1"), "")
        # Binary junk inside a valid frame.
        self.assertIsInstance(c.request("X\x01\x02\x03"), str)
        # Still alive and answering.
        self.assertRegex(c.request("?"), r"^[TS][0-9a-f]{2}")
        self.assertIsNone(stub.proc.poll())
        self.assertTrue(harness.pid_alive(pid))

    def test_unknown_packet_gets_empty_frame(self):
        stub = self.stub("127.0.0.1:0", SPIN)
        c = self.client(stub)
        c.handshake()
        c.send("qDbgstubNoSuchPacket")
        self.assertEqual(c.read_ack(), "+")
        c.sock.settimeout(5)
        data = c.buf  # what came in with the ack
        while b"#" not in data or len(data) < data.index(b"#") + 3:
            data += c.sock.recv(100)
        self.assertEqual(data, b"$#00")

    def test_error_replies_carry_no_console_output(self):
        """'O' console packets are only valid while gdb waits for a stop
        (or for qRcmd): before any other reply gdb takes the O for the reply
        and every later reply answers the wrong request."""
        stub = self.stub("127.0.0.1:0", SPIN)
        c = self.client(stub)
        c.handshake()
        bad = []
        for req in ("m0,ffffffffffffffff", "g;thread:p1.1", "vKill;1", "Hgp1.1"):
            c.send(req)
            r = c.read_packet(skip_console=False)
            if r.startswith("O") and r != "OK":
                bad.append(f"{req} -> {r[:40]}...")
                c.read_packet()  # the real reply, to stay in step
        self.assertEqual(bad, [], "replies that are console output instead of the answer")
        self.assertRegex(c.request("?"), r"^[TS]")

if __name__ == "__main__":
    harness.main()
