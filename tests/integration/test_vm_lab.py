"""A lab of two VMs served by one dbgstub (--config lab.json), each on its
own port: two real gdbs debug them at the same time (one continuing through
kernel breakpoints, the other listing processes and reading registers), and
neither waits for the other. A bad lab file is refused with the field named.
Skipped only where qemu-system-x86_64 is not installed."""
import json
import os
import re
import subprocess
import sys
import tempfile
import threading
import unittest

sys.path.insert(0, os.path.dirname(__file__))
sys.path.insert(0, os.path.join(os.path.dirname(__file__), "..", "vm"))
import harness  # noqa: E402
from harness import gdb  # noqa: E402
import guest  # noqa: E402


class LabConfigErrors(unittest.TestCase):
    def test_bad_file_names_the_field(self):
        with tempfile.NamedTemporaryFile("w", suffix=".json", delete=False) as f:
            json.dump({"vms": [{"name": "vm1", "listen": "127.0.0.1:0"}]}, f)
        try:
            r = subprocess.run([harness.DBGSTUB, "--config", f.name], capture_output=True, text=True, timeout=20)
        finally:
            os.unlink(f.name)
        self.assertEqual(r.returncode, 2, r.stderr)
        self.assertIn("vms[0].gdbstub: missing", r.stderr)


@unittest.skipIf(guest.qemu_path() is None,
                 "qemu-system-x86_64 is not installed (scripts/install-deps.sh installs qemu-system-x86)")
class Lab(unittest.TestCase):
    def test_two_vms_two_debuggers_at_once(self):
        with guest.Guest(boot_timeout=120) as g1, guest.Guest(boot_timeout=120) as g2:
            syms = g1.kallsyms(["__x64_sys_getpid"])
            ports = [guest.free_port(), guest.free_port()]
            cfg = {"vms": [
                {"name": "vm1", "listen": f"127.0.0.1:{ports[0]}", "gdbstub": f"127.0.0.1:{g1.gdb_port}",
                 "qga": g1.qga_path},
                {"name": "vm2", "listen": f"127.0.0.1:{ports[1]}", "gdbstub": f"127.0.0.1:{g2.gdb_port}",
                 "qga": g2.qga_path}]}
            with tempfile.TemporaryDirectory() as d:
                path = os.path.join(d, "lab.json")
                with open(path, "w") as f:
                    json.dump(cfg, f)
                proc = subprocess.Popen([harness.DBGSTUB, "--config", path], stdout=subprocess.PIPE,
                                        stderr=subprocess.STDOUT, text=True)
                try:
                    lines = []
                    for line in proc.stdout:
                        lines.append(line)
                        if sum("Listening on port" in l for l in lines) == 2:
                            break
                    threading.Thread(target=lambda: [lines.append(l) for l in proc.stdout], daemon=True).start()
                    # Both VMs run until their debugger comes.
                    for g in (g1, g2):
                        with g.qmp() as m:
                            self.assertEqual(m.status(), "running")
                    getpid = syms["__x64_sys_getpid"]
                    results = {}

                    def debug_vm1():
                        results[1] = gdb([f"break *{getpid:#x}", "continue", "continue", "continue",
                                          "info registers rip", "delete", "detach"], port=ports[0], timeout=120)

                    def debug_vm2():
                        results[2] = gdb(["monitor !process 0 0 sleep", "info registers rip", "detach"],
                                         port=ports[1], timeout=120)

                    threads = [threading.Thread(target=debug_vm1), threading.Thread(target=debug_vm2)]
                    for t in threads:
                        t.start()
                    for t in threads:
                        t.join(150)
                    self.assertEqual(len(re.findall(r"Breakpoint 1, ", results.get(1, ""))), 3, results.get(1))
                    self.assertRegex(results[1], rf"rip +{getpid:#x}")
                    self.assertEqual(len(re.findall(r"Image: sleep", results.get(2, ""))), 3, results.get(2))
                    self.assertRegex(results[2], r"rip +0x[0-9a-f]+")
                    for g in (g1, g2):
                        with g.qmp() as m:
                            self.assertEqual(m.status(), "running")
                finally:
                    proc.terminate()
                    proc.wait(20)


if __name__ == "__main__":
    unittest.main()
