#!/usr/bin/env python3
"""Builds the fuzzers' seed corpus from real traffic logged by
`dbgstub --log-packets` (lines "... <- $payload" and "... <- ^C").

    scripts/fuzz-seed-from-log.py [--out tests/fuzz/corpus] LOG...

Capture logs by running the integration tests with DBGSTUB pointing at a
wrapper that adds --log-packets and copies stderr to a file, e.g.

    #!/bin/bash
    exec build/server/dbgstub --log-packets "$@" 2> >(tee -a /tmp/cap/run-$$.log >&2)

Writes (replacing files it wrote before, prefix "log-"):
  parse_request/  one payload per file, a few samples of each packet kind
  dispatcher/     sessions as on the wire: "$payload#cs" concatenated,
                  0x03 for an interrupt, at most 128 packets each
  framer/         the same sessions with acks ('+'), behind the two
                  configuration bytes fuzz_framer reads first
The selection is greedy on packet kinds so the corpus stays small."""
import argparse
import hashlib
import os
import re
import sys

LINE = re.compile(r"\] \[info\] <- (\$(.*)|\^C)$")
CONNECT = re.compile(r"Remote debugging from host")
MAX_SESSION_PACKETS = 120  # fuzz_dispatcher reads at most 128 packets per input


def unprintable(s):
    """Reverses session.cpp's printable(): \\xNN escapes back to bytes."""
    out = bytearray()
    i = 0
    while i < len(s):
        if s.startswith("\\x", i) and re.fullmatch(r"[0-9a-f]{2}", s[i + 2:i + 4] or ""):
            out.append(int(s[i + 2:i + 4], 16))
            i += 4
        else:
            out += s[i].encode("latin-1", "replace")
            i += 1
    return bytes(out)


def kind(payload):
    """A coarse packet kind: the name up to the first separator, with
    numeric arguments dropped (m1234,8 -> m; Hgp1.2 -> Hg)."""
    if payload == b"\x03":
        return "^C"
    text = payload.decode("latin-1")
    if text[:1] in "mMxXgGpPcCsSZzTkD?!" and not text.startswith(("qC",)):
        head = text[:1]
        if head in "Zz":
            head += text[1:2]  # breakpoint type
        return head
    if text.startswith("H"):
        return text[:2]
    if text.startswith("vFile:"):
        return ":".join(text.split(":")[:2])
    if text.startswith("qXfer:"):
        return ":".join(text.split(":")[:3])
    if text.startswith("qRcmd,"):
        try:
            return "qRcmd " + bytes.fromhex(text[6:]).decode("latin-1").split(" ")[0]
        except ValueError:
            return "qRcmd"
    return re.split(r"[:;,]", text, 1)[0].rstrip("0123456789abcdef") or text[:1]


def frame(payload):
    body = bytearray()
    for b in payload:
        if b in b"#$}*":
            body += bytes([0x7D, b ^ 0x20])
        else:
            body.append(b)
    return b"$" + bytes(body) + b"#" + b"%02x" % (sum(body) & 0xFF)


def read_sessions(paths):
    """Lists of payloads (bytes; b'\\x03' = interrupt), one per connection."""
    sessions = []
    for path in paths:
        current = []
        with open(path, encoding="utf-8", errors="replace") as f:
            for line in f:
                line = line.rstrip("\n")
                if CONNECT.search(line):
                    if current:
                        sessions.append(current)
                    current = []
                    continue
                m = LINE.search(line)
                if not m:
                    continue
                if m.group(1) == "^C":
                    current.append(b"\x03")
                    continue
                text = m.group(2)
                if text.endswith("...") and len(text) > 512:
                    continue  # truncated in the log
                current.append(unprintable(text))
        if current:
            sessions.append(current)
    return sessions


def write(dirpath, name, data):
    os.makedirs(dirpath, exist_ok=True)
    with open(os.path.join(dirpath, name), "wb") as f:
        f.write(data)


def clear_generated(dirpath):
    if os.path.isdir(dirpath):
        for n in os.listdir(dirpath):
            if n.startswith("log-"):
                os.remove(os.path.join(dirpath, n))


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("logs", nargs="+")
    ap.add_argument("--out", default=os.path.join(os.path.dirname(__file__), "..", "tests", "fuzz", "corpus"))
    ap.add_argument("--per-kind", type=int, default=3, help="payload samples per packet kind (parse_request)")
    ap.add_argument("--sessions", type=int, default=40, help="session files (dispatcher, framer)")
    args = ap.parse_args()

    sessions = read_sessions(args.logs)
    if not sessions:
        sys.exit("no '<- $' lines found: were the logs written with --log-packets?")

    # parse_request: a few distinct payloads of each kind, shortest first.
    by_kind = {}
    for s in sessions:
        for p in s:
            if p != b"\x03":
                by_kind.setdefault(kind(p), set()).add(p)
    out_p = os.path.join(args.out, "parse_request")
    clear_generated(out_p)
    n_payloads = 0
    for k in sorted(by_kind):
        samples = sorted(by_kind[k], key=lambda p: (len(p), p))
        picks = samples[:1] + samples[len(samples) // 2:len(samples) // 2 + 1] + samples[-1:]
        for p in list(dict.fromkeys(picks))[:args.per_kind]:
            write(out_p, "log-" + hashlib.sha1(p).hexdigest()[:16], p)
            n_payloads += 1

    # Sessions: cut into chunks, drop repeats inside a chunk (gdb reads the
    # same memory and files over and over), then pick chunks greedily by
    # the packet kinds they add.
    chunks = []
    for s in sessions:
        for i in range(0, len(s), MAX_SESSION_PACKETS * 4):
            seen, chunk, per_kind = set(), [], {}
            for p in s[i:i + MAX_SESSION_PACKETS * 4]:
                k = kind(p)
                if p in seen or per_kind.get(k, 0) >= 6:
                    continue
                seen.add(p)
                per_kind[k] = per_kind.get(k, 0) + 1
                chunk.append(p)
                if len(chunk) >= MAX_SESSION_PACKETS:
                    break
            if chunk:
                chunks.append(chunk)
    covered, chosen = set(), []
    while chunks and len(chosen) < args.sessions:
        best = max(chunks, key=lambda c: (len({kind(p) for p in c} - covered), -len(c)))
        gain = {kind(p) for p in best} - covered
        if not gain and len(chosen) >= args.sessions // 2:
            break
        chosen.append(best)
        chunks.remove(best)
        covered |= gain

    out_d = os.path.join(args.out, "dispatcher")
    out_f = os.path.join(args.out, "framer")
    clear_generated(out_d)
    clear_generated(out_f)
    for idx, c in enumerate(chosen):
        wire = b"".join(b"\x03" if p == b"\x03" else frame(p) for p in c)
        write(out_d, "log-session-%02d" % idx, wire)
        # fuzz_framer: byte 0 selects the packet limit (7 = 16384), byte 1
        # seeds the chunk sizes; acks as gdb sends them.
        acked = b"".join(b"\x03" if p == b"\x03" else b"+" + frame(p) for p in c)
        write(out_f, "log-session-%02d" % idx, bytes([7, (idx * 37 + 11) & 0xFF]) + acked)
    print("%d sessions, %d packets, %d kinds -> %d payloads, %d session files"
          % (len(sessions), sum(map(len, sessions)), len(by_kind), n_payloads, len(chosen)))


if __name__ == "__main__":
    main()
