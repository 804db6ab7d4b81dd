"""--kd --local-kernel: dbgstub's WinDbg (KD) front end serving this
machine's kernel, read-only. No WinDbg can run here: the client is a
stand-in (kd_client.py) that speaks WinDbg's side of kdcom over TCP and
replays WinDbg's requests from the recorded session
tests/data/kd/windbg-session.tsv where they make sense (RESET handshake,
GetVersion, ReadVirtualMemory, GetContext, ReadControlSpace), checking that
the replies have the recorded replies' layout. Continue, breakpoints and
writes are refused with a DEBUG_IO explanation and the session goes on;
unknown APIs get STATUS_UNSUCCESSFUL; a second client is refused; damaged
and garbage input never takes the server down."""
import os
import socket
import struct
import sys
import time
import unittest

sys.path.insert(0, os.path.dirname(__file__))
from harness import Stub, main  # noqa: E402
import kd_client as kd  # noqa: E402
from test_local_kernel import kallsyms_address, kcore_read  # noqa: E402

REFUSED = "not supported in a local kernel session"


def connect(stub):
    """A client past the RESET handshake, with the first state change read."""
    c = kd.KdClient(stub.port)
    c.reset()
    sc = c.wait_state_change()
    return c, sc


class KdLocalKernel(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        cls.stub = Stub("--kd", "127.0.0.1:0", "--local-kernel", "--handshake-timeout=0")
        cls.client, cls.first_stop = connect(cls.stub)

    @classmethod
    def tearDownClass(cls):
        cls.client.close()
        cls.stub.stop()

    def tearDown(self):
        self.assertIsNone(self.stub.proc.poll(), "dbgstub died:\n" + self.stub.output())

    def test_listening_line_names_windbg_command(self):
        self.assertIn("windbg -k com:ipport=%d,port=127.0.0.1" % self.stub.port, self.stub.output())

    def test_first_state_change_is_a_breakpoint_exception(self):
        p = self.first_stop
        self.assertEqual(len(p.payload), 0xF0)  # as the recorded exception state change
        new_state, _level, _proc, nproc = struct.unpack_from("<IHHI", p.payload, 0)
        self.assertEqual(new_state, kd.EXCEPTION_STATE_CHANGE)
        self.assertGreaterEqual(nproc, 1)
        code, = struct.unpack_from("<I", p.payload, 0x20)
        self.assertEqual(code, kd.STATUS_BREAKPOINT)
        self.assertTrue(any("KD front end" in t for t in self.client.prints), self.client.prints)

    def test_get_version_replayed(self):
        req, rec_reply = kd.recorded(kd.GET_VERSION)
        r = self.client.request(req)
        self.assertEqual(len(r.payload), len(rec_reply))
        self.assertEqual(r.api(), kd.GET_VERSION)
        self.assertEqual(r.status(), kd.STATUS_SUCCESS)
        major, minor, proto, secondary, flags, machine = struct.unpack_from("<HHBBHH", r.payload, 0x10)
        self.assertNotEqual(major >> 8, 0, "must not claim to be NT")
        self.assertTrue(flags & 0x0008, "DBGKD_VERS_FLAG_NOMM")
        self.assertFalse(flags & 0x0002, "no debugger data")
        self.assertEqual(machine, 0x8664)
        self.assertEqual(proto, 6)
        kern_base, loaded, ddl = struct.unpack_from("<QQQ", r.payload, 0x20)
        self.assertEqual(ddl, 0)
        self.assertEqual(loaded, 0)
        text = kallsyms_address("_text") or kallsyms_address("_stext")
        if text:
            self.assertEqual(kern_base, text)

    def test_read_virtual_memory_of_a_kernel_symbol(self):
        req, rec_reply = kd.recorded(kd.READ_VIRTUAL)
        # linux_banner where kallsyms lists data symbols, else the text start.
        name = "linux_banner" if kallsyms_address("linux_banner") else "_stext"
        addr = kallsyms_address(name)
        if not addr:
            self.skipTest("kernel addresses hidden in /proc/kallsyms")
        # The recorded request with our address (count 16).
        payload = bytearray(req)
        struct.pack_into("<QI", payload, 0x10, addr, 16)
        r = self.client.request(bytes(payload))
        self.assertEqual(r.api(), kd.READ_VIRTUAL)
        expected = kcore_read(addr, 16) if os.access("/proc/kcore", os.R_OK) else None
        if expected is None:
            self.assertEqual(r.status(), kd.STATUS_UNSUCCESSFUL)
            self.assertEqual(len(r.payload), kd.MANIPULATE_HEADER)
            return
        self.assertEqual(r.status(), kd.STATUS_SUCCESS)
        actual, = struct.unpack_from("<I", r.payload, 0x1C)
        self.assertEqual(actual, 16)
        self.assertEqual(len(r.payload), kd.MANIPULATE_HEADER + 16)
        self.assertEqual(r.payload[kd.MANIPULATE_HEADER:], expected)
        if name == "linux_banner":
            self.assertTrue(expected.startswith(b"Linux version"))

    def test_get_context_replayed(self):
        req, rec_reply = kd.recorded(kd.GET_CONTEXT)
        r = self.client.request(req)
        self.assertEqual(r.api(), kd.GET_CONTEXT)
        self.assertEqual(r.status(), kd.STATUS_SUCCESS)
        self.assertEqual(len(r.payload), len(rec_reply))  # 0x38 + CONTEXT (0x4D0)

    def test_get_context_ex_and_control_space_replayed(self):
        req, _ = kd.recorded(kd.GET_CONTEXT_EX)
        r = self.client.request(req)
        self.assertEqual(r.api(), kd.GET_CONTEXT_EX)
        self.assertEqual(r.status(), kd.STATUS_SUCCESS)
        req, rec_reply = kd.recorded(kd.READ_CONTROL)
        r = self.client.request(req)
        self.assertEqual(r.api(), kd.READ_CONTROL)
        self.assertEqual(r.status(), kd.STATUS_SUCCESS)
        self.assertEqual(len(r.payload), len(rec_reply))

    def test_restore_breakpoint_of_unknown_handle_replayed(self):
        req, rec_reply = kd.recorded(kd.RESTORE_BREAKPOINT)
        r = self.client.request(req)
        self.assertEqual(len(r.payload), len(rec_reply))
        self.assertEqual(r.status(), struct.unpack_from("<I", rec_reply, 8)[0])  # 0xC0000001, as Windows

    def test_continue_is_refused_and_session_goes_on(self):
        before = len(self.client.prints)
        union = struct.pack("<IIQQQ", 0x00010002, 0, 0x400, 0, 0)
        self.client.send_data(kd.STATE_MANIPULATE, kd.manipulate(kd.CONTINUE2, union=union))
        sc = self.client.wait_state_change()
        self.assertEqual(sc.type, kd.STATE_CHANGE64)
        said = "".join(self.client.prints[before:])
        self.assertIn("continue and step are " + REFUSED, said)
        r = self.client.request(kd.manipulate(kd.GET_VERSION))
        self.assertEqual(r.status(), kd.STATUS_SUCCESS)

    def test_breakpoint_and_write_are_refused_with_a_reason(self):
        before = len(self.client.prints)
        r = self.client.request(kd.manipulate(kd.WRITE_BREAKPOINT, union=struct.pack("<QI", 0xffffffff81000000, 0)))
        self.assertEqual(r.status(), kd.STATUS_ACCESS_DENIED)
        self.assertIn("breakpoints and watchpoints are " + REFUSED, "".join(self.client.prints[before:]))
        before = len(self.client.prints)
        r = self.client.request(kd.manipulate(kd.WRITE_VIRTUAL, union=struct.pack("<QI", 0xffffffff81000000, 1),
                                              data=b"\xcc"))
        self.assertEqual(r.status(), kd.STATUS_ACCESS_DENIED)
        self.assertIn("writing memory or registers is " + REFUSED, "".join(self.client.prints[before:]))

    def test_unknown_apis_get_unsuccessful(self):
        for api in (0x3170, 0x3139, 0x313B, 0xDEADBEEF):  # undefined, ReadIoSpace, Reboot, garbage
            r = self.client.request(kd.manipulate(api))
            self.assertEqual(r.api(), api)
            self.assertEqual(r.status(), kd.STATUS_UNSUCCESSFUL)
            self.assertEqual(len(r.payload), kd.MANIPULATE_HEADER)

    def test_bad_checksum_gets_resend_then_the_packet_is_served(self):
        payload = kd.manipulate(kd.GET_VERSION)
        bad = bytearray(kd.frame(kd.STATE_MANIPULATE, self.client.next_id, payload))
        bad[12] ^= 0xFF  # checksum
        self.client.send_raw(bytes(bad))
        p = self.client.read_packet()
        self.assertTrue(p.control and p.type == kd.RESEND, p)
        r = self.client.request(payload)
        self.assertEqual(r.status(), kd.STATUS_SUCCESS)

    def test_garbage_and_break_in_do_not_hurt(self):
        self.client.send_raw(b"hello\x00\xff" * 50 + b"0000" + b"\x01" * 40 + bytes(range(256)))
        self.client.send_raw(kd.BREAKIN)  # the target is stopped: nothing to interrupt
        time.sleep(0.3)
        # Resynchronize as WinDbg does after line noise.
        self.client.reset()
        deadline = time.time() + 5
        r = None
        while time.time() < deadline:
            try:
                r = self.client.request(kd.manipulate(kd.GET_VERSION), timeout=3)
                break
            except TimeoutError:
                self.client.reset()
        self.assertIsNotNone(r)
        self.assertEqual(r.status(), kd.STATUS_SUCCESS)

    def test_second_client_is_refused(self):
        c2 = kd.KdClient(self.stub.port, timeout=5)
        try:
            p = c2.read_packet()
            self.assertEqual(p.type, kd.DEBUG_IO)
            self.assertIn("another debugger is already connected", p.text())
            with self.assertRaises((EOFError, ConnectionError, socket.timeout)):
                for _ in range(10):
                    c2.read_packet(timeout=5)
        finally:
            c2.close()
        r = self.client.request(kd.manipulate(kd.GET_VERSION))
        self.assertEqual(r.status(), kd.STATUS_SUCCESS)


class KdOptions(unittest.TestCase):
    def run_stub(self, *args):
        import subprocess
        from harness import DBGSTUB
        return subprocess.run([DBGSTUB, *args], capture_output=True, text=True, timeout=20)

    def test_user_mode_is_refused(self):
        r = self.run_stub("--kd", "127.0.0.1:0", "/bin/true")
        self.assertEqual(r.returncode, 2)
        self.assertIn("not supported over KD", r.stderr.replace("\n", " ") + r.stdout)
        r = self.run_stub("--kd", "127.0.0.1:0")
        self.assertEqual(r.returncode, 2)
        self.assertIn("--local-kernel or --vm", r.stderr)

    def test_reconnect_after_disconnect(self):
        with Stub("--kd", "127.0.0.1:0", "--local-kernel") as stub:
            c, _ = connect(stub)
            c.close()
            time.sleep(0.3)
            c, sc = connect(stub)
            r = c.request(kd.manipulate(kd.GET_VERSION))
            self.assertEqual(r.status(), kd.STATUS_SUCCESS)
            c.close()


if __name__ == "__main__":
    main()
