"""server/lab/libvirt_source against a real libvirtd (started here when it
is not running), through tests/tools/libvirt_probe: a transient domain made
from the test VM, with no gdbstub and no agent channel in its XML, is listed;
its gdbstub is opened on a loopback port through the monitor passthrough
(QEMU listens there and answers the GDB protocol) and closed again (QEMU
listens nowhere); the agent API is refused for a domain without an agent
channel; lifecycle events come for a domain that starts and stops; a
memory+disk snapshot of a domain with a qcow2 disk is taken and reverted.
One domain boot (a second domain is created and destroyed for its events
only). Skipped only where libvirtd cannot start."""
import os
import re
import socket
import subprocess
import sys
import time
import unittest

sys.path.insert(0, os.path.dirname(__file__))
import harness  # noqa: E402
import libvirt_env  # noqa: E402

PROBE = harness.program("libvirt_probe")
ENV = libvirt_env.start()


def probe(*args, timeout=60):
    return subprocess.run([PROBE, libvirt_env.URI, *args], capture_output=True, text=True, timeout=timeout)


def rsp_exchange(port, payload, timeout=30):
    s = socket.create_connection(("127.0.0.1", port), timeout=timeout)
    try:
        s.sendall(harness.rsp_frame(payload).encode())
        data = b""
        deadline = time.time() + timeout
        # QEMU may send a stop reply of its own first (it halts the VM when
        # a client connects, and tells the client so): skipped.
        def answered():
            packets = re.findall(rb"\$([^#]*)#..", data)
            return any(not re.match(rb"[TS][0-9a-f]{2}", p) for p in packets)
        while not answered() and time.time() < deadline:
            chunk = s.recv(4096)
            if not chunk:
                break
            data += chunk
        s.sendall(b"+" + harness.rsp_frame("D").encode())  # detach: the VM runs on
        time.sleep(0.2)
        return data
    finally:
        s.close()


@unittest.skipIf(isinstance(ENV, libvirt_env.Unavailable), getattr(ENV, "why", ""))
class LibvirtSource(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        cls.dom = ENV.domain("a", disk=True)

    @classmethod
    def tearDownClass(cls):
        ENV.close()

    def test_lists_running_domain(self):
        r = probe("list")
        self.assertEqual(r.returncode, 0, r.stderr)
        self.assertIn(self.dom.name + " agent=0", r.stdout.splitlines())

    def test_opens_and_closes_gdbstub_through_the_monitor(self):
        port = harness_free_port()
        pid = self.dom.qemu_pid()
        self.assertIsNotNone(pid)
        self.assertNotIn(port, libvirt_env.listening_ports(pid))
        r = probe("open-gdbstub", self.dom.name, str(port))
        self.assertEqual(r.returncode, 0, r.stderr)
        try:
            self.assertIn(port, libvirt_env.listening_ports(pid))
            self.assertIn(b"PacketSize", rsp_exchange(port, "qSupported"))
        finally:
            r = probe("close-gdbstub", self.dom.name)
        self.assertEqual(r.returncode, 0, r.stderr)
        self.assertTrue(harness.eventually(lambda: not libvirt_env.listening_ports(pid), 5),
                        libvirt_env.listening_ports(pid))
        self.assertEqual(libvirt_env.virsh("domstate", self.dom.name).strip(), "running")

    def test_gdbstub_errors_name_the_domain(self):
        r = probe("open-gdbstub", "no-such-domain", "1")
        self.assertEqual(r.returncode, 1)
        self.assertIn("domain 'no-such-domain'", r.stderr)

    def test_agent_refused_without_an_agent_channel(self):
        r = probe("agent", self.dom.name, '{"execute":"guest-ping"}')
        self.assertEqual(r.returncode, 1)
        self.assertIn("has no guest agent channel (org.qemu.guest_agent.0)", r.stderr)

    def test_lifecycle_events(self):
        w = subprocess.Popen([PROBE, libvirt_env.URI, "watch", "60"], stdout=subprocess.PIPE, text=True)
        try:
            self.assertEqual(w.stdout.readline().strip(), "watching")
            b = ENV.domain("events", wait=False)
            self.assertEqual(w.stdout.readline().strip(), "started " + b.name)
            b.destroy()
            self.assertEqual(w.stdout.readline().strip(), "stopped " + b.name)
        finally:
            w.kill()
            w.wait()
            w.stdout.close()

    def test_snapshot_and_revert(self):
        r = probe("snapshot", self.dom.name, "s1")
        self.assertEqual(r.returncode, 0, r.stderr)
        self.assertIn("s1", libvirt_env.virsh("snapshot-list", "--name", self.dom.name).split())
        r = probe("revert", self.dom.name, "s1")
        self.assertEqual(r.returncode, 0, r.stderr)
        self.assertEqual(libvirt_env.virsh("domstate", self.dom.name).strip(), "running")
        r = probe("revert", self.dom.name, "nope")
        self.assertEqual(r.returncode, 1)
        self.assertIn("snapshot 'nope'", r.stderr)
        r = probe("snapshot", self.dom.name, "../x")
        self.assertEqual(r.returncode, 1)
        self.assertIn("use letters, digits", r.stderr)
        r = probe("delete-snapshot", self.dom.name, "s1")
        self.assertEqual(r.returncode, 0, r.stderr)


def harness_free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


if __name__ == "__main__":
    harness.main()
