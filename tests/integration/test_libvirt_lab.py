"""dbgstub serving libvirt's domains (issue #23), against a real libvirtd
(started here when it is not running; tests/integration/libvirt_env.py).
The domains are transient ones made from the suite's test VM, with no
gdbstub and no agent channel in their XML: dbgstub opens each one's gdbstub
itself through libvirt's monitor passthrough, and closes it again.

- a lab file with a "libvirt" source (and "control"): `ctl status --json`
  lists the running domain, source "libvirt", with a GDB port and a KD
  port from the ranges; gdb through its port runs `monitor !process 0 0`
  and lists the guest's processes; `ctl kill VM PID` ends one sleep while
  another lives (no agent: through the guest kernel); a domain started
  after dbgstub is served within 10 s, and released (its port freed) when
  it stops; after SIGTERM, dbgstub is gone and QEMU listens on no TCP port;
- `--vm libvirt=DOMAIN`: gdb reads registers; while dbgstub runs QEMU
  listens on the gdbstub's port, and after it exits on none.
One domain boot, plus one domain that is started and destroyed. Skipped
only where libvirtd cannot start."""
import json
import os
import re
import signal
import subprocess
import sys
import tempfile
import threading
import time
import unittest

sys.path.insert(0, os.path.dirname(__file__))
sys.path.insert(0, os.path.join(os.path.dirname(__file__), "..", "vm"))
import harness  # noqa: E402
from harness import Stub, gdb  # noqa: E402
import libvirt_env  # noqa: E402

ENV = libvirt_env.start()

PROCESS_LINE = re.compile(r"^PROCESS ([0-9a-f]{16})  SessionId: none  Cid: [0-9a-f]+  \(pid (\d+)\)\n"
                          r"    Image: (\S+)", re.M)


def processes(out):
    """[(address, pid, name)] from `monitor !process 0 0` output."""
    return [(a, int(p), n) for a, p, n in PROCESS_LINE.findall(out)]


ctl = harness.ctl
status = harness.ctl_status


def port_range(n):
    """n consecutive free loopback ports."""
    import socket
    for base in range(23400, 60000, 97):
        ok = True
        for p in range(base, base + n):
            s = socket.socket()
            try:
                s.bind(("127.0.0.1", p))
            except OSError:
                ok = False
            finally:
                s.close()
            if not ok:
                break
        if ok:
            return base
    raise RuntimeError("no free port range")


@unittest.skipIf(isinstance(ENV, libvirt_env.Unavailable), getattr(ENV, "why", ""))
class LibvirtLab(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        cls.addClassCleanup(ENV.close)
        t = time.time()
        cls.dom = ENV.domain("a")
        print("domain ready after %.1f s" % (time.time() - t), file=sys.stderr)

    def sleeps(self, port):
        out = gdb(["monitor !process 0 0", "detach"], port=port, timeout=180)
        return sorted(p for _, p, n in processes(out) if n == "sleep"), out

    def test_1_lab_with_a_libvirt_source(self):
        qemu = self.dom.qemu_pid()
        self.assertIsNotNone(qemu)
        self.assertEqual(libvirt_env.listening_ports(qemu), set())
        with tempfile.TemporaryDirectory() as d:
            sock = os.path.join(d, "ctl.sock")
            first = port_range(10)
            kd_first = port_range(20) + 10
            lab = {"control": sock, "state_dir": os.path.join(d, "state"),
                   "libvirt": {"uri": libvirt_env.URI, "ports": f"{first}-{first + 4}",
                               "kd_ports": f"{kd_first}-{kd_first + 4}"}}
            path = os.path.join(d, "lab.json")
            with open(path, "w") as f:
                json.dump(lab, f)
            proc = subprocess.Popen([harness.DBGSTUB, "--config", path], stdout=subprocess.PIPE,
                                    stderr=subprocess.STDOUT, text=True, errors="replace")
            lines = []
            threading.Thread(target=lambda: [lines.append(l) for l in proc.stdout], daemon=True).start()
            log = lambda: "".join(lines)[-6000:]  # noqa: E731
            try:
                name = self.dom.name
                self.assertTrue(harness.eventually(lambda: os.path.exists(sock), timeout=30), log())
                served = lambda: status(sock).get(name, {}).get("state") == "running"  # noqa: E731
                self.assertTrue(harness.eventually(served, timeout=180, interval=0.5), log())
                vm = status(sock)[name]
                self.assertEqual(vm["source"], "libvirt")
                self.assertTrue(first <= vm["gdb_port"] <= first + 4, vm)
                self.assertTrue(kd_first <= vm["kd_port"] <= kd_first + 4, vm)
                # QEMU's gdbstub is open (for dbgstub), on a port of its own.
                stub_ports = libvirt_env.listening_ports(qemu)
                self.assertEqual(len(stub_ports), 1, stub_ports)
                self.assertNotIn(vm["gdb_port"], stub_ports)

                # gdb through the listed port: the guest's processes.
                sleeps, out = self.sleeps(vm["gdb_port"])
                self.assertGreaterEqual(len(sleeps), 2, out + log())
                self.assertEqual(processes(out)[0][1], 0, out)

                # ctl kill: one sleep ends, another lives.
                code, out, err = ctl(sock, "kill", name, str(sleeps[0]), timeout=120)
                self.assertEqual(code, 0, out + err + log())
                self.assertTrue(out.startswith("terminated: "), out)
                self.assertIn(f"pid {sleeps[0]}", out)
                gone = lambda: sleeps[0] not in self.sleeps(vm["gdb_port"])[0]  # noqa: E731
                self.assertTrue(harness.eventually(gone, timeout=60, interval=2), log())
                now, out = self.sleeps(vm["gdb_port"])
                self.assertIn(sleeps[1], now, out)

                # A domain that starts later is served within 10 s of its
                # start (`virsh create` returns once it runs; libvirtd may
                # take long to get there on a loaded machine).
                later = ENV.domain("b", wait=False)
                t = time.time()
                self.assertTrue(harness.eventually(lambda: later.name in status(sock), timeout=10, interval=0.2),
                                log())
                print("domain b served after %.1f s" % (time.time() - t), file=sys.stderr)
                b = status(sock)[later.name]
                self.assertEqual(b["source"], "libvirt")
                self.assertTrue(first <= b["gdb_port"] <= first + 4, b)
                self.assertNotEqual(b["gdb_port"], vm["gdb_port"])
                self.assertTrue(kd_first <= b["kd_port"] <= kd_first + 4, b)
                # ... and released when it stops.
                harness.eventually(lambda: status(sock)[later.name]["state"] != "starting", timeout=60,
                                   interval=0.5)
                later.destroy()
                self.assertTrue(harness.eventually(lambda: later.name not in status(sock), timeout=30, interval=0.5),
                                log())
                self.assertEqual(list(status(sock)), [name])
                self.assertIn(f"libvirt: releasing domain {later.name}", log())

                # SIGTERM: dbgstub ends and QEMU listens nowhere.
                proc.send_signal(signal.SIGTERM)
                self.assertEqual(proc.wait(60), 0, log())
            finally:
                if proc.poll() is None:
                    proc.kill()
                    proc.wait()
            self.assertTrue(harness.eventually(lambda: libvirt_env.listening_ports(qemu) == set(), timeout=5),
                            libvirt_env.listening_ports(qemu))
            self.assertFalse(os.path.exists(sock))
            self.assertEqual(libvirt_env.virsh("domstate", self.dom.name).strip(), "running")

    def test_2_vm_libvirt_domain(self):
        qemu = self.dom.qemu_pid()
        with Stub("--vm", f"libvirt={self.dom.name},uri={libvirt_env.URI}", "127.0.0.1:0", timeout=120) as stub:
            stub_ports = libvirt_env.listening_ports(qemu)
            self.assertEqual(len(stub_ports), 1, stub_ports)
            out = gdb(["info registers rip", "info registers cs", "detach"], port=stub.port, timeout=120)
            self.assertRegex(out, r"rip +0x[0-9a-f]+", out + stub.output())
            self.assertRegex(out, r"cs +0x10", out)
            stub.stop()
            self.assertEqual(stub.proc.returncode, 0, stub.output())
        self.assertTrue(harness.eventually(lambda: libvirt_env.listening_ports(qemu) == set(), timeout=5),
                        libvirt_env.listening_ports(qemu))
        self.assertIn("gdbstub closed", stub.output())
        self.assertEqual(libvirt_env.virsh("domstate", self.dom.name).strip(), "running")

    def test_3_vm_libvirt_unknown_domain(self):
        r = subprocess.run([harness.DBGSTUB, "--vm", "libvirt=dbgstub-test-no-such-domain", "127.0.0.1:0"],
                           capture_output=True, text=True, timeout=60)
        self.assertEqual(r.returncode, 1, r.stdout + r.stderr)
        self.assertIn("dbgstub-test-no-such-domain", r.stderr)


if __name__ == "__main__":
    unittest.main()
