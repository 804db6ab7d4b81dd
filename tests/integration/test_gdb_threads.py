"""The real gdb against dbgstub on tests/programs/threads.c (main and four
workers meeting at a barrier): thread list, backtraces of all threads, a
breakpoint hit by every worker, and stepping one thread while the others run."""
import os
import re
import subprocess
import sys
import unittest

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import harness  # noqa: E402
from harness import inferior_pid, Stub, free_port_args, gdb, program, process_state  # noqa: E402

THREADS = program("threads")
SRC = r"\S*threads\.c"
# gdb prints a thread's name after its id when the stub reports one.
NAME = r'(?: "[^"]*")?'




class GdbThreads(harness.GdbTestCase):

    def run_gdb(self, commands, timeout=20):
        with Stub(*free_port_args(THREADS)) as stub:
            pid = inferior_pid(stub)
            out = self.gdb_or_fail(stub, commands, THREADS, timeout)
            stub.wait()
        self.assertTrue(harness.eventually(lambda: process_state(pid) is None, timeout=5),
                        f"program {pid} still exists")
        return out, stub, pid

    def assertExitedNormally(self, out, stub, pid):
        self.assertIn(f"[Inferior 1 (process {pid}) exited normally]", out)
        self.assertIn("threads done", stub.output())

    def test_info_threads_at_all_started(self):
        out, stub, pid = self.run_gdb(["break all_started", "continue", "info threads",
                                       "thread apply all bt", "delete", "continue"])
        self.assertEqual(len(re.findall(rf"\[New Thread {pid}\.\d+\]", out)), 4, out)
        self.assertRegex(out, rf"Thread 1{NAME} hit Breakpoint 1, all_started \(\) at {SRC}:20")
        table = re.findall(rf"^(\*| ) +(\d) +Thread {pid}\.(\d+){NAME} ", out, re.M)
        self.assertEqual(sorted(int(n) for _, n, _ in table), [1, 2, 3, 4, 5], out)
        self.assertEqual([n for cur, n, _ in table if cur == "*"], ["1"], out)
        self.assertEqual(len({tid for _, _, tid in table}), 5, out)
        self.assertIn(str(pid), [tid for _, n, tid in table if n == "1"])
        # Backtraces of every thread; main's goes through all_started.
        for n in range(1, 6):
            self.assertRegex(out, rf"\nThread {n} \(Thread {pid}\.\d+{NAME}\):\n#0  ")
        self.assertRegex(out, rf"#0  all_started \(\) at {SRC}:20\n#1  0x[0-9a-f]+ in main \(\) at {SRC}:26")
        self.assertExitedNormally(out, stub, pid)

    def test_breakpoint_hit_by_every_worker(self):
        out, stub, pid = self.run_gdb(["break worker_wait", "continue", "thread apply all bt",
                                       "continue", "continue", "continue",
                                       "info breakpoints", "delete", "continue"])
        hits = re.findall(rf"Thread (\d+){NAME} hit Breakpoint 1, worker_wait \(id=(\d)\) at {SRC}:11", out)
        self.assertEqual(len(hits), 4, out)
        self.assertEqual(sorted(int(i) for _, i in hits), [0, 1, 2, 3], out)
        self.assertEqual(len({t for t, _ in hits}), 4, out)
        self.assertNotIn("1", [t for t, _ in hits])
        self.assertGreaterEqual(out.count("[Switching to Thread"), 3, out)
        # The worker's own frames under the breakpoint.
        self.assertRegex(out, rf"#0  worker_wait \(id=\d\) at {SRC}:11\n"
                              rf"#1  0x[0-9a-f]+ in worker \(arg=0x[0-9a-f]+\) at {SRC}:16\n")
        self.assertIn("breakpoint already hit 4 times", out)
        self.assertExitedNormally(out, stub, pid)

    def test_next_in_one_thread_while_others_run(self):
        """`next` over pthread_barrier_wait only returns once main and the
        other workers reach the barrier, so they must run during the step;
        then the step over the loop while the others finish and exit."""
        out, stub, pid = self.run_gdb([
            "set scheduler-locking off",
            "break worker_wait", "continue", "delete",
            "next", "p counters[id]",
            "next", "p counters[id]", "info threads",
            "continue",
        ])
        self.assertRegex(out, rf"Thread (\d+){NAME} hit Breakpoint 1, worker_wait \(id=(\d)\) at {SRC}:11")
        self.assertRegex(out, r"\n12\s+for \(int i = 0; i < 3; i\+\+\) \{ counters\[id\]\+\+; usleep\(1000\); \}\n"
                              r"\$1 = 0\n")
        self.assertRegex(out, r"\n13\s+\}\n\$2 = 3\n")
        self.assertNotIn("Breakpoint 1, worker_wait", out.split("$1 = 0")[1])
        self.assertExitedNormally(out, stub, pid)

    def test_next_in_main_over_thread_creation(self):
        """Stepping main over pthread_create and the joins: new threads
        appear and exit during the steps without stopping them."""
        out, stub, pid = self.run_gdb([
            "break threads.c:25", "continue", "delete",
            "next", "next", "next", "next", "p counters", "next",
            "continue",
        ])
        self.assertRegex(out, rf"Breakpoint 1, main \(\) at {SRC}:25")
        self.assertRegex(out, r"\n26\s+all_started\(\);")
        self.assertRegex(out, r"\n27\s+pthread_barrier_wait\(&barrier\);")
        self.assertRegex(out, r"\n28\s+for \(int i = 0; i < N; i\+\+\) pthread_join")
        self.assertRegex(out, r"\n29\s+printf\(\"threads done\\n\"\);")
        self.assertIn("= {3, 3, 3, 3}", out)
        self.assertNotIn("received signal", out)
        self.assertExitedNormally(out, stub, pid)


class GdbNoResumed(harness.GdbTestCase):
    def test_only_resumed_thread_exits(self):
        """With scheduler-locking, the one thread resumed ends: gdb hears
        "N" (no resumed thread left) instead of waiting forever, and the
        program goes on when main is resumed."""
        prog = program("thread_exit")
        with Stub(*free_port_args(prog)) as stub:
            pid = inferior_pid(stub)
            out = self.gdb_or_fail(stub, [
                "break worker_break", "continue", "set scheduler-locking on", "continue",
                "info threads", "thread 1", "set scheduler-locking off", "continue"], prog, 20)
            stub.wait()
        self.assertIn("hit Breakpoint 1, worker_break ()", out)
        self.assertIn("No unwaited-for children left.", out)
        self.assertIn("The current thread <Thread ID 2> has terminated.", out)
        self.assertIn(f"[Inferior 1 (process {pid}) exited normally]", out)
        self.assertIn("thread_exit done", stub.output())

    def test_only_resumed_thread_is_main_and_it_exits(self):
        """The same when the one thread resumed is main and it calls
        pthread_exit: the kernel keeps it as a zombie until the last thread
        ends, so no wait status says it is gone; dbgstub notices (as
        gdbserver's check_zombie_leaders) and says "N". Then the worker
        finishes the program (GDB's gdb.threads/no-unwaited-for-left.exp)."""
        prog = program("leader_exit")
        with Stub(*free_port_args(prog)) as stub:
            pid = inferior_pid(stub)
            out = self.gdb_or_fail(stub, [
                "break main_break", "continue", "set scheduler-locking on", "continue",
                "info threads", "thread 2", "set var go = 1", "set scheduler-locking off", "continue"], prog, 20)
            stub.wait()
        self.assertIn("hit Breakpoint 1, main_break ()", out)
        self.assertIn("No unwaited-for children left.", out)
        self.assertIn("The current thread <Thread ID 1> has terminated.", out)
        self.assertIn(f"[Inferior 1 (process {pid}) exited normally]", out)
        self.assertIn("leader_exit worker done", stub.output())


class GdbExitRace(harness.GdbTestCase):

    def test_exit_group_while_threads_are_resumed(self):
        """257 threads stopped at hit() (a hardware watchpoint set, as in
        gdb.threads/process-dies-while-detaching "continue: watchpoint:hw"),
        then continued: the first resumed calls _exit (exit_group) and kills
        the others while they are still being resumed. Their PTRACE_CONT
        fails (ESRCH); such a thread must not count as stopped, or the exit
        reads as "no resumed thread left" (gdb: "No unwaited-for children
        left"). Several rounds, the race being a race."""
        prog = program("exit_race")
        for _ in range(15):
            with Stub(*free_port_args(prog)) as stub:
                out = self.gdb_or_fail(stub, ["break hit", "continue", "watch globalvar", "delete 1", "continue"],
                                       prog, 90)
                stub.wait()
            self.assertNotIn("No unwaited-for children left", out)
            self.assertRegex(out, r"\[Inferior 1 \(process \d+\) exited normally\]")


if __name__ == "__main__":
    harness.main()
