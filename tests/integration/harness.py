"""Shared helpers for the integration tests: start a real dbgstub on a free
port, drive the real gdb or lldb against it, and clean up. Standard library
only, so the suite runs wherever python3 does."""
import os
import re
import signal
import subprocess
import threading
import time
import unittest

DBGSTUB = os.environ.get("DBGSTUB", "build/server/dbgstub")
# Kernel mode keeps each VM's state file in $STATE_DIRECTORY (the systemd
# unit's), else /var/lib/dbgstub: each test process gets a folder of its
# own, so tests running side by side never share (or lock) a VM's file and
# none writes to the machine's own folder. A test that restarts dbgstub on
# the same state passes --state-dir itself.
if "STATE_DIRECTORY" not in os.environ:
    import atexit
    import shutil
    import tempfile
    os.environ["STATE_DIRECTORY"] = tempfile.mkdtemp(prefix="dbgstub-test-state-")
    atexit.register(shutil.rmtree, os.environ["STATE_DIRECTORY"], True)
PROGRAMS = os.environ.get("TEST_PROGRAMS", "build/test-programs")


def ctl(sock, *args, timeout=60):
    """`dbgstub ctl --socket SOCK ARGS...`: (exit code, stdout, stderr)."""
    r = subprocess.run([DBGSTUB, "ctl", "--socket", sock, *args], capture_output=True, text=True,
                       timeout=timeout)
    return r.returncode, r.stdout, r.stderr


def ctl_status(sock):
    """`ctl status --json`'s VMs by name; asserts that it succeeded."""
    import json
    code, out, err = ctl(sock, "status", "--json")
    assert code == 0, (code, out, err)
    return {v["name"]: v for v in json.loads(out)["vms"]}


def program(name):
    return os.path.join(PROGRAMS, name)


class Stub:
    """A dbgstub process; `port` is the one it printed on 'Listening on port N'."""

    def __init__(self, *args, wait_listening=True, timeout=20, cwd=None):
        self.args = [os.path.abspath(DBGSTUB), *args]
        self.proc = subprocess.Popen(self.args, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                                     stderr=subprocess.STDOUT, text=True, errors="replace", cwd=cwd)
        self.lines = []
        self.port = None
        self._listening = threading.Event()
        self._reader = threading.Thread(target=self._read, daemon=True)
        self._reader.start()
        if wait_listening and not self._listening.wait(timeout):
            self.stop()
            raise AssertionError("dbgstub did not start listening:\n" + self.output())

    def _read(self):
        for line in self.proc.stdout:
            self.lines.append(line)
            m = re.match(r"Listening on port (\d+)", line)
            if m:
                self.port = int(m.group(1))
                self._listening.set()

    def output(self):
        return "".join(self.lines)

    def wait(self, timeout=20):
        """Waits for dbgstub to exit by itself; returns its exit code."""
        code = self.proc.wait(timeout)
        self._reader.join(5)
        return code

    def stop(self):
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        self._reader.join(5)

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.stop()


def free_port_args(*rest):
    """Arguments that make dbgstub listen on a free loopback port."""
    return ["127.0.0.1:0", *rest]


def gdb(commands, port=None, file=None, extended=False, timeout=60, pre=()):
    """Runs gdb in batch mode; connects to `port` first if given. Returns
    stdout and stderr together."""
    cmd = ["gdb", "-nx", "-batch", "-ex", "set confirm off", "-ex", "set pagination off",
           "-ex", "set width 0"]
    for p in pre:
        cmd += ["-ex", p]
    if file:
        cmd += ["-ex", f"file {file}"]
    if port is not None:
        cmd += ["-ex", f"target {'extended-remote' if extended else 'remote'} 127.0.0.1:{port}"]
    for c in commands:
        cmd += ["-ex", c]
    r = subprocess.run(cmd, stdin=subprocess.DEVNULL, capture_output=True, text=True, timeout=timeout,
                       errors="replace")
    return r.stdout + r.stderr


def lldb(commands, timeout=60):
    cmd = ["lldb", "--no-lldbinit", "--batch"]
    for c in commands:
        cmd += ["-o", c]
    r = subprocess.run(cmd, stdin=subprocess.DEVNULL, capture_output=True, text=True, timeout=timeout,
                       errors="replace")
    return r.stdout + r.stderr


def spawn(name, *args):
    """Starts a test program directly (not under a debugger)."""
    return subprocess.Popen([program(name), *args], stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                            stderr=subprocess.STDOUT, text=True)


def process_state(pid):
    """The state letter of /proc/PID/stat ('R', 'S', 't', ...) or None."""
    try:
        with open(f"/proc/{pid}/stat") as f:
            return f.read().rsplit(")", 1)[1].split()[0]
    except OSError:
        return None


def tracer_of(pid):
    try:
        with open(f"/proc/{pid}/status") as f:
            for line in f:
                if line.startswith("TracerPid:"):
                    return int(line.split()[1])
    except OSError:
        return None
    return None


def eventually(pred, timeout=10.0, interval=0.05):
    end = time.time() + timeout
    while time.time() < end:
        if pred():
            return True
        time.sleep(interval)
    return pred()


def main():
    unittest.main(verbosity=2)


# --- Helpers for the attach / extended / lifecycle / differential tests ---

import socket as _socket


def rsp_checksum(payload):
    return sum(payload.encode("latin-1")) & 0xFF


def rsp_frame(payload):
    return f"${payload}#{rsp_checksum(payload):02x}"


class RspClient:
    """A minimal hand-driven GDB remote protocol client over a raw TCP
    socket, for tests that need exact control over the bytes sent."""

    def __init__(self, port, host="127.0.0.1", timeout=10.0):
        self.sock = _socket.create_connection((host, port), timeout=timeout)
        self.timeout = timeout
        self.buf = b""
        self.acks = []   # '+' / '-' bytes seen, in order
        self.console = []  # decoded 'O' packets

    def send_raw(self, data):
        if isinstance(data, str):
            data = data.encode("latin-1")
        self.sock.sendall(data)

    def send(self, payload):
        self.send_raw(rsp_frame(payload))

    def _fill(self, deadline):
        remaining = deadline - time.time()
        if remaining <= 0:
            raise TimeoutError("no reply from the stub; got so far: %r" % self.buf[:200])
        self.sock.settimeout(remaining)
        chunk = self.sock.recv(65536)
        if not chunk:
            raise ConnectionError("the stub closed the connection; unread: %r" % self.buf[:200])
        self.buf += chunk

    def read_ack(self, timeout=None):
        """Next '+' or '-' byte."""
        deadline = time.time() + (timeout or self.timeout)
        while True:
            while self.buf[:1] in (b"+", b"-"):
                c = self.buf[:1].decode()
                self.buf = self.buf[1:]
                self.acks.append(c)
                return c
            if self.buf:
                raise AssertionError("expected an ack, got %r" % self.buf[:200])
            self._fill(deadline)

    def read_packet(self, timeout=None, skip_console=True):
        """Next packet payload (checksum verified, acked with '+'); acks
        before it are recorded in self.acks; 'O' console packets are kept in
        self.console and skipped unless skip_console is False."""
        deadline = time.time() + (timeout or self.timeout)
        while True:
            while self.buf[:1] in (b"+", b"-"):
                self.acks.append(self.buf[:1].decode())
                self.buf = self.buf[1:]
            start = self.buf.find(b"$")
            end = self.buf.find(b"#", start + 1) if start >= 0 else -1
            if start >= 0 and end >= 0 and len(self.buf) >= end + 3:
                payload = self.buf[start + 1:end]
                cs = int(self.buf[end + 1:end + 3], 16)
                self.buf = self.buf[end + 3:]
                if sum(payload) & 0xFF != cs:
                    raise AssertionError("bad checksum from the stub: %r" % payload[:200])
                self.send_raw(b"+")
                text = payload.decode("latin-1")
                if skip_console and text.startswith("O") and text != "OK" and len(text) > 1:
                    try:
                        self.console.append(bytes.fromhex(text[1:]).decode("latin-1"))
                        continue
                    except ValueError:
                        pass
                return text
            self._fill(deadline)

    def request(self, payload, timeout=None):
        """Sends a packet, expects '+', returns the reply payload."""
        self.send(payload)
        return self.read_packet(timeout)

    def handshake(self):
        return self.request("qSupported:multiprocess+;swbreak+;hwbreak+;vContSupported+")

    def close(self):
        try:
            self.sock.close()
        except OSError:
            pass

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()


def pid_alive(pid):
    """True while PID exists and is not a zombie."""
    st = process_state(pid)
    return st is not None and st not in ("Z", "X")


def wait_gone(pid, timeout=10.0):
    return eventually(lambda: not pid_alive(pid), timeout)


def reap(popen, timeout=5):
    """Kills and reaps a subprocess.Popen started by a test (idempotent)."""
    if popen.poll() is None:
        try:
            popen.kill()
        except OSError:
            pass
    try:
        popen.wait(timeout)
    except subprocess.TimeoutExpired:
        pass
    for f in (popen.stdin, popen.stdout, popen.stderr):
        if f:
            try:
                f.close()
            except OSError:
                pass


def spawned_pid_ready(popen, timeout=10.0):
    """Waits until a spawn()ed test program printed its first line (spin
    prints 'spin pid N'), so it is past exec and running main."""
    line = popen.stdout.readline()
    return line


def running_untraced(pid):
    """Alive, not stopped or traced, and no tracer."""
    return pid_alive(pid) and process_state(pid) in ("R", "S", "D") and tracer_of(pid) == 0


def gdb_run(commands, timeout=60, pre=(), args=()):
    """gdb in batch mode with stdout and stderr in one stream (so error
    messages stay in order with the rest). `commands` are -ex commands run
    after `pre`; `args` go before them (e.g. the program)."""
    cmd = ["gdb", "-nx", "-batch", *args, "-ex", "set confirm off", "-ex", "set pagination off",
           "-ex", "set width 0", "-ex", "set height 0"]
    for c in list(pre) + list(commands):
        cmd += ["-ex", c]
    r = subprocess.run(cmd, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                       text=True, timeout=timeout, errors="replace")
    return r.stdout


_HW_WATCH = None


def skip_unless_hardware_watchpoints_fire(test):
    """Skips `test` (a TestCase) on a machine that does not deliver
    debug-register traps: asked of native gdb (no dbgstub), whose `watch`
    on basic's `watched` must fire. Some hypervisors (seen: Firecracker
    with PVM) accept the debug registers and never trap."""
    global _HW_WATCH
    if _HW_WATCH is None:
        out = gdb_run(["break compute", "run", "watch watched", "continue"], args=[program("basic")], timeout=60)
        _HW_WATCH = "Old value = 0" in out
    if not _HW_WATCH:
        test.skipTest("this machine does not deliver hardware watchpoint traps: native gdb's `watch` never fired")


def gdb_popen(commands, pre=(), args=()):
    """Like gdb_run, started in the background (for interrupting it)."""
    cmd = ["gdb", "-nx", "-batch", *args, "-ex", "set confirm off", "-ex", "set pagination off",
           "-ex", "set width 0", "-ex", "set height 0"]
    for c in list(pre) + list(commands):
        cmd += ["-ex", c]
    return subprocess.Popen(cmd, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                            text=True, errors="replace")


def close_stub(stub):
    """Stub.stop() and close its output pipe (for addCleanup)."""
    stub.stop()
    try:
        stub.proc.stdout.close()
    except (OSError, ValueError):
        pass


def inferior_pid(stub):
    """The pid dbgstub printed for the program it started."""
    m = re.search(r"created; pid = (\d+)", stub.output())
    assert m, "dbgstub did not report the program's pid:\n" + stub.output()
    return int(m.group(1))


class StubTestCase(unittest.TestCase):
    """Stubs and raw protocol clients that the test's cleanup closes."""

    def stub(self, *args, **kw):
        s = Stub(*args, **kw)
        self.addCleanup(close_stub, s)
        return s

    def client(self, stub):
        c = RspClient(stub.port)
        self.addCleanup(c.close)
        return c


class GdbTestCase(unittest.TestCase):
    def gdb_or_fail(self, stub, commands, file, timeout):
        """gdb() that turns a hang into a failure showing what gdb printed."""
        try:
            return gdb(commands, port=stub.port, file=file, timeout=timeout)
        except subprocess.TimeoutExpired as e:
            partial = e.stdout.decode(errors="replace") if isinstance(e.stdout, bytes) else (e.stdout or "")
            self.fail(f"gdb did not finish in {timeout} s (dbgstub stopped answering?)\n--- gdb:\n"
                      f"{partial[-3000:]}\n--- dbgstub:\n{stub.output()[-2000:]}")
