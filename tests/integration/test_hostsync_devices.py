# SPDX-License-Identifier: LGPL-2.1-or-later
"""Host sync, issue 4: which host device, and where. A tap is never changed but its static bridge FDB
entry follows the guest's MAC; fd-passed backends are found through /proc (a macvtap's /dev/tapN, a
tap's fdinfo `iff:`); host work happens in the guest's network namespace (the QEMU process's, or
NetworkNamespace=), not the daemon's; a NIC created without id= is found by its QOM path.

The fake QEMU peer is a process in the namespace that holds the devices, like QEMU."""

import os

import pytest

from busenv import NIC_IFACE, Subscriber, bus_env, nic_path
from gnhelpers import expected_host, guest_dropin, poll
from hostsync_helpers import (add_bridge_port_tap, fdb_entries, hostsync_failures, hsfakes, nic_log,
                              nic_object_exists, nic_prop, other_netns, processed, start_guest, wait_processed)

assert bus_env and hsfakes and other_netns  # fixtures, used by name

M0 = "52:54:00:12:34:56"
M1 = "52:54:00:12:34:57"
LINUX_MCAST = ["33:33:ff:12:34:56", "01:00:5e:00:00:01", "33:33:00:00:00:01"]


def tap_state(ns, dev):
    link = ns.link(dev)
    return {"mac": link["address"], "flags": sorted(link["flags"]), "promiscuity": link["promiscuity"],
            "allmulti": link.get("allmulti"), "mcast": ns.mcast_global(dev)}


def test_tap_untouched_and_fdb_entry_moved(netns, hsfakes, daemons):
    """Trust=all on taps: the taps' own MAC, flags, counters and multicast lists never change. On the
    bridge port with learning off the static FDB entry for the guest's MAC moves with it; on a port
    with learning on (the bridge learns by itself) nothing is moved."""
    add_bridge_port_tap(netns, "tap0", learning=False, static_macs=[M0])
    add_bridge_port_tap(netns, "tap1", learning=True, static_macs=[M1])
    before = {t: tap_state(netns, t) for t in ("tap0", "tap1")}
    assert fdb_entries(netns, "tap0").get(M0) == "static", fdb_entries(netns, "tap0")
    fake, d = start_guest(hsfakes, daemons, trust="all",
                          nics=[{"id": "net0", "mac": M0, "ifname": "tap0"},
                                {"id": "net1", "mac": M1, "ifname": "tap1"}])
    d.wait_log(nic_log(d, "vm1", "net0", r"host interface tap0 \(tap\)"))
    d.wait_log(nic_log(d, "vm1", "net1", r"host interface tap1 \(tap\)"))

    new0, new1 = "52:54:00:aa:bb:01", "52:54:00:aa:bb:02"
    assert fake.set_filter("net0", main_mac=new0, promiscuous=False, multicast="all", multicast_table=LINUX_MCAST)
    assert fake.set_filter("net1", main_mac=new1, promiscuous=False, multicast="all", multicast_table=LINUX_MCAST)
    poll(lambda: fdb_entries(netns, "tap0").get(new0) == "static", 5,
         what=lambda: "the static FDB entry on tap0 to move to %s (have %r)" % (new0, fdb_entries(netns, "tap0")))
    assert M0 not in fdb_entries(netns, "tap0")
    wait_processed(d, "vm1", "net1", 2)
    assert fdb_entries(netns, "tap1").get(M1) == "static" and new1 not in fdb_entries(netns, "tap1")

    # again, and back to the configured MAC
    fake.wait_armed("net0")
    assert fake.set_filter("net0", main_mac="52:54:00:aa:bb:03", promiscuous=True)
    poll(lambda: "52:54:00:aa:bb:03" in fdb_entries(netns, "tap0"), 5, what="the entry to move again")
    fake.wait_armed("net0")
    assert fake.set_filter("net0", main_mac=M0, multicast="normal", multicast_table=[])
    poll(lambda: fdb_entries(netns, "tap0").get(M0) == "static", 5, what="the entry back on the configured MAC")
    assert {m for m in fdb_entries(netns, "tap0") if m.startswith("52:54:00")} == {M0}
    fake.wait_armed("net0")
    fake.wait_armed("net1")
    wait_processed(d, "vm1", "net0", 4)
    for t in ("tap0", "tap1"):
        assert tap_state(netns, t) == before[t], "%s changed: %r -> %r" % (t, before[t], tap_state(netns, t))
    # published all the same
    assert d.log_lines(nic_log(d, "vm1", "net1", r"filter changed \[Mac .*\]; host"))
    assert hostsync_failures(d) == []


@pytest.mark.parametrize("daemon_ns", ["same", "other"], ids=["daemon-with-qemu", "daemon-elsewhere"])
def test_fd_passed_backends_found_through_proc(netns, other_netns, hsfakes, daemons, daemon_ns):
    """No HostInterface=, `info network` says fd=N: the daemon finds the macvtap from QEMU's
    /proc/PID/fd/N (/dev/tapIFINDEX, an ifindex of QEMU's namespace) and the tap from
    /proc/PID/fdinfo/N (iff:), as the fake QEMU process really holds those fds. The daemon runs in
    QEMU's namespace, or in another one that has devices of the same names and indexes."""
    if daemon_ns == "other":
        other_netns.add_macvtap("mvt0", "lo0")  # same name, and same ifindex in a fresh namespace
        other_netns.add_tap("tap0")
        decoys = {dev: other_netns.host_state(dev) for dev in ("mvt0", "tap0")}
    netns.add_macvtap("mvt0", "lo0")
    netns.add_tap("tap0")
    tap_before = tap_state(netns, "tap0")
    fake, d = start_guest(hsfakes, daemons, trust="all", netns=other_netns if daemon_ns == "other" else netns,
                          nics=[{"id": "net0", "mac": M0, "fd": 40}, {"id": "net1", "mac": M1, "fd": 41}],
                          fake_kw={"fds": [{"fd": 40, "macvtap": "mvt0"}, {"fd": 41, "tap": "tap0"}]})
    info = fake.info_network()
    assert "fd=40" in info and "fd=41" in info and "ifname" not in info, info
    assert os.readlink("/proc/%d/fd/40" % fake.pid) == "/dev/tap%d" % netns.link("mvt0")["ifindex"]
    d.wait_log(nic_log(d, "vm1", "net0", r"host interface mvt0 \(macvtap\)"))
    d.wait_log(nic_log(d, "vm1", "net1", r"host interface tap0 \(tap\)"))
    netns.wait_host("mvt0", **expected_host(fake.get_filter("net0")))
    assert fake.set_filter("net0", main_mac="52:54:00:ab:00:01", promiscuous=False, vlan="normal", vlan_table=[0],
                           multicast_table=LINUX_MCAST)
    netns.wait_host("mvt0", mac="52:54:00:ab:00:01", promisc=False, mcast=set(LINUX_MCAST))
    assert fake.set_filter("net1", main_mac="52:54:00:ab:00:02", promiscuous=False)
    wait_processed(d, "vm1", "net1", 2)
    assert tap_state(netns, "tap0") == tap_before
    if daemon_ns == "other":
        assert {dev: other_netns.host_state(dev) for dev in ("mvt0", "tap0")} == decoys
    assert hostsync_failures(d) == []


def test_devices_in_the_qemu_process_namespace(netns, other_netns, hsfakes, daemons):
    """The daemon runs in namespace A, QEMU and its devices in B: host work happens in B (found through
    the peer's /proc/PID/ns/net), an mvt0 of the same name in A is never touched; when that QEMU dies
    the revert still happens in B."""
    a, b = other_netns, netns
    a.add_macvtap("mvt0", "lo0")  # a decoy with the same name in the daemon's namespace
    b.add_macvtap("mvt0", "lo0")
    decoy, base = a.host_state("mvt0"), b.host_state("mvt0")
    fake, d = start_guest(hsfakes, daemons, trust="all", netns=a, nics=[{"id": "net0", "mac": M0}],
                          nic_keys={"net0": {"HostInterface": "mvt0"}})
    d.wait_log(r"guest vm1: host devices in network namespace /proc/%d/ns/net" % fake.pid)
    b.wait_host("mvt0", mac=M0, promisc=True)
    assert fake.set_filter("net0", main_mac="52:54:00:ac:00:01", promiscuous=False, vlan="normal", vlan_table=[0],
                           multicast="all", multicast_table=LINUX_MCAST)
    b.wait_host("mvt0", mac="52:54:00:ac:00:01", promisc=False, allmulti=True, mcast=set(LINUX_MCAST))
    assert a.host_state("mvt0") == decoy
    # the sockets in B are opened once for the guest, not per job
    fds = len(os.listdir("/proc/%d/fd" % d.pid))
    for i in range(20):
        fake.wait_armed("net0")
        assert fake.set_filter("net0", main_mac="52:54:00:ac:01:%02x" % i, promiscuous=bool(i % 2))
        b.wait_host("mvt0", mac="52:54:00:ac:01:%02x" % i, promisc=bool(i % 2))
    assert len(os.listdir("/proc/%d/fd" % d.pid)) == fds
    assert a.host_state("mvt0") == decoy
    fake.crash()
    b.wait_host("mvt0", mac=base["mac"], promisc=False, allmulti=False, mcast=set())
    assert b.host_state("mvt0") == base and a.host_state("mvt0") == decoy
    assert hostsync_failures(d) == []


def test_network_namespace_setting(netns, other_netns, hsfakes, daemons):
    """NetworkNamespace=/run/netns/B: QEMU runs in the daemon's namespace A, its devices are in B."""
    a, b = other_netns, netns
    a.add_macvtap("mvt0", "lo0")
    b.add_macvtap("mvt0", "lo0")
    decoy, base = a.host_state("mvt0"), b.host_state("mvt0")
    fake = hsfakes("vm1", nics=[{"id": "net0", "mac": M0}], ns=a)
    dropin = guest_dropin("vm1", fake.path, "all", {"net0": {"HostInterface": "mvt0"}})
    dropin = dropin.replace("[Guest]\n", "[Guest]\nNetworkNamespace=/run/netns/%s\n" % b.name)
    d = daemons(netns=a, guests={"vm1": dropin})
    d.wait_log(r"guest vm1: host devices in network namespace /run/netns/%s" % b.name)
    b.wait_host("mvt0", mac=M0, promisc=True)
    fake.wait_armed("net0")
    assert fake.set_filter("net0", main_mac="52:54:00:ad:00:01", promiscuous=False, vlan="normal", vlan_table=[0],
                           multicast_table=LINUX_MCAST)
    b.wait_host("mvt0", mac="52:54:00:ad:00:01", promisc=False, mcast=set(LINUX_MCAST))
    assert a.host_state("mvt0") == decoy
    fake.disconnect()  # RevertOnStop: in B as well
    b.wait_host("mvt0", mac=base["mac"], promisc=False, mcast=set())
    assert a.host_state("mvt0") == decoy
    assert hostsync_failures(d) == []


ANON_NICS = [
    {"id": "net0", "mac": M0, "ifname": "mvt2", "index": 0},
    {"id": "virtio-net-pci.0", "mac": "52:54:00:00:0a:01", "anonymous": True, "anon_index": 1, "index": 1,
     "ifname": "mvt0"},
    {"id": "virtio-net-pci.1", "mac": "52:54:00:00:0a:02", "anonymous": True, "anon_index": 2, "index": 2,
     "ifname": "mvt1"},
]
DECOYS = [{"index": 0, "type": "virtio-rng-pci"}]


def test_nic_without_id(netns, hsfakes, daemons, bus_env):
    """Two NICs created without id= (query names virtio-net-pci.N, events with only a path) next to a
    named one and a non-NIC anonymous device: each is found at its /machine/peripheral-anon/device[K]
    (via `info network` backend + qom-list + qom-get netdev), its host interface discovered, its path-only
    events processed, its host device synced; its unplug (path-only DEVICE_DELETED) reverts it."""
    for dev in ("mvt0", "mvt1", "mvt2"):
        netns.add_macvtap(dev, "lo0")
    base = netns.host_state("mvt0")
    fake, d = start_guest(hsfakes, daemons, nics=ANON_NICS, trust="all", bus_env=bus_env,
                          fake_kw={"decoys": DECOYS})
    for nic, k, dev in (("virtio-net-pci.0", 1, "mvt0"), ("virtio-net-pci.1", 2, "mvt1")):
        d.wait_log(nic_log(d, "vm1", nic, r"has no id=, found at /machine/peripheral-anon/device\[%d\]" % k))
        d.wait_log(nic_log(d, "vm1", nic, r"host interface %s \(macvtap\)" % dev))
        assert nic_prop(bus_env, "vm1", nic, "QomPath") == "/machine/peripheral-anon/device[%d]" % k
        assert nic_prop(bus_env, "vm1", nic, "HostInterface") == dev
    assert nic_prop(bus_env, "vm1", "net0", "QomPath") == "/machine/peripheral/net0"
    netns.wait_host("mvt0", mac="52:54:00:00:0a:01", promisc=True)
    netns.wait_host("mvt1", mac="52:54:00:00:0a:02", promisc=True)

    # path-only events reach the right NIC
    c1 = processed(d, "vm1", "virtio-net-pci.1")
    assert fake.set_filter("virtio-net-pci.0", main_mac="52:54:00:ae:00:01", promiscuous=False, vlan="normal",
                           vlan_table=[0], multicast_table=LINUX_MCAST)
    netns.wait_host("mvt0", mac="52:54:00:ae:00:01", promisc=False, mcast=set(LINUX_MCAST))
    fake.wait_armed("virtio-net-pci.0")
    assert fake.set_filter("virtio-net-pci.1", main_mac="52:54:00:ae:00:02", promiscuous=False, vlan="normal",
                           vlan_table=[0])
    netns.wait_host("mvt1", mac="52:54:00:ae:00:02", promisc=False)
    fake.wait_armed("virtio-net-pci.1")
    wait_processed(d, "vm1", "virtio-net-pci.1", c1 + 1)
    assert not d.log_lines(r"filter event for unknown NIC")  # matched by path, no fallback full query
    assert fake.unnamed_query_count() == 1  # only the initial one

    # unplug: both DEVICE_DELETED carry only a path
    fake.remove_nic("virtio-net-pci.0")
    netns.wait_host("mvt0", mac=base["mac"], promisc=False, allmulti=False, mcast=set())
    poll(lambda: not nic_object_exists(bus_env, "vm1", "virtio-net-pci.0"), 5, what="the NIC's object to go")
    assert nic_object_exists(bus_env, "vm1", "virtio-net-pci.1") and nic_object_exists(bus_env, "vm1", "net0")
    assert hostsync_failures(d) == []


def test_nic_without_id_is_published_with_its_real_qom_path(netns, hsfakes, daemons, bus_env):
    """QomPath is a const property (dbus-api.md): clients take it from InterfacesAdded /
    GetManagedObjects and never hear of a change. So an id-less NIC must be announced with the path it
    really has, never with the /machine/peripheral/virtio-net-pci.N guess that does not exist."""
    for dev in ("mvt0", "mvt1", "mvt2"):
        netns.add_macvtap(dev, "lo0")
    sub = Subscriber(bus_env)
    try:
        fake, d = start_guest(hsfakes, daemons, nics=ANON_NICS, trust="all", bus_env=bus_env,
                              fake_kw={"decoys": DECOYS})
        path = nic_path("vm1", "virtio-net-pci.0")
        added = sub.wait_for(lambda s: s["member"] == "InterfacesAdded" and s["args"][0] == path,
                             what="InterfacesAdded for the id-less NIC")
        announced = added["args"][1][NIC_IFACE]["QomPath"]
        changed = [s for s in sub.drain() if s["member"] == "PropertiesChanged" and s["path"] == path and
                   "QomPath" in s["args"][1]]
        final = changed[-1]["args"][1]["QomPath"] if changed else announced
        assert final == "/machine/peripheral-anon/device[1]", (
            "the NIC was announced with QomPath %r and no change was ever signalled; its real path is "
            "/machine/peripheral-anon/device[1]" % announced)
    finally:
        sub.close()
