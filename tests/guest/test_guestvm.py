# SPDX-License-Identifier: LGPL-2.1-or-later
"""Smoke test of the test guest itself (tests/guest): build it, boot it under TCG in a fresh
network namespace on a tap and on an fd-passed macvtap, drive it over its command channel and
check on QEMU's own (test) monitor that the guest really programs its virtio-net RX filter.

Run: /usr/bin/python3 -m pytest -v tests/guest (as root). The guest is built into
$GUESTNETD_GUEST_CACHE (default ~/.cache/guestnetd-guest). Nothing here involves the daemon, so
query-rx-filter on the test monitor is fine."""

import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time

import pytest

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from guestvm import GuestError, GuestVM, NetNS, Nic, build_guest  # noqa: E402

pytestmark = [
    pytest.mark.skipif(os.geteuid() != 0, reason="needs root (network namespaces, taps)"),
    pytest.mark.skipif(shutil.which("ip") is None, reason="needs iproute2"),
]

MAC = "52:54:00:12:34:56"


def report(msg):
    """Measurements, shown with pytest -s and in the terminal summary of -rA."""
    print("guestvm: " + msg)


@pytest.fixture(scope="module")
def image():
    t = time.monotonic()
    kernel, initrd = build_guest(os.environ.get("GUESTNETD_GUEST_CACHE"))
    report("build-guest %.1f s -> %s %s" % (time.monotonic() - t, kernel, initrd))
    assert os.path.getsize(kernel) > 1 << 20 and os.path.getsize(initrd) > 1 << 20
    with open(kernel, "rb") as f:
        magic = f.read(4)
    if kernel.endswith("vmlinux"):
        assert magic == b"\x7fELF"
    return kernel, initrd


@pytest.fixture
def workdir():
    d = tempfile.mkdtemp(prefix="guestvm-")
    yield d
    shutil.rmtree(d, ignore_errors=True)


@pytest.fixture
def netns():
    ns = NetNS()
    yield ns
    ns.close()


def wait_for(fn, timeout=15, interval=0.1, what="condition"):
    end = time.monotonic() + timeout
    while True:
        v = fn()
        if v:
            return v
        if time.monotonic() > end:
            raise AssertionError("timed out waiting for " + what)
        time.sleep(interval)


def test_build_is_idempotent(image):
    t = time.monotonic()
    # A second run in a fresh process must find everything cached (only apt-cache lookups).
    r = subprocess.run([os.path.join(os.path.dirname(__file__), "build-guest")]
                       + ([os.environ["GUESTNETD_GUEST_CACHE"]] if os.environ.get("GUESTNETD_GUEST_CACHE") else []),
                       stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, timeout=120)
    assert r.returncode == 0, r.stderr
    assert "up to date" in r.stderr, r.stderr
    assert r.stdout.split() == ["kernel=" + image[0], "initrd=" + image[1]]
    report("cached build-guest %.2f s" % (time.monotonic() - t))


def test_tap_guest_filter(image, netns, workdir):
    netns.add_tap("tap0")
    vm = GuestVM(workdir, netns=netns, nics=[Nic.tap("tap0", mac=MAC)], kernel=image[0], initrd=image[1])
    with vm:
        boot = vm.wait_ready(timeout=120)
        report("boot to GUEST-READY %.2f s (tap)" % boot)
        assert os.path.exists(vm.daemon_qmp)  # the daemon's monitor is there too

        rc, out = vm.run("ip link show eth0")
        assert rc == 0 and "link/ether %s" % MAC in out, out
        assert "state" in out  # iproute2's ip, not busybox's
        assert vm.mac() == MAC

        rtts = []
        for _ in range(10):
            t = time.monotonic()
            assert vm.run("true") == (0, "")
            rtts.append(time.monotonic() - t)
        t = time.monotonic()
        vm.sh("ip maddr show dev eth0")
        report("guest round trip: `true` median %.1f ms (max %.1f), `ip maddr` %.1f ms"
               % (statistics.median(rtts) * 1e3, max(rtts) * 1e3, (time.monotonic() - t) * 1e3))
        assert vm.run("exit 7") == (7, "")
        assert vm.run("echo -n a; echo b >&2") == (0, "ab\n")

        # The boot's `ip link set eth0 up` fired the first event; the state is the guest's.
        vm.wait_event("NIC_RX_FILTER_CHANGED", 10, lambda e: e["data"].get("name") == "net0")
        f = vm.poll_rx_filter("net0", lambda f: not f["promiscuous"] and
                              "33:33:00:00:00:01" in f["multicast-table"])
        assert f["main-mac"] == MAC
        assert f["multicast"] == "normal" and not f["multicast-overflow"]
        assert {"33:33:00:00:00:01", "01:00:5e:00:00:01"} <= set(f["multicast-table"])
        assert set(f["multicast-table"]) <= vm.maddrs() | {"33:33:ff:12:34:56"}
        assert f["vlan-table"] == [0]  # 8021q is loaded

        # promisc on: an event (we re-armed it with the query), and the state follows —
        # possibly only with a second event (Linux's first control-queue update may be stale).
        vm.monitor.events.clear()
        vm.sh("ip link set eth0 promisc on")
        vm.wait_event("NIC_RX_FILTER_CHANGED", 10)
        vm.poll_rx_filter("net0", lambda f: f["promiscuous"])
        vm.sh("ip link set eth0 promisc off")
        vm.poll_rx_filter("net0", lambda f: not f["promiscuous"])

        # a multicast group joined in the guest shows up
        vm.sh("ip maddr add 01:00:5e:01:02:03 dev eth0")
        vm.poll_rx_filter("net0", lambda f: "01:00:5e:01:02:03" in f["multicast-table"])

        # a command that outlives its timeout does not confuse the next one
        with pytest.raises(GuestError):
            vm.run("sleep 2; echo late", timeout=0.5)
        assert vm.run("echo next", timeout=10) == (0, "next\n")
        pid = vm.pid
        assert open("/proc/%d/comm" % pid).read().startswith("qemu-system")
    assert not vm.alive()
    assert not os.path.exists("/proc/%d" % pid) or open("/proc/%d/comm" % pid).read() != "qemu-system-x86\n"


def test_macvtap_guest(image, netns, workdir):
    netns.add_veth("lo0", "lo1")
    netns.add_macvtap("mvt0", "lo0", mode="bridge")
    hostmac = netns.link("mvt0")["address"]
    vm = GuestVM(workdir, netns=netns, nics=[Nic.macvtap("mvt0")], kernel=image[0], initrd=image[1])
    with vm:
        report("boot to GUEST-READY %.2f s (macvtap)" % vm.wait_ready(timeout=120))
        assert vm.mac() == hostmac  # the NIC takes the macvtap's MAC, like libvirt
        f = vm.poll_rx_filter("net0", lambda f: not f["promiscuous"])
        assert f["main-mac"] == hostmac
        # QEMU holds /dev/tapIFINDEX (or our private node of the same device number)
        ifindex = netns.ifindex("mvt0")
        fds = [os.readlink("/proc/%d/fd/%s" % (vm.pid, n)) for n in os.listdir("/proc/%d/fd" % vm.pid)]
        assert any(os.path.basename(p).split(" ")[0] == "tap%d" % ifindex for p in fds), fds

        # The NIC really works: the guest reaches the veth peer through the macvtap.
        netns.ip("addr", "add", "10.99.0.1/24", "dev", "lo1")
        vm.sh("ip addr add 10.99.0.2/24 dev eth0")
        rc, out = vm.run("ping -c 1 -W 5 10.99.0.1", timeout=20)
        assert rc == 0, out

        # bridge mode: the host can give the macvtap the guest's new MAC while QEMU uses it
        newmac = "52:54:00:ab:cd:ef"
        vm.sh("ip link set eth0 address %s" % newmac)
        vm.poll_rx_filter("net0", lambda f: f["main-mac"] == newmac)
        netns.ip("link", "set", "mvt0", "address", newmac)
        vm.sh("ip neigh flush dev eth0")
        rc, out = vm.run("ping -c 1 -W 5 10.99.0.1", timeout=20)
        assert rc == 0, out
    assert not vm.alive()


def test_system_reset_reboots(image, netns, workdir):
    netns.add_tap("tap0")
    with GuestVM(workdir, netns=netns, nics=[Nic.tap("tap0", mac=MAC)], kernel=image[0], initrd=image[1],
                 no_reboot=False) as vm:
        vm.wait_ready(timeout=120)
        vm.sh("ip link set eth0 promisc on")
        vm.poll_rx_filter("net0", lambda f: f["promiscuous"] and f["multicast-table"])
        t = vm.system_reset()
        report("system_reset to GUEST-READY %.2f s" % t)
        vm.wait_event("RESET", 5)
        assert vm.run("cat /sys/class/net/eth0/operstate")[0] == 0
        vm.poll_rx_filter("net0", lambda f: not f["promiscuous"])
