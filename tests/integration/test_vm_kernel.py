"""Kernel mode on a real VM (tests/vm: Debian's kernel under QEMU/TCG, with
busybox, qemu-ga, three `sleep`s and a getpid loop): the real gdb through
dbgstub --vm, in front of QEMU's gdbstub and the guest agent.

- the guest's processes listed from its memory while it is halted
  (`monitor !process 0 0`), with the pids the guest's own /proc shows;
- WinDbg's kernel-mode `.kill ADDRESS`: nothing ends while the VM is halted,
  the process ends once it runs, the others live on, the VM keeps running;
- GDB's `kill`: never the VM; the current process (a user process when
  stopped in a system call it makes) is scheduled like `.kill`;
- kernel threads are refused with a message naming how to pick a process.

Skipped only where qemu-system-x86_64 is not installed."""
import os
import re
import sys
import time
import unittest

sys.path.insert(0, os.path.dirname(__file__))
sys.path.insert(0, os.path.join(os.path.dirname(__file__), "..", "vm"))
import harness  # noqa: E402
from harness import Stub, gdb  # noqa: E402
import guest  # noqa: E402

PROCESS_LINE = re.compile(r"^PROCESS ([0-9a-f]{16})  SessionId: none  Cid: [0-9a-f]+  \(pid (\d+)\)\n"
                          r"    Image: (\S+)(.*)$", re.M)


def processes(out):
    """[(address, pid, name, notes)] from `monitor !process 0 0` output."""
    return [(a, int(p), n, rest) for a, p, n, rest in PROCESS_LINE.findall(out)]


@unittest.skipIf(guest.qemu_path() is None,
                 "qemu-system-x86_64 is not installed (scripts/install-deps.sh installs qemu-system-x86)")
class VmKernelMode(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        cls.guest = guest.Guest(boot_timeout=120)
        cls.addClassCleanup(cls.guest.stop)
        cls.guest.start()
        cls.syms = cls.guest.kallsyms(["init_task", "__x64_sys_getpid"])

    def stub(self):
        g = self.guest
        return Stub("--vm", f"gdbstub=127.0.0.1:{g.gdb_port},qga={g.qga_path}", "127.0.0.1:0")

    def guest_ps(self):
        return self.guest.ps()

    def wait_gone(self, pid, timeout=60):
        return harness.eventually(lambda: pid not in [p for p, _ in self.guest_ps()], timeout=timeout, interval=1)

    def assert_vm_running(self):
        self.assertTrue(self.guest.running(), "QEMU is gone")
        with self.guest.qmp() as m:
            self.assertEqual(m.status(), "running")

    def test_1_registers_memory_breakpoint(self):
        init_task = self.syms["init_task"]
        getpid = self.syms["__x64_sys_getpid"]
        with self.stub() as stub:
            out = gdb(["info registers rip", f"x/8xb {init_task:#x}", f"break *{getpid:#x}", "continue",
                       "info registers rip", "delete", "detach"], port=stub.port, timeout=120)
        self.assertRegex(out, r"rip +0x[0-9a-f]+")
        self.assertRegex(out, rf"{init_task:#x}:(\s+0x[0-9a-f]{{2}}){{8}}")
        self.assertRegex(out, rf"Breakpoint 1, {getpid:#x} in \?\? \(\)|rip +{getpid:#x}", out)
        self.assert_vm_running()

    def test_2_process_list_matches_the_guest(self):
        before = self.guest_ps()
        sleeps = sorted(p for p, comm in before if comm == "sleep")
        self.assertEqual(len(sleeps), 3, before)
        with self.stub() as stub:
            out = gdb(["monitor !process 0 0", "info os processes", "detach"], port=stub.port, timeout=120)
        listed = processes(out)
        self.assertTrue(listed, out)
        self.assertEqual(sorted(p for _, p, n, _ in listed if n == "sleep"), sleeps, out)
        self.assertEqual(listed[0][1], 0, "init_task (pid 0) comes first")
        self.assertEqual(int(listed[0][0], 16), self.syms["init_task"])
        self.assertIn("(kernel thread)", out)  # kthreadd at least
        # gdb's "info os processes" from the same walk.
        for pid in sleeps:
            self.assertRegex(out, rf"(?m)^{pid}\s+sleep\s*$")
        self.assert_vm_running()

    def test_3_kill_address_is_deferred_to_the_next_run(self):
        sleeps = sorted(p for p, comm in self.guest_ps() if comm == "sleep")
        self.assertGreaterEqual(len(sleeps), 2)
        with self.stub() as stub:
            out = gdb(["monitor !process 0 0 sleep"], port=stub.port, timeout=120)
            victim = [(a, p) for a, p, n, _ in processes(out) if n == "sleep"][0]
            addr, pid = victim
            out = gdb([f"monitor .kill {addr}", "monitor !process 0 0 sleep", "detach"], port=stub.port, timeout=120)
            done = harness.eventually(lambda: "was terminated" in stub.output(), timeout=60, interval=0.5)
            log = stub.output()
        self.assertTrue(done, log)
        self.assertIn(f"Process {addr} (sleep, pid {pid}) will be terminated the next time the target runs.", out)
        # Still there while the VM stays halted (the list is read from memory).
        self.assertEqual(len([1 for _, p, n, _ in processes(out) if n == "sleep" and p == pid]), 1, out)
        self.assertTrue(self.wait_gone(pid), f"sleep {pid} still runs after the VM was resumed")
        others = [p for p, comm in self.guest_ps() if comm == "sleep"]
        self.assertEqual(sorted(others), sorted(set(sleeps) - {pid}))
        self.assertIn(f"Process {addr} (sleep, pid {pid}) was terminated.", log)
        self.assert_vm_running()

    def test_4_gdb_kill_never_ends_the_vm(self):
        getpid = self.syms["__x64_sys_getpid"]
        loops = [p for p, comm in self.guest_ps() if comm == "getpid-loop"]
        self.assertEqual(len(loops), 1)
        with self.stub() as stub:
            # Stopped in the loop's system call: the current process is the
            # loop, a user process; gdb's kill schedules it.
            out = gdb([f"break *{getpid:#x}", "continue", "delete", "kill"], port=stub.port, timeout=120)
            harness.eventually(lambda: "terminated." in stub.output(), timeout=60, interval=0.5)
            log = stub.output()
        self.assertNotIn("Terminated via GDBstub", self.guest.qemu_output())
        self.assertTrue(self.wait_gone(loops[0]), "the current process was not terminated after gdb's kill\n" + out)
        self.assertIn("(getpid-loop, pid %d) was terminated." % loops[0], log)
        self.assert_vm_running()

    def test_5_kernel_threads_are_refused(self):
        with self.stub() as stub:
            out = gdb(["monitor !process 0 0 kthreadd"], port=stub.port, timeout=120)
            addr = [a for a, _, n, _ in processes(out) if n == "kthreadd"][0]
            out = gdb([f"monitor .kill {addr}", "detach"], port=stub.port, timeout=120)
        self.assertIn("is a kernel thread: it has no user space to terminate.", out)
        self.assertIn("monitor .kill ADDRESS", out)
        self.assert_vm_running()


if __name__ == "__main__":
    unittest.main()
