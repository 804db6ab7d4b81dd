"""A lab that holds (issue #20), with the suite's real test VM:

- a gdb that connects the instant dbgstub's port accepts, while dbgstub's
  start-up is slow (the guest agent busy with another client), gets a clean
  session (`monitor help` answered, no "Remote replied unexpectedly");
- dbgstub does not keep the guest agent: an outside agent client's
  guest-exec is answered while dbgstub serves the VM, before and after a
  `.kill`;
- in a lab of two VMs where one QEMU is frozen (SIGSTOP), the other VM's
  short session takes at most 1.5 times as long as with both healthy, and
  the frozen VM's debugger gets an error naming the VM.
Skipped only where qemu-system-x86_64 is not installed."""
import json
import os
import re
import select
import shutil
import signal
import socket
import statistics
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

PROCESS_LINE = re.compile(r"^PROCESS ([0-9a-f]{16})  SessionId: none  Cid: [0-9a-f]+  \(pid (\d+)\)\n"
                          r"    Image: (\S+)", re.M)


class EarlyProxy:
    """Listens for gdb; when gdb connects, connects to `port` again and again
    until it accepts, then relays both ways. gdb's first packet, sent the
    moment its own connect succeeded, so reaches dbgstub within a
    millisecond or so of dbgstub's port accepting."""

    def __init__(self, port):
        self.port = port
        self.listener = socket.socket()
        self.listener.bind(("127.0.0.1", 0))
        self.listener.listen(1)
        self.accepted_after = None  # seconds from gdb's connect to dbgstub's accept
        self.thread = threading.Thread(target=self._run, daemon=True)
        self.thread.start()

    @property
    def address(self):
        return self.listener.getsockname()[1]

    def _run(self):
        front, _ = self.listener.accept()
        t0 = time.monotonic()
        while True:
            back = socket.socket()
            try:
                back.connect(("127.0.0.1", self.port))
                break
            except OSError:
                back.close()
                time.sleep(0.001)
        self.accepted_after = time.monotonic() - t0
        socks = [front, back]
        try:
            while True:
                ready, _, _ = select.select(socks, [], [], 120)
                if not ready:
                    return
                for s in ready:
                    data = s.recv(65536)
                    if not data:
                        return
                    (back if s is front else front).sendall(data)
        except OSError:
            return
        finally:
            front.close()
            back.close()


def start_dbgstub(*args):
    proc = subprocess.Popen([harness.DBGSTUB, *args], stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    lines = []
    threading.Thread(target=lambda: [lines.append(line) for line in proc.stdout], daemon=True).start()
    return proc, lines


def stop_dbgstub(proc):
    if proc.poll() is None:
        proc.terminate()
        try:
            proc.wait(30)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(10)


@unittest.skipIf(guest.qemu_path() is None,
                 "qemu-system-x86_64 is not installed (scripts/install-deps.sh installs qemu-system-x86)")
class OneVm(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        cls.guest = guest.Guest(boot_timeout=120)
        cls.addClassCleanup(cls.guest.stop)
        cls.guest.start()

    def assert_vm_running(self):
        with self.guest.qmp() as m:
            self.assertEqual(m.status(), "running")

    def test_gdb_at_the_instant_the_port_accepts_on_a_slow_start(self):
        g = self.guest
        port = guest.free_port()
        # Another agent client holds the agent for 4 s: dbgstub's start-up
        # (symbols through the agent) waits for it, with its port open.
        holder = g.qga()
        release = threading.Timer(4.0, holder.close)
        release.start()
        proxy = EarlyProxy(port)
        gdb_out = {}
        t = threading.Thread(target=lambda: gdb_out.setdefault(
            "out", gdb(["monitor help", "info registers rip", "detach"], port=proxy.address, timeout=120)))
        t.start()
        time.sleep(0.3)  # gdb is connected to the proxy, which is knocking
        proc, lines = start_dbgstub("--vm", f"gdbstub=127.0.0.1:{g.gdb_port},qga={g.qga_path}",
                                    f"127.0.0.1:{port}")
        try:
            t.join(150)
            out = gdb_out.get("out", "")
            self.assertIsNotNone(proxy.accepted_after, "dbgstub's port never accepted")
            self.assertNotIn("Remote replied unexpectedly", out)
            self.assertNotIn("Ignoring packet error", out)
            self.assertIn(".kill", out, "monitor help was not answered:\n" + out + "".join(lines))
            self.assertRegex(out, r"rip +0x[0-9a-f]+")
            # The start-up was slow: gdb's first request waited for it.
            self.assertTrue(any("busy" in line for line in lines), "".join(lines))
        finally:
            release.cancel()
            holder.close()
            stop_dbgstub(proc)
        self.assert_vm_running()

    def serve_in_a_lab(self):
        """dbgstub serving the guest as a lab of one: (proc, lines, port).
        A lab's VM runs until its debugger comes (a --vm one is held for
        its first debugger, as gdbserver holds a program it started)."""
        g = self.guest
        d = tempfile.mkdtemp(prefix="dbgstub-lab-")
        self.addCleanup(shutil.rmtree, d, True)
        path = os.path.join(d, "lab.json")
        with open(path, "w") as f:
            json.dump({"vms": [{"name": "solo", "listen": "127.0.0.1:0", "gdbstub": f"127.0.0.1:{g.gdb_port}",
                                "qga": g.qga_path}]}, f)
        proc, lines = start_dbgstub("--config", path)
        self.addCleanup(stop_dbgstub, proc)
        self.assertTrue(harness.eventually(lambda: any("Listening on port" in l for l in lines), timeout=90),
                        "".join(lines))
        port = int(re.search(r"Listening on port (\d+)", "".join(lines)).group(1))
        return proc, lines, port

    def test_a_kill_of_a_zombie_says_it_had_ended(self):
        g = self.guest
        with g.qga() as q:
            # A parent that never reaps: its child exits and stays a zombie.
            parent = q.call("guest-exec", {"path": "/bin/sh",
                                           "arg": ["-c", "(exec sleep 0.2) & exec sleep 100000"]})["pid"]
            def end_parent():
                with g.qga() as q2:
                    q2.sh(f"kill -9 {parent}")
            self.addCleanup(end_parent)
            found = {}

            def zombie():
                code, out, _ = q.sh("for s in /proc/[0-9]*/status; do grep -q '^State:.*Z' $s && "
                                    "grep -q \"^PPid:[[:space:]]*%d$\" $s && echo ${s#/proc/}; done; true" % parent)
                pids = [int(x.split("/")[0]) for x in out.split()]
                if pids:
                    found["pid"] = pids[0]
                return bool(pids)
            self.assertTrue(harness.eventually(zombie, timeout=20, interval=0.5), "no zombie appeared")
        z = found["pid"]
        proc, lines, port = self.serve_in_a_lab()
        out = gdb(["monitor !process 0 0 sleep"], port=port, timeout=120)
        addr = [a for a, pid, _ in PROCESS_LINE.findall(out) if int(pid) == z]
        self.assertTrue(addr, f"zombie {z} not listed:\n{out}")
        out = gdb([f"monitor .kill {addr[0]}", "detach"], port=port, timeout=120)
        self.assertTrue(harness.eventually(lambda: f"pid {z}) was" in "".join(lines), timeout=60, interval=0.5),
                        "".join(lines))
        log = "".join(lines)
        self.assertIn(f"(sleep, pid {z}) was not terminated: it had already ended (a zombie its parent has not "
                      "reaped yet)", log)
        self.assertNotIn("has not ended yet", log)
        self.assert_vm_running()

    def test_outside_agent_client_is_answered_while_served_and_after_a_kill(self):
        g = self.guest
        proc, lines, port = self.serve_in_a_lab()
        # dbgstub idle beside it: the agent answers another client.
        with g.qga(timeout=15) as q:
            code, text, _ = q.exec(["/bin/echo", "before"], timeout=15)
        self.assertEqual((code, text), (0, "before\n"))
        out = gdb(["monitor !process 0 0 sleep"], port=port, timeout=120)
        victims = PROCESS_LINE.findall(out)
        self.assertTrue(victims, out)
        addr, pid, _ = victims[0]
        out = gdb([f"monitor .kill {addr}", "detach"], port=port, timeout=120)
        self.assertIn("will be terminated the next time the target runs", out)
        self.assertTrue(harness.eventually(lambda: "was terminated" in "".join(lines), timeout=60, interval=0.5),
                        "".join(lines))
        with g.qga(timeout=15) as q:
            code, text, _ = q.exec(["/bin/echo", "after"], timeout=15)
        self.assertEqual((code, text), (0, "after\n"))
        self.assertNotIn(int(pid), [p for p, _ in g.ps()])
        self.assert_vm_running()


@unittest.skipIf(guest.qemu_path() is None,
                 "qemu-system-x86_64 is not installed (scripts/install-deps.sh installs qemu-system-x86)")
class FrozenNeighbour(unittest.TestCase):
    SESSION = ["stepi 20", "info registers", "x/64xg $sp", "detach"]

    def short_session(self, port):
        t0 = time.monotonic()
        out = gdb(self.SESSION, port=port, timeout=120)
        elapsed = time.monotonic() - t0
        self.assertRegex(out, r"rip +0x[0-9a-f]+", out)
        self.assertNotIn("Remote replied unexpectedly", out)
        return elapsed

    def test_a_frozen_vm_costs_the_other_nothing(self):
        with guest.Guest(boot_timeout=120) as a, guest.Guest(boot_timeout=120) as b:
            ports = {"a": guest.free_port(), "b": guest.free_port()}
            cfg = {"vms": [
                {"name": "a", "listen": f"127.0.0.1:{ports['a']}", "gdbstub": f"127.0.0.1:{a.gdb_port}",
                 "qga": a.qga_path},
                {"name": "b", "listen": f"127.0.0.1:{ports['b']}", "gdbstub": f"127.0.0.1:{b.gdb_port}",
                 "qga": b.qga_path}]}
            with tempfile.TemporaryDirectory() as d:
                path = os.path.join(d, "lab.json")
                with open(path, "w") as f:
                    json.dump(cfg, f)
                proc, lines = start_dbgstub("--config", path, "--state-dir", d)
                try:
                    self.assertTrue(harness.eventually(
                        lambda: sum("Listening on port" in l for l in lines) == 2, timeout=120), "".join(lines))
                    healthy = [self.short_session(ports["b"]) for _ in range(3)]
                    os.kill(a.proc.pid, signal.SIGSTOP)
                    try:
                        frozen_out = {}
                        ta = threading.Thread(target=lambda: frozen_out.setdefault(
                            "out", gdb(["info registers rip", "x/4xg $sp", "detach"], port=ports["a"],
                                       timeout=120)))
                        ta.start()
                        time.sleep(1.0)  # a's debugger is waiting on the frozen stub
                        frozen = [self.short_session(ports["b"]) for _ in range(3)]
                        ta.join(150)
                        # A client that sends its request again (as gdb does
                        # after 2 s with no reply) while the first is still
                        # being answered gets one reply: the session stays
                        # in step.
                        with harness.RspClient(ports["a"], timeout=20) as c:
                            c.send("qSupported:multiprocess+")
                            time.sleep(1.3)
                            c.send("qSupported:multiprocess+")
                            first = c.read_packet(timeout=15)
                            self.assertTrue(first.startswith("E."), first)
                            self.assertEqual(c.request("vMustReplyEmpty", timeout=10), "")
                    finally:
                        os.kill(a.proc.pid, signal.SIGCONT)
                    ratio = statistics.median(frozen) / statistics.median(healthy)
                    self.assertLessEqual(ratio, 1.5, f"healthy {healthy}, with a frozen {frozen}")
                    out = frozen_out.get("out", "")
                    self.assertRegex(out, r"VM a \(gdbstub 127\.0\.0\.1:\d+\)[^\n]*(has not answered|connected but)",
                                     out + "".join(lines))
                finally:
                    stop_dbgstub(proc)


if __name__ == "__main__":
    unittest.main()
