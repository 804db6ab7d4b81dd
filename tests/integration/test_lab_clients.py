"""A lab's "clients" allow-list: a VM whose list is only 127.0.0.2/32
refuses gdb on 127.0.0.1 (the connection is closed before any packet and
the refusal is logged with the address), while a client connecting from
127.0.0.2 (any 127/8 source works on Linux's loopback) is served. One VM
boot. Skipped only where qemu-system-x86_64 is not installed."""
import json
import os
import socket
import subprocess
import sys
import tempfile
import threading
import time
import unittest

sys.path.insert(0, os.path.dirname(__file__))
sys.path.insert(0, os.path.join(os.path.dirname(__file__), "..", "vm"))
import harness  # noqa: E402
from harness import gdb  # noqa: E402
import guest  # noqa: E402


@unittest.skipIf(guest.qemu_path() is None,
                 "qemu-system-x86_64 is not installed (scripts/install-deps.sh installs qemu-system-x86)")
class LabClients(unittest.TestCase):
    def test_unlisted_address_refused_listed_one_served(self):
        with guest.Guest(boot_timeout=120) as g, tempfile.TemporaryDirectory() as d:
            port = guest.free_port()
            cfg = {"clients": ["10.0.0.0/8"],  # replaced by the VM's own list
                   "vms": [{"name": "vm1", "listen": f"127.0.0.1:{port}", "gdbstub": f"127.0.0.1:{g.gdb_port}",
                            "clients": ["127.0.0.2/32"]}]}
            path = os.path.join(d, "lab.json")
            with open(path, "w") as f:
                json.dump(cfg, f)
            proc = subprocess.Popen([harness.DBGSTUB, "--config", path], stdout=subprocess.PIPE,
                                    stderr=subprocess.STDOUT, text=True)
            lines = []
            try:
                for line in proc.stdout:
                    lines.append(line)
                    if "Listening on port" in line:
                        break
                threading.Thread(target=lambda: [lines.append(l) for l in proc.stdout], daemon=True).start()

                # From 127.0.0.1: closed at once, nothing sent back.
                s = socket.create_connection(("127.0.0.1", port), timeout=10)
                s.sendall(harness.rsp_frame("qSupported").encode())
                data = b""
                try:
                    while True:
                        chunk = s.recv(4096)
                        if not chunk:
                            break
                        data += chunk
                except ConnectionResetError:
                    pass
                s.close()
                self.assertEqual(data, b"", "an unlisted client got bytes back")
                out = gdb(["info registers rip"], port=port, timeout=60)
                self.assertNotIn("rip ", out)
                # gdb words it by when it saw the close: on its first write
                # or its first read.
                self.assertRegex(out, r"Remote connection closed|Target disconnected")
                self.assertTrue(harness.eventually(
                    lambda: sum("refused a GDB connection from 127.0.0.1" in l for l in lines) >= 2, 10),
                    "".join(lines))
                self.assertIn('not in "clients" (127.0.0.2/32)', "".join(lines))

                # From 127.0.0.2: served.
                s = socket.create_connection(("127.0.0.1", port), timeout=30, source_address=("127.0.0.2", 0))
                s.sendall(harness.rsp_frame("qSupported").encode())
                data = b""
                deadline = time.time() + 30
                while b"#" not in data and time.time() < deadline:
                    chunk = s.recv(4096)
                    if not chunk:
                        break
                    data += chunk
                s.sendall(b"+" + harness.rsp_frame("D").encode())
                s.close()
                self.assertIn(b"PacketSize", data)
            finally:
                proc.terminate()
                proc.wait(30)
                proc.stdout.close()


if __name__ == "__main__":
    harness.main()
