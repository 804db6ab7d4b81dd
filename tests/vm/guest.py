"""The dbgstub test guest: a small Debian VM under QEMU (TCG), with QEMU's
gdbstub on a loopback TCP port, the QEMU guest agent (QGA) and QMP on unix
sockets. Standard library only.

    from guest import Guest
    with Guest() as g:                       # builds if needed, boots, waits for the ready line
        print(g.gdb_port, g.qga_path, g.qmp_path, g.kernel_release)
        qga = g.qga()                        # a connected Qga client
        print(qga.exec(["uname", "-a"]))     # (exit code, stdout, stderr)
        print(g.ps())                        # [(pid, comm)]
        kallsyms = qga.read_file("/proc/kallsyms", compress=True)  # bytes
        print(g.qmp().status())              # 'running' / 'debug' / 'paused' ...

The QGA channel answers only while the VM runs: not while a debugger
connected to the gdbstub holds it halted (calls then time out).

Environment: DBGSTUB_VM_DIR (where build-guest.sh keeps the guest; default
~/.cache/dbgstub/vm-guest), DBGSTUB_VM_ACCEL (tcg (default) or kvm),
DBGSTUB_VM_KEEP=1 (keep the run folder with console.log and qemu.log),
QEMU (the qemu-system-x86_64 to run).
"""
import base64
import ctypes
import gzip
import json
import os
import shutil
import signal
import socket
import subprocess
import tempfile
import time

HERE = os.path.dirname(os.path.abspath(__file__))
BUILD_SCRIPT = os.path.join(HERE, "build-guest.sh")
READY = "DBGSTUB-GUEST-READY"
QEMU = os.environ.get("QEMU", "qemu-system-x86_64")


def qemu_path():
    """The qemu-system-x86_64 binary, or None if it is not installed."""
    return shutil.which(QEMU)


def default_outdir():
    if os.environ.get("DBGSTUB_VM_DIR"):
        return os.environ["DBGSTUB_VM_DIR"]
    cache = os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache")
    return os.path.join(cache, "dbgstub", "vm-guest")


def build(outdir=None, timeout=900):
    """Runs build-guest.sh (quick when the guest is up to date); returns the
    directory holding vmlinuz and initrd."""
    outdir = outdir or default_outdir()
    r = subprocess.run(["bash", BUILD_SCRIPT, outdir], stdin=subprocess.DEVNULL,
                       capture_output=True, text=True, timeout=timeout, errors="replace")
    if r.returncode != 0:
        raise RuntimeError("build-guest.sh failed (%d):\n%s%s" % (r.returncode, r.stdout, r.stderr))
    return outdir


def free_port():
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _die_with_parent():
    # QEMU gets SIGKILL if the process that started it dies (a test killed by
    # its timeout must not leave a VM behind).
    try:
        libc = ctypes.CDLL(None, use_errno=True)
        libc.prctl(1, signal.SIGKILL)  # PR_SET_PDEATHSIG
    except Exception:
        pass


class _JsonChannel:
    """Newline-delimited JSON over a unix socket (QGA and QMP both end each
    message with a newline; their JSON never contains a raw one)."""

    def __init__(self, path, timeout):
        self.timeout = timeout
        self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        self.sock.settimeout(timeout)
        self.sock.connect(path)
        self.buf = bytearray()

    def close(self):
        try:
            self.sock.close()
        except OSError:
            pass

    def send(self, obj, prefix=b""):
        self.sock.sendall(prefix + json.dumps(obj).encode() + b"\n")

    def read_line(self, deadline):
        while True:
            i = self.buf.find(b"\n")
            if i >= 0:
                line = bytes(self.buf[:i])
                del self.buf[:i + 1]
                return line
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                raise TimeoutError("no reply within the timeout")
            self.sock.settimeout(remaining)
            try:
                chunk = self.sock.recv(1 << 20)
            except socket.timeout:
                raise TimeoutError("no reply within the timeout") from None
            if not chunk:
                raise ConnectionError("the socket was closed")
            self.buf += chunk

    def read_message(self, deadline):
        """Next JSON object; lines that are not one (e.g. stray 0xFF
        delimiters or a partial reply left by an earlier client) are skipped."""
        while True:
            line = self.read_line(deadline).strip(b"\xff \r\t")
            if not line:
                continue
            try:
                msg = json.loads(line)
            except ValueError:
                continue
            if isinstance(msg, dict):
                return msg


class QgaError(RuntimeError):
    pass


class Qga:
    """A QEMU guest agent client. Connecting syncs with the agent
    (guest-sync-delimited, retried until the agent answers or `timeout`
    passes), so replies left over from an earlier client are discarded."""

    def __init__(self, path, timeout=30.0, sync_timeout=60.0):
        self.path = path
        self.timeout = timeout
        self.ch = _JsonChannel(path, timeout)
        self._stale = False
        self._sync(sync_timeout)

    def close(self):
        self.ch.close()

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()

    def _sync(self, timeout):
        deadline = time.monotonic() + timeout
        attempt = 0
        while True:
            attempt += 1
            sync_id = (os.getpid() << 16) + attempt * 7919 + int(time.monotonic() * 1000) % 7919
            # 0xFF first: makes the agent drop any partial request it has.
            self.ch.send({"execute": "guest-sync-delimited", "arguments": {"id": sync_id}}, prefix=b"\xff")
            step = min(deadline, time.monotonic() + 2.0)
            try:
                while True:
                    msg = self.ch.read_message(step)
                    if msg.get("return") == sync_id:
                        return
            except TimeoutError:
                if time.monotonic() >= deadline:
                    raise TimeoutError("the guest agent did not answer guest-sync-delimited within %.0f s" % timeout)

    def call(self, command, arguments=None, timeout=None):
        """Runs one QGA command (arguments: a dict); returns its 'return'
        value, raises QgaError with the agent's error. After a timeout the
        next call first re-syncs (the late reply is then discarded)."""
        if self._stale:
            self._sync(self.timeout)
            self._stale = False
        req = {"execute": command}
        if arguments:
            req["arguments"] = arguments
        self.ch.send(req)
        deadline = time.monotonic() + (timeout or self.timeout)
        try:
            msg = self.ch.read_message(deadline)
        except TimeoutError:
            self._stale = True
            raise TimeoutError("the guest agent did not answer %s within %.0f s (is the VM halted?)"
                               % (command, timeout or self.timeout)) from None
        if "error" in msg:
            raise QgaError("%s: %s" % (command, msg["error"].get("desc", msg["error"])))
        return msg.get("return")

    def ping(self):
        self.call("guest-ping")

    def info(self):
        return self.call("guest-info")

    def exec(self, argv, timeout=60.0, input=None):
        """Runs argv[0] (looked up in the guest's PATH) with argv[1:]; returns
        (exit code, stdout, stderr) with the output decoded as UTF-8."""
        args = {"path": argv[0], "arg": list(argv[1:]), "capture-output": True}
        if input is not None:
            args["input-data"] = base64.b64encode(input.encode() if isinstance(input, str) else input).decode()
        pid = self.call("guest-exec", args)["pid"]
        deadline = time.monotonic() + timeout
        delay = 0.02
        while True:
            st = self.call("guest-exec-status", {"pid": pid})
            if st.get("exited"):
                break
            if time.monotonic() > deadline:
                raise TimeoutError("%r did not exit within %.0f s" % (argv, timeout))
            time.sleep(delay)
            delay = min(delay * 2, 0.5)
        out = base64.b64decode(st.get("out-data", "")).decode("utf-8", "replace")
        err = base64.b64decode(st.get("err-data", "")).decode("utf-8", "replace")
        code = st.get("exitcode", -st.get("signal", 0) if "signal" in st else -1)
        return code, out, err

    def sh(self, script, timeout=60.0):
        """Runs a shell command line in the guest (busybox sh)."""
        return self.exec(["/bin/sh", "-c", script], timeout=timeout)

    def read_file(self, path, chunk=256 << 10, compress=False):
        """The whole content of a guest file (bytes), read with
        guest-file-open / guest-file-read (base64 chunks of `chunk` bytes)
        until EOF. The serial channel carries about 85 KB/s of file data under
        TCG: compress=True has busybox gzip the file into the guest's /tmp
        first (about 4x less to carry for /proc/kallsyms or the BTF) and
        reads that instead."""
        if compress:
            tmp = "/tmp/.qga-read-%d.gz" % int(time.monotonic() * 1e6)
            code, _, err = self.exec(["/bin/sh", "-c", 'gzip -c "$0" > "$1"', path, tmp])
            try:
                if code != 0:
                    raise QgaError("gzip %s in the guest failed (%s): %s" % (path, code, err.strip()))
                return gzip.decompress(self.read_file(tmp, chunk))
            finally:
                self.exec(["rm", "-f", tmp])
        handle = self.call("guest-file-open", {"path": path, "mode": "r"})
        parts = []
        try:
            while True:
                r = self.call("guest-file-read", {"handle": handle, "count": chunk})
                if r.get("count"):
                    parts.append(base64.b64decode(r["buf-b64"]))
                if r.get("eof") or not r.get("count"):
                    break
        finally:
            try:
                self.call("guest-file-close", {"handle": handle})
            except (TimeoutError, QgaError, OSError):
                pass
        return b"".join(parts)


class Qmp:
    """A QMP client (the QEMU monitor's JSON protocol): reads the greeting,
    negotiates capabilities, then runs commands; events are kept in
    self.events."""

    def __init__(self, path, timeout=10.0):
        self.timeout = timeout
        self.ch = _JsonChannel(path, timeout)
        self.events = []
        self.greeting = self.ch.read_message(time.monotonic() + timeout)
        if "QMP" not in self.greeting:
            raise RuntimeError("not a QMP greeting: %r" % self.greeting)
        self.call("qmp_capabilities")

    def close(self):
        self.ch.close()

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()

    def call(self, command, arguments=None):
        req = {"execute": command}
        if arguments:
            req["arguments"] = arguments
        self.ch.send(req)
        deadline = time.monotonic() + self.timeout
        while True:
            msg = self.ch.read_message(deadline)
            if "event" in msg:
                self.events.append(msg)
                continue
            if "error" in msg:
                raise RuntimeError("%s: %s" % (command, msg["error"].get("desc", msg["error"])))
            return msg.get("return")

    def status(self):
        """query-status's 'status': 'running', 'debug' (halted by the
        gdbstub), 'paused', ..."""
        return self.call("query-status")["status"]


class Guest:
    """Boots the test guest (context manager). Attributes once booted:
    gdb_port, qga_path, qmp_path, dir (the temporary run folder),
    boot_seconds, kernel_release, proc (the QEMU Popen)."""

    def __init__(self, outdir=None, memory="256M", smp=2, accel=None, kaslr=False,
                 append="", boot_timeout=60.0, build_guest=True, extra_args=()):
        self.outdir = outdir or default_outdir()
        self.memory = memory
        self.smp = smp
        self.accel = accel or os.environ.get("DBGSTUB_VM_ACCEL", "tcg")
        self.kaslr = kaslr
        self.append = append
        self.boot_timeout = boot_timeout
        self.build_guest = build_guest
        self.extra_args = list(extra_args)
        self.proc = None
        self.dir = None
        self.gdb_port = None
        self.boot_seconds = None
        self.kernel_release = None

    # --- lifecycle ---

    def __enter__(self):
        try:
            self.start()
        except BaseException:
            self.stop()
            raise
        return self

    def __exit__(self, *exc):
        self.stop()

    @property
    def qga_path(self):
        return os.path.join(self.dir, "qga.sock")

    @property
    def qmp_path(self):
        return os.path.join(self.dir, "qmp.sock")

    @property
    def console_path(self):
        return os.path.join(self.dir, "console.log")

    def command(self):
        append = "console=ttyS0 panic=-1" + ("" if self.kaslr else " nokaslr")
        if self.append:
            append += " " + self.append
        return [qemu_path() or QEMU,
                "-nodefaults", "-display", "none", "-no-reboot",
                "-accel", self.accel, "-m", self.memory, "-smp", str(self.smp),
                "-chardev", "file,id=con0,path=%s" % self.console_path,
                "-serial", "chardev:con0",
                "-chardev", "socket,id=qga0,path=%s,server=on,wait=off" % self.qga_path,
                "-serial", "chardev:qga0",
                "-qmp", "unix:%s,server=on,wait=off" % self.qmp_path,
                "-gdb", "tcp:127.0.0.1:%d" % self.gdb_port,
                "-kernel", os.path.join(self.outdir, "vmlinuz"),
                "-initrd", os.path.join(self.outdir, "initrd"),
                "-append", append,
                *self.extra_args]

    def start(self):
        if not qemu_path():
            raise RuntimeError("%s is not installed (scripts/install-deps.sh)" % QEMU)
        if self.build_guest:
            build(self.outdir)
        self.dir = tempfile.mkdtemp(prefix="dbgstub-vm-")
        for attempt in range(3):
            self.gdb_port = free_port()
            t0 = time.monotonic()
            self.qemu_log = open(os.path.join(self.dir, "qemu.log"), "w")
            self.proc = subprocess.Popen(self.command(), stdin=subprocess.DEVNULL, stdout=self.qemu_log,
                                         stderr=subprocess.STDOUT, preexec_fn=_die_with_parent)
            try:
                self._wait_ready(t0)
                return
            except _PortTaken:
                self._kill()  # another process took the port between the check and QEMU's bind: again
        raise RuntimeError("QEMU could not bind a gdbstub port:\n" + self.qemu_output())

    def _wait_ready(self, t0):
        deadline = t0 + self.boot_timeout
        while True:
            text = self.console()
            i = text.find(READY)
            if i >= 0 and "\n" in text[i:]:
                self.boot_seconds = time.monotonic() - t0
                words = text[i:].split("\n", 1)[0].split()
                self.kernel_release = words[1] if len(words) > 1 else None
                return
            if self.proc.poll() is not None:
                qemu_out = self.qemu_output()
                if "tcp:127.0.0.1:%d" % self.gdb_port in qemu_out and "ddress already in use" in qemu_out:
                    raise _PortTaken()
                raise RuntimeError("QEMU exited (%s) before the guest was ready.\nQEMU: %s\nconsole tail:\n%s"
                                   % (self.proc.returncode, qemu_out.strip(), self.console_tail()))
            if time.monotonic() > deadline:
                raise TimeoutError("the guest did not print %s within %.0f s.\nQEMU: %s\nconsole tail:\n%s"
                                   % (READY, self.boot_timeout, self.qemu_output().strip(), self.console_tail()))
            time.sleep(0.05)

    def _kill(self):
        if self.proc is not None and self.proc.poll() is None:
            self.proc.kill()
        if self.proc is not None:
            try:
                self.proc.wait(10)
            except subprocess.TimeoutExpired:
                pass
        if getattr(self, "qemu_log", None):
            self.qemu_log.close()

    def stop(self):
        """Kills QEMU (always: whatever state the VM or a debugger left it in)
        and removes the run folder."""
        self._kill()
        if self.dir and os.environ.get("DBGSTUB_VM_KEEP") != "1":
            shutil.rmtree(self.dir, ignore_errors=True)

    def running(self):
        """True while the QEMU process is alive."""
        return self.proc is not None and self.proc.poll() is None

    # --- output ---

    def console(self):
        try:
            with open(self.console_path, errors="replace") as f:
                return f.read()
        except OSError:
            return ""

    def console_tail(self, lines=40):
        return "\n".join(self.console().splitlines()[-lines:])

    def qemu_output(self):
        try:
            with open(os.path.join(self.dir, "qemu.log"), errors="replace") as f:
                return f.read()
        except OSError:
            return ""

    # --- clients ---

    def qga(self, timeout=30.0):
        """A connected Qga client (close it, or use it with `with`)."""
        return Qga(self.qga_path, timeout=timeout)

    def qmp(self, timeout=10.0):
        """A connected Qmp client (close it, or use it with `with`)."""
        return Qmp(self.qmp_path, timeout=timeout)

    def ps(self):
        """[(pid, comm)] of the guest's processes and kernel threads, via QGA."""
        with self.qga() as q:
            return ps(q)

    def kallsyms(self, names=None):
        """{name: address} from the guest's /proc/kallsyms (first address of
        each name), via QGA. With `names`, only those lines are fetched (a
        grep in the guest: well under a second); the whole file takes ~12 s
        even gzip'd, the agent's serial line being slow."""
        with self.qga() as q:
            if names:
                pattern = " (%s)$" % "|".join(names)
                code, out, err = q.exec(["grep", "-E", pattern, "/proc/kallsyms"])
                if code != 0:
                    raise QgaError("grep in /proc/kallsyms failed (%s): %s" % (code, err))
                return parse_kallsyms(out)
            return parse_kallsyms(q.read_file("/proc/kallsyms", compress=True))


class _PortTaken(Exception):
    pass


def ps(qga):
    """[(pid, comm)] from /proc/*/comm in the guest, sorted by pid."""
    code, out, err = qga.sh('for d in /proc/[0-9]*; do c=$(cat "$d/comm" 2>/dev/null) && '
                            'echo "${d#/proc/} $c"; done')
    if code != 0:
        raise QgaError("ps failed (%s): %s" % (code, err))
    procs = []
    for line in out.splitlines():
        pid, _, comm = line.partition(" ")
        if pid.isdigit():
            procs.append((int(pid), comm))
    return sorted(procs)


def parse_kallsyms(data):
    """{name: address} from /proc/kallsyms text (bytes or str); the first
    entry wins for names that appear more than once."""
    if isinstance(data, bytes):
        data = data.decode("latin-1")
    syms = {}
    for line in data.splitlines():
        parts = line.split()
        if len(parts) >= 3 and parts[2] not in syms:
            syms[parts[2]] = int(parts[0], 16)
    return syms


if __name__ == "__main__":
    # By hand: boots the guest and waits (Ctrl-C stops it).
    import sys
    with Guest() as g:
        print("ready after %.1f s: kernel %s" % (g.boot_seconds, g.kernel_release))
        print("gdb:  gdb -ex 'target remote 127.0.0.1:%d'" % g.gdb_port)
        print("qga:  %s\nqmp:  %s\nconsole: %s" % (g.qga_path, g.qmp_path, g.console_path))
        sys.stdout.flush()
        try:
            while g.running():
                time.sleep(1)
        except KeyboardInterrupt:
            pass
