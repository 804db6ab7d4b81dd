#!/usr/bin/env python3
"""Summarise GDB-testsuite runs made by scripts/conformance.sh.

Reads RESULTS/STUB/SET/gdb.sum (and the 'status' file next to it), prints a
table of passes, failures, errors and unsupported tests per set and stub, and
lists the tests that pass with gdbserver but not with dbgstub.

Usage: conformance_report.py --results DIR [--set NAME]... [--stub NAME]...
                             [--out PREFIX]   (writes PREFIX.txt and PREFIX.json)
"""
import argparse
import collections
import json
import os
import re
import sys

STATUSES = ("PASS", "FAIL", "XPASS", "XFAIL", "KPASS", "KFAIL", "UNRESOLVED",
            "UNSUPPORTED", "UNTESTED", "ERROR", "WARNING")
LINE_RE = re.compile(r"^(%s): (.*)$" % "|".join(STATUSES))
RUNNING_RE = re.compile(r"^Running (\S+/)?(gdb\.[^/]+/\S+\.exp) \.\.\.$")


def parse_sum(path):
    """Return (results, files): results is a list of (status, file, name) in
    order; files the test files that were started."""
    results, files = [], []
    current = None
    if not os.path.exists(path):
        return results, files
    with open(path, errors="replace") as f:
        for line in f:
            line = line.rstrip("\n")
            m = RUNNING_RE.match(line)
            if m:
                current = m.group(2)
                files.append(current)
                continue
            m = LINE_RE.match(line)
            if not m:
                continue
            status, rest = m.groups()
            name = rest
            test_file = current
            fm = re.match(r"^(gdb\.[^/]+/[^:]+\.exp): (.*)$", rest)
            if fm:
                test_file, name = fm.group(1), fm.group(2)
            results.append((status, test_file or "?", name))
    return results, files


def keyed(results):
    """Map (file, name, occurrence) -> status; occurrence tells apart
    duplicate test names within a file."""
    seen = collections.Counter()
    out = {}
    for status, test_file, name in results:
        if status in ("ERROR", "WARNING"):
            continue
        k = (test_file, name)
        seen[k] += 1
        out[(test_file, name, seen[k])] = status
    return out


def counts(results):
    c = collections.Counter(s for s, _, _ in results)
    return {
        "pass": c["PASS"],
        "fail": c["FAIL"],
        "error": c["ERROR"] + c["UNRESOLVED"],
        "unsupported": c["UNSUPPORTED"] + c["UNTESTED"],
        "other": c["XFAIL"] + c["KFAIL"] + c["XPASS"] + c["KPASS"],
    }


def read_list(path):
    try:
        return [l.split()[0] for l in open(path) if l.strip()]
    except OSError:
        return []


def read_status(path):
    try:
        rc, secs = open(path).read().split()
        return int(rc), int(secs)
    except (OSError, ValueError):
        return None, None


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--results", required=True)
    ap.add_argument("--set", action="append", dest="sets")
    ap.add_argument("--stub", action="append", dest="stubs")
    ap.add_argument("--out")
    ap.add_argument("--max-list", type=int, default=400,
                    help="longest list of tests to print per set")
    a = ap.parse_args()
    stubs = a.stubs or ["gdbserver", "dbgstub"]
    sets = a.sets or sorted({s for st in stubs
                             for s in os.listdir(os.path.join(a.results, st))
                             if os.path.isdir(os.path.join(a.results, st, s))})

    lines = []
    say = lines.append
    report = {"sets": {}}
    hdr = "%-14s %-10s %6s %6s %6s %6s %6s %6s %7s  %s" % (
        "set", "stub", "files", "pass", "fail", "error", "unsup", "x/k", "secs", "note")
    say(hdr)
    say("-" * len(hdr))
    data = {}
    for s in sets:
        report["sets"][s] = {}
        for st in stubs:
            d = os.path.join(a.results, st, s)
            results, files = parse_sum(os.path.join(d, "gdb.sum"))
            rc, secs = read_status(os.path.join(d, "status"))
            c = counts(results)
            timed_out = read_list(os.path.join(d, "timed-out"))
            not_run = read_list(os.path.join(d, "not-run"))
            notes = []
            if rc is None:
                notes.append("not run")
            elif rc in (124, 137):
                notes.append("TIMED OUT (partial)")
            elif not os.path.exists(os.path.join(d, "gdb.sum")):
                notes.append("no gdb.sum")
            if timed_out:
                notes.append("%d file(s) timed out" % len(timed_out))
            if not_run:
                notes.append("%d file(s) not run (set time limit)" % len(not_run))
            note = "; ".join(notes)
            data[(s, st)] = (results, files)
            report["sets"][s][st] = dict(c, files=len(set(files)), seconds=secs,
                                         runtest_exit=rc, note=note,
                                         timed_out=timed_out, not_run=not_run)
            say("%-14s %-10s %6d %6d %6d %6d %6d %6d %7s  %s" % (
                s, st, len(set(files)), c["pass"], c["fail"], c["error"],
                c["unsupported"], c["other"], secs if secs is not None else "-", note))
    say("")
    say("error = ERROR + UNRESOLVED; unsup = UNSUPPORTED + UNTESTED; "
        "x/k = XFAIL + KFAIL + XPASS + KPASS")
    for s in sets:
        for st in stubs:
            r = report["sets"][s][st]
            if r["timed_out"]:
                say("%s/%s timed out: %s" % (s, st, " ".join(r["timed_out"])))
            if r["not_run"]:
                say("%s/%s not run: %s" % (s, st, " ".join(r["not_run"])))

    if "gdbserver" in stubs and "dbgstub" in stubs:
        for s in sets:
            ref_results, _ = data[(s, "gdbserver")]
            got_results, got_files = data[(s, "dbgstub")]
            ref, got = keyed(ref_results), keyed(got_results)
            regress, missing, better = [], [], []
            for k, status in ref.items():
                if status != "PASS":
                    continue
                g = got.get(k)
                if g is None:
                    missing.append(k)
                elif g != "PASS":
                    regress.append((k, g))
            for k, status in got.items():
                if status == "PASS" and ref.get(k) not in (None, "PASS"):
                    better.append((k, ref[k]))
            per_file = collections.Counter(k[0] for k, _ in regress)
            missing_per_file = collections.Counter(k[0] for k in missing)
            errors = [(f, n) for st_, f, n in got_results if st_ == "ERROR"]
            report["sets"][s]["comparison"] = {
                "pass_gdbserver_not_dbgstub": [
                    {"file": k[0], "test": k[1], "dbgstub": g} for k, g in regress],
                "pass_gdbserver_missing_dbgstub": [
                    {"file": k[0], "test": k[1]} for k in missing],
                "pass_dbgstub_not_gdbserver": [
                    {"file": k[0], "test": k[1], "gdbserver": r} for k, r in better],
                "dbgstub_errors": [{"file": f, "message": n} for f, n in errors],
            }
            say("")
            say("== %s: %d tests pass with gdbserver but not with dbgstub "
                "(+%d passing with gdbserver never reached with dbgstub) ==" % (
                    s, len(regress), len(missing)))
            if per_file or missing_per_file:
                say("by file (not passing / not reached):")
                for f in sorted(set(per_file) | set(missing_per_file),
                                key=lambda f: -(per_file[f] + missing_per_file[f])):
                    say("  %-55s %4d / %d" % (f, per_file[f], missing_per_file[f]))
            for (f, n, occ), g in regress[:a.max_list]:
                dup = " (#%d)" % occ if occ > 1 else ""
                say("  %-10s %s: %s%s" % (g, f, n, dup))
            if len(regress) > a.max_list:
                say("  ... %d more (see report.json)" % (len(regress) - a.max_list))
            if errors:
                say("dbgstub ERROR lines:")
                for f, n in errors[:50]:
                    say("  %s: %s" % (f, n))
            if better:
                say("passing with dbgstub but not with gdbserver: %d" % len(better))
                for (f, n, occ), r in better[:50]:
                    say("  (gdbserver %s) %s: %s" % (r, f, n))

    text = "\n".join(lines) + "\n"
    sys.stdout.write(text)
    if a.out:
        with open(a.out + ".txt", "w") as f:
            f.write(text)
        with open(a.out + ".json", "w") as f:
            json.dump(report, f, indent=1)
    return 0


if __name__ == "__main__":
    sys.exit(main())
