"""GDB's own testsuite in CI: a subset of GDB 13.1's DejaGnu tests (the
same runs as scripts/conformance.sh, dbgstub only), chosen to finish in
about a minute: most of gdb.server (start, run, kill, monitor, exec-file,
restart, wrappers, file transfer, sysroot, reconnects, stop replies without
threads) and the gdb.base / gdb.threads files for features that came from
conformance work (catch syscall, $_siginfo, thread-local storage, a leader
exiting first, kill after a signal, a stopped program kept across a
disconnect, an attach while waitpid is slowed), and unittest (`--selftest`, which gdbserver here answers
"Selftests have been disabled", UNSUPPORTED). Every other test in them
passes with gdbserver 13.1 here, so any FAIL, ERROR or UNRESOLVED fails
this test.

Left out, and run by scripts/conformance.sh outside CI: the slow files
(ext-attach, attach-flag, exit-multiple-threads, stop-reply-no-thread-multi,
break-idempotent: about a minute more), the longer gdb.base and gdb.threads
sets, and the files whose differences are listed in the README
(non-existing-program) or that depend on the machine's process list (ext-run's `info os processes`
pattern, which a busy machine overflows).

The testsuite comes from Debian's gdb-source, run by dejagnu (both in
scripts/install-deps.sh)."""
import glob
import os
import re
import shutil
import subprocess
import sys
import unittest

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import harness  # noqa: E402

ROOT = os.path.abspath(os.path.join(os.path.dirname(__file__), "..", ".."))
FILES = [f"gdb.server/{f}.exp" for f in (
    "server-kill", "server-run", "server-mon", "server-exec-info", "server-connect", "server-pipe",
    "server-kill-python", "ext-restart", "ext-wrapper", "extended-remote-restart", "wrapper",
    "file-transfer", "monitor-exit-quit", "no-thread-db", "run-without-local-binary", "sysroot",
    "twice-connect", "connect-stopped-target", "connect-with-no-symbol-file",
    "connect-without-multi-process", "stop-reply-no-thread", "solib-list", "multi-ui-errors",
    "bkpt-other-inferior", "abspath", "reconnect-ctrl-c", "unittest")] + [
    "gdb.base/catch-syscall.exp", "gdb.base/siginfo-obj.exp", "gdb.base/kill-after-signal.exp",
    "gdb.threads/tls.exp", "gdb.threads/no-unwaited-for-left.exp", "gdb.threads/reconnect-signal.exp",
    "gdb.threads/attach-slow-waitpid.exp"]


@unittest.skipUnless(shutil.which("runtest") and glob.glob("/usr/src/gdb*.tar.*"),
                     "dejagnu or gdb-source is not installed (scripts/install-deps.sh installs them)")
class GdbTestsuiteSubset(unittest.TestCase):
    def test_subset_passes(self):
        dbgstub = os.path.abspath(harness.DBGSTUB)
        work = os.path.join(os.path.dirname(os.path.dirname(dbgstub)), "conformance-ci")
        args = [os.path.join(ROOT, "scripts", "conformance.sh"), "--stub", "dbgstub", "--timeout", "280"]
        for f in FILES:
            args += ["--set", f]
        env = dict(os.environ, CONFORMANCE_DIR=work, DBGSTUB=dbgstub)
        r = subprocess.run(args, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                           timeout=290)
        self.assertEqual(r.returncode, 0, r.stdout[-3000:])
        bad, missing = [], []
        passes = 0
        for f in FILES:
            name = f.replace("/", "_")
            sums = glob.glob(os.path.join(work, "results", "dbgstub", name, "gdb.sum"))
            if not sums:
                missing.append(f)
                continue
            with open(sums[0], errors="replace") as s:
                text = s.read()
            bad += [l for l in text.splitlines() if re.match(r"(FAIL|ERROR|UNRESOLVED):", l)]
            n = len(re.findall(r"(?m)^PASS:", text))
            if not n:
                missing.append(f)
            passes += n
        self.assertEqual(missing, [], "files that did not run:\n" + r.stdout[-3000:])
        self.assertEqual(bad, [], f"see {work}/results/dbgstub/*/gdb.log")
        print(f"{len(FILES)} files, {passes} passes", flush=True)


if __name__ == "__main__":
    harness.main()
