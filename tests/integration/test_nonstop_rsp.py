"""Non-stop mode (QNonStop:1) driven by hand over the remote protocol, for
races real gdb only hits now and then in GDB's testsuite: every stop the
stub reports must answer a resume, never come twice for one."""
import os
import re
import subprocess
import sys
import time
import unittest

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import harness  # noqa: E402
from harness import free_port_args, inferior_pid, program, rsp_checksum  # noqa: E402

STEPOVER_RACE = program("stepover_race")
SHORT_LIVED_THREAD = program("short_lived_thread")


def symbol_address(prog, pid, name):
    """Run-time address of `name` in the (maybe PIE) program `pid` runs."""
    out = subprocess.run(["nm", prog], capture_output=True, text=True, check=True).stdout
    m = re.search(rf"^([0-9a-f]+) [TtDdBb] {re.escape(name)}$", out, re.M)
    assert m, f"{name} not in {prog}"
    value = int(m.group(1), 16)
    kind = subprocess.run(["readelf", "-h", prog], capture_output=True, text=True, check=True).stdout
    if "DYN" not in kind:
        return value
    real = os.path.realpath(prog)
    with open(f"/proc/{pid}/maps") as f:
        for line in f:
            fields = line.split()
            if len(fields) >= 6 and fields[5] == real and int(fields[2], 16) == 0:
                return int(fields[0].split("-")[0], 16) + value
    raise AssertionError(f"{prog} not mapped in {pid}")


class NonStopClient(harness.RspClient):
    """RspClient that also takes %Stop notifications (kept in self.notes)."""

    def __init__(self, port):
        super().__init__(port)
        self.notes = []

    def read_packet(self, timeout=None, skip_console=True):
        deadline = time.time() + (timeout or self.timeout)
        while True:
            self._take_notes()
            if self.buf.lstrip(b"+-").startswith(b"$"):
                return super().read_packet(max(deadline - time.time(), 0.01), skip_console)
            self._fill(deadline)

    def _take_notes(self):
        while True:
            rest = self.buf.lstrip(b"+-")
            if not rest.startswith(b"%"):
                return
            end = rest.find(b"#")
            if end < 0 or len(rest) < end + 3:
                return
            payload = rest[1:end].decode("latin-1")
            assert rsp_checksum(payload) == int(rest[end + 1:end + 3], 16), payload
            self.notes.append(payload)
            self.buf = rest[end + 3:]

    def wait_note(self, timeout=10.0):
        deadline = time.time() + timeout
        while not self.notes:
            self._take_notes()
            if not self.notes:
                self._fill(deadline)
        return self.notes.pop(0)

    def drain(self, first):
        """The stops a notification announces: `first`, then vStopped's."""
        stops = [first[len("Stop:"):] if first.startswith("Stop:") else first]
        while True:
            r = self.request("vStopped")
            if r == "OK":
                return stops
            stops.append(r)


def thread_of(stop):
    m = re.search(r"thread:([^;]+);", stop)
    return m.group(1) if m else None


class NonStopRsp(harness.StubTestCase):

    def nonstop_client(self, prog):
        """dbgstub started on `prog`, a client connected in non-stop mode
        that has taken the one start stop: (pid, client)."""
        stub = self.stub(*free_port_args(prog))
        pid = inferior_pid(stub)
        c = NonStopClient(stub.port)
        self.addCleanup(c.close)
        c.handshake()
        self.assertEqual(c.request("QNonStop:1"), "OK")
        stops = c.drain(c.request("?"))
        self.assertEqual(len(stops), 1, stops)
        return pid, c

    def test_a_stepped_thread_is_not_stepped_again_by_a_step_over(self):
        # Two threads hit a breakpoint whose target-side condition is false
        # (const 0), so the stub steps them over it again and again, each
        # time stopping the other threads meanwhile; a third is single-
        # stepped 150 times. A step that finished while a step-over was
        # stopping the threads was reported, and then the step-over let
        # the thread go on stepping: a second stop, unasked (gdb: "received
        # signal SIGTRAP" in its displaced-step buffer, or an internal
        # error in interrupt-while-step-over.exp).
        pid, c = self.nonstop_client(STEPOVER_RACE)
        g = symbol_address(STEPOVER_RACE, pid, "g")
        self.assertEqual(c.request(f"Z0,{g:x},1;X3,220027"), "OK")
        self.assertEqual(c.request("vCont;c"), "OK")
        time.sleep(0.3)  # the threads run
        self.assertEqual(c.request("vCont;t"), "OK")
        stopped = {thread_of(s) for s in c.drain(c.wait_note())}
        threads = re.findall(r"p[0-9a-f]+\.[0-9a-f]+", c.request("qfThreadInfo"))
        self.assertEqual(len(threads), 3, threads)
        self.assertEqual(stopped, set(threads))
        spinner = threads[1]  # the leader first, then by thread id
        for i in range(150):
            resume = f"vCont;s:{spinner};c" if i == 0 else f"vCont;s:{spinner}"
            self.assertEqual(c.request(resume), "OK")
            mine = []
            while not mine:
                for s in c.drain(c.wait_note()):
                    if thread_of(s) == spinner:
                        mine.append(s)
                    else:
                        # A hammer's hit taken while the target was being
                        # stopped is reported whatever its condition (gdb
                        # evaluates it again): let it go on.
                        self.assertIn("swbreak", s, f"step {i}: {s}")
                        self.assertEqual(c.request(f"vCont;c:{thread_of(s)}"), "OK")
            self.assertEqual(len(mine), 1, f"step {i}: {mine}")
            self.assertTrue(mine[0].startswith("T05"), f"step {i}: {mine}")
        time.sleep(0.2)
        c._take_notes()
        try:
            c.sock.settimeout(0.2)
            c.buf += c.sock.recv(65536)
        except OSError:
            pass
        c._take_notes()
        # The spinner is stopped: nothing more of it. A hammer let go on in
        # the loop may still report a hit taken while the last step stopped
        # the threads (as above).
        late = [s for s in c.notes if thread_of(s) == spinner or "swbreak" not in s]
        self.assertEqual(late, [], "stops after the last step")
        c.send(f"vKill;{pid:x}")

    def test_a_thread_gone_before_gdb_asks_it_to_stop_is_reported_gone(self):
        # gdb.threads/forking-threads-plus-breakpoint: gdb stops every
        # thread (QThreadEvents:1, the thread list, then vCont;t for each
        # thread it believes runs); one had just returned from its thread
        # function. No stop can come for a thread that is gone, none was
        # reported, and gdb waited for it until the test timed out. Its
        # exit ("w") is the answer, as from gdbserver.
        pid, c = self.nonstop_client(SHORT_LIVED_THREAD)
        self.assertEqual(c.request("vCont;c"), "OK")
        names = {}
        deadline = time.time() + 5
        while len(names) < 2 and time.time() < deadline:
            time.sleep(0.02)
            names = {}
            for tid in os.listdir(f"/proc/{pid}/task"):
                try:
                    with open(f"/proc/{pid}/task/{tid}/comm") as f:
                        names[f.read().strip()] = int(tid)
                except OSError:
                    pass
            names = {n: t for n, t in names.items() if n in ("short_lived", "lasting")}
        self.assertEqual(set(names), {"short_lived", "lasting"})
        short, lasting = (f"p{pid:x}.{names[n]:x}" for n in ("short_lived", "lasting"))
        self.assertIn(short, c.request("qfThreadInfo"))
        self.assertEqual(c.request("QThreadEvents:1"), "OK")
        self.assertEqual(c.request(f"vCont;t:p{pid:x}.{pid:x}"), "OK")
        self.assertEqual([thread_of(s) for s in c.drain(c.wait_note())], [f"p{pid:x}.{pid:x}"])
        deadline = time.time() + 5
        while os.path.exists(f"/proc/{pid}/task/{names['short_lived']}") and time.time() < deadline:
            time.sleep(0.02)
        self.assertFalse(os.path.exists(f"/proc/{pid}/task/{names['short_lived']}"))
        self.assertEqual(c.request(f"vCont;t:{short}"), "OK")
        self.assertEqual(c.drain(c.wait_note()), [f"w00;{short}"])
        self.assertEqual(c.request(f"vCont;t:{lasting}"), "OK")
        self.assertEqual([thread_of(s) for s in c.drain(c.wait_note())], [lasting])
        self.assertEqual(c.request("QThreadEvents:0"), "OK")
        c.send(f"vKill;{pid:x}")


if __name__ == "__main__":
    unittest.main()
