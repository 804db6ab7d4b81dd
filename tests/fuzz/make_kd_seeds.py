#!/usr/bin/env python3
"""Writes the KD fuzz seeds (tests/fuzz/corpus/kd_framing, kd_manipulate)
from the recorded WinDbg session, tests/data/kd/windbg-session.tsv (16-byte
KD header + payload per row, no trailer), plus a few hand-made inputs.

  kd_framing:    byte 0 (chunking seed), then the host's side of the
                 session as kdcom framing: data packets with their 0xAA
                 trailer, control packets as the bare header.
  kd_manipulate: byte 0 (bit 0: 0 fake kernel, 1 local kernel), then
                 records [op u8][len u16 le][payload] (see
                 fuzz_kd_manipulate.cpp).

Run from anywhere; rewrites the kd_* seed files it owns (session-*, hand-*).
"""
import pathlib
import struct

root = pathlib.Path(__file__).resolve().parents[2]
tsv = root / "tests/data/kd/windbg-session.tsv"
out = root / "tests/fuzz/corpus"

rows = []
for line in tsv.read_text().splitlines():
    if not line or line.startswith("#"):
        continue
    d, h = line.split("\t")
    rows.append((d == "H->T", bytes.fromhex(h)))

host = [b for to_target, b in rows if to_target and b[:4] in (b"0000", b"iiii")]


def kdcom(b):
    return b + b"\xaa" if b[:4] == b"0000" else b


def packet(ptype, pid, payload):
    return struct.pack("<IHHII", 0x30303030, ptype, len(payload), pid, sum(payload) & 0xFFFFFFFF) + payload + b"\xaa"


def control(ptype, pid=0):
    return struct.pack("<IHHII", 0x69696969, ptype, 0, pid, 0)


def write(target, name, data):
    d = out / target
    d.mkdir(parents=True, exist_ok=True)
    (d / name).write_bytes(data)


# kd_framing: the host's stream in 12 pieces of about 22 packets each.
n = 12
step = (len(host) + n - 1) // n
for i in range(n):
    chunk = host[i * step:(i + 1) * step]
    write("kd_framing", f"session-{i:02d}", bytes([i * 21 & 0xFF]) + b"".join(kdcom(b) for b in chunk))

manip = struct.pack("<IHHII", 0x3146, 0, 0, 0, 0) + bytes(0x28)  # GetVersion
write("kd_framing", "hand-reset-breakin-junk",
      b"\x07" + b"\x62\x62\x62\x62" + b"junk" + control(6) + packet(2, 0x80800000, manip) + b"\x62" +
      control(4, 0x80800000) + control(5) + packet(2, 0x80800001, manip) + packet(2, 0x80800001, manip))
bad = bytearray(packet(2, 0x80800000, manip))
bad[12] ^= 1  # checksum
write("kd_framing", "hand-damaged",
      b"\x33" + bytes(bad) + packet(2, 0x80800000, manip)[:-1] + b"\x00" + b"0000" +
      struct.pack("<HHII", 2, 4001, 0x80800000, 0) + b"000" + packet(3, 0x80800000, bytes(0x10)))

# kd_manipulate: the host's manipulate requests, 8 to a file.
reqs = [b[16:] for b in host if b[:4] == b"0000" and struct.unpack_from("<H", b, 4)[0] == 2]


def rec(op, payload):
    return struct.pack("<BH", op, len(payload)) + payload


for i in range(0, len(reqs), 8):
    k = i // 8
    write("kd_manipulate", f"session-{k:02d}", bytes([k % 4 == 3]) + b"".join(rec(0, p) for p in reqs[i:i + 8]))


def mreq(api, union=b"", data=b"", processor=0):
    return struct.pack("<IHHII", api, 0, processor, 0x103, 0) + union.ljust(0x28, b"\0") + data


K = 0xFFFFFFFF81000000
# Continue2 with TraceFlag and Dr7 (Dr0 from SetContext first), a step stop, a break-in while running.
setctx_flags = 0x10001F  # CONTEXT_AMD64 | ALL
ctx = bytearray(0x4D0)
struct.pack_into("<I", ctx, 0x30, setctx_flags)
struct.pack_into("<Q", ctx, 0x48, K + 0x100)  # Dr0
struct.pack_into("<Q", ctx, 0xF8, K + 0x20)  # Rip
write("kd_manipulate", "hand-continue-step",
      b"\x00" + rec(0, mreq(0x3133, struct.pack("<I", setctx_flags), bytes(ctx))) +
      rec(0, mreq(0x313C, struct.pack("<IIQQQ", 0x10001, 1, 0x000D0001, 0, 0))) + rec(5, b"") + rec(7, b"\x02") +
      rec(0, mreq(0x3132)) + rec(0, mreq(0x3136, struct.pack("<I", 0x10002))) + rec(7, b"\x01") +
      rec(0, mreq(0x3150, processor=1)) + rec(6, b""))
write("kd_manipulate", "hand-breakpoints",
      b"\x00" + rec(0, mreq(0x3134, struct.pack("<QI", K + 0x40, 0))) + rec(0, mreq(0x3135, struct.pack("<I", 1))) +
      rec(0, mreq(0x3147, struct.pack("<II", 2, 0), struct.pack("<QQQQ", K + 0x10, 0, K + 0x20, 0))) +
      rec(0, mreq(0x3148, struct.pack("<II", 2, 0), struct.pack("<QQQQ", 0, 2, 0, 3))) +
      rec(0, mreq(0x3131, struct.pack("<QI", K + 0x200, 4), b"\xcc\xcc\xcc\xcc")) +
      rec(0, mreq(0x3130, struct.pack("<QI", K + 0x1FF0, 0x40))))
write("kd_manipulate", "hand-control-space",
      b"\x00" + rec(0, mreq(0x3137, struct.pack("<QI", 2, 0xF0))) +
      rec(0, mreq(0x3138, struct.pack("<QI", 2, 0xE0), bytes(0xE0))) +
      rec(0, mreq(0x315F, struct.pack("<II", 0x100, 0x20))) +
      rec(0, mreq(0x3160, struct.pack("<II", 0xF8, 8), struct.pack("<Q", K + 0x30))) +
      rec(0, mreq(0x3152, struct.pack("<I", 0xC0000080))) + rec(0, mreq(0x315C, struct.pack("<QQII", K, 0, 0, 0))) +
      rec(4, b"\x03" + struct.pack("<IHHI", 0x3231, 0, 0, 0).ljust(0x10, b"\0")))
write("kd_manipulate", "hand-local-kernel",
      b"\x01" + rec(0, mreq(0x3146)) + rec(0, mreq(0x313C, struct.pack("<IIQQQ", 0x10001, 0, 0, 0, 0))) +
      rec(0, mreq(0x3134, struct.pack("<QI", K, 0))) + rec(0, mreq(0x3131, struct.pack("<QI", K, 1), b"\xcc")) +
      rec(0, mreq(0x3130, struct.pack("<QI", K, 0x10))) + rec(5, b""))
