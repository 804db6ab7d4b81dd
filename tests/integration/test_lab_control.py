"""A lab's control socket (issue #23) with the suite's real test VM, driven
through `dbgstub ctl` and raw JSON lines:

- the socket is made with mode 0600 and removed when dbgstub ends;
- `ctl status --json` lists the VM with its port and state ("running");
- `ctl kill VM PID` of a `sleep` ends it at once while another sleep lives,
  and the VM keeps running;
- a bad request gets an error reply, and the same connection goes on
  serving;
- with a debugger (a raw RSP client) holding the VM halted, a kill is
  "scheduled", listed as pending, and carried out once the debugger
  detaches;
- a reload (`ctl reload`) that adds a VM whose gdbstub never answers keeps
  the first VM's session, and `ctl status` still answers within its bound,
  the new VM's thread being stuck ("busy"); a reload without it stops it.
Skipped only where qemu-system-x86_64 is not installed."""
import json
import os
import socket
import stat
import subprocess
import sys
import tempfile
import threading
import time
import unittest

sys.path.insert(0, os.path.dirname(__file__))
sys.path.insert(0, os.path.join(os.path.dirname(__file__), "..", "vm"))
import harness  # noqa: E402
import guest  # noqa: E402


ctl = harness.ctl
status = harness.ctl_status


class FrozenStub:
    """A "gdbstub" that accepts connections and never answers: the VM
    thread that connects to it waits for its deadline."""

    def __init__(self):
        self.sock = socket.socket()
        self.sock.bind(("127.0.0.1", 0))
        self.sock.listen(8)
        self.port = self.sock.getsockname()[1]
        self.conns = []
        threading.Thread(target=self._accept, daemon=True).start()

    def _accept(self):
        while True:
            try:
                c, _ = self.sock.accept()
            except OSError:
                return
            self.conns.append(c)

    def close(self):
        for c in self.conns + [self.sock]:
            c.close()


@unittest.skipIf(guest.qemu_path() is None,
                 "qemu-system-x86_64 is not installed (scripts/install-deps.sh installs qemu-system-x86)")
class LabControl(unittest.TestCase):
    def sleeps(self, g):
        return [pid for pid, comm in g.ps() if comm == "sleep"]

    def test_status_kill_and_reload(self):
        with guest.Guest(boot_timeout=120) as g, tempfile.TemporaryDirectory() as d:
            port = guest.free_port()
            sock = os.path.join(d, "ctl.sock")
            vm1 = {"name": "vm1", "listen": f"127.0.0.1:{port}", "gdbstub": f"127.0.0.1:{g.gdb_port}",
                   "qga": g.qga_path}
            path = os.path.join(d, "lab.json")

            def write_lab(vms):
                with open(path, "w") as f:
                    json.dump({"control": sock, "state_dir": os.path.join(d, "state"), "vms": vms}, f)

            write_lab([vm1])
            proc = subprocess.Popen([harness.DBGSTUB, "--config", path], stdout=subprocess.PIPE,
                                    stderr=subprocess.STDOUT, text=True)
            lines = []
            frozen = FrozenStub()
            try:
                for line in proc.stdout:
                    lines.append(line)
                    if "vm1: Listening on port" in line:
                        break
                threading.Thread(target=lambda: [lines.append(l) for l in proc.stdout], daemon=True).start()
                log = lambda: "".join(lines)[-4000:]  # noqa: E731

                # Only dbgstub's user may connect.
                st = os.stat(sock)
                self.assertTrue(stat.S_ISSOCK(st.st_mode))
                self.assertEqual(stat.S_IMODE(st.st_mode), 0o600)

                vms = status(sock)
                self.assertEqual(list(vms), ["vm1"])
                self.assertEqual(vms["vm1"]["source"], "file")
                self.assertEqual(vms["vm1"]["gdb_port"], port)
                self.assertIsNone(vms["vm1"]["kd_port"])
                self.assertEqual(vms["vm1"]["state"], "running")
                self.assertIsNone(vms["vm1"]["debugger"])
                self.assertEqual(vms["vm1"]["pending_terminations"], [])
                code, table, _ = ctl(sock, "status")
                self.assertEqual(code, 0)
                self.assertRegex(table, rf"(?m)^vm1 +file +{port} +- +running +- +-$")

                # No debugger: ended at once, the other sleeps live on.
                sleeps = self.sleeps(g)
                self.assertGreaterEqual(len(sleeps), 3, g.ps())
                code, out, err = ctl(sock, "kill", "vm1", str(sleeps[0]))
                self.assertEqual(code, 0, out + err + log())
                self.assertTrue(out.startswith("terminated: "), out)
                self.assertIn(f"pid {sleeps[0]}", out)
                now = self.sleeps(g)
                self.assertNotIn(sleeps[0], now)
                self.assertIn(sleeps[1], now)
                with g.qmp() as m:
                    self.assertEqual(m.status(), "running")

                # Bad requests: an error reply each, and the connection serves on.
                with socket.socket(socket.AF_UNIX) as c:
                    c.settimeout(10)
                    c.connect(sock)
                    f = c.makefile("rwb")
                    for bad in (b"{not json\n", b'{"op": "reboot"}\n', b'{"op": "kill", "vm": "vm1"}\n',
                                b'{"op": "kill", "vm": "nope", "pid": 1}\n'):
                        f.write(bad)
                        f.flush()
                        reply = json.loads(f.readline())
                        self.assertIs(reply["ok"], False, bad)
                        self.assertTrue(reply["error"], bad)
                    f.write(b'{"op": "status"}\n')
                    f.flush()
                    self.assertIs(json.loads(f.readline())["ok"], True)
                code, _, err = ctl(sock, "kill", "vm2", "5")
                self.assertEqual(code, 1)
                self.assertIn("no VM 'vm2' (known: vm1)", err)

                # A debugger holds the VM halted: the kill waits for it.
                with harness.RspClient(port, timeout=30) as rsp:
                    rsp.handshake()
                    self.assertTrue(rsp.request("?").startswith("T"))
                    me = "127.0.0.1:%d" % rsp.sock.getsockname()[1]
                    vms = status(sock)
                    self.assertEqual(vms["vm1"]["state"], "halted", log())
                    self.assertEqual(vms["vm1"]["debugger"], me)
                    code, out, err = ctl(sock, "kill", "vm1", str(sleeps[1]))
                    self.assertEqual(code, 0, out + err + log())
                    self.assertTrue(out.startswith("scheduled: "), out)
                    pending = status(sock)["vm1"]["pending_terminations"]
                    self.assertEqual([(p["pid"], p["name"]) for p in pending], [(sleeps[1], "sleep")])
                    self.assertRegex(pending[0]["address"], r"^0x[0-9a-f]+$")

                    # A reload keeps vm1 (and this session); the new VM's thread
                    # is stuck on its gdbstub, and status does not wait for it.
                    write_lab([vm1, {"name": "frozen", "listen": "127.0.0.1:0",
                                     "gdbstub": f"127.0.0.1:{frozen.port}"}])
                    code, out, err = ctl(sock, "reload")
                    self.assertEqual(code, 0, out + err + log())
                    self.assertIn("kept: vm1\nstarted: frozen\nstopped: -", out)
                    t0 = time.monotonic()
                    vms = status(sock)
                    elapsed = time.monotonic() - t0
                    self.assertLess(elapsed, 2.9, "status waited for the stuck VM")
                    self.assertEqual(vms["vm1"]["state"], "halted")
                    self.assertEqual(vms["vm1"]["debugger"], me)
                    self.assertIn(vms["frozen"]["state"], ("busy", "starting", "unreachable"))
                    self.assertTrue(rsp.request("?").startswith("T"), "vm1's session did not survive the reload")
                    # The scheduled kill has not happened: the VM is halted
                    # (the agent could not answer), and it is still pending.
                    self.assertEqual(len(status(sock)["vm1"]["pending_terminations"]), 1)
                    rsp.send("D")
                    rsp.read_packet()
                # Detached: the VM runs and the kill is carried out.
                self.assertTrue(harness.eventually(lambda: sleeps[1] not in self.sleeps(g), timeout=30),
                                "the scheduled kill did not happen after the debugger left\n" + log())
                self.assertIn(sleeps[2], self.sleeps(g))
                with g.qmp() as m:
                    self.assertEqual(m.status(), "running")
                vms = status(sock)
                self.assertEqual(vms["vm1"]["pending_terminations"], [])
                self.assertIsNone(vms["vm1"]["debugger"])
                self.assertEqual(vms["vm1"]["state"], "running")
                # The stuck VM has given up on its gdbstub by now.
                self.assertEqual(vms["frozen"]["state"], "unreachable")

                write_lab([vm1])
                code, out, err = ctl(sock, "reload")
                self.assertEqual(code, 0, out + err)
                self.assertIn("kept: vm1\nstarted: -\nstopped: frozen", out)
                self.assertEqual(list(status(sock)), ["vm1"])
            finally:
                proc.terminate()
                proc.wait(30)
                frozen.close()
                time.sleep(0.2)  # the reader thread takes the last lines
                proc.stdout.close()
            self.assertEqual(proc.returncode, 0, "".join(lines)[-3000:])
            self.assertFalse(os.path.exists(sock), "the control socket was not removed")


if __name__ == "__main__":
    unittest.main()
