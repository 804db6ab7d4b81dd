"""A stand-in for WinDbg's side of KD over a TCP serial stream (what
`windbg -k com:ipport=PORT,port=HOST` speaks): kdcom framing (leader,
header, checksum, 0xAA trailer), the host's packet ids and acknowledgements,
RESET, RESEND and break-in. No WinDbg runs in the test environment; this
client sends the requests WinDbg sends (replayed from
tests/data/kd/windbg-session.tsv where they fit) and checks what comes back.
Standard library only."""
import os
import socket
import struct
import time

PACKET_LEADER = 0x30303030
CONTROL_LEADER = 0x69696969
BREAKIN = b"\x62"
TRAILER = 0xAA
INITIAL_ID = 0x80800000
SYNC_ID = 0x00000800

STATE_CHANGE64 = 7
STATE_MANIPULATE = 2
DEBUG_IO = 3
ACK = 4
RESEND = 5
RESET = 6

EXCEPTION_STATE_CHANGE = 0x3030
STATUS_SUCCESS = 0
STATUS_PENDING = 0x103
STATUS_BREAKPOINT = 0x80000003
STATUS_UNSUCCESSFUL = 0xC0000001
STATUS_ACCESS_DENIED = 0xC0000022

READ_VIRTUAL = 0x3130
WRITE_VIRTUAL = 0x3131
GET_CONTEXT = 0x3132
WRITE_BREAKPOINT = 0x3134
RESTORE_BREAKPOINT = 0x3135
CONTINUE = 0x3136
READ_CONTROL = 0x3137
CONTINUE2 = 0x313C
GET_VERSION = 0x3146
GET_CONTEXT_EX = 0x315F
MANIPULATE_HEADER = 0x38

CAPTURE = os.path.join(os.path.dirname(__file__), "..", "data", "kd", "windbg-session.tsv")


def checksum(payload):
    return sum(payload) & 0xFFFFFFFF


def frame(ptype, pid, payload):
    return struct.pack("<IHHII", PACKET_LEADER, ptype, len(payload), pid, checksum(payload)) + payload + bytes([TRAILER])


def control(ptype, pid=0):
    return struct.pack("<IHHII", CONTROL_LEADER, ptype, 0, pid, 0)


def manipulate(api, processor=0, union=b"", data=b"", status=STATUS_PENDING):
    union = union.ljust(0x28, b"\0")[:0x28]
    return struct.pack("<IHHII", api, 0, processor, status, 0) + union + data


def recorded_requests():
    """(api, payload) of every host->target manipulate request in the capture."""
    out = []
    with open(CAPTURE) as f:
        for line in f:
            if not line.strip() or line.startswith("#"):
                continue
            direction, hexdata = line.split("\t")[:2]
            b = bytes.fromhex(hexdata.strip())
            ptype, = struct.unpack_from("<H", b, 4)
            if ptype == STATE_MANIPULATE and len(b) >= 16 + MANIPULATE_HEADER:
                api, = struct.unpack_from("<I", b, 16)
                out.append((direction, api, b[16:]))
    return out


def recorded(api):
    """The first recorded request of `api` and the target's reply to it."""
    req = None
    for direction, a, payload in recorded_requests():
        if a != api:
            continue
        if direction == "H->T" and req is None:
            req = payload
        elif direction == "T->H" and req is not None:
            return req, payload
    return req, None


class Packet:
    def __init__(self, leader, ptype, pid, payload):
        self.leader, self.type, self.id, self.payload = leader, ptype, pid, payload

    @property
    def control(self):
        return self.leader == CONTROL_LEADER

    def api(self):
        return struct.unpack_from("<I", self.payload, 0)[0]

    def status(self):
        return struct.unpack_from("<I", self.payload, 8)[0]

    def text(self):
        n, = struct.unpack_from("<I", self.payload, 8)
        return self.payload[16:16 + n].decode("latin-1")

    def __repr__(self):
        return "Packet(type=%d id=%#x %d bytes)" % (self.type, self.id, len(self.payload))


class KdClient:
    """The host side: sends data packets with ids 0x80800000/1 and waits for
    their ACK, acknowledges what the target sends."""

    def __init__(self, port, host="127.0.0.1", timeout=10):
        self.sock = socket.create_connection((host, port), timeout=timeout)
        self.buf = b""
        self.next_id = INITIAL_ID
        self.timeout = timeout
        self.received = []   # data packets, in order, already acknowledged
        self.prints = []     # DEBUG_IO texts

    def close(self):
        try:
            self.sock.close()
        except OSError:
            pass

    def send_raw(self, data):
        self.sock.sendall(data)

    def _fill(self, deadline):
        self.sock.settimeout(max(0.05, deadline - time.time()))
        chunk = self.sock.recv(65536)
        if not chunk:
            raise EOFError("connection closed by the target")
        self.buf += chunk

    def read_packet(self, timeout=None):
        """The next packet (control or data; data packets' checksums are verified)."""
        deadline = time.time() + (timeout or self.timeout)
        while True:
            # Resynchronize on a leader.
            i30, i69 = self.buf.find(b"0000"), self.buf.find(b"iiii")
            starts = [i for i in (i30, i69) if i >= 0]
            if starts:
                start = min(starts)
                self.buf = self.buf[start:]
                if len(self.buf) >= 16:
                    leader, ptype, count, pid, csum = struct.unpack_from("<IHHII", self.buf)
                    if leader == CONTROL_LEADER:
                        self.buf = self.buf[16:]
                        return Packet(leader, ptype, pid, b"")
                    if len(self.buf) >= 16 + count + 1:
                        payload = self.buf[16:16 + count]
                        trailer = self.buf[16 + count]
                        self.buf = self.buf[17 + count:]
                        if trailer != TRAILER or checksum(payload) != csum:
                            raise AssertionError("bad packet from the target")
                        return Packet(leader, ptype, pid, payload)
            if time.time() > deadline:
                raise TimeoutError("no packet from the target")
            self._fill(deadline)

    def ack(self, p):
        self.send_raw(control(ACK, p.id & ~SYNC_ID))

    def reset(self):
        """RESET, then wait for the target's RESET; data sent before it is dropped."""
        self.send_raw(control(RESET))
        while True:
            p = self.read_packet()
            if p.control and p.type == RESET:
                self.next_id = INITIAL_ID
                return

    def next_data(self, timeout=None):
        """The next data packet from the target, acknowledged."""
        while True:
            p = self.read_packet(timeout)
            if p.control:
                continue
            self.ack(p)
            self.received.append(p)
            if p.type == DEBUG_IO:
                self.prints.append(p.text())
            return p

    def wait_state_change(self, timeout=None):
        """Data packets up to the next state change (prints collected)."""
        while True:
            p = self.next_data(timeout)
            if p.type == STATE_CHANGE64:
                return p

    def send_data(self, ptype, payload):
        """Sends a data packet and waits for its ACK (resending on RESEND)."""
        pid = self.next_id
        packet = frame(ptype, pid, payload)
        self.send_raw(packet)
        pending = []
        while True:
            p = self.read_packet()
            if p.control and p.type == ACK and p.id == pid:
                self.next_id ^= 1
                break
            if p.control and p.type == RESEND:
                self.send_raw(packet)
                continue
            if not p.control:
                pending.append(p)
        # Anything that overtook the ACK is handled as received data.
        for p in pending:
            self.ack(p)
            self.received.append(p)
            if p.type == DEBUG_IO:
                self.prints.append(p.text())
        self._overtaken = pending
        return pid

    def request(self, payload, timeout=None):
        """A manipulate request and its reply (debug prints before it collected)."""
        self.send_data(STATE_MANIPULATE, payload)
        for p in self._overtaken:
            if p.type == STATE_MANIPULATE:
                return p
        while True:
            p = self.next_data(timeout)
            if p.type == STATE_MANIPULATE:
                return p
