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
PROGRAMS = os.environ.get("TEST_PROGRAMS", "build/test-programs")


def program(name):
    return os.path.join(PROGRAMS, name)


class Stub:
    """A dbgstub process; `port` is the one it printed on 'Listening on port N'."""

    def __init__(self, *args, wait_listening=True, timeout=20):
        self.args = [DBGSTUB, *args]
        self.proc = subprocess.Popen(self.args, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                                     stderr=subprocess.STDOUT, text=True, errors="replace")
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
