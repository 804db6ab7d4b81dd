"""A real libvirtd for the tests, and transient domains made from the
suite's test VM (tests/vm: vmlinuz + initrd, direct kernel boot, TCG). The
domain XML has no gdbstub and no agent channel: dbgstub opens the stub
itself through the monitor. Tests use virsh to make and end domains (dbgstub
itself uses only libvirt's C API).

    env = libvirt_env.start()            # None, with env.why, where libvirtd cannot run
    dom = env.domain("a", disk=True)    # boots, waits for DBGSTUB-GUEST-READY
    dom.destroy()
"""
import os
import shutil
import subprocess
import sys
import tempfile
import time

sys.path.insert(0, os.path.join(os.path.dirname(__file__), "..", "vm"))
import guest  # noqa: E402

URI = "qemu:///system"
PREFIX = "dbgstub-test-"


def virsh(*args, check=True, timeout=60):
    r = subprocess.run(["virsh", "-q", "-c", URI, *args], capture_output=True, text=True, timeout=timeout)
    if check and r.returncode != 0:
        raise RuntimeError("virsh %s: %s%s" % (" ".join(args), r.stdout, r.stderr))
    return r.stdout


def _running(name):
    return subprocess.run(["pgrep", "-x", name], capture_output=True).returncode == 0


class Unavailable:
    def __init__(self, why):
        self.why = why


def start():
    """Starts virtlogd and libvirtd when they are not running (as root);
    returns an Env, or an Unavailable saying why not."""
    if shutil.which("libvirtd") is None or shutil.which("virsh") is None:
        return Unavailable("libvirtd/virsh are not installed (scripts/install-deps.sh: libvirt-daemon-system)")
    if guest.qemu_path() is None:
        return Unavailable("qemu-system-x86_64 is not installed")
    if os.geteuid() != 0:
        return Unavailable("qemu:///system needs root")
    for daemon in ("virtlogd", "libvirtd"):
        if not _running(daemon):
            r = subprocess.run([daemon, "-d"], capture_output=True, text=True, timeout=30)
            if r.returncode != 0:
                return Unavailable("%s -d failed: %s" % (daemon, r.stderr.strip()))
    deadline = time.time() + 20
    while True:
        r = subprocess.run(["virsh", "-c", URI, "version"], capture_output=True, text=True, timeout=30)
        if r.returncode == 0:
            break
        if time.time() > deadline:
            return Unavailable("libvirtd does not answer: " + r.stderr.strip())
        time.sleep(0.2)
    return Env()


class Domain:
    def __init__(self, env, name, disk):
        self.env = env
        self.name = name
        self.dir = tempfile.mkdtemp(prefix="dbgstub-lv-", dir=env.dir)
        os.chmod(self.dir, 0o755)
        self.console_path = os.path.join(self.dir, "console.log")
        self.disk = None
        if disk:
            # A small qcow2 disk: what makes memory+disk snapshots possible.
            self.disk = os.path.join(self.dir, "disk.qcow2")
            subprocess.run(["qemu-img", "create", "-q", "-f", "qcow2", self.disk, "16M"], check=True, timeout=30)
            os.chmod(self.disk, 0o666)

    def xml(self):
        disk = ""
        if self.disk:
            disk = ("<disk type='file' device='disk'><driver name='qemu' type='qcow2'/>"
                    "<source file='%s'/><target dev='vda' bus='virtio'/></disk>" % self.disk)
        # As tests/vm/guest.py starts QEMU: 256 MiB, 2 vCPUs, the console
        # on the first serial port, nokaslr.
        return """<domain type='qemu'>
  <name>%s</name>
  <memory unit='MiB'>256</memory>
  <vcpu>2</vcpu>
  <os><type arch='x86_64' machine='pc'>hvm</type>
    <kernel>%s/vmlinuz</kernel><initrd>%s/initrd</initrd>
    <cmdline>console=ttyS0 panic=-1 nokaslr</cmdline></os>
  <on_reboot>destroy</on_reboot><on_crash>destroy</on_crash>
  <devices>
    <serial type='file'><source path='%s'/><target port='0'/></serial>
    <memballoon model='none'/>
    %s
  </devices>
</domain>""" % (self.name, self.env.dir, self.env.dir, self.console_path, disk)

    def create(self):
        path = os.path.join(self.dir, "domain.xml")
        with open(path, "w") as f:
            f.write(self.xml())
        # libvirtd may take a while to start QEMU on a loaded machine.
        virsh("create", path, timeout=240)

    def console(self):
        try:
            with open(self.console_path, errors="replace") as f:
                return f.read()
        except OSError:
            return ""

    def wait_ready(self, timeout=120):
        deadline = time.time() + timeout
        while guest.READY not in self.console():
            if time.time() > deadline:
                raise TimeoutError("%s did not print %s within %d s; console tail:\n%s"
                                   % (self.name, guest.READY, timeout, self.console()[-2000:]))
            time.sleep(0.1)

    def qemu_pid(self):
        try:
            with open("/run/libvirt/qemu/%s.pid" % self.name) as f:
                return int(f.read().strip())
        except (OSError, ValueError):
            return None

    def destroy(self):
        virsh("destroy", self.name, check=False)


class Env:
    def __init__(self):
        self.outdir = guest.build()
        # libvirt's QEMU runs as libvirt-qemu: the kernel and initrd must be
        # readable where it looks (the guest's cache may be under /root).
        self.dir = tempfile.mkdtemp(prefix="dbgstub-libvirt-")
        os.chmod(self.dir, 0o755)
        for f in ("vmlinuz", "initrd"):
            shutil.copy(os.path.join(self.outdir, f), os.path.join(self.dir, f))
            os.chmod(os.path.join(self.dir, f), 0o644)
        self.domains = []
        self.cleanup_stale()

    def cleanup_stale(self):
        """Ends test domains a killed run left (their creator is gone)."""
        for name in virsh("list", "--name", check=False).split():
            if name.startswith(PREFIX):
                try:
                    pid = int(name[len(PREFIX):].split("-")[0])
                except ValueError:
                    continue
                if not os.path.exists("/proc/%d" % pid):
                    virsh("destroy", name, check=False)

    def domain(self, tag, disk=False, wait=True):
        d = Domain(self, "%s%d-%s" % (PREFIX, os.getpid(), tag), disk)
        d.create()
        self.domains.append(d)
        if wait:
            d.wait_ready()
        return d

    def close(self):
        for d in self.domains:
            d.destroy()
        shutil.rmtree(self.dir, ignore_errors=True)


def listening_ports(pid):
    """TCP ports process `pid` listens on (from /proc/net/tcp{,6} and its fds)."""
    inodes = set()
    try:
        for fd in os.listdir("/proc/%d/fd" % pid):
            try:
                link = os.readlink("/proc/%d/fd/%s" % (pid, fd))
            except OSError:
                continue
            if link.startswith("socket:["):
                inodes.add(link[8:-1])
    except OSError:
        return set()
    ports = set()
    for table in ("/proc/net/tcp", "/proc/net/tcp6"):
        try:
            with open(table) as f:
                next(f)
                for line in f:
                    cols = line.split()
                    if cols[3] == "0A" and cols[9] in inodes:  # LISTEN
                        ports.add(int(cols[1].rsplit(":", 1)[1], 16))
        except OSError:
            pass
    return ports
