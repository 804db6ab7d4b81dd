"""Kernel mode with no guest agent (issue #21): the test VM booted with KASLR
on, dbgstub given only QEMU's gdbstub (no qga). dbgstub finds the kernel's
base and its kallsyms in guest memory; the real gdb then asks for symbols
(`monitor x`, `monitor ln`) and the guest's processes (`monitor !process 0 0`,
`info os processes`). The reference is the guest's own /proc/kallsyms and
/proc, read by this test (not by dbgstub) through the guest agent.

One VM boot for the file. Skipped only where qemu-system-x86_64 is not
installed."""
import os
import re
import shutil
import sys
import tempfile
import unittest

sys.path.insert(0, os.path.dirname(__file__))
sys.path.insert(0, os.path.join(os.path.dirname(__file__), "..", "vm"))
from harness import Stub, gdb, main  # noqa: E402
import guest  # noqa: E402

PROCESS_LINE = re.compile(r"^PROCESS ([0-9a-f]{16})  SessionId: none  Cid: [0-9a-f]+  \(pid (\d+)\)\n"
                          r"    Image: (\S+)(.*)$", re.M)
FOUND = re.compile(r"guest: (\d+) kallsyms symbols from (memory|the cache) in ([0-9.]+) s "
                   r"\(kernel at (0x[0-9a-f]+), slide (0x[0-9a-f]+|-0x[0-9a-f]+)")
# What the task walk needs, and a few more to check the decoding with.
NAMES = ["_text", "init_task", "__start_BTF", "__stop_BTF", "__per_cpu_offset", "current_task", "pcpu_hot",
         "linux_banner", "__x64_sys_getpid", "do_sys_openat2", "schedule", "kallsyms_lookup_name",
         "start_kernel", "entry_SYSCALL_64"]


@unittest.skipIf(guest.qemu_path() is None,
                 "qemu-system-x86_64 is not installed (scripts/install-deps.sh installs qemu-system-x86)")
class VmSymbolsWithoutAgent(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        cls.cache = tempfile.mkdtemp(prefix="dbgstub-kallsyms-")
        cls.addClassCleanup(shutil.rmtree, cls.cache, True)
        os.environ["DBGSTUB_KALLSYMS_CACHE"] = cls.cache
        cls.guest = guest.Guest(kaslr=True, boot_timeout=120)
        cls.addClassCleanup(cls.guest.stop)
        cls.guest.start()
        cls.ref = cls.guest.kallsyms(NAMES)  # the reference, through the agent
        print("guest ready after %.1f s, _text %#x (KASLR)" % (cls.guest.boot_seconds, cls.ref["_text"]),
              file=sys.stderr)

    def stub(self):
        # No qga: dbgstub has only the gdbstub.
        return Stub("--vm", f"gdbstub=127.0.0.1:{self.guest.gdb_port}", "127.0.0.1:0", timeout=60)

    def found(self, log):
        m = FOUND.search(log)
        self.assertTrue(m, log)
        return int(m.group(1)), m.group(2), float(m.group(3)), int(m.group(4), 16)

    def test_1_symbols_from_memory_match_proc_kallsyms(self):
        for f in os.listdir(self.cache):
            os.unlink(os.path.join(self.cache, f))
        cmds = [f"monitor x {n}" for n in NAMES] + [f"monitor ln {self.ref['__x64_sys_getpid'] + 3:#x}",
                                                    "monitor x *", "detach"]
        with self.stub() as stub:
            log = stub.output()
            out = gdb(cmds, port=stub.port, timeout=120)
        count, source, seconds, base = self.found(log)
        print("kernel and kallsyms found in guest memory in %.2f s (%d symbols, base %#x)" % (seconds, count, base),
              file=sys.stderr)
        self.assertEqual(source, "memory")
        self.assertEqual(base, self.ref["_text"])
        for name in NAMES:
            if name in self.ref:
                self.assertRegex(out, rf"(?m)^{self.ref[name]:016x} {re.escape(name)}$", name)
        # The per-CPU current task: current_task (6.1) or pcpu_hot (6.2+).
        self.assertTrue("current_task" in self.ref or "pcpu_hot" in self.ref)
        # __x64_sys_getpid and __ia32_sys_getpid share the address (aliases
        # in /proc/kallsyms too): either name is right.
        self.assertRegex(out, rf"{self.ref['__x64_sys_getpid']:016x}\)? +__(x64|ia32)_sys_getpid\+0x3")
        # All of vmlinux's symbols: as many as the guest's kallsyms lists
        # for vmlinux (modules, BPF and ftrace add lines there, none here).
        m = re.search(r"(\d+) more matches not shown: (\d+)", out)
        self.assertTrue(m, out)
        self.assertEqual(int(m.group(2)), count)
        with self.guest.qga() as q:
            code, wc, _ = q.sh("grep -vc '\\[' /proc/kallsyms")
        self.assertEqual(code, 0)
        self.assertLessEqual(abs(int(wc.split()[0]) - count), 16, (wc, count))

    def test_2_process_list_without_agent(self):
        before = self.guest.ps()
        want = sorted(p for p, comm in before if comm in ("sleep", "getpid-loop"))
        self.assertEqual(len(want), 4, before)
        with self.stub() as stub:
            out = gdb(["monitor !process 0 0", "info os processes", "detach"], port=stub.port, timeout=120)
        listed = [(a, int(p), n) for a, p, n, _ in PROCESS_LINE.findall(out)]
        self.assertTrue(listed, out)
        self.assertEqual(listed[0][1], 0, "init_task (pid 0) first")
        self.assertEqual(int(listed[0][0], 16), self.ref["init_task"])
        self.assertEqual(sorted(p for _, p, n in listed if n in ("sleep", "getpid-loop")), want, out)
        self.assertIn((1, "init"), [(p, n) for _, p, n in listed])
        for pid, comm in before:
            if comm in ("sleep", "getpid-loop"):
                self.assertRegex(out, rf"(?m)^{pid}\s+{comm}\s*$")
        self.assertNotIn("cannot see the guest's processes", out)

    def test_3_a_reconnecting_dbgstub_uses_the_cache(self):
        with self.stub() as stub:
            gdb(["monitor x init_task", "detach"], port=stub.port, timeout=120)
        with self.stub() as stub:
            log = stub.output()
            out = gdb(["monitor x init_task", "detach"], port=stub.port, timeout=120)
        _, source, seconds, base = self.found(log)
        print("from the cache: %.2f s" % seconds, file=sys.stderr)
        self.assertEqual(source, "the cache")
        self.assertEqual(base, self.ref["_text"])
        self.assertRegex(out, rf"{self.ref['init_task']:016x} init_task")


if __name__ == "__main__":
    main()
