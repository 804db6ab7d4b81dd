"""One lab VM behind both front ends (issue #9): "listen" (GDB) and "kd"
(WinDbg) in the lab file, one debugger at a time across the two. The real
gdb connects; a KD client on the other port meanwhile gets a debug print
saying why and is disconnected, and gdb goes on undisturbed. gdb detaches;
then the KD client connects and works (GetVersion, reading the kernel's
linux_banner), and a gdb that connects meanwhile is refused with a message.
One test VM (tests/vm) for the file. Skipped where qemu-system-x86_64 is
not installed."""
import json
import os
import re
import shutil
import struct
import subprocess
import sys
import tempfile
import threading
import time
import unittest

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
sys.path.insert(0, os.path.join(HERE, "..", "vm"))
import harness  # noqa: E402
import kd_client as kd  # noqa: E402
import guest  # noqa: E402

# Run by gdb's "shell" while gdb is connected: a KD client on the other port.
KD_PROBE = r'''
import sys
sys.path.insert(0, %r)
import kd_client as kd
c = kd.KdClient(int(sys.argv[1]), timeout=5)
p = c.read_packet()
print("KD-PROBE type=%%d text=%%s" %% (p.type, p.text().strip()))
try:
    for _ in range(10):
        c.read_packet(timeout=5)
    print("KD-PROBE still connected")
except Exception as e:
    print("KD-PROBE disconnected")
'''


@unittest.skipIf(guest.qemu_path() is None,
                 "qemu-system-x86_64 is not installed (scripts/install-deps.sh installs qemu-system-x86)")
class LabBothFrontEnds(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        cls.tmp = tempfile.mkdtemp(prefix="dbgstub-lab-fe-")
        cls.guest = guest.Guest(boot_timeout=120)
        cls.guest.__enter__()
        cls.banner = cls.guest.kallsyms(["linux_banner"])["linux_banner"]
        cls.gdb_port, cls.kd_port = guest.free_port(), guest.free_port()
        cfg = {"vms": [{"name": "vm1", "listen": f"127.0.0.1:{cls.gdb_port}", "kd": f"127.0.0.1:{cls.kd_port}",
                        "gdbstub": f"127.0.0.1:{cls.guest.gdb_port}"}]}
        path = os.path.join(cls.tmp, "lab.json")
        with open(path, "w") as f:
            json.dump(cfg, f)
        cls.probe = os.path.join(cls.tmp, "kd_probe.py")
        with open(cls.probe, "w") as f:
            f.write(KD_PROBE % HERE)
        cls.proc = subprocess.Popen([harness.DBGSTUB, "--config", path], stdout=subprocess.PIPE,
                                    stderr=subprocess.STDOUT, text=True)
        cls.lines = []
        for line in cls.proc.stdout:
            cls.lines.append(line)
            if "Listening on port" in "".join(cls.lines) and "KD (WinDbg) front end" in "".join(cls.lines):
                break
        threading.Thread(target=lambda: [cls.lines.append(l) for l in cls.proc.stdout], daemon=True).start()

    @classmethod
    def tearDownClass(cls):
        cls.proc.terminate()
        cls.proc.wait(20)
        cls.proc.stdout.close()
        cls.guest.__exit__(None, None, None)
        shutil.rmtree(cls.tmp, True)

    def output(self):
        return "".join(self.lines)

    def test_one_debugger_at_a_time_across_front_ends(self):
        t0 = time.monotonic()
        # gdb first; a KD client meanwhile is refused, gdb is undisturbed.
        out = harness.gdb([f"x/s {self.banner:#x}", f"shell {sys.executable} {self.probe} {self.kd_port}",
                           f"x/s {self.banner:#x}", "info registers rip", "detach"], port=self.gdb_port, timeout=60)
        self.assertEqual(out.count('"Linux version'), 2, out + self.output())
        self.assertIn(f"KD-PROBE type={kd.DEBUG_IO} text=dbgstub: another debugger is already connected to this "
                      f"target (a GDB client, on port {self.gdb_port})", out)
        self.assertIn("KD-PROBE disconnected", out)
        self.assertRegex(out, r"rip +0x[0-9a-f]+")
        with self.guest.qmp() as m:  # gdb detached: the VM runs again
            self.assertEqual(m.status(), "running")

        # Then the KD client: connects and works.
        c = kd.KdClient(self.kd_port, timeout=15)
        self.addCleanup(c.close)
        c.reset()
        c.wait_state_change()
        r = c.request(kd.manipulate(kd.GET_VERSION))
        self.assertEqual(r.status(), kd.STATUS_SUCCESS)
        r = c.request(kd.manipulate(kd.READ_VIRTUAL, union=struct.pack("<QI", self.banner, 13)))
        self.assertEqual(r.status(), kd.STATUS_SUCCESS)
        self.assertEqual(r.payload[kd.MANIPULATE_HEADER:], b"Linux version")

        # gdb meanwhile: refused, with the reason.
        out = harness.gdb(["info registers rip"], port=self.gdb_port, timeout=30)
        self.assertIn(f"another debugger is already connected to this target (a WinDbg/KD client, on port "
                      f"{self.kd_port})", out)
        self.assertNotRegex(out, r"rip +0x")
        # The KD session was not disturbed.
        r = c.request(kd.manipulate(kd.READ_VIRTUAL, union=struct.pack("<QI", self.banner, 13)))
        self.assertEqual(r.payload[kd.MANIPULATE_HEADER:], b"Linux version")
        c.close()

        # KD gone: gdb is served again.
        def gdb_served():
            o = harness.gdb([f"x/s {self.banner:#x}", "detach"], port=self.gdb_port, timeout=30)
            return '"Linux version' in o
        self.assertTrue(harness.eventually(gdb_served, timeout=15, interval=0.5), self.output())
        self.assertIn("refused a second KD debugger", self.output())
        self.assertIn("refused a second debugger", self.output())
        print(f"\n[test took {time.monotonic() - t0:.1f} s after the VM booted]", file=sys.stderr)


if __name__ == "__main__":
    unittest.main()
