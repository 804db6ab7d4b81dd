"""Safe defaults: loopback unless told otherwise, with a warning in the log
when listening anywhere else; remote starts and attaches refused unless
allowed (the refusals themselves are tested in test_gdb_extended); the
configuration's allow-lists and files root (Policy)."""
import json
import os
import re
import shutil
import socket
import subprocess
import sys
import tempfile
import unittest

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import harness  # noqa: E402
from harness import Stub, free_port_args, program, spawn, tracer_of  # noqa: E402

BASIC = os.path.abspath(program("basic"))
SPIN = os.path.abspath(program("spin"))


class Security(unittest.TestCase):
    def test_default_is_loopback_without_warning(self):
        with Stub(":0", BASIC) as stub:
            with socket.create_connection(("127.0.0.1", stub.port), timeout=5):
                pass
            self.assertNotIn("reachable from other machines", stub.output())

    def test_other_addresses_warn(self):
        with Stub("--multi", "--allow-run", "0.0.0.0:0") as stub:
            out = stub.output()
        self.assertIn("reachable from other machines", out)
        self.assertIn("start or attach to programs", out)
        self.assertIn("SSH port forwarding", out)


def descriptors_beyond_stdio(pid):
    fds = sorted(int(n) for n in os.listdir(f"/proc/{pid}/fd"))
    return {fd: os.readlink(f"/proc/{pid}/fd/{fd}") for fd in fds if fd > 2}


class Descriptors(unittest.TestCase):
    """A started program gets none of dbgstub's descriptors: left running
    after a detach, it could otherwise accept the next debugger's
    connection on dbgstub's port, or write into the current one."""

    def test_program_from_the_command_line(self):
        with Stub("127.0.0.1:0", SPIN) as stub:
            pid = harness.inferior_pid(stub)
            with harness.RspClient(stub.port) as c:
                c.handshake()
                self.assertEqual(descriptors_beyond_stdio(pid), {})

    def test_program_started_by_the_debugger(self):
        with Stub("--multi", "--allow-run", "127.0.0.1:0") as stub:
            with harness.RspClient(stub.port) as c:
                c.handshake()
                r = c.request("vRun;" + SPIN.encode().hex())
                m = re.search(r"thread:p([0-9a-f]+)\.", r)
                self.assertTrue(m, r)
                self.assertEqual(descriptors_beyond_stdio(int(m.group(1), 16)), {})


class Policy(unittest.TestCase):
    """--config FILE with [HOST]:PORT: the user-mode session's allow-lists
    (vRun, vAttach) and vFile's root, through the real gdb (issue #7)."""

    def setUp(self):
        self.tmp = tempfile.mkdtemp(prefix="dbgstub-policy-")
        self.addCleanup(shutil.rmtree, self.tmp, True)

    def stub(self, policy):
        path = os.path.join(self.tmp, "policy.json")
        with open(path, "w") as f:
            json.dump(policy, f)
        s = Stub("--config", path, "--multi", "127.0.0.1:0")
        self.addCleanup(harness.close_stub, s)
        return s

    def gdb(self, stub, commands, file=None):
        pre = []
        if file:
            pre = [f"set remote exec-file {file}", f"file {file}"]
        return harness.gdb_run(commands, pre=pre + [f"target extended-remote 127.0.0.1:{stub.port}"])

    def test_run_only_allowed_programs(self):
        stub = self.stub({"allow": {"run": [BASIC]}})  # no --allow-run: the list allows
        out = self.gdb(stub, ["break add", "run", "kill"], file=BASIC)
        self.assertIn("Breakpoint 1, add (a=0, b=5)", out)
        out = self.gdb(stub, ["run", "info inferiors", "monitor help"], file=SPIN)
        self.assertIn("on the remote target failed", out)
        self.assertIn("The following monitor commands are supported:", out)  # the session goes on
        self.assertTrue(harness.eventually(
            lambda: f"starting '{SPIN}' is not allowed: not in the configuration's allow.run" in stub.output(), 5),
            stub.output())
        self.assertIsNone(stub.proc.poll())

    def test_attach_only_allowed_processes(self):
        allowed, other = spawn("spin"), spawn("spin")
        for p in (allowed, other):
            self.addCleanup(harness.reap, p)
            p.stdout.readline()
        # Users: nobody's processes (none here); pids: the allowed one.
        stub = self.stub({"allow": {"attach": {"users": ["nobody"], "pids": [allowed.pid]}}})
        out = self.gdb(stub, [f"attach {allowed.pid}", "bt", "detach"], file=SPIN)
        self.assertIn(f"[Inferior 1 (process {allowed.pid}) detached]", out)
        self.assertRegex(out, r"in main \(\) at \S*spin\.c")
        out = self.gdb(stub, [f"attach {other.pid}", "monitor help"], file=SPIN)
        self.assertIn(f"Attaching to process {other.pid} failed", out)
        self.assertIn("The following monitor commands are supported:", out)
        why = (f"attaching to process {other.pid} is not allowed: its owner (uid {os.getuid()}) is not in "
               "the configuration's allow.attach")
        self.assertTrue(harness.eventually(lambda: why in stub.output(), 5), stub.output())
        self.assertEqual(tracer_of(other.pid), 0)
        self.assertTrue(harness.eventually(lambda: harness.running_untraced(allowed.pid), 5))
        self.assertIsNone(stub.proc.poll())

    def test_a_relative_program_on_the_command_line_stays_that_file(self):
        """The operator's PROG is exempt from allow.run. Named relatively, it
        must keep naming the file it named when dbgstub started, whatever
        working directory the debugger sets for the program."""
        decoy = os.path.join(self.tmp, "decoy")
        os.makedirs(decoy)
        shutil.copy(SPIN, os.path.join(decoy, "basic"))  # another program by the same name
        path = os.path.join(self.tmp, "policy.json")
        with open(path, "w") as f:
            json.dump({"allow": {"run": [BASIC]}}, f)
        stub = Stub("--config", path, "--multi", "127.0.0.1:0", "./basic", cwd=os.path.dirname(BASIC))
        self.addCleanup(harness.close_stub, stub)
        with harness.RspClient(stub.port) as c:
            c.handshake()
            self.assertEqual(c.request("QEnableErrorStrings"), "OK")
            self.assertEqual(c.request("QSetWorkingDir:" + decoy.encode().hex()), "OK")
            r = c.request("vRun;" + b"./basic".hex())  # a relative name is the debugger's: refused
            self.assertTrue(r.startswith("E"), r)
            r = c.request("vRun;")  # the command line's program
            m = re.search(r"thread:p([0-9a-f]+)\.", r)
            self.assertTrue(m, r)
            pid = int(m.group(1), 16)
            self.assertEqual(os.path.realpath(f"/proc/{pid}/exe"), os.path.realpath(BASIC))
            self.assertEqual(os.readlink(f"/proc/{pid}/cwd"), os.path.realpath(decoy))  # the working directory still applies

    def test_remote_get_only_beneath_the_files_root(self):
        root = os.path.join(self.tmp, "root")
        os.makedirs(os.path.join(root, "sub"))
        with open(os.path.join(root, "sub", "inside.txt"), "w") as f:
            f.write("inside\n")
        with open(os.path.join(self.tmp, "outside.txt"), "w") as f:
            f.write("outside\n")
        os.symlink(os.path.join(self.tmp, "outside.txt"), os.path.join(root, "link-out"))
        stub = self.stub({"files": {"root": root}})
        got = os.path.join(self.tmp, "got")
        out = self.gdb(stub, [
            f"remote get {root}/sub/inside.txt {got}-1",
            f"remote get {self.tmp}/outside.txt {got}-2",
            f"remote get {root}/../outside.txt {got}-3",
            f"remote get {root}/link-out {got}-4",
            f"remote get /etc/passwd {got}-5"])
        with open(f"{got}-1") as f:
            self.assertEqual(f.read(), "inside\n")
        for i in range(2, 6):
            self.assertFalse(os.path.exists(f"{got}-{i}"), out)
        self.assertEqual(out.count("Permission denied"), 4, out)
        # The log line may still be on its way from dbgstub's stderr.
        self.assertTrue(harness.eventually(lambda: "vFile: refused /etc/passwd: outside the files root" in
                                           stub.output(), 5), stub.output())

    def test_refusals_carry_their_reason_for_clients_that_take_error_strings(self):
        # As lldb: QEnableErrorStrings, then vRun and vAttach outside the lists.
        spin = spawn("spin")
        self.addCleanup(harness.reap, spin)
        spin.stdout.readline()
        stub = self.stub({"allow": {"run": [BASIC], "attach": {"users": ["nobody"]}}})
        with harness.RspClient(stub.port) as c:
            c.handshake()
            self.assertEqual(c.request("QEnableErrorStrings"), "OK")
            r = c.request("vRun;" + SPIN.encode().hex())
            self.assertTrue(r.startswith("E."), r)
            self.assertIn("not in the configuration's allow.run", r)
            r = c.request(f"vAttach;{spin.pid:x}")
            self.assertTrue(r.startswith("E."), r)
            self.assertIn("is not in the configuration's allow.attach", r)
            self.assertEqual(tracer_of(spin.pid), 0)
            # The session goes on: the allowed program runs.
            r = c.request("vRun;" + BASIC.encode().hex())
            self.assertRegex(r, r"^T05")

    def test_bad_policy_names_the_field(self):
        path = os.path.join(self.tmp, "bad.json")
        with open(path, "w") as f:
            json.dump({"allow": {"run": ["relative/prog"]}}, f)
        r = subprocess.run([harness.DBGSTUB, "--config", path, "--multi", "127.0.0.1:0"], capture_output=True,
                           text=True, timeout=20)
        self.assertEqual(r.returncode, 2, r.stderr)
        self.assertIn("allow.run[0]: 'relative/prog' must be an absolute path", r.stderr)


if __name__ == "__main__":
    unittest.main()
