"""What a VM session (--vm, kernel mode) offers gdb in its qSupported reply:
only what it answers (issue #22). It used to offer a user-mode process's
documents and events too, and gdb, seeing qXfer:exec-file:read+, asked
for the machine's executable (twice) and got E5f (EOPNOTSUPP) each time.

The real gdb with `set debug remote 1` (its packet log on stderr) against
dbgstub --vm in front of the suite's QEMU VM (tests/vm):
- the reply offers no exec-file, auxv, libraries-svr4, siginfo, fork/vfork/
  exec events, QDisableRandomization or QCatchSyscalls, and no vCont;r;
- what the VM does answer is still offered (target.xml, threads, osdata
  from the guest's processes) and still works;
- gdb sends no qXfer:exec-file request and gets no E5f.

Skipped only where qemu-system-x86_64 is not installed."""
import os
import re
import sys
import unittest

sys.path.insert(0, os.path.dirname(__file__))
sys.path.insert(0, os.path.join(os.path.dirname(__file__), "..", "vm"))
from harness import Stub, close_stub, gdb  # noqa: E402
import guest  # noqa: E402

# gdb 13's packet log: `[remote] Sending packet: $PAYLOAD#CS` and
# `[remote] Packet received: PAYLOAD`.
SENT = re.compile(r"\[remote\] Sending packet: \$(.*?)#[0-9a-f]{2}\s*$", re.M)
RECEIVED = re.compile(r"\[remote\] Packet received: (.*?)\s*$", re.M)

# Features of a user-mode process target that a VM does not have.
NOT_OFFERED = ["qXfer:exec-file:read", "qXfer:auxv:read", "qXfer:libraries-svr4:read", "qXfer:siginfo:read",
               "qXfer:siginfo:write", "fork-events", "vfork-events", "exec-events", "QDisableRandomization",
               "QCatchSyscalls"]


def supported_reply(log):
    """The stub's features from gdb's packet log: the reply after qSupported."""
    lines = log.splitlines()
    for i, line in enumerate(lines):
        if "Sending packet: $qSupported" in line:
            for later in lines[i + 1:]:
                m = RECEIVED.search(later)
                if m:
                    return m.group(1).split(";")
    raise AssertionError("no qSupported exchange in gdb's log:\n" + log)


@unittest.skipIf(guest.qemu_path() is None,
                 "qemu-system-x86_64 is not installed (scripts/install-deps.sh installs qemu-system-x86)")
class VmCapabilities(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        cls.guest = guest.Guest(boot_timeout=120)
        cls.addClassCleanup(cls.guest.stop)
        cls.guest.start()
        g = cls.guest
        stub = Stub("--vm", f"gdbstub=127.0.0.1:{g.gdb_port},qga={g.qga_path}", "127.0.0.1:0")
        try:
            # Connecting (gdb looks for the executable then), a stop query,
            # a register, the guest's processes, and leaving.
            cls.log = gdb(["info registers rip", "info os processes", "detach"], port=stub.port, timeout=120,
                          pre=["set debug remote 1"])
        finally:
            close_stub(stub)
        cls.features = supported_reply(cls.log)

    def test_reply_offers_no_user_mode_features(self):
        names = [f.rstrip("+-").split("=")[0] for f in self.features]
        for feature in NOT_OFFERED:
            self.assertNotIn(feature, names, self.features)
        self.assertNotIn("vCont;c;C;s;S;t;r", RECEIVED.findall(self.log))  # no range stepping either

    def test_reply_still_offers_what_the_vm_answers(self):
        for feature in ["qXfer:features:read+", "qXfer:threads:read+", "qXfer:osdata:read+", "vContSupported+",
                        "QStartNoAckMode+"]:
            self.assertIn(feature, self.features)
        self.assertRegex(self.log, r"rip +0x[0-9a-f]+")
        self.assertRegex(self.log, r"(?m)^\d+\s+sleep\s*$")  # info os processes, from the guest's memory

    def test_gdb_asks_for_no_exec_file_and_gets_no_e5f(self):
        sent = SENT.findall(self.log)
        self.assertTrue(sent, self.log)
        self.assertEqual([p for p in sent if p.startswith("qXfer:exec-file")], [], self.log)
        self.assertNotIn("E5f", RECEIVED.findall(self.log), self.log)


if __name__ == "__main__":
    unittest.main()
