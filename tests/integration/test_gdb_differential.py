"""Differential tests: the same gdb session run natively (gdb runs the
program itself) and through dbgstub (`target remote`) must give the same
debugging facts: where the program stops, what values gdb prints, the
backtraces, signals and exits. Addresses, pids and thread ids are
normalised; lines that legitimately differ (file transfers, libthread_db,
the program's own output) are dropped."""
import os
import re
import sys
import unittest

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import harness  # noqa: E402
from harness import Stub, program  # noqa: E402

MARK = "@@cmd "

# Lines that differ between native and remote by design.
DROP = [
    r"^Reading .* from remote target\.\.\.$",
    r"^warning: File transfers from remote targets can be slow",
    r"^\[Thread debugging using libthread_db enabled\]$",
    r"^Using host libthread_db library",
    r"^Starting program: ",
    r"^Remote debugging using ",
    r"^\[New Thread .*\]$",
    r"^\[Thread .* exited\]$",
    r"^\[New inferior .*\]$",
    # Native gdb, on a loaded machine, sometimes announces "[New process N]"
    # when the last threads exit as the process ends (linux-nat seeing the
    # leader's exit before the others'); a stub's gdb never does. Seen once
    # in about ten full runs, never with dbgstub.
    r"^\[New process \d+\]$",
    r"^\[Detaching after (v)?fork",
    r"^warning: Error disabling address space randomization",
]


def normalise(line):
    s = line.rstrip()
    # Thread ids: native "Thread 0x7ffff7d86740 (LWP 123)", remote
    # "Thread 123.124" (multiprocess) or "Thread 124".
    s = re.sub(r"Thread 0x[0-9a-f]+ \(LWP \d+\)", "Thread TID", s)
    s = re.sub(r"Thread \d+\.\d+", "Thread TID", s)
    s = re.sub(r"\(LWP \d+\)", "(LWP N)", s)
    s = re.sub(r"process \d+", "process PID", s)
    s = re.sub(r"0x[0-9a-f]+", "ADDR", s)
    # Shared libraries read through the remote target are named target:/...
    s = s.replace("from target:/", "from /")
    s = re.sub(r"[ \t]+$", "", s)
    return s


def segments(output):
    """{command: [lines]} in order, split at the echo markers; the part
    before the first marker (connecting) is left out."""
    segs = []
    cur = None
    for raw in output.splitlines():
        # An echo without a newline before it can share a line with output.
        if MARK in raw:
            before, after = raw.split(MARK, 1)
            if cur is not None and before.strip():
                cur[1].append(before)
            cur = (after.strip(), [])
            segs.append(cur)
            continue
        if cur is not None:
            cur[1].append(raw)
    return segs


def facts(output, drop_extra=(), program_output=(), special=None):
    """[(command, [facts])]: each fact is a tagged tuple."""
    drops = [re.compile(p) for p in DROP + list(drop_extra)]
    out = []
    for cmd, lines in segments(output):
        fs = []
        rows = []
        for line in lines:
            # The program writes to the same terminal as native gdb, so its
            # output can land inside one of gdb's lines: cut it out.
            for p in program_output:
                if p in line and line.strip() != p:
                    line = line.replace(p, "")
            # Native gdb announces thread exits ("[Thread ... exited]");
            # gdbserver and dbgstub do not, unless asked (QThreadEvents).
            # The program's output can split that line in two.
            t = line.strip()
            if re.fullmatch(r"\[?Thread .*exited\]", t) or t in ("[", "]", "exited]") or \
                    re.fullmatch(r"\[Thread 0x[0-9a-f]+ \(LWP \d+\)", t):
                continue
            if not line.strip() or any(d.search(line) for d in drops) or line.strip() in program_output:
                continue
            n = normalise(line)
            if special:
                n = special(cmd, n)
                if n is None:
                    continue
            m = re.match(r"^#(\d+)\s+(?:ADDR in )?(\S+) \((.*)\)(?: at (\S+):(\d+)| from (\S+))?$", n)
            if m:
                fs.append(("frame", int(m.group(1)), m.group(2), m.group(3),
                           f"{m.group(4)}:{m.group(5)}" if m.group(4) else m.group(6)))
                continue
            if re.match(r"^#\d+\s+<signal handler called>$", n):
                fs.append(("frame", int(n[1:].split()[0]), "<signal handler called>"))
                continue
            m = re.match(r"^(?:.*Breakpoint \d+, )?(?:ADDR in )?(\S+) \((.*)\) at (\S+):(\d+)$", n)
            if m:
                fs.append(("stop", m.group(1), m.group(2), f"{m.group(3)}:{m.group(4)}"))
                continue
            m = re.match(r"^(\d+)\t(.*)$", n)
            if m:
                fs.append(("line", int(m.group(1)), m.group(2)))
                continue
            m = re.match(r"^(?:Value returned is )?\$(\d+) = (.*)$", n)
            if m:
                fs.append(("value", int(m.group(1)), m.group(2)))
                continue
            m = re.match(r"^(Program received signal|Program terminated with signal) (.*)$", n)
            if m:
                fs.append(("signal", m.group(1), m.group(2)))
                continue
            m = re.match(r"^\[Inferior \d+ \(process PID\) (.*)\]$", n)
            if m:
                fs.append(("exit", m.group(1)))
                continue
            # gdb pads the Target Id column to its widest row, which
            # depends on how many digits each thread's id has.
            m = re.match(r"^(\*?)\s*(\d+)\s+Thread TID(?: \"([^\"]*)\")?\s+(.*)$", n)
            if m and cmd.startswith("info threads"):
                rows.append(("thread", m.group(1) == "*", m.group(3), m.group(4) if m.group(1) else None))
                continue
            if re.match(r"^\s*Id\s+Target Id\s+Frame", n):
                continue
            m = re.match(r"^([A-Za-z_]\w*) = (.*)$", n)
            if m:
                fs.append(("local", m.group(1), m.group(2)))
                continue
            fs.append(("text", n.strip()))
        if rows:
            fs.append(("threads", len(rows)))
            fs.extend(r for r in rows if r[1])  # the current thread in full
            fs.append(("thread-names", sorted({r[2] or "" for r in rows})))
        out.append((cmd, fs))
    return out


def marked(commands):
    cmds = []
    for c in commands:
        cmds += [f"echo \\n{MARK}{c}\\n", c]
    return cmds


def run_native(prog, args, commands):
    pre = []
    if args:
        pre.append("set args " + " ".join(args))
    return harness.gdb_run(marked(commands), pre=pre, args=[prog])


def run_remote(prog, args, commands):
    stub = Stub("127.0.0.1:0", prog, *args)
    try:
        # The program is already started and stopped at its first
        # instruction: `run` becomes `continue`.
        cmds = ["continue" if c == "run" else c for c in commands]
        out = harness.gdb_run(marked(cmds), pre=[f"target remote 127.0.0.1:{stub.port}"], args=[prog])
        # Label the segments with the native command names so they line up.
        for c in commands:
            if c == "run":
                out = out.replace(f"{MARK}continue\n", f"{MARK}run\n", 1)
        return out, stub
    finally:
        harness.close_stub(stub)


class DifferentialTest(unittest.TestCase):
    maxDiff = None

    def compare(self, name, args, commands, expect, program_output=(), special=None):
        prog = os.path.abspath(program(name))
        native = run_native(prog, args, commands)
        remote, stub = run_remote(prog, args, commands)
        fn = facts(native, program_output=program_output, special=special)
        fr = facts(remote, program_output=program_output, special=special)
        detail = (f"\n=== native ===\n{native}\n=== dbgstub ===\n{remote}\n=== dbgstub log ===\n{stub.output()}")
        # Sanity: the native session really did what the test expects, so a
        # comparison of two empty or broken sessions cannot pass.
        flat = repr(fn)
        for e in expect:
            self.assertIn(e, flat, "native session lacks " + e + detail)
        self.assertEqual([c for c, _ in fn], [c for c, _ in fr], detail)
        diffs = [(c, a, b) for (c, a), (_, b) in zip(fn, fr) if a != b]
        if diffs:
            msg = "\n".join(f"--- after `{c}`:\n  native: {a}\n  dbgstub: {b}" for c, a, b in diffs)
            self.fail("native gdb and gdb+dbgstub disagree:\n" + msg + detail)

    def test_basic_breakpoint_step_finish(self):
        self.compare("basic", [], [
            "break add", "run", "bt", "p a", "p b", "info locals", "finish", "next", "step", "info frame",
            "up", "info locals", "down", "p buffer", "x/s buffer",
            "p watched", "tbreak 18", "delete 1", "continue", "p acc", "watch watched", "continue",
            "p watched", "delete", "continue",
        ], expect=["'stop', 'add', 'a=0, b=5'", "'value', 3, '5'",
                   "'compute'", "'exit', 'exited normally'", "hello from basic"],
            program_output=("compute=35 buffer=hello from basic",))

    def test_basic_exit_code_and_args(self):
        self.compare("basic", ["7"], [
            "break main", "run", "next", "p code", "p argc", "p argv[1]", "delete", "continue",
        ], expect=["'value', 1, '7'", "exited with code 07"],
            program_output=("compute=35 buffer=hello from basic",))

    def test_signals_handler(self):
        self.compare("signals", [], [
            "run", "bt", "break on_usr1", "continue", "bt", "p sig", "finish", "p handled",
            "delete", "continue",
        ], expect=["SIGUSR1", "'on_usr1'", "<signal handler called>", "exited normally"],
            program_output=("handled=10",))

    def test_signals_segv(self):
        self.compare("signals", ["segv"], [
            "run", "continue", "bt", "p p", "p *p", "continue", "info registers rip",
        ], expect=["SIGUSR1", "SIGSEGV", "'Program terminated with signal'"],
            program_output=("handled=10",))

    def test_threads(self):
        def special(cmd, line):
            # Which worker reaches the breakpoint first is up to the
            # scheduler: keep the function and line, not the thread or id.
            line = re.sub(r"^\[Switching to Thread TID\]$", "[Switching to a thread]", line)
            line = re.sub(r"^Thread \d+ \"(\w+)\" hit ", r"Thread N \"\1\" hit ", line)
            line = re.sub(r"\bid=\d\b", "id=K", line)
            if cmd == "p id" or cmd == "p counters":
                line = re.sub(r"= .*", "= V", line)
            return line

        self.compare("threads", [], [
            "break all_started", "run", "bt", "info threads", "break threads.c:12", "continue",
            "bt 2", "p id", "p id >= 0 && id < 4", "delete", "continue",
        ], expect=["'all_started'", "('threads', 5)", "'worker_wait'", "exited normally"],
            program_output=("threads done",), special=special)


if __name__ == "__main__":
    harness.main()
