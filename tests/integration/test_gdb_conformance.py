"""The real gdb against dbgstub on what GDB's own testsuite checks against
gdbserver (scripts/conformance.sh): `catch syscall` (QCatchSyscalls and
syscall_entry/syscall_return stop replies), writing `$_siginfo`
(qXfer:siginfo:write), thread-local variables (qGetTLSAddr through
libthread_db)."""
import os
import re
import shutil
import sys
import tempfile
import unittest

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import harness  # noqa: E402
from harness import Stub, free_port_args, program  # noqa: E402

BASIC = program("basic")
SIGNALS = program("signals")
TLS = program("tls")
# x86-64 system call numbers
SYS_WRITE = 1
SYS_EXIT_GROUP = 231


class Advertised(unittest.TestCase):

    def test_qsupported(self):
        """gdb uses `catch syscall` and writes `$_siginfo` only with a stub
        that says it can."""
        with Stub(*free_port_args(BASIC)) as stub:
            with harness.RspClient(stub.port) as c:
                features = c.handshake().split(";")
        self.assertIn("QCatchSyscalls+", features)
        self.assertIn("qXfer:siginfo:write+", features)


class GdbCatchSyscall(harness.GdbTestCase):

    def run_gdb(self, prog, commands, stub_args=(), timeout=30):
        with Stub(*stub_args, *free_port_args(prog)) as stub:
            out = self.gdb_or_fail(stub, commands, prog, timeout)
            stub.wait()
        return out, stub

    def test_catch_write_entry_and_return(self):
        """`catch syscall write` stops at the call and at its return, with
        the syscall's number in the stop reply (as gdbserver's
        "T05syscall_entry:1;"); deleting the catchpoint lets the program
        run to its end without syscall stops."""
        out, stub = self.run_gdb(BASIC, ["catch syscall write", "continue", "continue", "delete", "continue"],
                                 stub_args=("--log-packets",))
        self.assertIn("Catchpoint 1 (syscall 'write' [1])", out)
        self.assertRegex(out, r"Catchpoint 1 \(call to syscall write\)")
        self.assertRegex(out, r"Catchpoint 1 \(returned from syscall write\)")
        self.assertRegex(out, r"\[Inferior 1 \(process \d+\) exited normally\]")
        log = stub.output()
        self.assertRegex(log, rf"-> \$T05[^\n]*syscall_entry:{SYS_WRITE:x};")
        self.assertRegex(log, rf"-> \$T05[^\n]*syscall_return:{SYS_WRITE:x};")
        self.assertRegex(log, r"<- \$QCatchSyscalls:0\n")
        # Only the caught call stops: the list gdb sent names write alone.
        self.assertRegex(log, rf"<- \$QCatchSyscalls:1;{SYS_WRITE:x}\n")
        self.assertEqual(len(re.findall(r"-> \$T05[^\n]*syscall_(entry|return)", log)), 2)

    def test_catch_any_syscall(self):
        """`catch syscall` with no argument: every system call stops, here
        the first one after the start (the return from the execve that
        started the program, as with gdbserver) and, at the end,
        exit_group (whose return never comes)."""
        out, stub = self.run_gdb(BASIC, ["catch syscall", "continue", "delete", "catch syscall exit_group",
                                         "continue", "continue"], stub_args=("--log-packets",))
        self.assertRegex(out, r"Catchpoint 1 \(returned from syscall execve\)")
        self.assertRegex(out, r"Catchpoint 2 \(call to syscall exit_group\)")
        self.assertRegex(out, r"\[Inferior 1 \(process \d+\) exited normally\]")
        self.assertRegex(stub.output(), r"<- \$QCatchSyscalls:1\n")
        self.assertRegex(stub.output(), rf"syscall_entry:{SYS_EXIT_GROUP:x};")


class GdbSiginfoWrite(harness.GdbTestCase):

    def test_write_siginfo_fields(self):
        """Assigning to `$_siginfo` fields at a signal stop writes the
        thread's siginfo (PTRACE_SETSIGINFO, as gdbserver): reading it back
        from the kernel shows the new values, the rest is unchanged."""
        with Stub("--log-packets", *free_port_args(SIGNALS, "segv")) as stub:
            out = self.gdb_or_fail(stub, ["continue", "p $_siginfo.si_errno = 666", "p $_siginfo.si_code = 999",
                                          "continue", "p $_siginfo._sifields._sigfault.si_addr = 0x666",
                                          "p $_siginfo.si_errno", "p $_siginfo.si_code", "flushregs",
                                          "p $_siginfo._sifields._sigfault.si_addr", "p $_siginfo.si_signo"],
                                   SIGNALS, 30)
            stub.wait()
        self.assertNotIn("Unable to write siginfo", out)
        self.assertIn("Program received signal SIGSEGV", out)
        self.assertIn("$1 = 666\n", out)
        self.assertIn("$2 = 999\n", out)
        self.assertIn("$3 = (void *) 0x666\n", out)
        self.assertIn("$4 = 0\n", out)      # the SIGSEGV's own siginfo, untouched
        self.assertIn("$5 = 1\n", out)      # SEGV_MAPERR
        self.assertIn("$6 = (void *) 0x666\n", out)  # read back from the kernel
        self.assertIn("$7 = 11\n", out)
        self.assertRegex(stub.output(), r"<- \$qXfer:siginfo:write::")


class GdbThreadLocalStorage(harness.GdbTestCase):

    def test_tls_variables_per_thread(self):
        """A __thread variable has each thread's own value: gdb asks
        qGetTLSAddr for the selected thread, dbgstub answers through
        libthread_db."""
        with Stub("--log-packets", *free_port_args(TLS)) as stub:
            out = self.gdb_or_fail(stub, ["break checkpoint", "continue", "p tls_counter", "p tls_big[3]",
                                          "thread 1", "p tls_counter", "p tls_big[3]", "p &tls_counter",
                                          "thread 2", "p &tls_counter", "kill"], TLS, 30)
            stub.wait()
        self.assertNotIn("Cannot find thread-local storage", out)
        self.assertIn("$1 = 200\n", out)
        self.assertIn("$2 = 208\n", out)
        self.assertIn("$3 = 100\n", out)
        self.assertIn("$4 = 108\n", out)
        a1 = re.search(r"\$5 = \(int \*\) (0x[0-9a-f]+)", out)
        a2 = re.search(r"\$6 = \(int \*\) (0x[0-9a-f]+)", out)
        self.assertTrue(a1 and a2, out)
        self.assertNotEqual(a1.group(1), a2.group(1))
        self.assertRegex(stub.output(), r"<- \$qGetTLSAddr:p[0-9a-f]+\.[0-9a-f]+,[0-9a-f]+,[0-9a-f]+")
        self.assertIn("libthread_db libthread_db.so.1 loaded", stub.output())

    def test_unresolvable_search_path_fails_cleanly(self):
        """`monitor set libthread-db-search-path` where there is no
        libthread_db: no TLS, an error reply, as gdbserver (GDB's
        gdb.server/no-thread-db.exp)."""
        with Stub(*free_port_args(TLS)) as stub:
            out = self.gdb_or_fail(stub, ["monitor set libthread-db-search-path /nonexistent", "break checkpoint",
                                          "continue", "p tls_counter", "monitor set libthread-db-search-path",
                                          "kill"], TLS, 30)
            stub.wait()
        self.assertIn("libthread-db-search-path set to `/nonexistent'", out)
        self.assertIn("Remote target failed to process qGetTLSAddr request", out)
        self.assertIn("libthread-db-search-path set to `$pdir:$sdir'", out)

    def test_only_libraries_no_one_else_could_have_planted_are_loaded(self):
        """The search path names a library that is loaded into dbgstub: one
        in a folder others can write is skipped (a debugged program of
        another user could have put it there); the same file in a folder
        only its owner writes is used."""
        with tempfile.TemporaryDirectory() as tmp:
            for mode, works in ((0o777, False), (0o755, True)):
                lib = os.path.join(tmp, oct(mode))
                os.makedirs(lib)
                shutil.copy(SYSTEM_THREAD_DB, lib)
                os.chmod(lib, mode)
                with self.subTest(mode=oct(mode)), Stub(*free_port_args(TLS)) as stub:
                    out = self.gdb_or_fail(stub, [f"monitor set libthread-db-search-path {lib}", "break checkpoint",
                                                  "continue", "p tls_counter", "kill"], TLS, 30)
                    stub.wait()
                    library = os.path.join(lib, "libthread_db.so.1")
                    if works:
                        self.assertIn("$1 = 200\n", out)
                        self.assertIn(f"libthread_db {library} loaded", stub.output())
                    else:
                        self.assertIn("Remote target failed to process qGetTLSAddr request", out)
                        self.assertIn(f"libthread_db: {library} skipped", stub.output())

    def test_search_path_is_not_the_debuggers_under_a_policy(self):
        with tempfile.TemporaryDirectory() as tmp:
            policy = os.path.join(tmp, "policy.json")
            with open(policy, "w") as f:
                f.write('{"allow": {"run": ["/bin/true"]}}')
            with Stub("--config", policy, *free_port_args(TLS)) as stub:
                out = self.gdb_or_fail(stub, ["monitor set libthread-db-search-path /tmp", "break checkpoint",
                                              "continue", "p tls_counter", "kill"], TLS, 30)
                stub.wait()
        self.assertIn("can't be set by the debugger when dbgstub has a policy", out)
        self.assertIn("$1 = 200\n", out)  # the default path still serves


SYSTEM_THREAD_DB = "/lib/x86_64-linux-gnu/libthread_db.so.1"

if __name__ == "__main__":
    harness.main()
