"""The test VM (tests/vm): Debian's kernel and a busybox + qemu-ga initramfs
under QEMU (TCG). Checks the guest agent (processes, /proc/kallsyms, the
kernel's BTF) and real gdb against QEMU's own gdbstub, which the kernel-mode
tests of dbgstub sit in front of. Skipped only where qemu-system-x86_64 is
not installed."""
import os
import re
import sys
import unittest

sys.path.insert(0, os.path.dirname(__file__))
sys.path.insert(0, os.path.join(os.path.dirname(__file__), "..", "vm"))
from harness import gdb, main  # noqa: E402
import guest  # noqa: E402

BTF_MAGIC = b"\x9f\xeb"  # 0xeB9F, little-endian


@unittest.skipIf(guest.qemu_path() is None,
                 "qemu-system-x86_64 is not installed (scripts/install-deps.sh installs qemu-system-x86)")
class VmGuest(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        # A generous boot timeout: ctest runs other tests beside this one.
        cls.guest = guest.Guest(boot_timeout=120)
        cls.addClassCleanup(cls.guest.stop)
        cls.guest.start()
        print("guest ready after %.1f s (kernel %s)" % (cls.guest.boot_seconds, cls.guest.kernel_release),
              file=sys.stderr)
        cls._syms = None

    NAMES = ["init_task", "__x64_sys_getpid", "_text", "current_task", "pcpu_hot", "__per_cpu_offset",
             "__start_BTF", "__stop_BTF", "linux_banner"]

    @classmethod
    def syms(cls):
        """The symbols the tests need from the guest's /proc/kallsyms, read
        once through the guest agent (grepped in the guest: the agent's
        serial line takes ~12 s for the whole file)."""
        if cls._syms is None:
            cls._syms = cls.guest.kallsyms(cls.NAMES)
        return cls._syms

    def test_exec_and_small_file(self):
        with self.guest.qga() as q:
            q.ping()
            code, out, err = q.exec(["uname", "-r"])
            self.assertEqual((code, out.strip(), err), (0, self.guest.kernel_release, ""))
            code, out, err = q.sh("echo out; echo err >&2; exit 3")
            self.assertEqual((code, out, err), (3, "out\n", "err\n"))
            # guest-file-read in many small chunks: the same as one read.
            version = q.read_file("/proc/version", chunk=16)
            self.assertTrue(version.startswith(b"Linux version " + self.guest.kernel_release.encode()), version)
            self.assertEqual(q.read_file("/proc/version"), version)
            self.assertEqual(q.read_file("/proc/sys/kernel/kptr_restrict").strip(), b"0")
            with self.assertRaises(guest.QgaError):
                q.read_file("/no/such/file")

    def test_ps_shows_the_long_running_processes(self):
        procs = self.guest.ps()
        comms = [c for _, c in procs]
        self.assertEqual(comms.count("sleep"), 3, procs)
        self.assertIn("getpid-loop", comms)
        self.assertIn("qemu-ga", comms)
        self.assertIn((1, "init"), procs)
        self.assertIn((2, "kthreadd"), procs)

    def test_kallsyms(self):
        syms = self.syms()
        with self.guest.qga() as q:
            code, out, _ = q.exec(["wc", "-l", "/proc/kallsyms"])
        self.assertEqual(code, 0)
        self.assertGreater(int(out.split()[0]), 50000)
        self.assertNotEqual(syms.get("init_task", 0), 0, "init_task missing or hidden in /proc/kallsyms")
        self.assertGreaterEqual(syms["init_task"], 0xffffffff80000000)
        self.assertIn("__x64_sys_getpid", syms)
        # nokaslr: the kernel image at its link address.
        self.assertEqual(syms["_text"], 0xffffffff81000000)
        # Each CPU's current task: the per-CPU variable current_task (6.1;
        # pcpu_hot.current_task from 6.2 on) at __per_cpu_offset[cpu] + it.
        self.assertTrue("current_task" in syms or "pcpu_hot" in syms)
        self.assertIn("__per_cpu_offset", syms)

    def test_btf(self):
        # Its size and magic (reading all of it through the agent would take
        # ~19 s; dbgstub reads it from guest memory instead, __start_BTF on).
        with self.guest.qga() as q:
            code, out, _ = q.sh("wc -c < /sys/kernel/btf/vmlinux; od -An -tx1 -N2 /sys/kernel/btf/vmlinux")
        self.assertEqual(code, 0)
        size, magic = out.split("\n", 1)
        self.assertGreater(int(size), 1 << 20)
        self.assertEqual(bytes.fromhex(magic.replace(" ", "").strip()), BTF_MAGIC)
        syms = self.syms()
        self.assertEqual(syms["__stop_BTF"] - syms["__start_BTF"], int(size))

    def test_gdb_on_qemu_gdbstub_then_detach(self):
        syms = self.syms()
        with self.guest.qga() as q:
            _, proc_version, _ = q.exec(["cat", "/proc/version"])
        out = gdb(["info registers rip",
                   "x/8xb 0x%x" % syms["init_task"],
                   "x/s 0x%x" % syms["linux_banner"],
                   "info threads",
                   "detach"], port=self.guest.gdb_port, pre=("set print elements 0",))
        # Stopped in the kernel (the guest idles there).
        self.assertRegex(out, r"(?m)^rip\s+0x[0-9a-f]+", out)
        self.assertRegex(out, r"(?m)^0x%x[^:]*:(\s+0x[0-9a-f]{2}){8}\s*$" % syms["init_task"], out)
        self.assertIn('"%s"' % proc_version.replace("\n", "\\n"), out)
        self.assertRegex(out, r"Thread 1\.2 \(CPU#1", out)  # one thread per vCPU
        self.assertNotIn("Cannot access memory", out)
        self.assertIn("detached", out)
        # Detach resumes the VM: QEMU runs on and the agent answers again.
        self.assertTrue(self.guest.running())
        with self.guest.qmp() as m:
            self.assertEqual(m.status(), "running")
        with self.guest.qga() as q:
            q.ping()
            self.assertEqual(q.exec(["true"])[0], 0)
        self.assertTrue(self.guest.running())


if __name__ == "__main__":
    main()
