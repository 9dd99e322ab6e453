# SPDX-License-Identifier: LGPL-2.1-or-later
"""End to end, lifecycles: the same setup as test_e2e_filters.py (real QEMU + Linux guest in a
network namespace, net0 on tap0 untrusted, net1 on the fd-passed macvtap mvt0; guestnetd on a
private bus with a real polkitd, outside the namespace, finding QEMU's through SO_PEERCRED), but
the guest comes from a drop-in (allow-life.conf: its QMP socket outside the watched directory, so
QEMU can be killed and started again on the same socket, and `[Nic net1] Trust=all`).

Scenarios: the daemon started after the guest booted (the boot event was lost); a daemon restart
(the guest changed meanwhile; the persisted baseline is still the pre-guest state); QEMU killed →
disconnected and reverted, started again → reconnected and synced; system_reset → NetEvent RESET
and a resync to the post-reset state; device_del → NetEvent DEVICE_DELETED, host reverted, NIC
object removed. Each test brings the daemon and the guest into the state it needs (booting a
fresh guest only when it must), so any one of them can run alone (-k)."""

import os

import pytest

from e2e_helpers import (QEMU, ROOT_PATH, Nic, Nicx, World, check_filter_signal, converge, final_check,
                         get_all, guest_dev_by_mac, guest_path, managed_paths, set_trust_busctl,
                         wait_guest_state)
from gnhelpers import poll

pytestmark = [
    pytest.mark.qemu,
    pytest.mark.skipif(os.geteuid() != 0, reason="needs root (network namespaces, taps)"),
    pytest.mark.skipif(QEMU is None, reason="qemu-system-x86_64 not installed (qemu-system-x86)"),
]

GUEST = "allow-life"
GPATH = guest_path(GUEST)
TAP_MAC = "52:54:00:12:34:56"


class Life:
    """The module's world plus the guest's lifecycle bookkeeping."""

    def __init__(self):
        self.w = World("e2e-lifecycle")
        self.sock = self.w.workdir / "vm" / "allow-life.qmp"
        try:
            self.w.daemon.add_dropin("%s.conf" % GUEST,
                                     "[Guest]\nQmpSocket=%s\n\n[Nic net1]\nTrust=all\n" % self.sock)
            self.mvt_baseline = self.w.ns.host_state("mvt0")
        except BaseException:
            self.w.close()
            raise
        self.tap = Nicx(GUEST, "net0", "tap", "tap0")
        self.mvt = Nicx(GUEST, "net1", "macvtap", "mvt0")
        self.tap.trusted, self.mvt.trusted = False, True
        self.mvt.baseline = self.mvt_baseline
        self.tap.baseline = None
        self.booted_with_daemon = False
        self.net1_deleted = False

    @property
    def vm(self):
        return self.w.vm

    def boot(self):
        """A fresh guest (QEMU restarted on the same socket if one ran)."""
        if self.vm is not None and self.vm.alive():
            self.vm.stop()
        self.w.start_vm([Nic.tap("tap0", mac=TAP_MAC), Nic.macvtap("mvt0", mac=self.mvt_baseline["mac"])],
                        daemon_qmp=self.sock, no_reboot=False)
        self.booted_with_daemon = self.w.daemon_running()
        self.net1_deleted = False
        self.tap.dev = guest_dev_by_mac(self.vm, TAP_MAC)
        self.mvt.dev = guest_dev_by_mac(self.vm, self.mvt_baseline["mac"])
        if self.tap.baseline is None:
            self.tap.baseline = self.w.ns.host_state("tap0")  # QEMU has opened it

    def ensure(self, daemon=True):
        """A running guest with both NICs (booted fresh if needed) and the daemon running (or not),
        both NICs settled when the daemon runs."""
        if self.vm is None or not self.vm.alive() or self.net1_deleted:
            if not daemon and self.w.daemon_running():
                self.w.stop_daemon()
            self.boot()
        if daemon and not self.w.daemon_running():
            self.w.start_daemon()
        elif not daemon and self.w.daemon_running():
            self.w.stop_daemon()
        if daemon:
            wait_guest_state(self.w.env, GPATH, "connected")
            self.settle()

    def settle(self, timeout=30):
        out = {}
        for n in (self.tap, self.mvt):
            out[n.id] = converge(self.w.env, self.w.ns, self.vm, n, trusted=n.trusted, baseline=n.baseline,
                                 timeout=timeout)
        return out

    def step(self, nic, cmd, changed=()):
        mark = self.w.sig.mark()
        self.vm.sh(cmd.replace("DEV", nic.dev))
        f, props, host = converge(self.w.env, self.w.ns, self.vm, nic, trusted=nic.trusted, baseline=nic.baseline)
        check_filter_signal(self.w.sig, mark, nic, props, "applied" if nic.trusted else "observed", changed)
        return f, props, host

    def dirty(self, mac="52:54:00:aa:bb:33", group="01:00:5e:0a:0b:0c"):
        """The guest moves the macvtap NIC away from the baseline: MAC, a group, promiscuous."""
        f, props, host = self.step(self.mvt, "ip link set DEV address %s && ip maddr add %s dev DEV && "
                                             "ip link set DEV promisc on" % (mac, group))
        assert host["mac"] == mac and group in host["mcast"] and host["promisc"] is True
        return mac, group

    def assert_baseline(self, timeout=20):
        """mvt0 back to exactly its state before any guest: guestnetd undid all it did."""
        return self.w.ns.wait_host("mvt0", timeout=timeout, **self.mvt_baseline)


@pytest.fixture(scope="module")
def life():
    lf = Life()
    try:
        yield lf
    finally:
        lf.w.close()


@pytest.fixture(autouse=True)
def _report(request, life):
    request.node._gn_daemons = life.w.report()


def test_daemon_started_after_guest_booted(life):
    """The guest booted and changed its filter with no daemon around (its NIC_RX_FILTER_CHANGED
    went to nobody, and QEMU sends no more until someone queries): the daemon's first full query
    still picks the filter up, syncs the host, and re-arms the events."""
    if life.booted_with_daemon or life.w.daemon_running():
        if life.w.daemon_running():
            life.w.stop_daemon()
        life.boot()
    life.ensure(daemon=False)
    assert not life.booted_with_daemon
    life.vm.sh("ip maddr add 01:00:5e:01:01:01 dev %s && ip link set %s promisc on" % (life.mvt.dev, life.mvt.dev))

    life.w.start_daemon()
    wait_guest_state(life.w.env, GPATH, "connected")
    (_, props, host), = [life.settle()["net1"]]
    assert "01:00:5e:01:01:01" in props["MulticastTable"] and props["Promiscuous"] is True
    assert "01:00:5e:01:01:01" in host["mcast"] and host["promisc"] is True

    # Later events keep coming (the initial query re-armed them).
    _, props, host = life.step(life.mvt, "ip maddr add 01:00:5e:01:01:02 dev DEV && ip link set DEV promisc off",
                               ["MulticastTable", "Promiscuous"])
    assert "01:00:5e:01:01:02" in host["mcast"] and host["promisc"] is False
    _, props, _ = life.step(life.tap, "ip link set DEV allmulticast on", ["MulticastMode"])
    assert props["MulticastMode"] == "all"
    life.step(life.tap, "ip link set DEV allmulticast off", ["MulticastMode"])
    final_check(life.vm, life.mvt, get_all(life.w.env, life.mvt.path))


def test_daemon_restart(life):
    """Stopping the daemon leaves the host as it is; the guest changes meanwhile; the restarted
    daemon picks the new filter up, keeps receiving events, and still knows the real baseline
    (persisted), so revoking trust after the restart goes back to the pre-guest state."""
    life.ensure(daemon=True)
    mac, group = life.dirty()
    life.w.stop_daemon()
    host_at_stop = life.w.ns.host_state("mvt0")
    assert host_at_stop["mac"] == mac and host_at_stop["promisc"] is True  # not reverted on stop

    life.vm.sh("ip link set %s promisc off && ip maddr add 01:00:5e:02:02:02 dev %s" % (life.mvt.dev, life.mvt.dev))
    life.w.start_daemon()
    wait_guest_state(life.w.env, GPATH, "connected")
    _, props, host = life.settle()["net1"]
    assert props["Promiscuous"] is False and "01:00:5e:02:02:02" in props["MulticastTable"]
    assert host["promisc"] is False and "01:00:5e:02:02:02" in host["mcast"] and host["mac"] == mac

    _, props, host = life.step(life.mvt, "ip link set DEV allmulticast on", ["MulticastMode"])
    assert host["allmulti"] is True
    life.step(life.mvt, "ip link set DEV allmulticast off", ["MulticastMode"])

    # The baseline survived the restart: revoking (as nobody, authorized by polkit) restores the
    # macvtap as it was before the guest ever ran, not as it was when the daemon restarted.
    r = set_trust_busctl(life.w.env, life.mvt.path, [])
    assert r.returncode == 0, r.stderr
    try:
        life.assert_baseline()
    finally:
        r = set_trust_busctl(life.w.env, life.mvt.path, ["all"])
        assert r.returncode == 0, r.stderr
    _, _, host = life.settle()["net1"]
    assert host["mac"] == mac


def test_qemu_killed_and_started_again(life):
    """QEMU dies (SIGKILL: the socket stays behind): the guest goes `disconnected` and the host
    device reverts to its baseline. QEMU started again on the same socket: the daemon reconnects
    by itself and syncs the new guest."""
    life.ensure(daemon=True)
    life.dirty()
    mark = life.w.sig.mark()
    life.w.kill_vm()
    wait_guest_state(life.w.env, GPATH, "disconnected")
    life.w.sig.wait(mark, lambda s: s["member"] == "PropertiesChanged" and s["path"] == GPATH
                    and s["args"][1].get("State") == "disconnected", what="State disconnected signal")
    life.assert_baseline()

    mark = life.w.sig.mark()
    life.boot()
    wait_guest_state(life.w.env, GPATH, "connected", timeout=40)
    life.w.sig.wait(mark, lambda s: s["member"] == "PropertiesChanged" and s["path"] == GPATH
                    and s["args"][1].get("State") == "connected", what="State connected signal")
    _, props, host = life.settle()["net1"]
    assert props["Mac"] == life.mvt_baseline["mac"] and host["promisc"] is False
    # Events flow on the new connection.
    _, props, host = life.step(life.mvt, "ip link set DEV promisc on", ["Promiscuous"])
    assert host["promisc"] is True
    life.step(life.mvt, "ip link set DEV promisc off", ["Promiscuous"])


def test_system_reset(life):
    """system_reset: QEMU puts the NICs' filters back to their reset state without an event; the
    daemon relays NetEvent RESET, queries again (MacChanged reason `reset`), and once the guest has
    booted again the host device matches the rebooted guest."""
    life.ensure(daemon=True)
    mac, group = life.dirty()
    mark = life.w.sig.mark()
    life.vm.system_reset()  # waits for GUEST-READY of the rebooted guest
    ev = life.w.sig.wait(mark, lambda s: s["member"] == "NetEvent" and s["path"] == GPATH and s["args"][0] == "RESET",
                         what="NetEvent RESET")
    assert "timestamp" in ev["args"][1]
    life.w.sig.wait(mark, lambda s: s["member"] == "MacChanged" and s["path"] == life.mvt.path
                    and s["args"] == [mac, life.mvt_baseline["mac"], "reset"], what="MacChanged (reset)")
    _, props, host = life.settle()["net1"]
    assert props["Mac"] == life.mvt_baseline["mac"] and props["Promiscuous"] is False
    assert group not in props["MulticastTable"]
    assert host["mac"] == life.mvt_baseline["mac"] and host["promisc"] is False and group not in host["mcast"]
    assert host["mcast"] == set(props["MulticastTable"])
    final_check(life.vm, life.mvt, props)


def test_device_del(life):
    """device_del of the macvtap NIC (pc machine: ACPI hotplug, the guest lets go): NetEvent
    DEVICE_DELETED, the host device reverted to its baseline, the NIC object removed
    (InterfacesRemoved) and gone from the guest's Nics; the tap NIC stays."""
    life.ensure(daemon=True)
    life.dirty()
    mark = life.w.sig.mark()
    life.vm.qmp("device_del", {"id": "net1"})
    life.net1_deleted = True
    ev = life.w.sig.wait(mark, lambda s: s["member"] == "NetEvent" and s["path"] == GPATH
                         and s["args"][0] == "DEVICE_DELETED" and s["args"][1].get("device") == "net1",
                         what="NetEvent DEVICE_DELETED net1")
    assert "timestamp" in ev["args"][1]
    life.w.sig.wait(mark, lambda s: s["member"] == "InterfacesRemoved" and s["path"] == ROOT_PATH
                    and s["args"][0] == life.mvt.path, what="InterfacesRemoved of net1")
    life.assert_baseline()
    assert life.mvt.path not in managed_paths(life.w.env)
    poll(lambda: get_all(life.w.env, GPATH, "io.guestnetd.GuestNet1.Guest")["Nics"] == [life.tap.path], 10,
         what="Guest.Nics without net1")
    assert get_all(life.w.env, life.mvt.path) is None
    # The other NIC carries on.
    _, props, _ = life.step(life.tap, "ip link set DEV promisc on", ["Promiscuous"])
    life.step(life.tap, "ip link set DEV promisc off", ["Promiscuous"])
