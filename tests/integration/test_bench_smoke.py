"""The benchmark (bench/, issue 8) is not part of pass/fail; this only checks
that it still runs: `bench/run.sh --tiny` runs every workload once at a tiny
size through the real gdb/lldb against dbgstub and gdbserver, and prints its
tables with every workload in them."""
import os
import re
import shutil
import subprocess
import sys
import unittest

sys.path.insert(0, os.path.dirname(__file__))
from harness import DBGSTUB, main  # noqa: E402

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
RUN = os.path.join(ROOT, "bench", "run.sh")

WORKLOADS = ["baseline", "bp-hits", "cond-host", "cond-target", "dprintf-gdb", "dprintf-agent", "stepi",
             "next-range", "dump-mem", "run-main-ext", "threads-stop", "threads-bt"]
LLDB_WORKLOADS = ["lldb-baseline", "lldb-mem"]


@unittest.skipUnless(shutil.which("gdbserver") and shutil.which("gdb") and shutil.which("gcc"),
                     "the benchmark needs gdb, gdbserver and gcc")
class BenchSmoke(unittest.TestCase):
    def test_tiny_run_prints_every_workload(self):
        env = dict(os.environ, DBGSTUB=os.path.abspath(DBGSTUB))
        r = subprocess.run([RUN, "--tiny"], stdin=subprocess.DEVNULL, capture_output=True, text=True,
                           timeout=240, env=env, errors="replace")
        out = r.stdout + r.stderr
        self.assertEqual(r.returncode, 0, out)
        self.assertIn("| workload", out, out)
        self.assertIn("dbgstub/gdbserver", out, out)
        names = WORKLOADS + (LLDB_WORKLOADS if shutil.which("lldb") else [])
        for name in names:
            # a row of the wall-clock table with a time in the dbgstub column
            self.assertRegex(out, r"(?m)^\| " + re.escape(name) + r" +\| +[0-9.]+ \|", out)
        self.assertIn("int3 stop + PTRACE_CONT", out, out)


if __name__ == "__main__":
    main()
