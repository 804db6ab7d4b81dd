"""Clients that misbehave, on real sockets against a real traced program:
a silent client, bad checksums in both ack modes, packets with no end or
beyond PacketSize, huge lengths and offsets, floods of interrupts, clients
that hang up in the middle of a packet, and requests the session refuses.
Each gets the right reply or a clean disconnect and a log line; dbgstub
keeps serving, and the target is unchanged (same registers and memory) or
ends in the documented state (launched: killed; attached: detached and
running)."""
import os
import re
import socket
import sys
import time
import unittest

sys.path.insert(0, os.path.dirname(__file__))
import harness  # noqa: E402
from harness import RspClient, Stub, eventually, free_port_args, gdb, program, main  # noqa: E402

SPIN = os.path.abspath(program("spin"))


class SilentClient(unittest.TestCase):
    def test_silent_client_is_dropped_and_next_debugger_served(self):
        with Stub("--handshake-timeout=1", *free_port_args(program("basic"))) as stub:
            silent = socket.create_connection(("127.0.0.1", stub.port))
            silent.settimeout(5)
            start = time.time()
            self.assertEqual(silent.recv(100), b"", "the server should hang up on the silent client")
            self.assertLess(time.time() - start, 4.5)
            silent.close()
            # The log line is read from dbgstub's stderr by another thread.
            eventually(lambda: "sent no packet within 1 s" in stub.output(), timeout=5)
            self.assertIn("sent no packet within 1 s", stub.output())
            # The target is still there, untouched, for the next debugger.
            out = gdb(["break add", "continue", "p a + b"], port=stub.port, file=program("basic"))
            self.assertIn("Breakpoint 1, add (a=0, b=5)", out)
            self.assertIn("$1 = 5", out)

    def test_default_timeout_leaves_a_speaking_client_alone(self):
        with Stub(*free_port_args(program("basic"))) as stub:
            s = socket.create_connection(("127.0.0.1", stub.port))
            s.sendall(b"$?#3f")
            s.settimeout(5)
            data = b""
            while b"#" not in data:
                data += s.recv(4096)
            self.assertIn(b"$T05", data)
            s.close()


class Hostile(harness.StubTestCase):
    def snapshot(self, c):
        """Registers and the code around the pc of the stopped program."""
        regs = c.request("g")
        self.assertRegex(regs, r"^[0-9a-fx]+$")
        rip = int.from_bytes(bytes.fromhex(regs[16 * 16:17 * 16]), "little")
        code = c.request(f"m{rip:x},40")
        self.assertRegex(code, r"^[0-9a-f]{128}$")
        return regs, code

    def nothing_more(self, c, seconds=0.5):
        """No bytes arrive within `seconds`."""
        c.sock.settimeout(seconds)
        try:
            data = c.sock.recv(100)
        except socket.timeout:
            data = None
        finally:
            c.sock.settimeout(c.timeout)
        self.assertIsNone(data, f"unexpected bytes from the stub: {data!r}")

    def test_bad_checksum_in_ack_mode_retransmits_both_ways(self):
        stub = self.stub("127.0.0.1:0", SPIN)
        c = self.client(stub)
        c.handshake()
        before = self.snapshot(c)
        c.send_raw(b"$g#00")
        self.assertEqual(c.read_ack(), "-", "a bad checksum must ask for a retransmission")
        self.assertEqual(c.request("g"), before[0], "the retransmitted request gets the real reply")
        # The other way: the client asks for the last reply again.
        c.send("g")
        self.assertEqual(c.read_ack(), "+")
        first = c.read_packet()
        c.send_raw(b"-")
        self.assertEqual(c.read_packet(), first)
        self.assertIn("bad checksum, retransmission requested", stub.output())
        self.assertEqual(self.snapshot(c), before)

    def test_bad_checksum_in_no_ack_mode_is_dropped(self):
        stub = self.stub("127.0.0.1:0", SPIN)
        c = self.client(stub)
        c.handshake()
        self.assertEqual(c.request("QStartNoAckMode"), "OK")
        before = self.snapshot(c)
        c.send_raw(b"$M0,1:00#00")
        self.nothing_more(c)
        self.assertTrue(eventually(lambda: "bad checksum dropped" in stub.output(), 5), stub.output())
        self.assertEqual(self.snapshot(c), before)

    def test_packet_with_no_end_and_oversized_packets(self):
        stub = self.stub("127.0.0.1:0", SPIN)
        c = self.client(stub)
        size = int(re.search(r"PacketSize=([0-9a-f]+)", c.handshake()).group(1), 16)
        before = self.snapshot(c)
        # Far more than PacketSize with no '#': kept at PacketSize (the rest
        # is consumed, never buffered), and nacked when it ends.
        c.send_raw(b"$" + b"m" * (4 * size))
        self.nothing_more(c)
        c.send_raw(b"#00")
        self.assertEqual(c.read_ack(), "-")
        self.assertEqual(self.snapshot(c), before)
        # A complete packet beyond PacketSize, with a right checksum.
        c.send(f"M{0x1000:x},{size:x}:" + "00" * size)
        self.assertEqual(c.read_ack(), "-")
        self.assertEqual(self.snapshot(c), before)
        self.assertIn(f"packet longer than {size} bytes dropped", stub.output())

    def test_huge_lengths_and_offsets(self):
        stub = self.stub("127.0.0.1:0", SPIN)
        c = self.client(stub)
        size = int(re.search(r"PacketSize=([0-9a-f]+)", c.handshake()).group(1), 16)
        before = self.snapshot(c)
        rip = int.from_bytes(bytes.fromhex(before[0][16 * 16:17 * 16]), "little")
        for req in (f"M{rip:x},ffffffffffffffff:00", f"M{rip:x},8:00", f"X{rip:x},ffffffff:\x01",
                    "Mffffffffffffffff,2:0000", "qXfer:features:read:target.xml:ffffffffffffffff,ffff",
                    "qXfer:features:read:target.xml:0,ffffffffffffffff", "qXfer:auxv:read::fffffffffffff000,fff",
                    "qXfer:threads:read::0,ffffffffffffffff", "qXfer:libraries-svr4:read::ffffffffffffff00,ff",
                    "qXfer:exec-file:read::ffffffffffffffff,1", "xffffffffffffffff,ffffffffffffffff",
                    "Z0,ffffffffffffffff,1", "Z2,0,ffffffffffffffff", "pffffffff", "Pffffffff=00",
                    "qSearch:memory:0;ffffffffffffffff;41"):
            t = time.time()
            r = c.request(req, timeout=10)
            self.assertLess(time.time() - t, 5, req)
            self.assertLessEqual(len(r), size, req)
            self.assertFalse(r.startswith("OK") and req.startswith(("M", "X", "Z", "P")) and "ffff" in req,
                             f"{req} -> {r}")
        self.assertEqual(self.snapshot(c), before)
        self.assertIsNone(stub.proc.poll())

    def test_interrupt_flood(self):
        stub = self.stub("127.0.0.1:0", SPIN)
        c = self.client(stub)
        c.handshake()
        c.send("vCont;c")
        self.assertEqual(c.read_ack(), "+")
        c.send_raw(b"\x03" * 20000)
        stop = c.read_packet(timeout=10)
        self.assertRegex(stop, r"^T02", "one stop for the interrupt")
        # Only one: the next reply answers the next request.
        self.nothing_more(c)
        before = self.snapshot(c)
        c.send_raw(b"\x03" * 1000)  # while stopped: nothing to interrupt
        self.nothing_more(c)
        self.assertEqual(self.snapshot(c), before)
        self.assertRegex(c.request("?"), r"^T")

    def test_refused_and_unsupported_requests_leave_the_target_alone(self):
        stub = self.stub("127.0.0.1:0", SPIN)
        pid = harness.inferior_pid(stub)
        c = self.client(stub)
        c.handshake()
        before = self.snapshot(c)
        threads = c.request("qfThreadInfo")
        other = harness.spawn("spin")
        self.addCleanup(harness.reap, other)
        other.stdout.readline()
        # Not allowed (no --allow-run / --allow-attach), then unsupported.
        for req in ("vRun;" + SPIN.encode().hex(), f"vAttach;{other.pid:x}", "bc", "bs", "QTStart", "QTinit",
                    "vFile:unlink:" + b"/tmp/x".hex(), "vFile:setfs:1", "QAgent:1", "qTStatus"):
            r = c.request(req)
            self.assertFalse(r.startswith(("T", "S", "W", "X", "OK")), f"{req} -> {r}")
        self.assertEqual(self.snapshot(c), before)
        self.assertTrue(harness.running_untraced(other.pid))
        self.assertTrue(harness.pid_alive(pid))
        self.assertEqual(c.request("qfThreadInfo"), threads)

    def test_environment_is_bounded(self):
        """QEnvironmentHexEncoded with ever new names: dbgstub keeps at most
        2 MiB (what exec takes), refuses beyond, and goes on serving."""
        stub = self.stub("--multi", "127.0.0.1:0")
        c = self.client(stub)
        c.handshake()
        value = "A" * 60000
        replies = [c.request("QEnvironmentHexEncoded:" + f"V{i}={value}".encode().hex()) for i in range(48)]
        self.assertIn("OK", replies)
        self.assertRegex(replies[-1], r"^E")
        self.assertLess(replies.count("OK"), 40)
        # Replacing a variable still works, and a reset frees the rest.
        self.assertEqual(c.request("QEnvironmentHexEncoded:" + b"V0=small".hex()), "OK")
        self.assertEqual(c.request("QEnvironmentReset"), "OK")
        self.assertEqual(c.request("QEnvironmentHexEncoded:" + f"V47={value}".encode().hex()), "OK")


class Hangups(unittest.TestCase):
    """A client that drops the connection in the middle of a packet."""

    def test_launched_program_is_killed(self):
        for running in (False, True):
            with self.subTest(running=running):
                with Stub("--once", "127.0.0.1:0", SPIN) as stub:
                    pid = harness.inferior_pid(stub)
                    c = RspClient(stub.port)
                    c.handshake()
                    if running:
                        c.send("vCont;c")
                        c.read_ack()
                    c.send_raw(b"$m4000,")
                    c.close()
                    self.assertTrue(harness.wait_gone(pid), harness.process_state(pid))
                    self.assertEqual(stub.wait(15), 0, stub.output())

    def test_attached_program_is_detached_and_runs(self):
        for running in (False, True):
            with self.subTest(running=running):
                target = harness.spawn("spin")
                self.addCleanup(harness.reap, target)
                target.stdout.readline()
                with Stub("--once", "--attach", "127.0.0.1:0", str(target.pid)) as stub:
                    c = RspClient(stub.port)
                    c.handshake()
                    if running:
                        c.send("vCont;c")
                        c.read_ack()
                    c.send_raw(b"$qXfer:features:read:target.x")
                    c.close()
                    self.assertEqual(stub.wait(15), 0, stub.output())
                self.assertTrue(eventually(lambda: harness.running_untraced(target.pid), 5),
                                f"state={harness.process_state(target.pid)}")


if __name__ == "__main__":
    main()
