"""Kernel mode's `.kill` with no guest agent (issue #21): the test VM booted
with KASLR on, dbgstub given only QEMU's gdbstub. A scheduled termination
is carried out by the guest kernel itself: when the debugger resumes or
detaches, dbgstub borrows a vCPU at the entry of `schedule` (a breakpoint),
calls send_sig(SIGKILL, task, SEND_SIG_PRIV) on it with a return address
trapped in startup_64, and puts the vCPU back (targets/vm/vm_kernel_call.h).

The test itself uses the guest agent (not dbgstub) to see the guest's
processes and to start short-lived ones.

- `monitor !process 0 0` lists the guest's processes with their pids;
- `.kill` of a sleeping process, carried out at `continue`;
- `.kill` scheduled while the VM is stopped inside a timer interrupt
  handler: it waits for a safe point; the debugger's breakpoint still
  stops the VM after;
- `.kill` of the getpid-loop spinning in user mode, at detach;
- twenty kills in a row leave the guest healthy.

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
import harness  # noqa: E402
from harness import Stub, gdb  # noqa: E402
import guest  # noqa: E402

PROCESS_LINE = re.compile(r"^PROCESS ([0-9a-f]{16})  SessionId: none  Cid: [0-9a-f]+  \(pid (\d+)\)\n"
                          r"    Image: (\S+)(.*)$", re.M)


def processes(out):
    """[(address, pid, name, notes)] from `monitor !process 0 0` output."""
    return [(a, int(p), n, rest) for a, p, n, rest in PROCESS_LINE.findall(out)]


def symbol(out, name):
    m = re.search(rf"(?m)^([0-9a-f]{{16}}) {re.escape(name)}$", out)
    return int(m.group(1), 16) if m else None


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
class VmKillWithoutAgent(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        cls.cache = tempfile.mkdtemp(prefix="dbgstub-kallsyms-")
        cls.addClassCleanup(shutil.rmtree, cls.cache, True)
        os.environ["DBGSTUB_KALLSYMS_CACHE"] = cls.cache
        cls.guest = guest.Guest(boot_timeout=120, kaslr=True)
        cls.addClassCleanup(cls.guest.stop)
        cls.guest.start()
        print("guest ready after %.1f s" % cls.guest.boot_seconds, file=sys.stderr)

    def stub(self):
        # No qga: dbgstub has only the gdbstub.
        return Stub("--vm", f"gdbstub=127.0.0.1:{self.guest.gdb_port}", "127.0.0.1:0", timeout=60)

    def ps(self):
        return self.guest.ps()

    def pids(self, name):
        return sorted(p for p, comm in self.ps() if comm == name)

    def wait_gone(self, pid, timeout=60):
        return harness.eventually(lambda: pid not in [p for p, _ in self.ps()], timeout=timeout, interval=1)

    def assert_healthy(self):
        self.assertTrue(self.guest.running(), "QEMU is gone")
        with self.guest.qmp() as m:
            self.assertEqual(m.status(), "running")
        with self.guest.qga() as q:
            code, out, _ = q.sh("echo alive; cat /proc/loadavg")
        self.assertEqual(code, 0)
        self.assertIn("alive", out)

    def address_of(self, stub, pid, name):
        out = gdb([f"monitor !process 0 0 {name}", "detach"], port=stub.port, timeout=120)
        found = [a for a, p, n, _ in processes(out) if p == pid and n == name]
        self.assertEqual(len(found), 1, out)
        return found[0]

    def test_1_process_list_matches_the_guest(self):
        sleeps = self.pids("sleep")
        loops = self.pids("getpid-loop")
        self.assertEqual(len(sleeps), 3)
        self.assertEqual(len(loops), 1)
        with self.stub() as stub:
            out = gdb(["monitor !process 0 0", "detach"], port=stub.port, timeout=120)
        listed = processes(out)
        self.assertEqual(sorted(p for _, p, n, _ in listed if n == "sleep"), sleeps, out)
        self.assertEqual([p for _, p, n, _ in listed if n == "getpid-loop"], loops, out)
        self.assertEqual(listed[0][1], 0, out)
        self.assert_healthy()

    def test_2_kill_a_sleeping_process_at_continue(self):
        sleeps = self.pids("sleep")
        self.assertGreaterEqual(len(sleeps), 2)
        pid = sleeps[0]
        with self.stub() as stub:
            addr = self.address_of(stub, pid, "sleep")
            # The getpid-loop's system call stops the VM again after the
            # continue: by then the kill has been carried out.
            out = gdb(["monitor x __x64_sys_getpid"], port=stub.port, timeout=120)
            getpid = symbol(out, "__x64_sys_getpid")
            self.assertTrue(getpid, out)
            out = gdb([f"monitor .kill {addr}", f"break *{getpid:#x}", "continue", "delete", "detach"],
                      port=stub.port, timeout=120)
            log = stub.output()
        self.assertIn(f"Process {addr} (sleep, pid {pid}) will be terminated the next time the target runs.", out)
        self.assertIn(f"Process {addr} (sleep, pid {pid}) was terminated.", log)
        self.assertRegex(out, rf"Breakpoint 1, {getpid:#x} in", out)
        self.assertTrue(self.wait_gone(pid), f"sleep {pid} still runs\n{log}")
        self.assertEqual(self.pids("sleep"), sleeps[1:])
        self.assertEqual(len(self.pids("getpid-loop")), 1)
        self.assert_healthy()

    def test_3_kill_scheduled_inside_an_interrupt_handler(self):
        sleeps = self.pids("sleep")
        self.assertGreaterEqual(len(sleeps), 1)
        pid = sleeps[0]
        with self.stub() as stub:
            addr = self.address_of(stub, pid, "sleep")
            out = gdb(["monitor x hrtimer_interrupt", "monitor x __sysvec_apic_timer_interrupt"], port=stub.port,
                      timeout=120)
            handler = symbol(out, "hrtimer_interrupt") or symbol(out, "__sysvec_apic_timer_interrupt")
            self.assertTrue(handler, out)
            # Stopped in the timer interrupt; the kill waits for schedule.
            # The breakpoint stays: the second continue stops there again.
            out = gdb([f"break *{handler:#x}", "continue", "info registers rip", f"monitor .kill {addr}",
                       "continue", "info registers rip", "delete", "detach"], port=stub.port, timeout=120)
            log = stub.output()
        self.assertEqual(len(re.findall(rf"Breakpoint 1, {handler:#x} in", out)), 2, out)
        self.assertIn(f"Process {addr} (sleep, pid {pid}) was terminated.", log)
        self.assertTrue(self.wait_gone(pid), f"sleep {pid} still runs\n{log}")
        self.assertEqual(self.pids("sleep"), sleeps[1:])
        self.assert_healthy()

    def test_4_kill_the_spinning_loop_at_detach(self):
        loops = self.pids("getpid-loop")
        self.assertEqual(len(loops), 1)
        sleeps = self.pids("sleep")
        pid = loops[0]
        with self.stub() as stub:
            addr = self.address_of(stub, pid, "getpid-loop")
            out = gdb([f"monitor .kill {addr}", "detach"], port=stub.port, timeout=120)
            done = harness.eventually(lambda: "terminated." in stub.output(), timeout=60, interval=0.5)
            log = stub.output()
        self.assertTrue(done, log)
        self.assertIn(f"Process {addr} (getpid-loop, pid {pid}) was terminated.", log)
        self.assertTrue(self.wait_gone(pid), f"getpid-loop {pid} still runs\n{out}\n{log}")
        self.assertEqual(self.pids("sleep"), sleeps)
        self.assert_healthy()

    def test_5_twenty_kills_in_a_row(self):
        before = set(self.pids("sleep"))
        with self.guest.qga() as q:
            for _ in range(20):
                code, _, err = q.sh("sleep 1000 >/dev/null 2>&1 &")
                self.assertEqual(code, 0, err)
        new = sorted(set(self.pids("sleep")) - before)
        self.assertEqual(len(new), 20)
        with self.stub() as stub:
            out = gdb(["monitor !process 0 0 sleep", "detach"], port=stub.port, timeout=120)
            victims = [(a, p) for a, p, n, _ in processes(out) if n == "sleep" and p in new]
            self.assertEqual(len(victims), 20, out)
            out = gdb([f"monitor .kill {a}" for a, _ in victims] + ["detach"], port=stub.port, timeout=180)
            done = harness.eventually(lambda: stub.output().count("was terminated.") >= 20, timeout=120,
                                      interval=0.5)
            log = stub.output()
        self.assertTrue(done, log)
        for a, p in victims:
            self.assertIn(f"Process {a} (sleep, pid {p}) was terminated.", log)
        self.assertTrue(harness.eventually(lambda: not (set(self.pids("sleep")) & set(new)), timeout=60, interval=1),
                        self.ps())
        self.assertEqual(set(self.pids("sleep")), before)
        self.assert_healthy()

    def test_6_a_debugger_that_vanishes_with_a_kill_pending(self):
        """The debugger hangs up (no detach) with the VM halted, a
        breakpoint in and a .kill pending: the kill is carried out through
        the guest kernel as dbgstub lets the VM go, the borrowed vCPU is put
        back, and the guest runs on healthy."""
        # Two of its own: the tests before may have ended the guest's.
        before = set(self.pids("sleep"))
        with self.guest.qga() as q:
            for _ in range(2):
                code, _, err = q.sh("sleep 1000 >/dev/null 2>&1 &")
                self.assertEqual(code, 0, err)
        sleeps = sorted(set(self.pids("sleep")) - before)
        self.assertEqual(len(sleeps), 2)
        with self.stub() as stub:
            c = harness.RspClient(stub.port, timeout=60)
            try:
                c.handshake()
                self.assertEqual(c.request("Hgp0.0"), "OK")
                out = rcmd(c, "!process 0 0 sleep")
                addr = [a for a, p, n, _ in processes(out) if p == sleeps[0]][0]
                getpid = symbol(rcmd(c, "x __x64_sys_getpid"), "__x64_sys_getpid")
                self.assertIsNotNone(getpid)
                self.assertIn("will be terminated the next time the target runs", rcmd(c, f".kill {addr}"))
                self.assertEqual(c.request(f"Z0,{getpid:x},1"), "OK")
            finally:
                c.close()  # gone, mid-session
            done = harness.eventually(lambda: f"(sleep, pid {sleeps[0]}) was terminated." in stub.output(),
                                      timeout=60, interval=0.5)
            log = stub.output()
        self.assertTrue(done, log)
        self.assertTrue(self.wait_gone(sleeps[0]), log)
        self.assertIn(sleeps[1], self.pids("sleep"))
        self.assert_healthy()


if __name__ == "__main__":
    unittest.main()
