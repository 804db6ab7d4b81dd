"""A dbgstub that dies never costs the VM or a pending kill (issue #25), on
the test VM (tests/vm: Debian's kernel under QEMU/TCG, three `sleep`s, a
getpid loop, qemu-ga), booted once for the file:

- SIGTERM or SIGINT with the VM halted by a debugger: dbgstub lets it go
  first;
- kill -9 with the VM halted, a breakpoint planted and a `.kill` pending:
  QEMU keeps the VM halted (its gdbstub has no client left); dbgstub
  started again with the same --state-dir resumes it within 15 s with no
  debugger connected, takes the breakpoint out (the getpid loop would hit
  it at once), ends the victim and no one else;
- a damaged state file is reported, set aside and not trusted;
- a lab (--config with "state_dir") recovers its VM the same way.

Skipped only where qemu-system-x86_64 is not installed."""
import json
import os
import re
import shutil
import signal
import sys
import tempfile
import time
import unittest

sys.path.insert(0, os.path.dirname(__file__))
sys.path.insert(0, os.path.join(os.path.dirname(__file__), "..", "vm"))
import harness  # noqa: E402
from harness import RspClient, Stub  # noqa: E402
import guest  # noqa: E402


def rcmd(client, text):
    """`monitor TEXT` by hand: its output, from the O packets and the reply."""
    client.send("qRcmd," + text.encode().hex())
    out = ""
    while True:
        p = client.read_packet(timeout=120, skip_console=False)
        if p.startswith("O") and p != "OK":
            out += bytes.fromhex(p[1:]).decode("latin-1")
        elif p == "OK":
            return out
        elif re.fullmatch(r"(?:[0-9a-f]{2})+", p):
            return out + bytes.fromhex(p).decode("latin-1")
        else:
            return out + p


@unittest.skipIf(guest.qemu_path() is None,
                 "qemu-system-x86_64 is not installed (scripts/install-deps.sh installs qemu-system-x86)")
class VmRecovery(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        cls.guest = guest.Guest(boot_timeout=120)
        cls.addClassCleanup(cls.guest.stop)
        cls.guest.start()
        cls.syms = cls.guest.kallsyms(["__x64_sys_getpid"])

    def setUp(self):
        self.state_dir = tempfile.mkdtemp(prefix="dbgstub-state-")
        self.addCleanup(shutil.rmtree, self.state_dir, True)
        self.state_path = os.path.join(self.state_dir, f"gdbstub-127.0.0.1-{self.guest.gdb_port}.json")

    def stub(self):
        g = self.guest
        stub = Stub("--vm", f"gdbstub=127.0.0.1:{g.gdb_port},qga={g.qga_path}", "--state-dir", self.state_dir,
                    "127.0.0.1:0", timeout=90)
        self.addCleanup(stub.stop)
        return stub

    def state(self):
        """The state file; none (nothing to undo) as held: False."""
        try:
            with open(self.state_path) as f:
                return json.load(f)
        except FileNotFoundError:
            return {"held": False, "breakpoints": [], "terminations": [], "file": "none"}

    def status(self):
        with self.guest.qmp() as m:
            return m.status()

    def ps(self):
        return self.guest.ps()

    def test_1_sigterm_or_sigint_with_the_vm_halted_leaves_it_running(self):
        for sig in (signal.SIGTERM, signal.SIGINT):
            with self.subTest(signal=sig.name):
                stub = self.stub()
                with RspClient(stub.port) as c:
                    c.handshake()
                    self.assertEqual(c.request("Hgp0.0"), "OK")
                    self.assertNotEqual(self.status(), "running")
                    self.assertTrue(self.state()["held"])
                    stub.proc.send_signal(sig)
                    self.assertEqual(stub.wait(), 0, stub.output())
                self.assertTrue(harness.eventually(lambda: self.status() == "running", timeout=10), self.status())
                self.assertFalse(os.path.exists(self.state_path), self.state())  # nothing left to undo
                self.guest.qga().close()  # the agent answers: the guest runs

    def test_2_kill_9_then_restart_recovers(self):
        getpid = self.syms["__x64_sys_getpid"]
        stub = self.stub()
        c = RspClient(stub.port)
        try:
            c.handshake()
            out = rcmd(c, "!process 0 0 sleep")
            sleeps = [(a, int(p)) for a, p in re.findall(r"PROCESS ([0-9a-f]{16}) .*\(pid (\d+)\)", out)]
            self.assertGreaterEqual(len(sleeps), 2, out)
            (addr, victim), (_, bystander) = sleeps[0], sleeps[1]
            self.assertIn("will be terminated the next time the target runs", rcmd(c, f".kill {addr}"))
            # The getpid loop would hit this breakpoint as soon as the VM runs.
            self.assertEqual(c.request(f"Z0,{getpid:x},1"), "OK")
            st = self.state()
            self.assertTrue(st["held"], st)
            self.assertEqual(st["breakpoints"], [{"type": 0, "address": hex(getpid), "kind": 1}])
            # With the task's start (ns since the guest booted), so that a
            # later process given the same pid is not the one ended.
            started = [t.pop("start_time", None) for t in st["terminations"]]
            self.assertEqual(st["terminations"], [{"address": "0x" + addr.lstrip("0"), "pid": victim,
                                                   "name": "sleep"}])
            self.assertTrue(isinstance(started[0], int) and started[0] > 0, started)
            stub.proc.kill()
            stub.proc.wait()
        finally:
            c.close()
        # What QEMU does with its client gone: the VM stays halted.
        time.sleep(2)
        self.assertNotEqual(self.status(), "running")

        t0 = time.time()
        stub = self.stub()
        ran = harness.eventually(lambda: self.status() == "running", timeout=15, interval=0.2)
        took = time.time() - t0
        log = stub.output()
        self.assertTrue(ran, f"the VM is still {self.status()} 15 s after the restart\n" + log)
        print(f"the VM ran again {took:.1f} s after the restart", file=sys.stderr)
        self.assertIn("an earlier dbgstub ended without letting the VM go", log)
        self.assertIn("recovery: the VM runs again", log)
        self.assertTrue(harness.eventually(lambda: "was terminated" in stub.output(), timeout=30, interval=0.5),
                        stub.output())
        self.assertIn(f"(sleep, pid {victim}) was terminated.", stub.output())
        # No debugger is connected and the breakpoint is out: the VM keeps running.
        time.sleep(2)
        self.assertEqual(self.status(), "running", stub.output())
        st = self.state()
        self.assertEqual((st["held"], st["breakpoints"], st["terminations"]), (False, [], []), st)
        self.assertFalse(os.path.exists(self.state_path))
        # And the restarted dbgstub serves a debugger as before.
        with RspClient(stub.port) as c:
            c.handshake()
            self.assertEqual(c.request("Hgp0.0"), "OK")
            self.assertNotEqual(self.status(), "running")
        self.assertTrue(harness.eventually(lambda: self.status() == "running", timeout=10), self.status())
        # The guest's own view (its agent serves one client: dbgstub's first).
        stub.stop()
        procs = [p for p, _ in self.ps()]
        self.assertNotIn(victim, procs)
        self.assertIn(bystander, procs)

    def test_3_a_damaged_state_file_is_reported_and_ignored(self):
        with open(self.state_path, "w") as f:
            f.write('{"version": 1, "name": "gdbstub-127.0.0.1-')  # cut short
        stub = self.stub()
        log = stub.output()
        self.assertIn(f"the state file {self.state_path} is not trusted (damaged: not JSON); set aside as", log)
        self.assertNotIn("recovering", log)
        aside = [n for n in os.listdir(self.state_dir) if ".json.damaged-" in n]
        self.assertEqual(len(aside), 1, os.listdir(self.state_dir))
        # A good file in its place from the first change on.
        self.assertTrue(self.state()["held"])
        stub.stop()
        self.assertTrue(harness.eventually(lambda: self.status() == "running", timeout=10), self.status())
        self.assertFalse(os.path.exists(self.state_path))

    def test_5_a_pending_kill_checks_the_start_time(self):
        """A pending termination names its task by pid, name and start time:
        a process with the same pid and name that started at another time
        is not the one to end (the pid was reused); the one that did start
        then is ended."""
        g = self.guest
        sleeps = sorted(p for p, comm in self.ps() if comm == "sleep")
        self.assertGreaterEqual(len(sleeps), 2)
        wrong, right = sleeps[0], sleeps[1]
        with g.qga() as q:
            ticks = {}
            for pid in (wrong, right):
                code, out, _ = q.sh(f"sed 's/^.*) //' /proc/{pid}/stat | cut -d' ' -f20")
                self.assertEqual(code, 0)
                ticks[pid] = int(out.strip())
        with open(self.state_path, "w") as f:
            json.dump({"version": 1, "name": f"gdbstub-127.0.0.1-{g.gdb_port}", "gdbstub": f"127.0.0.1:{g.gdb_port}",
                       "held": False, "breakpoints": [],
                       "terminations": [
                           {"address": "0xffff888000001000", "pid": wrong, "name": "sleep",
                            "start_time": (ticks[wrong] + 1000) * 10_000_000},
                           {"address": "0xffff888000002000", "pid": right, "name": "sleep",
                            "start_time": ticks[right] * 10_000_000 + 3_000_000}]}, f)
        stub = self.stub()
        self.assertTrue(harness.eventually(lambda: f"pid {right}) was terminated" in stub.output(), timeout=60),
                        stub.output())
        log = stub.output()
        self.assertIn(f"pid {wrong}) was not terminated: it had already gone (pid {wrong} is another process now)",
                      log)
        stub.stop()
        alive = [p for p, comm in self.ps() if comm == "sleep"]
        self.assertIn(wrong, alive)
        self.assertNotIn(right, alive)

    def test_4_a_lab_recovers_its_vm_too(self):
        """The same in a lab (--config, "state_dir" in the file): the VM's
        file is NAME.json."""
        g = self.guest
        port = guest.free_port()
        lab = os.path.join(self.state_dir, "lab.json")
        with open(lab, "w") as f:
            json.dump({"state_dir": self.state_dir,
                       "vms": [{"name": "vm1", "listen": f"127.0.0.1:{port}",
                                "gdbstub": f"127.0.0.1:{g.gdb_port}", "qga": g.qga_path}]}, f)
        self.state_path = os.path.join(self.state_dir, "vm1.json")

        def start():
            stub = Stub("--config", lab, wait_listening=False)
            self.addCleanup(stub.stop)
            self.assertTrue(harness.eventually(lambda: "Listening on port" in stub.output(), timeout=90),
                            stub.output())
            return stub

        stub = start()
        self.assertFalse(os.path.exists(self.state_path))  # a lab lets its VMs run until a debugger comes
        with RspClient(port) as c:
            c.handshake()
            self.assertEqual(c.request("Hgp0.0"), "OK")
            self.assertTrue(self.state()["held"])
            stub.proc.kill()
            stub.proc.wait()
        time.sleep(1)
        self.assertNotEqual(self.status(), "running")
        stub = start()
        self.assertTrue(harness.eventually(lambda: self.status() == "running", timeout=15), stub.output())
        self.assertIn("vm1: an earlier dbgstub ended without letting the VM go", stub.output())
        self.assertFalse(os.path.exists(self.state_path))


if __name__ == "__main__":
    unittest.main()
