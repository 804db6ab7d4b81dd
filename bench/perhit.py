#!/usr/bin/env python3
"""Per breakpoint hit (workload 1: `break hit` + commands silent/continue):
the packets and round trips gdb exchanges with each stub, from gdb's
`set debug remote 1` (and, for dbgstub, its own --log-packets as a cross
check), and the stub's system calls per hit from `strace -c -f -p`, as the
difference between a run of N hits and one of N/10 hits divided by the
difference in hits (so start-up and shutdown cancel out).

Standard library only; started by `bench/run.sh --per-hit`, or directly:
  bench/perhit.py --dbgstub PATH --programs DIR [--hits N]
"""
import argparse
import collections
import os
import re
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from bench import free_port, listening  # noqa: E402

SCRIPT = ["break hit", "commands", "silent", "continue", "end", "continue"]


def start_stub(kind, dbgstub, prog, hits, log, extra=()):
    port = free_port()
    if kind == "dbgstub":
        cmd = [dbgstub, *extra, f"127.0.0.1:{port}", prog, str(hits)]
    else:
        cmd = ["gdbserver", f"127.0.0.1:{port}", prog, str(hits)]
    p = subprocess.Popen(cmd, stdin=subprocess.DEVNULL, stdout=log, stderr=subprocess.STDOUT)
    deadline = time.monotonic() + 10
    while not listening(port):
        if p.poll() is not None or time.monotonic() > deadline:
            raise RuntimeError(f"{kind} did not start")
        time.sleep(0.005)
    return p, port


def run_gdb(tmp, prog, port, debug_remote):
    script = os.path.join(tmp, "hits.gdb")
    with open(script, "w") as f:
        f.write("\n".join(SCRIPT) + "\n")
    cmd = ["gdb", "-nx", "-batch", "-ex", "set confirm off", "-ex", f"file {prog}"]
    if debug_remote:
        cmd += ["-ex", "set debug remote 1"]
    cmd += ["-ex", f"target remote 127.0.0.1:{port}", "-x", script]
    r = subprocess.run(cmd, stdin=subprocess.DEVNULL, capture_output=True, timeout=900)
    return (r.stdout + r.stderr).decode("latin-1")


def name_of(payload):
    """A packet's kind: 'vCont;c', 'Z0', 'qXfer:threads:read', 'T05', 'OK'..."""
    if payload.startswith("vCont;"):
        return "vCont;" + payload[6]
    if payload.startswith(("qXfer:",)):
        return ":".join(payload.split(":")[:3])
    if payload.startswith("T") or payload.startswith("S"):
        return payload[:3]
    m = re.match(r"[A-Za-z]+[0-9]?(?=[,:;]|$)", payload)
    if m:
        return m.group(0)
    return payload[:1]


def cycles(events):
    """events: [(direction, payload)], direction '>' sent by gdb, '<' reply.
    Splits at each `vCont;c` gdb sends; returns the cycles between two of them
    (a whole breakpoint hit: stop reply, what gdb asks, the step over the
    breakpoint, and the resume)."""
    out, cur = [], None
    for d, p in events:
        if d == ">" and p.startswith("vCont;c"):
            if cur is not None:
                out.append(cur)
            cur = []
        if cur is not None:
            cur.append((d, p))
    return out


def summarize(label, cyc, hits):
    # drop the first and last few cycles (shared library loading, exit)
    body = cyc[5:-5] if len(cyc) > 20 else cyc
    sent = [sum(1 for d, _ in c if d == ">") for c in body]
    recv = [sum(1 for d, _ in c if d == "<") for c in body]
    bytes_ = [sum(len(p) + 4 for _, p in c) for c in body]
    shapes = collections.Counter(tuple(f"{d}{name_of(p)}" for d, p in c) for c in body)
    shape, n = shapes.most_common(1)[0]
    print(f"{label}: {len(cyc)} resume cycles for {hits} hits; per hit: median {statistics.median(sent):.0f} "
          f"packets from gdb (= round trips), {statistics.median(recv):.0f} replies, "
          f"{statistics.median(bytes_):.0f} bytes framed")
    print(f"  most common cycle ({n} of {len(body)}): " + " ".join(shape))
    return shape


def gdb_events(text):
    ev = []
    for line in text.splitlines():
        m = re.search(r"\[remote\] Sending packet: \$(.*)#[0-9a-f]{2}$", line)
        if m:
            ev.append((">", m.group(1)))
            continue
        m = re.search(r"\[remote\] Packet received: (.*)$", line)
        if m:
            ev.append(("<", m.group(1)))
    return ev


def dbgstub_events(text):
    ev = []
    for line in text.splitlines():
        m = re.search(r"\] (<-|->) \$(.*)$", line)
        if m:
            ev.append((">" if m.group(1) == "<-" else "<", m.group(2)))
    return ev


def strace_counts(kind, dbgstub, prog, hits, tmp):
    """{syscall: calls} of the stub over a whole run of `hits` hits."""
    log = open(os.path.join(tmp, f"{kind}-strace-stub.log"), "w")
    stub, port = start_stub(kind, dbgstub, prog, hits, log)
    out = os.path.join(tmp, f"{kind}-{hits}.strace")
    st = subprocess.Popen(["strace", "-c", "-f", "-o", out, "-p", str(stub.pid)],
                          stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    # wait until strace has attached (it says so on stderr)
    line = st.stderr.readline()
    if "attached" not in line:
        time.sleep(0.5)
    run_gdb(tmp, prog, port, False)
    try:
        stub.wait(30)
    except subprocess.TimeoutExpired:
        stub.send_signal(signal.SIGTERM)
        stub.wait(10)
    st.wait(30)
    log.close()
    counts = {}
    with open(out) as f:
        for line in f:
            parts = line.split()
            # % time, seconds, usecs/call, calls, [errors], syscall
            if len(parts) >= 5 and re.match(r"^[\d.]+$", parts[0]) and parts[-1] != "total":
                counts[parts[-1]] = int(parts[3])
    return counts


def cpu_run(kind, dbgstub, prog, hits, tmp):
    """(wall seconds, gdb CPU seconds, stub CPU seconds) of one run of
    `hits` hits; CPU is user + system from wait4 (the stub's includes the
    program it started and reaped)."""
    with open(os.path.join(tmp, f"{kind}-cpu.log"), "w") as log:
        stub, port = start_stub(kind, dbgstub, prog, hits, log)
        script = os.path.join(tmp, "hits.gdb")
        with open(script, "w") as f:
            f.write("\n".join(SCRIPT) + "\n")
        cmd = ["gdb", "-nx", "-batch", "-ex", "set confirm off", "-ex", f"file {prog}",
               "-ex", f"target remote 127.0.0.1:{port}", "-x", script]
        t0 = time.monotonic()
        g = subprocess.Popen(cmd, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        _, _, gru = os.wait4(g.pid, 0)
        wall = time.monotonic() - t0
        g.returncode = 0
        deadline = time.monotonic() + 30
        sru = None
        while sru is None:
            pid, _, ru = os.wait4(stub.pid, os.WNOHANG)
            if pid == stub.pid:
                sru = ru
            elif time.monotonic() > deadline:
                stub.kill()
                _, _, sru = os.wait4(stub.pid, 0)
            else:
                time.sleep(0.01)
        stub.returncode = 0
    return wall, gru.ru_utime + gru.ru_stime, sru.ru_utime + sru.ru_stime


def cpu_table(dbgstub, prog, n, tmp, reps=3):
    """Wall clock and CPU per hit, gdb's and the stub's: how much of a hit
    the stub can change at all."""
    small = max(1, n // 10)
    kinds = ["dbgstub"] + (["gdbserver"] if shutil.which("gdbserver") else [])
    res = {k: [] for k in kinds}
    for _ in range(reps):
        for k in kinds:  # interleaved
            big = cpu_run(k, dbgstub, prog, n, tmp)
            little = cpu_run(k, dbgstub, prog, small, tmp)
            res[k].append([(b - s) / (n - small) * 1e6 for b, s in zip(big, little)])
    print(f"Wall clock and CPU time per hit, microseconds: (run of {n} - run of {small}) / {n - small}, "
          f"median of {reps} interleaved")
    print("| stub      |  wall/hit | gdb CPU/hit | stub CPU/hit |")
    print("|-----------|-----------|-------------|--------------|")
    for k in kinds:
        cols = [statistics.median(r[i] for r in res[k]) for i in range(3)]
        print(f"| {k:9} | {cols[0]:9.0f} | {cols[1]:11.0f} | {cols[2]:12.0f} |")
    print()


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--dbgstub", required=True)
    ap.add_argument("--programs", required=True)
    ap.add_argument("--hits", type=int, default=2000)
    opts = ap.parse_args()
    prog = os.path.join(os.path.abspath(opts.programs), "hits")
    tmp = tempfile.mkdtemp(prefix="dbgstub-perhit-")
    n = opts.hits
    print(f"Per breakpoint hit, workload bp-hits ({n} hits)")
    shapes = {}
    for kind in ("dbgstub", "gdbserver"):
        if kind == "gdbserver" and not shutil.which("gdbserver"):
            continue
        log_path = os.path.join(tmp, f"{kind}.log")
        with open(log_path, "w") as log:
            extra = ["--log-packets"] if kind == "dbgstub" else []
            stub, port = start_stub(kind, opts.dbgstub, prog, n, log, extra)
            text = run_gdb(tmp, prog, port, True)
            stub.wait(30)
        shapes[kind] = summarize(f"{kind} (gdb's set debug remote 1)", cycles(gdb_events(text)), n)
        if kind == "dbgstub":
            with open(log_path, encoding="latin-1") as f:
                summarize("dbgstub (its own --log-packets)", cycles(dbgstub_events(f.read())), n)
    if len(shapes) == 2:
        print("  same packet sequence per hit for both stubs" if shapes["dbgstub"] == shapes["gdbserver"]
              else "  the per-hit packet sequences differ")
    print()
    cpu_table(opts.dbgstub, prog, n, tmp)
    if not shutil.which("strace"):
        print("strace is not installed: no system call counts")
        return 0
    small = max(1, n // 10)
    print(f"System calls per hit in the stub: strace -c -f -p, (run of {n} hits - run of {small}) / {n - small}")
    table = {}
    for kind in ("dbgstub", "gdbserver"):
        if kind == "gdbserver" and not shutil.which("gdbserver"):
            continue
        big = strace_counts(kind, opts.dbgstub, prog, n, tmp)
        little = strace_counts(kind, opts.dbgstub, prog, small, tmp)
        table[kind] = {k: (big.get(k, 0) - little.get(k, 0)) / (n - small) for k in set(big) | set(little)}
    kinds = list(table)
    names = sorted({k for t in table.values() for k, v in t.items() if v >= 0.05},
                   key=lambda k: -max(t.get(k, 0) for t in table.values()))
    print("| syscall              | " + " | ".join(f"{k:>9}" for k in kinds) + " |")
    print("|----------------------|" + "|".join("-" * 11 for _ in kinds) + "|")
    for name in names:
        print(f"| {name:20} | " + " | ".join(f"{table[k].get(name, 0):9.2f}" for k in kinds) + " |")
    print(f"| {'total':20} | " + " | ".join(f"{sum(v for v in table[k].values()):9.2f}" for k in kinds) + " |")
    print()
    shutil.rmtree(tmp, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
