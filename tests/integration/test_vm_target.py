"""--vm: dbgstub as the client of a real QEMU VM's gdbstub, driven by the
real gdb. The VM has no kernel and no disks: SeaBIOS halted at the reset
vector (-S), run by TCG, is enough to exercise the protocol: registers
(with QEMU's description, includes inlined), memory, stepping, hardware
and software breakpoints, interrupting the running VM, gdb's `kill`
(refused: the VM must survive it) and the debugger leaving (the VM runs
on, and the next debugger connects again). QMP tells the VM's state.

SeaBIOS with no boot device gives up and reboots after 60 s, which
-no-reboot turns into QEMU exiting: every VM here lives a few seconds."""
import json
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import unittest

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import harness  # noqa: E402
from harness import DBGSTUB, RspClient, Stub, close_stub, eventually, gdb_popen, reap  # noqa: E402

QEMU = shutil.which("qemu-system-x86_64")
NO_QEMU = "qemu-system-x86_64 is not installed (apt-get install qemu-system-x86)"

# The reset vector's far jump (jmp f000:e05b) at 0xffff0, as x/16xb shows it.
RESET_JUMP = "0xffff0:\t0xea\t0x5b\t0xe0\t0x00\t0xf0"
# Walks SeaBIOS from the reset vector into its 32-bit flat mode (cs 0x8 or
# 0x10), where a pc is a linear address that breakpoints can name.
TO_32BIT = """set $i = 0
while ($cs != 0x8 && $cs != 0x10 && $i < 400)
  stepi
  set $i = $i + 1
end
printf "flat32 steps=%d pc=%#x\\n", $i, $pc
"""


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class Vm:
    """A QEMU VM halted at the reset vector, its gdbstub on a loopback port,
    QMP on a unix socket."""

    def __init__(self, tmpdir, smp=1):
        self.qmp_path = os.path.join(tmpdir, f"qmp-{time.monotonic_ns()}.sock")
        for _ in range(5):  # a free port may be taken before QEMU binds it
            self.gdb_port = free_port()
            self.proc = subprocess.Popen(
                [QEMU, "-S", "-display", "none", "-nodefaults", "-no-reboot", "-accel", "tcg",
                 "-smp", str(smp), "-gdb", f"tcp:127.0.0.1:{self.gdb_port}",
                 "-qmp", f"unix:{self.qmp_path},server=on,wait=off"],
                stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
            # QMP answers once QEMU is in its main loop, gdbstub listening.
            if eventually(lambda: self.proc.poll() is not None or self._qmp_ready(), timeout=20) and \
                    self.proc.poll() is None:
                return
            reap(self.proc)
        raise AssertionError("QEMU did not start: " + (self.proc.stdout.read() if self.proc.stdout else ""))

    def _qmp_ready(self):
        try:
            self.qmp("query-status")
            return True
        except OSError:
            return False

    def qmp(self, command, **arguments):
        """Runs one QMP command on a fresh connection; returns its 'return'."""
        with socket.socket(socket.AF_UNIX) as s:
            s.settimeout(10)
            s.connect(self.qmp_path)
            f = s.makefile("rw")
            json.loads(f.readline())  # greeting
            for cmd, args in (("qmp_capabilities", {}), (command, arguments)):
                f.write(json.dumps({"execute": cmd, "arguments": args}) + "\n")
                f.flush()
                while True:
                    msg = json.loads(f.readline())
                    if "event" in msg:
                        continue
                    if "error" in msg:
                        raise AssertionError(f"QMP {cmd}: {msg['error']}")
                    break
            return msg["return"]

    def status(self):
        return self.qmp("query-status")["status"]

    def alive(self):
        return self.proc.poll() is None

    def close(self):
        reap(self.proc)


@unittest.skipIf(QEMU is None, NO_QEMU)
class VmTarget(harness.GdbTestCase):
    def setUp(self):
        self.tmp = tempfile.mkdtemp(prefix="dbgstub-vm-")
        self.addCleanup(shutil.rmtree, self.tmp, True)

    def start(self, smp=1):
        """A VM and a dbgstub serving it, both ended by the test's cleanup.
        Packets are logged: the tests read what went to QEMU."""
        vm = Vm(self.tmp, smp)
        self.addCleanup(vm.close)
        stub = Stub("--log-packets", "--vm", f"gdbstub=127.0.0.1:{vm.gdb_port},qmp={vm.qmp_path}", "127.0.0.1:0")
        self.addCleanup(close_stub, stub)
        return vm, stub

    def gdb(self, stub, *commands, timeout=60):
        return self.gdb_or_fail(stub, list(commands), None, timeout)

    def flat32_pc(self, out):
        m = re.search(r"flat32 steps=(\d+) pc=(0x[0-9a-f]+)", out)
        self.assertTrue(m, "SeaBIOS never reached 32-bit mode:\n" + out)
        return int(m.group(2), 16)

    def script(self, text):
        path = os.path.join(self.tmp, f"s{time.monotonic_ns()}.gdb")
        with open(path, "w") as f:
            f.write(text)
        return path

    def test_registers_and_memory(self):
        vm, stub = self.start()
        out = self.gdb(stub, "monitor .session", "info registers", "info registers cr0", "p/x $fs_base",
                       "p/x $k_gs_base", "x/16xb 0xffff0", "info threads")
        self.assertIn("mode: kernel; target: VM through the gdbstub at 127.0.0.1:%d (1 vCPU)" % vm.gdb_port, out)
        self.assertRegex(out, r"(?m)^rip\s+0xfff0\s")
        self.assertRegex(out, r"(?m)^cs\s+0xf000\s")
        self.assertRegex(out, r"(?m)^eflags\s+0x2\s")
        # Registers from the included document: control and segment bases.
        self.assertRegex(out, r"(?m)^cr0\s+0x60000010\s+\[ CD NW ET \]")
        self.assertRegex(out, r"(?m)^efer\s+0x0")
        self.assertRegex(out, r"(?m)^xmm15\s+\{")
        self.assertRegex(out, r"(?m)^\$1 = 0x0$")
        self.assertRegex(out, r"(?m)^\$2 = 0x0$")
        self.assertIn(RESET_JUMP, out)
        self.assertRegex(out, r'\* 1\s+Thread 1\.1 "CPU#0"')
        self.assertNotIn("Remote 'g' packet reply is too long", out)
        log = stub.output()
        self.assertIn("vm -> $qXfer:features:read:i386-64bit.xml:", log)
        self.assertTrue(vm.alive())

    def test_large_reads_and_writes(self):
        """64 KiB of the BIOS through gdb (read in pieces that fit QEMU's
        4 KiB packets) equal what QEMU itself saves; a write reads back."""
        vm, stub = self.start()
        ours = os.path.join(self.tmp, "ours.bin")
        qemus = os.path.join(self.tmp, "qemu.bin")
        # QEMU's copy first: the VM runs (and SeaBIOS changes its data)
        # once the debugger leaves.
        vm.qmp("pmemsave", val=0xf0000, size=0x10000, filename=qemus)
        out = self.gdb(stub, f"dump binary memory {ours} 0xf0000 0x100000", "set {unsigned int}0x7000 = 0x12345678",
                       "x/1xw 0x7000", "set {char[5000]}0x8000 = {0x5a}", "x/1xb 0x8000", "x/1xb 0x9387")
        with open(ours, "rb") as a, open(qemus, "rb") as b:
            mine, theirs = a.read(), b.read()
        self.assertEqual(len(mine), 0x10000, out)
        self.assertEqual(mine, theirs)
        self.assertIn("0x7000:\t0x12345678", out)
        self.assertIn("0x8000:\t0x5a", out)
        self.assertIn("0x9387:\t0x00", out)
        # gdb's 5000-byte write went to QEMU in pieces of its packet size.
        log = stub.output()
        self.assertIn("<- $X8000,1388", log)
        self.assertIn("vm -> $M8000,7e8", log)
        self.assertIn("vm -> $M8fd0,3b8", log)
        self.assertIn("vm -> $mf07f8,7f8", log)

    def test_stepi_moves_the_pc(self):
        vm, stub = self.start()
        out = self.gdb(stub, "p/x $pc", "stepi", "p/x $pc", "stepi", "p/x $pc", "stepi", "p/x $pc", "p/x $cs")
        pcs = [int(v, 16) for v in re.findall(r"(?m)^\$\d+ = (0x[0-9a-f]+)$", out)]
        self.assertEqual(len(pcs), 5, out)
        self.assertEqual(pcs[0], 0xfff0)
        self.assertEqual(pcs[1], 0xe05b, "the reset vector jumps to f000:e05b")
        self.assertEqual(len(set(pcs[:4])), 4, f"stepi did not move the pc: {pcs}")
        self.assertEqual(pcs[4], 0xf000)
        self.assertIn("vm -> $vCont;s:p1.1", stub.output())

    def test_breakpoints_stop_where_the_bios_goes(self):
        # First VM: where SeaBIOS enters 32-bit mode, and an address it
        # reaches 40 instructions later.
        _, stub = self.start()
        out = self.gdb(stub, f"source {self.script(TO_32BIT)}", "stepi 40", "printf \"later pc=%#x\\n\", $pc")
        entry = self.flat32_pc(out)
        later = int(re.search(r"later pc=(0x[0-9a-f]+)", out).group(1), 16)
        # A fresh VM from the reset vector: a hardware breakpoint at the
        # first, a software one at the second; continue stops at each.
        vm, stub = self.start()
        out = self.gdb(stub, f"hbreak *{entry:#x}", f"break *{later:#x}", "continue", "p/x $pc", "continue",
                       "p/x $pc", "info breakpoints")
        self.assertRegex(out, r"Breakpoint 1, 0x0*%x in \?\? \(\)" % entry)
        self.assertRegex(out, r"Breakpoint 2, 0x0*%x in \?\? \(\)" % later)
        self.assertIn("$1 = %#x" % entry, out)
        self.assertIn("$2 = %#x" % later, out)
        log = stub.output()
        self.assertIn("vm -> $Z1,%x,1" % entry, log)
        self.assertIn("vm -> $Z0,%x,1" % later, log)
        # The stop is recognised as our breakpoint and reported as such.
        self.assertRegex(log, r"-> \$T05[^$]*swbreak:;")
        self.assertTrue(vm.alive())

    def test_interrupt_a_running_vm(self):
        """gdb's Ctrl-C (SIGINT to gdb) while the VM runs: dbgstub sends
        QEMU the interrupt byte and reports its stop."""
        vm, stub = self.start()
        g = gdb_popen(["continue", "p/x $pc", "info threads"], pre=[f"target remote 127.0.0.1:{stub.port}"])
        try:
            self.assertTrue(eventually(lambda: "vm -> $vCont;c" in stub.output(), timeout=20), stub.output())
            self.assertTrue(eventually(lambda: vm.status() == "running", timeout=5))
            time.sleep(0.5)
            g.send_signal(signal.SIGINT)
            out, _ = g.communicate(timeout=30)
        finally:
            reap(g)
        self.assertIn("Program received signal SIGINT, Interrupt.", out, out + "\n--- stub:\n" + stub.output())
        self.assertIn("vm -> \\x03", stub.output())
        self.assertRegex(out, r"(?m)^\$1 = 0x[0-9a-f]+$")

    def test_interrupt_through_the_protocol(self):
        """The same with hand-made packets: vCont;c, then 0x03, then the
        stop reply (SIGINT is 02 on the wire)."""
        vm, stub = self.start()
        with RspClient(stub.port) as c:
            c.handshake()
            self.assertEqual(c.request("Hgp0.0"), "OK")
            c.send("vCont;c")
            self.assertTrue(eventually(lambda: vm.status() == "running", timeout=10))
            # The loop serves other work while the VM runs: a second
            # debugger is refused at once, not after the stop.
            with RspClient(stub.port) as other:
                self.assertIn("another debugger", other.request("qSupported", timeout=5))
            c.send_raw(b"\x03")
            reply = c.read_packet(timeout=10)
            self.assertRegex(reply, r"^T02.*thread:p1\.1;")
            self.assertEqual(vm.status(), "paused")
        self.assertTrue(eventually(lambda: vm.status() == "running", timeout=10))

    def test_kill_leaves_the_vm_alive(self):
        """What a kill means in kernel mode is the server's policy (refused,
        or scheduled for a guest process); whatever it decides, QEMU is never
        asked to kill, which would end the whole VM."""
        vm, stub = self.start()
        out = self.gdb(stub, "stepi", "kill", "info registers rip")
        self.assertIn("<- $vKill;1", stub.output(), out)
        self.assertNotRegex(stub.output(), r"vm -> \$(k|vKill)")
        self.assertTrue(vm.alive(), "gdb's kill ended QEMU")
        self.assertIn(vm.status(), ("running", "paused"))
        self.assertEqual(stub.proc.poll(), None, "dbgstub ended with the session")

    def test_no_host_files_for_a_vm_debugger(self):
        """vFile would serve the host's files, which are not the VM's and
        which a VM's debugger was not given: dbgstub answers as a stub
        without host I/O, and gdb reads nothing."""
        vm, stub = self.start()
        got = os.path.join(self.tmp, "got")
        out = self.gdb(stub, f"remote get /etc/hostname {got}", "monitor .session")
        self.assertFalse(os.path.exists(got), out)
        self.assertIn("mode: kernel", out)
        self.assertIn("vFile refused: host file access (vFile) is for user-mode sessions only", stub.output())
        self.assertNotIn("vm -> $vFile", stub.output())

    def test_disconnect_leaves_the_vm_running_and_reconnects(self):
        vm, stub = self.start(smp=2)
        self.assertEqual(vm.status(), "prelaunch")  # -S and dbgstub attached: halted
        out = self.gdb(stub, "info threads", "stepi", "p/x $pc")
        self.assertRegex(out, r'1\s+Thread 1\.1 "CPU#0"')
        self.assertRegex(out, r'2\s+Thread 1\.2 "CPU#1"')
        self.assertTrue(eventually(lambda: vm.status() == "running", timeout=10), vm.status())
        log = stub.output()
        self.assertIn("vm -> $D;1", log)
        self.assertIn("the VM runs on", log)
        # A debugger that vanishes with breakpoints in and the VM running
        # (no z, no D from it): dbgstub stops the VM, takes them out and
        # detaches.
        with RspClient(stub.port) as c:
            c.handshake()
            self.assertEqual(c.request("Hgp0.0"), "OK")
            self.assertEqual(c.request("Z1,fff0,1"), "OK")
            self.assertEqual(c.request("Z0,1234,1"), "OK")
            c.send("vCont;c")
            self.assertTrue(eventually(lambda: vm.status() == "running", timeout=10), vm.status())
        self.assertTrue(eventually(lambda: stub.output().count("the VM runs on") == 2, timeout=10), stub.output())
        log = stub.output()
        self.assertLess(log.rindex("vm -> \\x03"), log.rindex("vm -> $z1,fff0,1"))
        self.assertLess(log.rindex("vm -> $z0,1234,1"), log.rindex("vm -> $D;1"))
        self.assertTrue(eventually(lambda: vm.status() == "running", timeout=10), vm.status())
        # While a debugger is connected, the VM is halted.
        with RspClient(stub.port) as c:
            c.handshake()
            self.assertEqual(c.request("Hgp0.0"), "OK")
            self.assertEqual(vm.status(), "paused")
        self.assertTrue(eventually(lambda: vm.status() == "running", timeout=10), vm.status())
        self.assertEqual(stub.output().count("connecting to the gdbstub at"), 2)

    def test_sigterm_detaches(self):
        """dbgstub ending (SIGTERM) lets the VM go as well."""
        vm, stub = self.start()
        self.gdb(stub, "stepi")
        with RspClient(stub.port) as c:
            c.handshake()
            c.request("Hgp0.0")
            self.assertEqual(vm.status(), "paused")
            stub.proc.send_signal(signal.SIGTERM)
            self.assertEqual(stub.wait(), 0)
        self.assertTrue(eventually(lambda: vm.status() == "running", timeout=10), vm.status())


class VmOptions(unittest.TestCase):
    """Start-up errors; no QEMU needed."""

    def run_stub(self, *args):
        r = subprocess.run([DBGSTUB, *args], stdin=subprocess.DEVNULL, capture_output=True, text=True, timeout=30)
        return r.returncode, r.stderr

    def test_nobody_listening(self):
        port = free_port()
        code, err = self.run_stub("--vm", f"gdbstub=127.0.0.1:{port}", "127.0.0.1:0")
        self.assertEqual(code, 1, err)
        self.assertIn(f"dbgstub: cannot connect to the VM's gdbstub at 127.0.0.1:{port}: Connection refused", err)
        self.assertNotIn("Listening on port", err)

    def test_bad_spec_names_the_field(self):
        code, err = self.run_stub("--vm", "gdbstub=127.0.0.1:1,qmp=", "127.0.0.1:0")
        self.assertEqual(code, 2)
        self.assertIn("--vm: field 'qmp' has an empty value", err)
        code, err = self.run_stub("--vm", "qga=/x", "127.0.0.1:0")
        self.assertEqual(code, 2)
        self.assertIn("--vm: missing field gdbstub=HOST:PORT", err)


if __name__ == "__main__":
    harness.main()
