# SPDX-License-Identifier: LGPL-2.1-or-later
"""guestvm: run the tiny test guest (tests/guest/build-guest) in QEMU and drive it.

Python 3 standard library only (used by pytest under /usr/bin/python3 and by scripts/demo).
See tests/guest/README.md. In short::

    from guestvm import GuestVM, NetNS, Nic

    with NetNS() as ns:                                   # fresh namespace, removed at exit
        ns.add_tap("tap0")
        ns.add_veth("lo0", "lo1"); ns.add_macvtap("mvt0", "lo0")
        with GuestVM("/tmp/w", netns=ns.name,
                     nics=[Nic.tap("tap0", mac="52:54:00:12:34:56"), Nic.macvtap("mvt0")]) as vm:
            vm.wait_ready()
            rc, out = vm.run("ip maddr show dev eth0")
            vm.qmp("query-rx-filter", {"name": "net0"})   # test monitor; see caveat below

QEMU gets two QMP monitors: `daemon_qmp` (for the daemon under test; put it in the daemon's
watched directory as NAME.sock if you want it discovered) and `test_qmp` (this module's own).
CAVEAT: `query-rx-filter` on ANY monitor re-arms NIC_RX_FILTER_CHANGED for the NIC (all NICs
without a name). Never call it on the test monitor while measuring what the daemon does: the
daemon would then see events it did not earn (or miss the one-event-per-query throttling).

Every process and link created here is recorded and removed by stop()/close(), also from a
weakref finalizer at interpreter exit; nothing is ever killed or deleted by name pattern.
"""

import json
import os
import re
import signal
import socket
import stat
import subprocess
import threading
import time
import weakref

HERE = os.path.dirname(os.path.abspath(__file__))
BUILD_GUEST = os.path.join(HERE, "build-guest")
QEMU = "qemu-system-x86_64"
DEFAULT_APPEND = "console=ttyS0 quiet"


class GuestError(Exception):
    """QEMU or the guest misbehaved (exited, timed out, closed its channel)."""


class QMPError(Exception):
    """A QMP command returned an error; .error holds QEMU's {"class", "desc"}."""

    def __init__(self, command, error):
        super().__init__("%s: %s: %s" % (command, error.get("class"), error.get("desc")))
        self.error = error


# ------------------------------------------------------------------------------------------ build

_built = {}
_built_lock = threading.Lock()


def build_guest(cache=None, timeout=900):
    """Runs build-guest (idempotent, cached) and returns (kernel, initrd) paths.

    cache: the cache directory (default: build-guest's own default, which honours
    $GUESTNETD_GUEST_CACHE). Raises GuestError with build-guest's stderr on failure."""
    key = cache or ""
    with _built_lock:
        if key in _built:
            return _built[key]
        argv = [BUILD_GUEST] + ([cache] if cache else [])
        r = subprocess.run(argv, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                           stderr=subprocess.PIPE, text=True, timeout=timeout)
        if r.returncode != 0:
            raise GuestError("build-guest failed (%d):\n%s" % (r.returncode, r.stderr[-4000:]))
        out = dict(line.split("=", 1) for line in r.stdout.splitlines() if "=" in line)
        _built[key] = (out["kernel"], out["initrd"])
        return _built[key]


# ------------------------------------------------------------------------------------------ netns

def _run(argv, check=True, **kw):
    r = subprocess.run(argv, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                       stderr=subprocess.PIPE, text=True, **kw)
    if check and r.returncode != 0:
        raise subprocess.CalledProcessError(r.returncode, argv, r.stdout, r.stderr)
    return r


class NetNS:
    """A network namespace for a guest's host devices.

    NetNS() creates a fresh namespace named gvm-PID-N; NetNS("name") adopts an existing one (or
    creates it if missing). close() deletes the links this object created (newest first) and
    the namespace only if this object created it."""

    _seq = 0

    def __init__(self, name=None):
        if name is None:
            NetNS._seq += 1
            name = "gvm-%d-%d" % (os.getpid(), NetNS._seq)
        self.name = name
        self.links = []
        self.created = False
        if name not in self.list():
            _run(["ip", "netns", "add", name])
            self.created = True
        self._fin = weakref.finalize(self, NetNS._cleanup, name, self.links, self.created)
        self.ip("link", "set", "lo", "up")

    @staticmethod
    def list():
        r = _run(["ip", "netns", "list"], check=False)
        return [line.split()[0] for line in r.stdout.splitlines() if line.strip()]

    @staticmethod
    def _cleanup(name, links, created):
        if created:
            _run(["ip", "netns", "delete", name], check=False)
            return
        for link in reversed(links):
            _run(["ip", "-n", name, "link", "delete", link], check=False)

    def close(self):
        self._fin()

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()

    def exec_argv(self, argv):
        return ["ip", "netns", "exec", self.name] + list(argv)

    def exec(self, *argv, check=True):
        """Runs argv inside the namespace; returns the CompletedProcess (text)."""
        return _run(self.exec_argv(argv), check=check)

    def ip(self, *args, check=True):
        """`ip -n NS ARGS...`; returns stdout."""
        return _run(["ip", "-n", self.name] + list(args), check=check).stdout

    def _created(self, name):
        self.links.append(name)
        return name

    def add_veth(self, a="lo0", b="lo1", up=True):
        """A veth pair a <-> b (a is the lower device for macvtaps)."""
        self.ip("link", "add", a, "type", "veth", "peer", "name", b)
        self._created(a)  # deleting one end deletes both
        if up:
            self.ip("link", "set", a, "up")
            self.ip("link", "set", b, "up")
        return a

    def add_macvtap(self, name="mvt0", lower="lo0", mode="bridge", mac=None, up=True):
        """A macvtap on `lower`. mode "bridge" (default) lets the host set any MAC on the macvtap
        itself, so a guest MAC change can be applied without touching the lower device;
        "passthru" also works but moves the lower device's MAC (and makes it promiscuous)."""
        args = ["link", "add", "link", lower, "name", name]
        if mac:
            args += ["address", mac]
        self.ip(*args, "type", "macvtap", "mode", mode)
        self._created(name)
        if up:
            self.ip("link", "set", name, "up")
        return name

    def add_tap(self, name="tap0", up=True):
        """A persistent tun/tap device in tap mode (QEMU opens it by name)."""
        self.ip("tuntap", "add", name, "mode", "tap")
        self._created(name)
        if up:
            self.ip("link", "set", name, "up")
        return name

    def read_sys(self, path):
        """Reads a /sys file as seen inside the namespace (ip netns exec mounts its own /sys)."""
        return self.exec("cat", path).stdout.strip()

    def ifindex(self, dev):
        return int(self.read_sys("/sys/class/net/%s/ifindex" % dev))

    def link(self, dev):
        """`ip -d -j link show dev` as a dict (ifname, address, flags, promiscuity, ...)."""
        return json.loads(self.ip("-d", "-j", "link", "show", "dev", dev))[0]


# ------------------------------------------------------------------------------------------ NICs

class Nic:
    """A guest NIC spec: a virtio-net-pci device on a tap backend.

    kind "tap": QEMU opens the tap device `ifname` by name (`-netdev tap,ifname=...`).
    kind "macvtap": GuestVM opens the macvtap's character device and passes the fd
    (`-netdev tap,fd=N`), like libvirt. mac defaults to the macvtap's own MAC (libvirt does the
    same), or 52:54:00:12:34:(0x56+index) for a tap. id: the device id (default netINDEX);
    id="" creates the device without id= (QEMU then calls it virtio-net-pci.N). netdev: the
    backend id (default hostnetINDEX)."""

    def __init__(self, kind, ifname, mac=None, id=None, netdev=None, extra=""):
        if kind not in ("tap", "macvtap"):
            raise ValueError("Nic kind must be tap or macvtap")
        self.kind, self.ifname, self.mac, self.id, self.netdev = kind, ifname, mac, id, netdev
        self.extra = extra  # appended to -device, e.g. ",addr=0x5"
        self.fd = None
        self.node = None  # the char device node opened for a macvtap

    @classmethod
    def tap(cls, ifname, **kw):
        return cls("tap", ifname, **kw)

    @classmethod
    def macvtap(cls, ifname, **kw):
        return cls("macvtap", ifname, **kw)

    def __repr__(self):
        return "Nic(%s %s id=%s mac=%s)" % (self.kind, self.ifname, self.id, self.mac)


def open_macvtap(ns_name, dev, nodedir):
    """Opens macvtap `dev` of namespace `ns_name`; returns (fd, node path).

    /dev/tapIFINDEX is unreliable outside the initial namespace: devtmpfs (shared by every
    namespace) names the node after the ifindex, which is per namespace, so /dev/tap4 may be
    another namespace's macvtap (or missing). We therefore read the char device's major:minor
    from the namespace's own sysfs and mknod a private node named tapIFINDEX in `nodedir`
    (so /proc/QEMU/fd/N still reads .../tapIFINDEX). /dev/tapIFINDEX is used only when its
    device number matches."""
    ns = ["ip", "netns", "exec", ns_name] if ns_name else []
    r = _run(ns + ["sh", "-c", "cat /sys/class/net/%s/ifindex; cat /sys/class/net/%s/macvtap/tap*/dev"
                   % (dev, dev)])
    ifindex, majmin = r.stdout.split()
    major, minor = (int(x) for x in majmin.split(":"))
    rdev = os.makedev(major, minor)
    node = "/dev/tap%s" % ifindex
    try:
        st = os.stat(node)
        ok = stat.S_ISCHR(st.st_mode) and st.st_rdev == rdev
    except FileNotFoundError:
        ok = False
    if not ok:
        node = os.path.join(nodedir, "tap%s" % ifindex)
        try:
            os.unlink(node)
        except FileNotFoundError:
            pass
        os.mknod(node, stat.S_IFCHR | 0o600, rdev)
    fd = os.open(node, os.O_RDWR)
    if os.fstat(fd).st_rdev != rdev:
        os.close(fd)
        raise GuestError("%s is not %s's macvtap" % (node, dev))
    return fd, node


# ------------------------------------------------------------------------------------------ QMP

class QMP:
    """A small blocking QMP client (capabilities negotiated on connect). Events received while
    waiting for replies are kept in .events (a list of dicts, oldest first)."""

    def __init__(self, path, timeout=10.0):
        self.path = path
        self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        end = time.monotonic() + timeout
        while True:
            try:
                self.sock.connect(path)
                break
            except (FileNotFoundError, ConnectionRefusedError):
                if time.monotonic() > end:
                    raise
                time.sleep(0.02)
        self.buf = b""
        self.events = []
        self._id = 0
        self.lock = threading.Lock()
        self.greeting = self._recv(timeout)
        self.execute("qmp_capabilities")

    def close(self):
        self.sock.close()

    def _recv(self, timeout):
        end = time.monotonic() + timeout
        while b"\n" not in self.buf:
            left = end - time.monotonic()
            if left <= 0:
                raise TimeoutError("QMP %s: no message within %.1f s" % (self.path, timeout))
            self.sock.settimeout(left)
            d = self.sock.recv(65536)
            if not d:
                raise EOFError("QMP %s: connection closed" % self.path)
            self.buf += d
        line, self.buf = self.buf.split(b"\n", 1)
        return json.loads(line) if line.strip() else self._recv(max(0.001, end - time.monotonic()))

    def execute(self, command, arguments=None, timeout=30.0):
        """Returns the command's "return" value; raises QMPError on an "error" reply."""
        with self.lock:
            self._id += 1
            mid = "gvm-%d" % self._id
            msg = {"execute": command, "id": mid}
            if arguments is not None:
                msg["arguments"] = arguments
            self.sock.sendall(json.dumps(msg).encode() + b"\n")
            end = time.monotonic() + timeout
            while True:
                r = self._recv(max(0.001, end - time.monotonic()))
                if "event" in r:
                    self.events.append(r)
                elif r.get("id") == mid:
                    if "error" in r:
                        raise QMPError(command, r["error"])
                    return r.get("return")

    def wait_event(self, name, timeout=10.0, pred=None):
        """Returns (and removes from .events) the first event `name` (matching pred(event) if
        given), waiting up to timeout seconds."""
        end = time.monotonic() + timeout
        with self.lock:
            while True:
                for i, e in enumerate(self.events):
                    if e.get("event") == name and (pred is None or pred(e)):
                        return self.events.pop(i)
                left = end - time.monotonic()
                if left <= 0:
                    raise TimeoutError("no %s event within %.1f s" % (name, timeout))
                try:
                    r = self._recv(left)
                except TimeoutError:
                    continue
                if "event" in r:
                    self.events.append(r)


# ------------------------------------------------------------------------------------------ VM

_MARKER = re.compile(rb"\n__END__ (\S+) (\d+)\n")


class GuestVM:
    """One QEMU (TCG) running the test guest.

    workdir: directory for the sockets, console.log and qemu.log (created if missing).
    netns: name of the network namespace QEMU runs in (None: the current one).
    nics: list of Nic (or dicts {"kind","ifname","mac","id","netdev"}).
    kernel/initrd: default from build_guest() (built on first use).
    daemon_qmp: path of the daemon's monitor (default WORKDIR/daemon-qmp.sock; None for none).
    test_qmp: path of the test's monitor (default WORKDIR/test-qmp.sock); connected on start.
    machine: "pc" (default; i440fx: ACPI PCI hotplug, so device_del completes quickly), "q35".
    ifup: guest interfaces brought up at boot ("all" by default, "none", or "eth0,eth1").
    name/uuid: -name guest=NAME / -uuid UUID (query-name, query-uuid).
    no_reboot: True (default): -no-reboot and panic=-1, so a guest panic or reboot ends QEMU
    (no reboot loops) — but then QMP `system_reset` ALSO ends QEMU (reboot action "shutdown").
    Pass False to test system_reset: no -no-reboot, and panic=0 (a panic hangs, no loop).
    extra_args: more QEMU arguments. append: extra kernel command line.

    start() (or the context manager) launches QEMU and connects to the command channel and the
    test monitor; wait_ready() waits for the guest's GUEST-READY. stop() quits via QMP, then
    kills the recorded PID; it runs from a finalizer too."""

    def __init__(self, workdir, netns=None, nics=(), kernel=None, initrd=None,
                 daemon_qmp="", test_qmp="", machine="pc", memory=256, ifup="all",
                 name=None, uuid=None, append="", extra_args=(), accel="tcg", no_reboot=True):
        self.workdir = os.path.abspath(workdir)
        os.makedirs(self.workdir, exist_ok=True)
        self.netns = netns.name if isinstance(netns, NetNS) else netns
        self.nics = [n if isinstance(n, Nic) else Nic(**n) for n in nics]
        for i, n in enumerate(self.nics):
            if n.id is None:
                n.id = "net%d" % i
            if n.netdev is None:
                n.netdev = "hostnet%d" % i
        self.kernel, self.initrd = kernel, initrd
        self.daemon_qmp = os.path.join(self.workdir, "daemon-qmp.sock") if daemon_qmp == "" else daemon_qmp
        self.test_qmp = os.path.join(self.workdir, "test-qmp.sock") if test_qmp == "" else test_qmp
        self.cmd_sock = os.path.join(self.workdir, "cmd.sock")
        self.console_log = os.path.join(self.workdir, "console.log")
        self.qemu_log = os.path.join(self.workdir, "qemu.log")
        self.machine, self.memory, self.ifup, self.accel = machine, memory, ifup, accel
        self.no_reboot = no_reboot
        self.name, self.uuid, self.append, self.extra_args = name, uuid, append, list(extra_args)
        self.proc = None
        self.pid = None
        self.conn = None
        self.monitor = None
        self.buf = b""
        self._seq = 0
        self._fds = []
        self._nodes = []
        self.t_start = self.t_ready = None
        self.ready = False
        self._state = {"proc": None, "fds": self._fds, "nodes": self._nodes, "socks": []}
        self._fin = weakref.finalize(self, GuestVM._cleanup, self._state)

    # -------------------------------------------------------------- lifecycle

    def argv(self):
        """The QEMU command line (without the `ip netns exec` prefix)."""
        append = DEFAULT_APPEND + (" panic=-1" if self.no_reboot else " panic=0")
        if self.ifup != "all":
            append += " gn_ifup=%s" % self.ifup
        if self.append:
            append += " " + self.append
        a = [QEMU, "-accel", self.accel, "-machine", self.machine, "-m", str(self.memory),
             "-nodefaults", "-display", "none"] + (["-no-reboot"] if self.no_reboot else []) + [
             "-kernel", self.kernel, "-initrd", self.initrd, "-append", append,
             "-serial", "file:%s" % self.console_log,
             "-chardev", "socket,id=cmd,path=%s,server=on,wait=off" % self.cmd_sock,
             "-device", "isa-serial,chardev=cmd"]
        if self.daemon_qmp:
            a += ["-qmp", "unix:%s,server=on,wait=off" % self.daemon_qmp]
        if self.test_qmp:
            a += ["-qmp", "unix:%s,server=on,wait=off" % self.test_qmp]
        if self.name:
            a += ["-name", "guest=%s" % self.name]
        if self.uuid:
            a += ["-uuid", self.uuid]
        for n in self.nics:
            if n.kind == "tap":
                a += ["-netdev", "tap,id=%s,ifname=%s,script=no,downscript=no" % (n.netdev, n.ifname)]
            else:
                a += ["-netdev", "tap,id=%s,fd=%d" % (n.netdev, n.fd)]
            dev = "virtio-net-pci,netdev=%s" % n.netdev
            if n.id:
                dev += ",id=%s" % n.id
            dev += ",mac=%s%s" % (n.mac, n.extra)
            a += ["-device", dev]
        return a + self.extra_args

    def start(self, timeout=20):
        """Launches QEMU; returns once its sockets accept connections (not yet GUEST-READY)."""
        if self.proc is not None:
            raise GuestError("already started")
        if self.kernel is None or self.initrd is None:
            k, i = build_guest()
            self.kernel = self.kernel or k
            self.initrd = self.initrd or i
        for p in (self.cmd_sock, self.console_log, self.test_qmp, self.daemon_qmp):
            if p and os.path.lexists(p):
                os.unlink(p)
        for i, n in enumerate(self.nics):
            if n.kind == "macvtap":
                n.fd, n.node = open_macvtap(self.netns, n.ifname, self.workdir)
                self._fds.append(n.fd)
                if not n.node.startswith("/dev/"):
                    self._nodes.append(n.node)
                if n.mac is None:
                    n.mac = self._read_ns("/sys/class/net/%s/address" % n.ifname)
            elif n.mac is None:
                n.mac = "52:54:00:12:34:%02x" % (0x56 + i)
        argv = self.argv()
        if self.netns:
            argv = ["ip", "netns", "exec", self.netns] + argv
        log = open(self.qemu_log, "ab")
        self.t_start = time.monotonic()
        try:
            self.proc = subprocess.Popen(argv, stdin=subprocess.DEVNULL, stdout=log, stderr=log,
                                         pass_fds=self._fds, start_new_session=True)
        finally:
            log.close()
        # `ip netns exec` execs the command: the child is QEMU itself.
        self.pid = self.proc.pid
        self._state["proc"] = self.proc
        # QEMU keeps its own copies of the macvtap fds.
        for fd in self._fds:
            os.close(fd)
        self._fds.clear()
        end = time.monotonic() + timeout
        self.conn = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        self._state["socks"].append(self.conn)
        while True:
            self._check_alive()
            try:
                self.conn.connect(self.cmd_sock)
                break
            except (FileNotFoundError, ConnectionRefusedError):
                if time.monotonic() > end:
                    raise GuestError("QEMU did not create %s within %d s" % (self.cmd_sock, timeout))
                time.sleep(0.01)
        if self.test_qmp:
            self.monitor = QMP(self.test_qmp, timeout=max(1.0, end - time.monotonic()))
            self._state["socks"].append(self.monitor.sock)
        return self

    def _read_ns(self, path):
        """A file as seen in QEMU's namespace (its own /sys under ip netns exec)."""
        ns = ["ip", "netns", "exec", self.netns] if self.netns else []
        return _run(ns + ["cat", path]).stdout.strip()

    def __enter__(self):
        if self.proc is None:
            self.start()
        return self

    def __exit__(self, *exc):
        self.stop()

    def alive(self):
        return self.proc is not None and self.proc.poll() is None

    def _check_alive(self):
        if self.proc is not None and self.proc.poll() is not None:
            raise GuestError("QEMU exited with %s\nqemu.log:\n%s\nconsole:\n%s"
                             % (self.proc.returncode, self.tail(self.qemu_log), self.tail(self.console_log)))

    @staticmethod
    def tail(path, lines=30):
        try:
            with open(path, errors="replace") as f:
                return "\n".join(f.read().splitlines()[-lines:])
        except OSError:
            return ""

    def console(self):
        """The guest's console (ttyS0) so far."""
        return self.tail(self.console_log, 10 ** 6)

    def stop(self, timeout=10):
        """quit via the test monitor, then SIGKILL the recorded PID if it is still there.
        Closes our sockets and removes the private macvtap nodes. Safe to call twice."""
        if self.monitor and self.alive():
            try:
                self.monitor.execute("quit", timeout=2)
            except Exception:
                pass
        if self.proc is not None:
            try:
                self.proc.wait(timeout)
            except subprocess.TimeoutExpired:
                pass
        self._fin()
        self.monitor = None
        self.conn = None

    @staticmethod
    def _cleanup(state):
        proc = state["proc"]
        if proc is not None and proc.poll() is None:
            try:
                os.kill(proc.pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
            proc.wait()
        for s in state["socks"]:
            try:
                s.close()
            except OSError:
                pass
        for fd in state["fds"]:
            try:
                os.close(fd)
            except OSError:
                pass
        for node in state["nodes"]:
            try:
                os.unlink(node)
            except OSError:
                pass

    def kill(self, sig=signal.SIGKILL, wait=True):
        """Sends sig to QEMU (by its recorded PID); waits for it to exit when wait is true.
        The sockets are left as QEMU leaves them (SIGKILL leaves them on disk)."""
        if not self.alive():
            return
        os.kill(self.pid, sig)
        if wait:
            self.proc.wait(30)

    # -------------------------------------------------------------- guest commands

    def _read_until(self, pattern, timeout):
        """Reads the command channel until the regex matches self.buf; returns the match."""
        end = time.monotonic() + timeout
        while True:
            m = pattern.search(self.buf)
            if m:
                return m
            self._check_alive()
            left = end - time.monotonic()
            if left <= 0:
                raise GuestError("guest: timed out after %.1f s waiting for %r; console:\n%s"
                                 % (timeout, pattern.pattern, self.tail(self.console_log)))
            self.conn.settimeout(min(left, 0.5))
            try:
                d = self.conn.recv(65536)
            except socket.timeout:
                continue
            if not d:
                self._check_alive()
                raise GuestError("guest command channel closed")
            self.buf += d

    def wait_ready(self, timeout=120):
        """Waits for GUEST-READY (NICs up, command channel served). Returns the boot time in
        seconds (QEMU start to GUEST-READY); also in .boot_time."""
        if self.ready:
            return self.boot_time
        m = self._read_until(re.compile(rb"GUEST-READY\r?\n"), timeout)
        self.buf = self.buf[m.end():]
        self.t_ready = time.monotonic()
        self.ready = True
        return self.boot_time

    def system_reset(self, wait=True, timeout=120):
        """QMP system_reset on the test monitor (needs no_reboot=False, else QEMU exits). The
        guest boots again and says GUEST-READY on the same command channel; with wait, waits
        for it and returns the reboot time in seconds. The NICs' filters silently return to
        their reset state (no NIC_RX_FILTER_CHANGED; see rxfilter.md)."""
        if self.no_reboot:
            raise GuestError("system_reset with no_reboot=True would end QEMU")
        t0 = time.monotonic()
        self.ready = False
        self.buf = b""
        self.qmp("system_reset")
        if wait:
            m = self._read_until(re.compile(rb"GUEST-READY\r?\n"), timeout)
            self.buf = self.buf[m.end():]
            self.ready = True
            return time.monotonic() - t0
        return None

    @property
    def boot_time(self):
        return None if self.t_ready is None else self.t_ready - self.t_start

    def run(self, cmd, timeout=60):
        """Runs one shell command line in the guest (busybox sh; `ip` is the full iproute2).
        Returns (exit status, output with stderr merged). The command must be one line."""
        if "\n" in cmd or "\r" in cmd:
            raise ValueError("guest commands are single lines (use ';')")
        if not self.ready:
            self.wait_ready()
        self._seq += 1
        tok = b"c%d" % self._seq
        self.conn.sendall(tok + b" " + cmd.encode() + b"\n")
        pat = re.compile(rb"\n__END__ " + re.escape(tok) + rb" (\d+)\n")
        m = self._read_until(pat, timeout)
        out = self.buf[:m.start()]
        # Output of an earlier command that timed out (and its marker) is dropped.
        stale = list(_MARKER.finditer(out))
        if stale:
            out = out[stale[-1].end():]
        self.buf = self.buf[m.end():]
        return int(m.group(1)), out.decode(errors="replace")

    def sh(self, cmd, timeout=60):
        """run() that raises GuestError unless the command exits 0; returns its output."""
        rc, out = self.run(cmd, timeout)
        if rc != 0:
            raise GuestError("guest command %r failed (%d): %s" % (cmd, rc, out))
        return out

    def mac(self, dev="eth0"):
        return self.sh("cat /sys/class/net/%s/address" % dev).strip()

    def maddrs(self, dev="eth0"):
        """The guest's link-layer multicast addresses on dev (`ip maddr show`), as a set."""
        out = self.sh("ip maddr show dev %s" % dev)
        return {l.split()[1].lower() for l in out.splitlines() if l.strip().startswith("link ")}

    # -------------------------------------------------------------- QMP (test monitor)

    def qmp(self, command, args=None, timeout=30):
        """Executes a command on the TEST monitor; returns its "return" value.
        Do not send query-rx-filter here while measuring the daemon (it re-arms the event)."""
        if self.monitor is None:
            raise GuestError("no test monitor")
        return self.monitor.execute(command, args, timeout)

    def hmp(self, command_line):
        return self.qmp("human-monitor-command", {"command-line": command_line})

    def rx_filter(self, nic="net0"):
        """query-rx-filter for one NIC on the test monitor (RE-ARMS its event: see the caveat)."""
        return self.qmp("query-rx-filter", {"name": nic})[0]

    def wait_event(self, name, timeout=10, pred=None):
        """Waits for a QMP event on the test monitor (events do not re-arm anything)."""
        return self.monitor.wait_event(name, timeout, pred)

    def poll_rx_filter(self, nic, pred, timeout=10, interval=0.1):
        """Queries until pred(filter) is true (re-arms the event each time; see the caveat).
        Linux's first control-queue change after an `ip` command may report the old state."""
        end = time.monotonic() + timeout
        while True:
            f = self.rx_filter(nic)
            if pred(f):
                return f
            if time.monotonic() > end:
                raise GuestError("rx filter of %s never matched; last: %s" % (nic, f))
            time.sleep(interval)
