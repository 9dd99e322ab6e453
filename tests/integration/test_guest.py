# SPDX-License-Identifier: LGPL-2.1-or-later
"""End to end with a real Linux guest (Debian's kernel, TCG, tests/guest/build-guest): the guest's
own `ip` commands fire NIC_RX_FILTER_CHANGED in a real QEMU, and the daemon brings the guest's
filter to the host macvtap that backs the NIC (passed to QEMU as an fd, like libvirt does). A
second NIC on a tap shows that taps are observed but never changed.

The guest image is built once per build dir (BUILD/guest-cache; idempotent, needs the Debian
archive the first time). If it cannot be built, these tests are reported as skipped."""

import os
import shutil
import signal
import socket
import stat
import subprocess
import time

import pytest

from gnhelpers import REPO_ROOT, T, build_dir, guest_dropin, poll

QEMU = shutil.which("qemu-system-x86_64")
pytestmark = [pytest.mark.qemu,
              pytest.mark.skipif(QEMU is None, reason="qemu-system-x86_64 not installed (qemu-system-x86)")]

GMAC = "52:54:00:12:34:56"
TMAC = "52:54:00:12:34:57"


@pytest.fixture(scope="module")
def guest_image():
    cache = os.environ.get("GUESTNETD_GUEST_CACHE") or str(build_dir() / "guest-cache")
    r = subprocess.run([str(REPO_ROOT / "tests" / "guest" / "build-guest"), cache], stdout=subprocess.PIPE,
                       stderr=subprocess.PIPE, text=True, timeout=900)
    if r.returncode != 0:
        pytest.skip("cannot build the test guest: %s" % r.stderr.strip().splitlines()[-3:])
    out = dict(line.split("=", 1) for line in r.stdout.strip().splitlines() if "=" in line)
    return out["kernel"], out["initrd"]


class GuestVM:
    """qemu-system-x86_64 booting the test guest in the namespace; commands over its ttyS1."""

    def __init__(self, netns, workdir, kernel, initrd, qmp_sock, nics):
        self.netns = netns
        self.dir = workdir
        self.kernel, self.initrd = kernel, initrd
        self.qmp_sock = qmp_sock
        self.cmd_sock = os.path.join(workdir, "guest-cmd.sock")
        self.console = os.path.join(workdir, "guest-console.log")
        self.nics = nics  # list of dicts: id, mac, and either "fd" (an open fd) or "ifname"
        self.proc = None
        self.conn = None
        self.buf = b""
        self.seq = 0

    def start(self):
        argv = [QEMU, "-accel", "tcg", "-machine", "pc", "-m", "256", "-nodefaults", "-display", "none",
                "-no-reboot", "-kernel", self.kernel, "-initrd", self.initrd,
                "-append", "console=ttyS0 quiet panic=-1",
                "-serial", "file:%s" % self.console,
                "-chardev", "socket,id=cmd,path=%s,server=on,wait=off" % self.cmd_sock,
                "-device", "isa-serial,chardev=cmd",
                "-qmp", "unix:%s,server=on,wait=off" % self.qmp_sock]
        fds = []
        for i, n in enumerate(self.nics):
            if "fd" in n:
                argv += ["-netdev", "tap,id=hostnet%d,fd=%d" % (i, n["fd"])]
                fds.append(n["fd"])
            else:
                argv += ["-netdev", "tap,id=hostnet%d,ifname=%s,script=no,downscript=no" % (i, n["ifname"])]
            argv += ["-device", "virtio-net-pci,netdev=hostnet%d,id=%s,mac=%s" % (i, n["id"], n["mac"])]
        self._log = open(os.path.join(self.dir, "guest-qemu.log"), "wb")
        self.proc = subprocess.Popen(self.netns.exec_argv(argv), stdin=subprocess.DEVNULL, stdout=self._log,
                                     stderr=self._log, pass_fds=fds)
        self.pid = self.proc.pid
        poll(lambda: self._alive() and os.path.exists(self.cmd_sock) and os.path.exists(self.qmp_sock), 20,
             what="QEMU's sockets")
        return self

    def _alive(self):
        if self.proc.poll() is not None:
            raise AssertionError("QEMU exited (%s); console:\n%s" % (self.proc.returncode, self.console_tail()))
        return True

    def console_tail(self, n=40):
        try:
            with open(self.console, errors="replace") as f:
                return "\n".join(f.read().splitlines()[-n:])
        except OSError:
            return ""

    def _read_until(self, marker, timeout):
        end = time.monotonic() + T(timeout)
        while marker not in self.buf:
            self._alive()
            left = end - time.monotonic()
            if left <= 0:
                raise AssertionError("guest: no %r within %.0fs; console:\n%s" % (marker, T(timeout),
                                                                                 self.console_tail()))
            self.conn.settimeout(min(left, 0.5))
            try:
                d = self.conn.recv(65536)
            except socket.timeout:
                continue
            if not d:
                raise AssertionError("guest command channel closed")
            self.buf += d
        i = self.buf.index(marker)
        out, self.buf = self.buf[:i], self.buf[i + len(marker):]
        return out

    def wait_ready(self, timeout=120):
        self.conn = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        self.conn.connect(self.cmd_sock)
        self._read_until(b"GUEST-READY\n", timeout)

    def sh(self, command, timeout=60, check=True):
        """Runs a shell command in the guest; returns its output."""
        self.seq += 1
        tok = "t%d" % self.seq
        self.conn.sendall(("%s %s\n" % (tok, command)).encode())
        out = self._read_until(("\n__END__ %s " % tok).encode(), timeout)
        rc_line = self._read_until(b"\n", 10)
        rc = int(rc_line.strip() or b"0")
        text = out.decode(errors="replace")
        if check and rc != 0:
            raise AssertionError("guest command %r failed (%d): %s" % (command, rc, text))
        return text

    def stop(self):
        if self.conn:
            self.conn.close()
        if self.proc and self.proc.poll() is None:
            os.kill(self.pid, signal.SIGTERM)
            try:
                self.proc.wait(T(10))
            except subprocess.TimeoutExpired:
                os.kill(self.pid, signal.SIGKILL)
                self.proc.wait()
        if self.proc:
            self._log.close()


def open_macvtap(netns, dev, workdir):
    """Opens the macvtap's character device through our own node (made from the namespace's sysfs
    major:minor), so no /dev/tapIFINDEX name of the host is involved."""
    r = netns.exec("sh", "-c", "cat /sys/class/net/%s/macvtap/tap*/dev" % dev)
    major, minor = (int(x) for x in r.stdout.strip().split(":"))
    node = os.path.join(workdir, "%s.chr" % dev)
    os.mknod(node, stat.S_IFCHR | 0o600, os.makedev(major, minor))
    return os.open(node, os.O_RDWR)


def guest_maddrs(vm, dev="eth0"):
    """The guest's link-layer multicast addresses on dev (ip maddr show)."""
    out = vm.sh("ip maddr show dev %s" % dev)
    return {line.split()[1].lower() for line in out.splitlines() if line.strip().startswith("link ")}


@pytest.fixture
def guest_vm(request, netns, workdir, guest_image):
    vms = []

    def start(qmp_sock, nics):
        vm = GuestVM(netns, workdir, guest_image[0], guest_image[1], qmp_sock, nics)
        vms.append(vm)
        return vm.start()

    yield start
    for vm in vms:
        vm.stop()


def test_real_guest_filter_reaches_host_macvtap(netns, workdir, guest_vm, daemons):
    netns.add_macvtap("mvt0", "lo0")
    netns.add_tap("tap1")
    fd = open_macvtap(netns, "mvt0", workdir)
    try:
        tap_before = netns.host_state("tap1")
        qmp = os.path.join(workdir, "vmg.qmp")
        vm = guest_vm(qmp, [{"id": "net0", "mac": GMAC, "fd": fd}, {"id": "net1", "mac": TMAC, "ifname": "tap1"}])
    finally:
        os.close(fd)  # QEMU has its own copy
    d = daemons(guests={"vmg": guest_dropin("vmg", qmp, "all", {"net0": {"HostInterface": "mvt0"}})})
    d.wait_log(r"guest vmg: connected to QEMU 7\.2\.\d+", timeout=20)
    d.wait_log(r"guest vmg nic net0: host interface mvt0 \(macvtap\)", timeout=20)
    d.wait_log(r"guest vmg nic net1: host interface tap1 \(tap\)", timeout=20)
    vm.wait_ready()

    # `ip link set eth0 up` at boot: promisc off, the guest's multicast groups, VID 0 (8021q)
    want = guest_maddrs(vm)
    assert "33:33:00:00:00:01" in want
    netns.wait_host("mvt0", timeout=30, mac=GMAC, promisc=False, allmulti=False, mcast=want)

    # a multicast group joined in the guest
    vm.sh("ip maddr add 01:00:5e:01:02:03 dev eth0")
    want = guest_maddrs(vm)
    assert "01:00:5e:01:02:03" in want
    netns.wait_host("mvt0", timeout=30, mcast=want)
    vm.sh("ip maddr del 01:00:5e:01:02:03 dev eth0")
    want = guest_maddrs(vm)
    netns.wait_host("mvt0", timeout=30, mcast=want)

    # the guest changes its MAC
    vm.sh("ip link set eth0 address 52:54:00:aa:bb:cc")
    netns.wait_host("mvt0", timeout=30, mac="52:54:00:aa:bb:cc")

    # promisc: the first event shows the old state, the change comes with the next one
    vm.sh("ip link set eth0 promisc on")
    netns.wait_host("mvt0", timeout=30, promisc=True)
    vm.sh("ip link set eth0 promisc off")
    netns.wait_host("mvt0", timeout=30, promisc=False)

    # a real VLAN asks for promiscuous mode (VlanPolicy=improved); VID 0 alone did not
    vm.sh("ip link add link eth0 name eth0.42 type vlan id 42 && ip link set eth0.42 up")
    netns.wait_host("mvt0", timeout=30, promisc=True)
    vm.sh("ip link del eth0.42")
    netns.wait_host("mvt0", timeout=30, promisc=False)

    # allmulticast
    vm.sh("ip link set eth0 allmulticast on")
    netns.wait_host("mvt0", timeout=30, allmulti=True)

    # the tap NIC was observed (its events queried) but never changed
    vm.sh("ip link set eth1 up")
    d.wait_log(r"guest vmg nic net1: filter changed \[.*\]; host \w+", count=2, timeout=30)
    assert netns.host_state("tap1") == tap_before
    assert not d.log_lines(r"guest vmg: disconnected")
