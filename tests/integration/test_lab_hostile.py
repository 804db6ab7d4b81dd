"""Hostile clients in a lab: one dbgstub serving two real QEMU VMs
(--config, SeaBIOS halted at the reset vector as in test_vm_target.py, no
guest needed). A client of one VM that stops reading while dbgstub writes
is dropped once its replies fill the bound (16 MiB) and never stalls the
other VM's debugger; clients that hang up while the VM is stopped, while it
runs, and in the middle of a packet leave the VM running, never killed, and
the next debugger is served."""
import json
import os
import re
import socket
import subprocess
import sys
import tempfile
import threading
import time
import unittest

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import harness  # noqa: E402
from harness import RspClient, eventually, gdb_run, reap  # noqa: E402
from test_vm_target import NO_QEMU, QEMU, Vm, free_port  # noqa: E402


@unittest.skipIf(QEMU is None, NO_QEMU)
class LabHostile(unittest.TestCase):
    def setUp(self):
        self.tmp = tempfile.mkdtemp(prefix="dbgstub-lab-")
        self.vms = [Vm(self.tmp), Vm(self.tmp)]
        for vm in self.vms:
            self.addCleanup(vm.close)
        self.ports = [free_port(), free_port()]
        cfg = {"vms": [{"name": f"vm{i + 1}", "listen": f"127.0.0.1:{self.ports[i]}",
                        "gdbstub": f"127.0.0.1:{vm.gdb_port}"} for i, vm in enumerate(self.vms)]}
        path = os.path.join(self.tmp, "lab.json")
        with open(path, "w") as f:
            json.dump(cfg, f)
        self.proc = subprocess.Popen([harness.DBGSTUB, "--config", path], stdin=subprocess.DEVNULL,
                                     stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
        self.addCleanup(reap, self.proc)
        self.lines = []
        for line in self.proc.stdout:
            self.lines.append(line)
            if sum("Listening on port" in l for l in self.lines) == 2:
                break
        threading.Thread(target=lambda: [self.lines.append(l) for l in self.proc.stdout], daemon=True).start()
        self.assertEqual(sum("Listening on port" in l for l in self.lines), 2, "".join(self.lines))

    def output(self):
        return "".join(self.lines)

    def gdb(self, port, *commands):
        return gdb_run(list(commands), pre=[f"target remote 127.0.0.1:{port}"], timeout=60)

    def assert_vm_serves(self, i):
        out = self.gdb(self.ports[i], "x/5xb 0xffff0", "info registers rip", "detach")
        self.assertIn("0xffff0:\t0xea\t0x5b\t0xe0\t0x00\t0xf0", out, out + self.output())
        self.assertRegex(out, r"rip +0x[0-9a-f]+")

    def test_client_that_stops_reading_is_dropped_and_other_vm_unaffected(self):
        c = RspClient(self.ports[0])
        c.handshake()
        self.assertEqual(c.request("QStartNoAckMode"), "OK")
        c.sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 64 << 10)
        # Each request asks for 8 KiB of BIOS: 16 KiB of hex back. Never read.
        stop = threading.Event()

        def flood():
            req = harness.rsp_frame("mf0000,2000").encode() * 64
            try:
                while not stop.is_set():
                    c.sock.sendall(req)
            except OSError:
                pass  # dropped: what the test waits for

        sender = threading.Thread(target=flood, daemon=True)
        sender.start()
        # Meanwhile the other VM's debugger works as usual, more than once.
        t0 = time.time()
        for _ in range(2):
            self.assert_vm_serves(1)
        other = time.time() - t0
        self.assertTrue(eventually(lambda: "is not reading" in self.output(), timeout=60), self.output())
        stop.set()
        c.close()
        sender.join(10)
        self.assertLess(other, 30, "the other VM's debugger was held up")
        self.assertIsNone(self.proc.poll())
        # The dropped client's VM was released (running) and serves the next one.
        self.assertTrue(eventually(lambda: self.vms[0].status() == "running", timeout=10))
        self.assert_vm_serves(0)
        for vm in self.vms:
            self.assertTrue(vm.alive())

    def test_hangups_leave_the_vm_running(self):
        for how in ("stopped", "running", "mid-packet"):
            with self.subTest(how=how):
                ended = self.output().count("debugger session ended")
                c = RspClient(self.ports[0])
                c.handshake()
                self.assertRegex(c.request("?"), r"^T")
                self.assertNotEqual(self.vms[0].status(), "running")
                if how == "running":
                    c.send("vCont;c")
                    c.read_ack()
                    self.assertTrue(eventually(lambda: self.vms[0].status() == "running", timeout=5))
                elif how == "mid-packet":
                    c.send_raw(b"$mf0000,")
                c.close()
                # The next client is served once dbgstub has seen this one go.
                self.assertTrue(eventually(lambda: self.output().count("debugger session ended") > ended,
                                           timeout=10), self.output())
                self.assertTrue(eventually(lambda: self.vms[0].status() == "running", timeout=10),
                                self.vms[0].status())
                self.assertTrue(self.vms[0].alive())
        self.assertNotRegex(self.output(), r"vKill|\$k#")
        self.assert_vm_serves(0)
        self.assert_vm_serves(1)

    def test_monitor_exit_from_one_vm_does_not_end_the_lab(self):
        out = self.gdb(self.ports[0], "monitor exit", "monitor .session", "detach")
        self.assertIn("exit is refused in a lab", out)
        self.assertIn("mode: kernel", out)  # the session went on
        self.assertIsNone(self.proc.poll())
        self.assert_vm_serves(1)
        self.assert_vm_serves(0)


if __name__ == "__main__":
    harness.main()
