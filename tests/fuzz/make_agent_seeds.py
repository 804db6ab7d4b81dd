#!/usr/bin/env python3
"""Writes hand-made seeds for fuzz_agent_expr (tests/fuzz/corpus/agent_expr):
Z0 payloads as gdb sends them (conditions ";X<len>,<hex>", dprintf commands
";cmds:<persist>,X<len>,<hex>"), and raw bytecode (byte 0: mode bits, see
fuzz_agent_expr.cpp). Rewrites the hand-* files only. The gdb-* files are
real Z0 payloads, captured from dbgstub's --log-packets log while gdb 13
ran tests/programs/condloop with the conditions and agent dprintfs of
tests/integration/test_gdb_conditions.py (and one with %c, %5.2s, %lu)."""
import pathlib
import struct

out = pathlib.Path(__file__).resolve().parent / "corpus" / "agent_expr"
out.mkdir(parents=True, exist_ok=True)


def x(code):
    return "X%x,%s" % (len(code), code.hex())


def const(v):
    if v < 0x100:
        return b"\x22" + bytes([v])
    if v < 0x10000:
        return b"\x23" + struct.pack(">H", v)
    if v < 1 << 32:
        return b"\x24" + struct.pack(">I", v)
    return b"\x25" + struct.pack(">Q", v)


def reg(n):
    return b"\x26" + struct.pack(">H", n)


def printf(fmt, nargs):
    s = fmt.encode() + b"\0"
    return b"\x34" + bytes([nargs]) + struct.pack(">H", len(s)) + s


END = b"\x27"
# x == 3 with x at [rbp-0x14], as gdb compiles it for condloop.c
cond_x3 = bytes.fromhex("26000622100222ec16080219162022031327"[:36])
dprintf = const(0x1000) + reg(0) + const(1) + const(0) + printf("x=%d s=%s\\n", 2) + END
dprintf_pad = reg(3) + reg(7) + const(0x1000) + const(1) + const(0) + printf("%-12.5s|%08lx|%c%%\\t", 3) + END

seeds = {
    "hand-Z0-cond": "Z0,555555555160,1;" + x(cond_x3),
    "hand-Z0-two-conds": "Z0,401136,1;" + x(const(2) + END) + x(reg(0) + const(0) + b"\x13" + END),
    "hand-Z0-cmds": "Z0,400000,1;X2,2227;cmds:1,X2,2201X1,27",
    "hand-Z0-dprintf": "Z0,401136,1;cmds:0," + x(dprintf),
    "hand-Z0-cond-dprintf": "Z0,401136,1;" + x(reg(5) + const(10) + b"\x14" + END) + ";cmds:0," + x(dprintf_pad),
    "hand-z0": "z0,401136,1",
}
raw = {
    # byte 0: bit 0 = condition (needs a value), bit 1 = small limits
    "hand-raw-arith": b"\x01" + const(1 << 63) + const(0xff) + b"\x16\x08" + b"\x05" + const(7) + b"\x07" +
                      const(3) + b"\x09" + const(65) + b"\x0a" + END,
    "hand-raw-memory": b"\x01" + const(0x1000) + b"\x19" + reg(16) + b"\x1a" + b"\x13" + const(0x1ffc) + b"\x1a" + END,
    "hand-raw-loop": b"\x01" + const(0) + b"\x28" + const(1) + b"\x02" + b"\x28" + const(200) + b"\x14" +
                     b"\x20\x00\x02" + END,
    "hand-raw-forever": b"\x03" + const(1) + b"\x21\x00\x00",
    "hand-raw-stack": b"\x01" + const(1) + const(2) + const(3) + b"\x33" + b"\x32\x02" + b"\x2b" + b"\x29" +
                      b"\x2a\x10" + b"\x12" + b"\x0e" + END,
    "hand-raw-printf": b"\x00" + const(0) + reg(1) + reg(2) + const(0x1000) + const(1) + const(0) +
                       printf("%s %hhx %5.3d|%p\\n", 4) + END,
    "hand-raw-trace": b"\x02" + const(0x1000) + const(4) + b"\x0c" + const(8) + b"\x0d\x04" + b"\x2e\x00\x01" + END,
    "hand-raw-unsupported": b"\x01" + const(1) + b"\x1e" + END,
}
for name, s in seeds.items():
    (out / name).write_bytes(s.encode())
for name, b in raw.items():
    (out / name).write_bytes(b)
