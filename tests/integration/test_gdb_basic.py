"""The real gdb against dbgstub on tests/programs/basic.c: breakpoints,
stepping, arguments and locals, registers (including XSAVE-backed AVX
registers, read and written), memory, a hardware watchpoint, exit codes and
kill. Every test starts its own dbgstub on a free port."""
import os
import re
import subprocess
import sys
import threading
import time
import unittest

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import harness  # noqa: E402
from harness import inferior_pid, Stub, free_port_args, gdb, program, process_state  # noqa: E402

BASIC = program("basic")
SRC = r"\S*basic\.c"




class GdbBasic(harness.GdbTestCase):

    def run_gdb(self, commands, args=(), timeout=30):
        """Serves basic (with `args`) and runs the gdb commands against it;
        returns (gdb output, stub). dbgstub has exited when this returns."""
        with Stub(*free_port_args(BASIC, *args)) as stub:
            out = self.gdb_or_fail(stub, commands, BASIC, timeout)
            stub.wait()
        return out, stub

    def assertNoErrors(self, out):
        for bad in ("Bad address", "Remote failure reply", "Couldn't write registers",
                    "Could not write register", "Remote connection closed", "Cannot access memory"):
            self.assertNotIn(bad, out)

    def test_break_at_function_and_continue(self):
        out, stub = self.run_gdb(["break add", "continue", "bt", "p a", "p b"])
        self.assertRegex(out, rf"Breakpoint 1 at 0x[0-9a-f]+: file {SRC}, line 9\.")
        self.assertRegex(out, rf"Breakpoint 1, add \(a=0, b=5\) at {SRC}:9\n9\s+int sum = a \+ b;")
        self.assertRegex(out, r"#0  add \(a=0, b=5\) at \S*basic\.c:9")
        self.assertRegex(out, r"#1  0x[0-9a-f]+ in compute \(n=5\) at \S*basic\.c:16")
        self.assertRegex(out, r"#2  0x[0-9a-f]+ in main \(argc=1, argv=0x[0-9a-f]+\) at \S*basic\.c:24")
        self.assertIn("$1 = 0\n", out)
        self.assertIn("$2 = 5\n", out)
        self.assertNoErrors(out)

    def test_locals_next_step_finish(self):
        out, _ = self.run_gdb([
            "break compute", "continue",
            "next", "next",            # 14 -> 15 -> 16
            "step",                    # into add
            "p sum", "next", "p sum", "info locals",
            "finish",
            "next", "p i", "p acc",
        ])
        self.assertRegex(out, rf"Breakpoint 1, compute \(n=5\) at {SRC}:14\n14\s+long acc = 0;")
        self.assertRegex(out, r"\n15\s+for \(int i = 0; i < n; i\+\+\) \{")
        self.assertRegex(out, r"\n16\s+acc \+= add\(i, n\);")
        self.assertRegex(out, rf"add \(a=0, b=5\) at {SRC}:9\n9\s+int sum = a \+ b;")
        self.assertRegex(out, r"\n10\s+return sum;")
        self.assertIn("$2 = 5\n", out)       # sum after `int sum = a + b`
        self.assertIn("sum = 5\n", out)      # info locals
        self.assertRegex(out, r"0x[0-9a-f]+ in compute \(n=5\) at \S*basic\.c:16")
        self.assertRegex(out, r"Value returned is \$\d+ = 5")
        self.assertIn("$4 = 0\n", out)       # i, back at the loop header
        self.assertIn("$5 = 5\n", out)       # acc = add(0, 5)
        self.assertNoErrors(out)

    def test_stepi_moves_pc(self):
        out, _ = self.run_gdb(["break add", "continue", "x/i $pc", "stepi", "x/i $pc", "stepi", "x/i $pc",
                               "info registers rip"])
        pcs = re.findall(r"=> (0x[0-9a-f]+) <add\+(\d+)>:", out)
        self.assertEqual(len(pcs), 3, out)
        addrs = [int(a, 16) for a, _ in pcs]
        self.assertTrue(addrs[0] < addrs[1] < addrs[2], out)
        # After stepi in the middle of a line gdb prints the address and line.
        self.assertRegex(out, r"0x[0-9a-f]+\s+9\s+int sum = a \+ b;")
        self.assertRegex(out, rf"rip\s+{pcs[2][0]}\s+{pcs[2][0]} <add\+{pcs[2][1]}>")
        self.assertNoErrors(out)

    def test_info_registers(self):
        out, _ = self.run_gdb(["break add", "continue", "info registers", "info registers rip",
                               "p $eflags", "p/x $cs", "p $xmm0", "p $ymm0", "p $fs_base != 0"])
        for reg in ("rax", "rbx", "rcx", "rdx", "rsi", "rdi", "rbp", "rsp", "r8", "r9", "r10", "r11",
                    "r12", "r13", "r14", "r15", "rip", "eflags", "cs", "ss", "ds", "es", "fs", "gs"):
            self.assertRegex(out, rf"\n{reg}\s+0x[0-9a-f]+\s+", reg)
        # add's arguments are in edi/esi at the breakpoint after the prologue.
        self.assertRegex(out, r"\nrdi\s+0x0\s+0\n")
        self.assertRegex(out, r"\nrsi\s+0x5\s+5\n")
        self.assertRegex(out, r"\nrip\s+0x[0-9a-f]+\s+0x[0-9a-f]+ <add\+\d+>\n")
        self.assertRegex(out, r"\$1 = \[ [A-Z ]*IF [A-Z ]*\]")
        self.assertIn("$2 = 0x33\n", out)
        self.assertRegex(out, r"\$3 = \{v8_bfloat16 = .*v4_int32 = \{.*\}, v2_int64 = .*uint128 = \d+\}")
        self.assertRegex(out, r"\$4 = \{v16_bfloat16 = .*v8_int32 = \{.*\}.*v2_int128 = \{.*\}\}")
        self.assertIn("$5 = 1\n", out)
        self.assertNoErrors(out)

    def test_write_vector_registers(self):
        """Register writes through XSAVE: the upper half of ymm0 lives in the
        AVX state component, xmm1 in the legacy area."""
        out, _ = self.run_gdb([
            "break add", "continue",
            "set var $ymm0.v8_int32[7] = 42",
            "set var $ymm0.v8_int32[0] = 7",
            "set var $xmm1.v4_int32[2] = 0x12345678",
            "maint flush register-cache",
            "p $ymm0.v8_int32", "p/x $xmm1.v4_int32[2]", "p $xmm0.v4_int32[0]",
            "stepi",                           # a resume: the values must be in the thread
            "maint flush register-cache",
            "p $ymm0.v8_int32", "p/x $xmm1.v4_int32[2]",
        ])
        self.assertNoErrors(out)
        # Lanes 1-6 keep what libc left there (zeros on some machines, not
        # on those where it uses AVX-512 string functions): only unchanged.
        ymm0 = re.findall(r"= \{7, ((?:-?\d+, ){6})42\}", out)
        self.assertEqual(len(ymm0), 2, out)
        self.assertEqual(ymm0[0], ymm0[1], out)
        self.assertEqual(out.count("= 0x12345678\n"), 2, out)
        self.assertIn("$3 = 7\n", out)

    def test_write_general_register(self):
        """`set var $rax` round trip, and the program sees the new value: right
        after add returns, compute adds rax to acc."""
        out, _ = self.run_gdb([
            "break add", "continue", "finish",
            "set var $rax = 1000", "maint flush register-cache", "p $rax",
            "next", "p acc",
            "set var $rbx = 0x1122334455667788", "maint flush register-cache", "p/x $rbx",
        ])
        self.assertNoErrors(out)
        self.assertRegex(out, r"Value returned is \$1 = 5")
        self.assertIn("$2 = 1000\n", out)
        self.assertIn("$3 = 1000\n", out)
        self.assertIn("$4 = 0x1122334455667788\n", out)

    def test_memory_write_and_read(self):
        out, stub = self.run_gdb([
            "break add", "continue",
            "p buffer", "set var buffer[0] = 'J'", "p buffer", "x/4xb &buffer", "x/s buffer",
            "set var watched = 123", "p watched",
            "delete", "continue",
        ])
        self.assertNoErrors(out)
        self.assertRegex(out, r"\$1 = \"hello from basic\", '\\000' <repeats 47 times>")
        self.assertRegex(out, r"\$2 = \"Jello from basic\", '\\000' <repeats 47 times>")
        self.assertRegex(out, r"0x[0-9a-f]+ <buffer>:\s+0x4a\s+0x65\s+0x6c\s+0x6c")
        self.assertRegex(out, r"0x[0-9a-f]+ <buffer>:\s+\"Jello from basic\"")
        self.assertIn("$3 = 123\n", out)
        self.assertRegex(out, r"\[Inferior 1 \(process \d+\) exited normally\]")
        # The program itself printed the modified buffer.
        self.assertIn("compute=35 buffer=Jello from basic", stub.output())

    def test_hardware_watchpoint(self):
        harness.skip_unless_hardware_watchpoints_fire(self)
        out, _ = self.run_gdb(["break compute", "continue", "watch watched", "continue", "bt 1",
                               "continue"])
        self.assertNoErrors(out)
        self.assertIn("Hardware watchpoint 2: watched", out)
        self.assertRegex(out, r"Hardware watchpoint 2: watched\n\nOld value = 0\nNew value = 35\n")
        self.assertRegex(out, rf"compute \(n=5\) at {SRC}:19\n19\s+return acc;")
        self.assertRegex(out, r"\[Inferior 1 \(process \d+\) exited normally\]")
        self.assertNotIn("Software watchpoint", out)

    def test_read_watchpoint_ignores_writes(self):
        harness.skip_unless_hardware_watchpoints_fire(self)
        # x86 can't watch reads only: dbgstub refuses Z3 as gdbserver does
        # and gdb emulates it with an access watchpoint, reporting only
        # accesses that leave the value alone. The write in compute() must
        # not stop; the read in main() must.
        out, _ = self.run_gdb(["break compute", "continue", "rwatch watched", "continue", "continue"])
        self.assertNoErrors(out)
        self.assertIn("Hardware read watchpoint 2: watched", out)
        self.assertRegex(out, rf"Hardware read watchpoint 2: watched\n\nValue = 35\n"
                              rf"(0x[0-9a-f]+ in )?main \(argc=1, argv=0x[0-9a-f]+\) at {SRC}:26\n")
        self.assertNotRegex(out, r"compute \(n=5\) at \S*basic\.c:19")
        self.assertRegex(out, r"\[Inferior 1 \(process \d+\) exited normally\]")

    def test_breakpoint_hit_many_times(self):
        out, _ = self.run_gdb(["break add", "continue", "continue 3", "info breakpoints", "p a",
                               "delete", "continue"])
        self.assertNoErrors(out)
        self.assertRegex(out, r"Breakpoint 1, add \(a=0, b=5\)")
        self.assertRegex(out, r"Breakpoint 1, add \(a=3, b=5\)")
        self.assertNotRegex(out, r"Breakpoint 1, add \(a=[12], b=5\)")
        self.assertIn("breakpoint already hit 4 times", out)
        self.assertIn("$1 = 3\n", out)
        self.assertRegex(out, r"\[Inferior 1 \(process \d+\) exited normally\]")

    def test_exit_code(self):
        with Stub(*free_port_args(BASIC, "7")) as stub:
            pid = inferior_pid(stub)
            out = gdb(["continue"], port=stub.port, file=BASIC)
            self.assertEqual(stub.wait(), 0)
        self.assertIn(f"[Inferior 1 (process {pid}) exited with code 07]", out)
        self.assertIn("compute=35 buffer=hello from basic", stub.output())
        self.assertIsNone(process_state(pid))

    def test_tbreak_and_until(self):
        out, _ = self.run_gdb([
            "tbreak compute", "continue", "info breakpoints",
            "next", "next", "next",    # 14 -> 15 -> 16 -> 15 (back at the loop header)
            "until",                   # runs the rest of the loop: 18
            "p acc",
            "until 19",
            "until",                   # 20, the closing brace
            "until",                   # leaves compute and finishes line 24: main at 25
        ])
        self.assertNoErrors(out)
        self.assertRegex(out, rf"Temporary breakpoint 1 at 0x[0-9a-f]+: file {SRC}, line 14\.")
        self.assertRegex(out, rf"Temporary breakpoint 1, compute \(n=5\) at {SRC}:14")
        self.assertIn("No breakpoints or watchpoints.", out)
        self.assertRegex(out, r"\n18\s+watched = acc;")
        self.assertIn("$1 = 35\n", out)
        self.assertRegex(out, rf"compute \(n=5\) at {SRC}:19\n19\s+return acc;")
        self.assertRegex(out, r"\n20\s+\}")
        self.assertRegex(out, rf"\nmain \(argc=1, argv=0x[0-9a-f]+\) at {SRC}:25\n25\s+printf")

    def test_kill_ends_dbgstub(self):
        """After `kill` dbgstub (not --multi) exits by itself, while gdb is
        still connected, and the program is gone."""
        with Stub(*free_port_args(BASIC)) as stub:
            pid = inferior_pid(stub)
            result = {}
            session = threading.Thread(target=lambda: result.setdefault("out", gdb(
                ["break add", "continue", "kill", "shell sleep 3", "info inferiors"],
                port=stub.port, file=BASIC)))
            session.start()
            try:
                code = stub.wait(20)
                gdb_still_running = session.is_alive()
            finally:
                session.join(60)
        out = result.get("out", "")
        self.assertEqual(code, 0, stub.output())
        self.assertTrue(gdb_still_running, "dbgstub only exited when gdb disconnected:\n" + out)
        self.assertIn(f"[Inferior 1 (process {pid}) killed]", out)
        self.assertRegex(out, r"Breakpoint 1, add \(a=0, b=5\)")
        self.assertTrue(harness.eventually(lambda: process_state(pid) is None, timeout=5),
                        f"program {pid} still exists: state {process_state(pid)}")


if __name__ == "__main__":
    harness.main()
