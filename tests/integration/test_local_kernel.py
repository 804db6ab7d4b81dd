"""--local-kernel: real gdb and lldb against dbgstub serving this machine's
kernel, read-only. Processes, kernel symbols and types are shown; kernel
memory is read from /proc/kcore where it exists (an error otherwise);
every attempt to change or run anything is refused and the session goes on."""
import os
import re
import struct
import subprocess
import sys
import tempfile
import unittest

sys.path.insert(0, os.path.dirname(__file__))
from harness import Stub, close_stub, gdb, lldb, main  # noqa: E402

REFUSED = "not supported in a local kernel session"


def kallsyms_address(name):
    """Address of a kernel-image symbol in /proc/kallsyms (0 if hidden), or None."""
    with open("/proc/kallsyms") as f:
        for line in f:
            parts = line.split()
            if len(parts) == 3 and parts[2] == name:
                return int(parts[0], 16)
    return None


def kcore_read(addr, length):
    """Bytes at a kernel address from /proc/kcore's PT_LOAD segments, or None."""
    with open("/proc/kcore", "rb") as f:
        eh = f.read(64)
        phoff, = struct.unpack_from("<Q", eh, 0x20)
        phentsize, phnum = struct.unpack_from("<HH", eh, 0x36)
        for i in range(phnum):
            f.seek(phoff + i * phentsize)
            p_type, _flags, p_offset, p_vaddr, _paddr, p_filesz = struct.unpack("<IIQQQQ", f.read(40))
            if p_type == 1 and p_vaddr <= addr and addr + length <= p_vaddr + p_filesz:
                f.seek(p_offset + addr - p_vaddr)
                return f.read(length)
    return None


def decoded_console(text):
    """Text plus any hex-encoded 'O' packets in it decoded (lldb shows an
    unexpected reply to 'k' raw)."""
    out = text
    for m in re.finditer(r"\bO((?:[0-9a-f]{2})+)\b", text):
        try:
            out += "\n" + bytes.fromhex(m.group(1)).decode("latin-1")
        except ValueError:
            pass
    return out


class LocalKernelGdb(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        cls.stub = Stub("--local-kernel", "127.0.0.1:0")
        cls.stext = kallsyms_address("_stext")

    @classmethod
    def tearDownClass(cls):
        close_stub(cls.stub)

    def gdb(self, *commands):
        return gdb(list(commands), port=self.stub.port)

    def test_session_and_processes(self):
        out = self.gdb("monitor .session", "info os", "info os processes")
        self.assertIn("mode: local-kernel; target: local kernel " + os.uname().release, out)
        self.assertRegex(out, r"(?m)^processes\s+Listing of all processes")
        self.assertRegex(out, r"(?m)^pid\s+user\s+command\s+cores")
        # This test's own process, with its command line.
        self.assertRegex(out, r"(?m)^%d\s+\S*\s+.*test_local_kernel\.py" % os.getpid(), out)

    def test_bang_process(self):
        out = self.gdb("monitor !process 0 0")
        cid = "%04x" % os.getpid()
        self.assertIn(f"Cid: {cid}  Peb: 0  ParentCid: {os.getppid():04x}", out)
        self.assertRegex(out, r"PROCESS 0  SessionId: none  Cid: 0001  Peb: 0  ParentCid: 0000\n    Image: ")

    def test_ln_x_dt(self):
        if self.stext is None:
            self.skipTest("no _stext in /proc/kallsyms")
        sched = kallsyms_address("schedule")
        self.assertIsNotNone(sched)
        commands = [f"monitor ln {self.stext:x}", f"monitor ln {sched + 1:x}", "monitor x *schedule",
                    "monitor ln", "monitor x"]
        btf = os.access("/sys/kernel/btf/vmlinux", os.R_OK)
        if btf:
            commands.append("monitor dt task_struct")
        out = self.gdb(*commands)
        self.assertIn("Usage: ln", out)
        self.assertIn("Usage: x", out)
        if self.stext == 0:
            self.assertIn("kptr_restrict", out)
        else:
            self.assertIn(f"({self.stext:016x})   ", out)
            self.assertRegex(out, r"Exact matches:\n(    \S+\n)*    _stext\n")
            self.assertRegex(out, r"\(%016x\)   schedule\+0x1   \|  \([0-9a-f]{16}\)   \S+\n" % sched)
            self.assertRegex(out, r"(?m)^%016x schedule$" % sched)
        if btf:
            self.assertRegex(out, r"struct task_struct \(size 0x[0-9a-f]+, \d+ members\)")
            self.assertRegex(out, r"(?m)^   \+0x[0-9a-f]{3,} pid +: pid_t$")

    def test_kernel_memory(self):
        if not self.stext:
            self.skipTest("kernel addresses are hidden")
        out = self.gdb(f"x/4xb {self.stext:#x}")
        if os.path.exists("/proc/kcore") and os.access("/proc/kcore", os.R_OK):
            want = kcore_read(self.stext, 4)
            self.assertIsNotNone(want)
            got = re.search(r"%#x[^:]*:\s+((?:0x[0-9a-f]{2}\s*){4})" % self.stext, out)
            self.assertIsNotNone(got, out)
            self.assertEqual(bytes(int(b, 16) for b in got.group(1).split()), want)
        else:
            self.assertIn(f"Cannot access memory at address {self.stext:#x}", out)
            self.assertIn("kernel memory is not readable", self.stub.output())

    def test_refusals_and_session_goes_on(self):
        out = self.gdb("continue", "kill", "monitor .kill 0", "set var $rax = 1", "break *0x1000", "continue",
                       "monitor .session")
        self.assertIn("dbgstub: continue and step are " + REFUSED, out)
        self.assertIn("Can't kill process", out)
        self.assertIn(".kill is " + REFUSED, out)
        self.assertRegex(out, r"Could not write register \"rax\"")
        self.assertIn("mode: local-kernel", out)
        self.assertIsNone(self.stub.proc.poll())
        # And a new session afterwards.
        out = self.gdb("monitor .session")
        self.assertIn("mode: local-kernel", out)


    def test_no_host_files(self):
        # Inspection only: no host I/O either, even reads.
        with tempfile.TemporaryDirectory() as tmp:
            got = os.path.join(tmp, "got")
            out = self.gdb(f"remote get /etc/hostname {got}", "monitor .session")
            self.assertFalse(os.path.exists(got), out)
        self.assertIn("mode: local-kernel", out)
        self.assertIn("vFile refused: host file access (vFile) is for user-mode sessions only", self.stub.output())

    def test_offers_nothing_of_a_process(self):
        # Issue #22: offered a process's exec-file and auxv, gdb asked for
        # both (exec-file twice) and got E5f. gdb's packet log on stderr.
        out = gdb(["info os", "detach"], port=self.stub.port, pre=["set debug remote 1"])
        reply = re.search(r"Sending packet: \$qSupported.*?Packet received: ([^\n]*)", out, re.S)
        self.assertTrue(reply, out)
        for feature in ["qXfer:exec-file", "qXfer:auxv", "qXfer:libraries-svr4", "qXfer:siginfo", "fork-events",
                        "exec-events", "QDisableRandomization", "QCatchSyscalls"]:
            self.assertNotIn(feature, reply.group(1))
        self.assertIn("qXfer:osdata:read+", reply.group(1))  # what it has: "info os"
        self.assertNotRegex(out, r"Sending packet: \$qXfer:(exec-file|auxv)")
        self.assertNotRegex(out, r"Packet received: E5f")
        self.assertRegex(out, r"(?m)^processes\s+Listing of all processes")


class LocalKernelLldb(unittest.TestCase):
    def test_kill_refused_stub_keeps_serving(self):
        stub = Stub("--local-kernel", "127.0.0.1:0")
        self.addCleanup(close_stub, stub)
        out = lldb([f"gdb-remote 127.0.0.1:{stub.port}", "kill"])
        self.assertIn("Process 1 stopped", out)
        self.assertIn(".kill is " + REFUSED, decoded_console(out), out)
        self.assertIsNone(stub.proc.poll())
        self.assertIn("refused: .kill is " + REFUSED, stub.output())
        out = lldb([f"gdb-remote 127.0.0.1:{stub.port}", "process plugin packet monitor .session"])
        self.assertIn("mode: local-kernel", out)
        self.assertIsNone(stub.proc.poll())


if __name__ == "__main__":
    main()
