# SPDX-License-Identifier: LGPL-2.1-or-later
"""End to end, filters and trust: a real QEMU (TCG) runs the tiny Linux guest with two virtio-net
NICs in a network namespace — net0 on a tap (tap0, untrusted: observed only) and net1 on a macvtap
(mvt0, passed to QEMU as a file descriptor like libvirt does, trusted by SetTrust through polkit).
guestnetd runs on a private system bus with a real polkitd, outside the namespace: it finds QEMU's
namespace through the QMP socket's peer credentials, and the guest through its socket in the
watched QMP directory (allow-e2e.sock; the test polkit rule authorizes guests named allow-*).

Each scenario makes the guest change its own RX filter with `ip` and then checks, against the
guest's own state (never query-rx-filter while measuring: it re-arms the event), the NIC's D-Bus
properties (read as nobody), the RxFilterChanged signal (received as nobody), and the host device:
the trusted macvtap follows the guest, the tap never changes. At the very end of each scenario,
with the daemon settled, QEMU's query-rx-filter must equal the bus. Every scenario undoes what the
guest did, so they share one guest (booting costs seconds under TCG)."""

import os

import pytest

from e2e_helpers import (QEMU, Nic, Nicx, World, check_filter_signal, converge, final_check, get_all,
                         guest_dev_by_mac, guestnetctl, set_trust_busctl)

pytestmark = [
    pytest.mark.qemu,
    pytest.mark.skipif(os.geteuid() != 0, reason="needs root (network namespaces, taps)"),
    pytest.mark.skipif(QEMU is None, reason="qemu-system-x86_64 not installed (qemu-system-x86)"),
]

GUEST = "allow-e2e"
TAP_MAC = "52:54:00:12:34:56"


@pytest.fixture(scope="module")
def world():
    w = World("e2e-filters")
    try:
        w.baseline_mvt0 = w.ns.host_state("mvt0")
        w.start_daemon()
        w.vm = w.start_vm([Nic.tap("tap0", mac=TAP_MAC), Nic.macvtap("mvt0")],
                          daemon_qmp=w.daemon.qmp_dir / ("%s.sock" % GUEST))
        tap = Nicx(GUEST, "net0", "tap", "tap0", guest_dev_by_mac(w.vm, TAP_MAC))
        mvt = Nicx(GUEST, "net1", "macvtap", "mvt0", guest_dev_by_mac(w.vm, w.baseline_mvt0["mac"]))
        tap.trusted, mvt.trusted = False, False
        tap.baseline, mvt.baseline = w.ns.host_state("tap0"), w.baseline_mvt0
        w.nics = {"tap": tap, "macvtap": mvt}
        # Both NICs discovered with their host devices (the macvtap through QEMU's fd).
        for n in (tap, mvt):
            converge(w.env, w.ns, w.vm, n, trusted=False, baseline=n.baseline, timeout=60)
            props = get_all(w.env, n.path)
            assert (props["HostInterface"], props["HostInterfaceKind"]) == (n.host_if, n.kind)
            assert props["Trust"] == [] and props["SyncState"] == "observing"
        # The macvtap is trusted by an unprivileged user that polkit authorizes (rule: allow-*).
        r = set_trust_busctl(w.env, mvt.path, ["all"])
        assert r.returncode == 0, r.stderr
        mvt.trusted = True
        converge(w.env, w.ns, w.vm, mvt, trusted=True)
        yield w
    finally:
        w.close()


@pytest.fixture(params=["tap", "macvtap"])
def nic(request, world):
    request.node._gn_daemons = world.report()
    n = world.nics[request.param]
    # Each scenario starts from a settled NIC (and says so if an earlier one left a mess).
    converge(world.env, world.ns, world.vm, n, trusted=n.trusted, baseline=n.baseline)
    return n


def step(w, nic, cmd, changed=()):
    """Runs a guest command on the NIC's guest device (DEV), waits until bus and host agree with
    the guest, checks the signals and the sync state; returns (guest filter, properties, mark)."""
    mark = w.sig.mark()
    w.vm.sh(cmd.replace("DEV", nic.dev))
    f, props, host = converge(w.env, w.ns, w.vm, nic, trusted=nic.trusted, baseline=nic.baseline)
    check_filter_signal(w.sig, mark, nic, props, "applied" if nic.trusted else "observed", changed)
    assert props["SyncState"] == ("in-sync" if nic.trusted else "observing"), props
    assert props["LastError"] == "", props
    if not nic.trusted:
        assert host == nic.baseline
    return f, props, mark


def undo(w, nic, cmd, changed=()):
    """The guest undoes a scenario; the NIC must come back (checked like a step)."""
    return step(w, nic, cmd, changed)


def test_promisc_on_off(world, nic):
    try:
        f, props, _ = step(world, nic, "ip link set DEV promisc on", ["Promiscuous"])
        assert props["Promiscuous"] is True
        if nic.trusted:
            assert world.ns.host_state(nic.host_if)["promisc"] is True
        final_check(world.vm, nic, props)
    finally:
        f, props, _ = undo(world, nic, "ip link set DEV promisc off", ["Promiscuous"])
    assert props["Promiscuous"] is False
    final_check(world.vm, nic, props)


def test_allmulticast_on_off(world, nic):
    try:
        f, props, _ = step(world, nic, "ip link set DEV allmulticast on", ["MulticastMode"])
        assert props["MulticastMode"] == "all"
        if nic.trusted:
            assert world.ns.host_state(nic.host_if)["allmulti"] is True
        final_check(world.vm, nic, props)
    finally:
        f, props, _ = undo(world, nic, "ip link set DEV allmulticast off", ["MulticastMode"])
    assert props["MulticastMode"] == "normal"
    if nic.trusted:
        assert world.ns.host_state(nic.host_if)["allmulti"] is False
    final_check(world.vm, nic, props)


def test_multicast_group_add_del(world, nic):
    group = "01:00:5e:01:02:03"
    try:
        f, props, _ = step(world, nic, "ip maddr add %s dev DEV" % group, ["MulticastTable"])
        assert group in props["MulticastTable"]
        if nic.trusted:
            assert group in world.ns.host_state(nic.host_if)["mcast"]
        final_check(world.vm, nic, props)
    finally:
        f, props, _ = undo(world, nic, "ip maddr del %s dev DEV" % group, ["MulticastTable"])
    assert group not in props["MulticastTable"]
    if nic.trusted:
        assert group not in world.ns.host_state(nic.host_if)["mcast"]
    final_check(world.vm, nic, props)


def test_mac_change(world, nic):
    old = get_all(world.env, nic.path)["Mac"]
    new = "52:54:00:aa:bb:%02x" % (0x10 if nic.kind == "tap" else 0x11)
    try:
        f, props, mark = step(world, nic, "ip link set DEV address %s" % new, ["Mac"])
        assert props["Mac"] == new and props["ConfiguredMac"] == old
        world.sig.wait(mark, lambda s: s["member"] == "MacChanged" and s["path"] == nic.path
                       and s["args"] == [old, new, "guest"], what="MacChanged %s -> %s (guest)" % (old, new))
        if nic.trusted:
            assert world.ns.host_state(nic.host_if)["mac"] == new
        final_check(world.vm, nic, props)
    finally:
        f, props, mark = undo(world, nic, "ip link set DEV address %s" % old, ["Mac"])
    assert props["Mac"] == old
    world.sig.wait(mark, lambda s: s["member"] == "MacChanged" and s["path"] == nic.path
                   and s["args"] == [new, old, "guest"], what="MacChanged back")
    final_check(world.vm, nic, props)


def test_vlan(world, nic):
    try:
        f, props, _ = step(world, nic, "ip link add link DEV name DEV.42 type vlan id 42 && ip link set DEV.42 up",
                           ["VlanTable"])
        assert props["VlanMode"] == "normal" and 42 in props["VlanTable"]
        if nic.trusted:
            # VlanPolicy=improved: a real VID asks for promiscuous mode on the host.
            assert world.ns.host_state(nic.host_if)["promisc"] is True
        final_check(world.vm, nic, props)
    finally:
        f, props, _ = undo(world, nic, "ip link del DEV.42", ["VlanTable"])
    assert 42 not in props["VlanTable"]
    if nic.trusted:
        assert world.ns.host_state(nic.host_if)["promisc"] is False
    final_check(world.vm, nic, props)


def test_macvlan_second_unicast_mac(world, nic):
    mac = "52:54:00:77:77:%02x" % (0x10 if nic.kind == "tap" else 0x11)
    try:
        f, props, _ = step(world, nic, "ip link add link DEV name mv0 address %s type macvlan mode bridge && "
                                       "ip link set mv0 up" % mac, ["UnicastTable"])
        assert props["UnicastTable"] == [mac]
        if nic.trusted:
            # UnicastPolicy=ignore (default, as libvirt): the extra unicast MAC is not applied.
            host = world.ns.host_state(nic.host_if)
            assert host["promisc"] is False and host["mac"] != mac
        final_check(world.vm, nic, props)
    finally:
        f, props, _ = undo(world, nic, "ip link del mv0", ["UnicastTable"])
    assert props["UnicastTable"] == []
    final_check(world.vm, nic, props)


def test_multicast_overflow(world, nic):
    # 70 more groups than the guest had: beyond QEMU's 64-entry table. The guest joins them by
    # adding 70 IPv6 addresses (one solicited-node group 33:33:ff:xx:xx:xx each) in one `ip -batch`:
    # about 0.3 s under TCG, where 70 `ip maddr add` take about 3 s (and iproute2's `maddr` does
    # not work in batch mode).
    add = ("i=1; while [ $i -le 70 ]; do echo \"addr add fd00::10:$(printf %x $i)/64 dev DEV nodad\"; "
           "i=$((i+1)); done > /tmp/a && ip -batch /tmp/a")
    delete = "ip -6 addr flush dev DEV scope global"
    try:
        f, props, _ = step(world, nic, add, ["MulticastOverflow"])
        assert props["MulticastOverflow"] is True and props["MulticastTable"] == []
        if nic.trusted:
            # Overflow means all-multicast on the host.
            assert world.ns.host_state(nic.host_if)["allmulti"] is True
        final_check(world.vm, nic, props)
    finally:
        f, props, _ = undo(world, nic, delete, ["MulticastOverflow"])
    assert props["MulticastOverflow"] is False and props["MulticastTable"]
    if nic.trusted:
        host = world.ns.host_state(nic.host_if)
        assert host["allmulti"] is False and host["mcast"] == set(props["MulticastTable"])
    final_check(world.vm, nic, props)


def test_untrusted_tap_observed_only(world):
    """Everything the guest did on the tap NIC was published, nothing was applied: the tap's
    host state is still what it was before the guest booted, and its NIC says so."""
    nic = world.nics["tap"]
    props = get_all(world.env, nic.path)
    assert props["Trust"] == [] and props["SyncState"] == "observing" and props["HostInterfaceKind"] == "tap"
    assert props["Changes"] > 1
    assert world.ns.host_state("tap0") == nic.baseline


def test_set_trust_revoke_and_grant(world, request):
    """SetTrust by an unprivileged user polkit authorizes (busctl to revoke, guestnetctl to grant):
    revoking reverts the macvtap to its baseline at once while the guest keeps its filter; granting
    applies the guest's filter at once."""
    request.node._gn_daemons = world.report()
    w, nic = world, world.nics["macvtap"]
    orig_mac = get_all(w.env, nic.path)["Mac"]
    new_mac, group = "52:54:00:aa:bb:22", "01:00:5e:07:08:09"
    try:
        f, props, _ = step(w, nic, "ip link set DEV address %s && ip maddr add %s dev DEV && "
                                   "ip link set DEV promisc on" % (new_mac, group))
        assert w.ns.host_state("mvt0")["mac"] == new_mac

        # Revoke (busctl, as nobody): the host goes back to the baseline at once.
        mark = w.sig.mark()
        r = set_trust_busctl(w.env, nic.path, [])
        assert r.returncode == 0, r.stderr
        nic.trusted = False
        w.sig.wait(mark, lambda s: s["member"] == "PropertiesChanged" and s["path"] == nic.path
                   and s["args"][1].get("Trust") == [], what="PropertiesChanged Trust=[]")
        f, props, host = converge(w.env, w.ns, w.vm, nic, trusted=False, baseline=w.baseline_mvt0)
        assert props["Trust"] == [] and props["SyncState"] == "observing"
        assert props["Mac"] == new_mac and group in props["MulticastTable"] and props["Promiscuous"]

        # Grant (guestnetctl trust, as nobody): the guest's filter is applied at once.
        r = guestnetctl(w.env, "trust", GUEST, nic.id, "all")
        assert r.returncode == 0, r.stdout + r.stderr
        nic.trusted = True
        f, props, host = converge(w.env, w.ns, w.vm, nic, trusted=True)
        assert props["Trust"] == ["mac", "multicast", "allmulti", "promisc"] and props["SyncState"] == "in-sync"
        assert host["mac"] == new_mac and group in host["mcast"] and host["promisc"]
        final_check(w.vm, nic, props)
    finally:
        nic.trusted = True
        set_trust_busctl(w.env, nic.path, ["all"])
        step(w, nic, "ip link set DEV promisc off && ip maddr del %s dev DEV && ip link set DEV address %s"
             % (group, orig_mac))
