# SPDX-License-Identifier: LGPL-2.1-or-later
"""Fault injection on the host side (issue 7, part 3): the macvtap deleted or renamed between the
query and the apply, and netlink refusing every change (the daemon without CAP_NET_ADMIN, so each
RTM_SETLINK and SIOCADDMULTI fails with EPERM). Expected: a clear error (log line, LastError,
SyncState failed, one HostSyncFailed per attribute), no crash, nothing applied to a device that now
has another name, and recovery once the device is back.

A namespace with veth + macvtaps, the fake QEMU peer as a process in it, the daemon in it on a
private system bus (real polkitd) so that SyncState/LastError and HostSyncFailed can be read."""

import os
import stat

from busenv import NIC_IFACE, Subscriber, bus_env, nic_path
from gnhelpers import daemon_binary, expected_host, guest_dropin, poll
from hostsync_helpers import start_bus_daemon

assert bus_env  # fixture, used by name

M0 = "52:54:00:12:34:56"
M1 = "52:54:00:12:34:57"
MC = ["01:00:5e:00:00:fb", "33:33:00:00:00:fb"]


def prop(bus, guest, name):
    return bus.get_property(nic_path(guest, "net0"), NIC_IFACE, name)


def start_world(netns, fakes, daemons, bus_env, binary=None, config=None, guest_keys=""):
    netns.add_macvtap("mvt0", "lo0")
    netns.add_macvtap("mvt1", "lo0")
    base = {d: netns.host_state(d) for d in ("mvt0", "mvt1")}
    vm1 = fakes("vm1", nics=[{"id": "net0", "mac": M0}])
    vm2 = fakes("vm2", nics=[{"id": "net0", "mac": M1}])
    guests = {"vm1": guest_dropin("vm1", vm1.path, "all", {"net0": {"HostInterface": "mvt0"}}),
              "vm2": guest_dropin("vm2", vm2.path, "all", {"net0": {"HostInterface": "mvt1"}})}
    guests = {k: v.replace("[Guest]\n", "[Guest]\n" + guest_keys, 1) for k, v in guests.items()}
    kw = {"binary": binary} if binary else {}
    d = start_bus_daemon(daemons, bus_env, guests=guests, config=config, **kw)
    d.wait_log(r"guest vm1: connected to QEMU")
    d.wait_log(r"guest vm2: connected to QEMU")
    return vm1, vm2, d, base


def settle(netns, fakes_and_devs):
    for f, dev in fakes_and_devs:
        netns.wait_host(dev, timeout=15, **expected_host(f.get_filter("net0")))
        f.wait_armed("net0")


def vm2_still_works(netns, vm2, mac):
    vm2.wait_armed("net0")
    assert vm2.set_filter("net0", main_mac=mac)
    netns.wait_host("mvt1", mac=mac)


def _vanish_between_query_and_apply(netns, vm1, vanish):
    vm1.hold("net0")  # the query is answered only after the device is gone
    assert vm1.set_filter("net0", main_mac="52:54:00:00:aa:01", promiscuous=False, multicast_table=MC)
    vm1.wait_held("net0")
    vanish()
    vm1.release("net0")


def test_macvtap_deleted_between_query_and_apply(netns, fakes, daemons, bus_env):
    vm1, vm2, d, base = start_world(netns, fakes, daemons, bus_env)
    settle(netns, [(vm1, "mvt0"), (vm2, "mvt1")])
    sub = Subscriber(bus_env)
    try:
        _vanish_between_query_and_apply(netns, vm1, lambda: netns.ip("link", "del", "mvt0"))
        poll(lambda: prop(bus_env, "vm1", "SyncState") == "failed", 10, what="SyncState failed")
        err = prop(bus_env, "vm1", "LastError")
        assert "mvt0" in err, err
        line = d.wait_log(r"guest vm1 nic net0: filter changed \[.*\]; host (failed|partial)(.*)")[-1]
        print("log: %s\nLastError: %s" % (line.group(0), err))
        s = sub.wait_for(lambda s: s["member"] == "HostSyncFailed" and "/guest/vm1/" in s["path"], 10,
                         "HostSyncFailed for vm1")
        assert "mvt0" in s["args"][1], s
        vm2_still_works(netns, vm2, "52:54:00:00:aa:02")
        # the device comes back (a new ifindex: a new baseline); the guest's next change lands
        netns.add_macvtap("mvt0", "lo0")
        vm1.wait_armed("net0")
        assert vm1.set_filter("net0", main_mac="52:54:00:00:aa:03", promiscuous=True)
        netns.wait_host("mvt0", timeout=10, mac="52:54:00:00:aa:03", promisc=True, mcast=set(MC))
        poll(lambda: prop(bus_env, "vm1", "SyncState") == "in-sync", 10, what="in-sync again")
        assert prop(bus_env, "vm1", "LastError") == ""
    finally:
        sub.close()
    assert d.running()


def test_macvtap_renamed_between_query_and_apply(netns, fakes, daemons, bus_env):
    """HostInterface=mvt0 names a device: after a rename the device now called mvtx is not ours to
    change, even though it has the ifindex the job started with."""
    vm1, vm2, d, base = start_world(netns, fakes, daemons, bus_env)
    settle(netns, [(vm1, "mvt0"), (vm2, "mvt1")])
    before = netns.host_state("mvt0")
    netns.ip("link", "set", "mvt0", "down")
    _vanish_between_query_and_apply(netns, vm1, lambda: netns.ip("link", "set", "mvt0", "name", "mvtx"))
    poll(lambda: prop(bus_env, "vm1", "SyncState") == "failed", 10, what="SyncState failed")
    assert "mvt0" in prop(bus_env, "vm1", "LastError")
    assert netns.host_state("mvtx") == before, "the renamed device was changed"
    vm2_still_works(netns, vm2, "52:54:00:00:ab:02")
    netns.ip("link", "set", "mvtx", "name", "mvt0")
    netns.ip("link", "set", "mvt0", "up")
    vm1.wait_armed("net0")
    assert vm1.set_filter("net0", main_mac="52:54:00:00:ab:03")
    netns.wait_host("mvt0", timeout=10, mac="52:54:00:00:ab:03", promisc=False, mcast=set(MC))
    poll(lambda: prop(bus_env, "vm1", "SyncState") == "in-sync", 10, what="in-sync again")


def no_caps_binary(workdir):
    """A wrapper that runs the build's daemon as uid 0 with no capability at all (empty bounding,
    inheritable and ambient sets): every netlink change and SIOC*MULTI fails with EPERM."""
    path = os.path.join(workdir, "guestnetd-nocaps")
    with open(path, "w") as f:
        f.write("#!/bin/sh\nexec setpriv --inh-caps=-all --ambient-caps=-all --bounding-set=-all -- %s \"$@\"\n"
                % daemon_binary())
    os.chmod(path, os.stat(path).st_mode | stat.S_IXUSR | stat.S_IXGRP | stat.S_IXOTH)
    return path


def test_netlink_eperm_is_reported_per_attribute(netns, fakes, daemons, bus_env, workdir):
    sub = Subscriber(bus_env)
    try:
        # Without capabilities QEMU's /proc/PID/ns/net cannot be opened, and a namespace that cannot
        # be opened fails closed: name the namespace (ours) by its bind mount instead.
        vm1, vm2, d, base = start_world(netns, fakes, daemons, bus_env, binary=no_caps_binary(workdir),
                                        guest_keys="NetworkNamespace=/run/netns/%s\n" % netns.name)
        with open("/proc/%d/status" % d.pid) as f:
            capeff = [line.split()[1] for line in f if line.startswith("CapEff:")][0]
        assert int(capeff, 16) == 0, capeff
        d.wait_log(r"guest vm1 nic net0: filter changed \[.*\]; host (failed|partial)", timeout=10)
        assert vm1.set_filter("net0", main_mac="52:54:00:00:ad:01", promiscuous=False, multicast="all",
                              multicast_table=MC)
        failed = set()

        def seen():
            for s in sub.seen:
                if s["member"] == "HostSyncFailed" and "/guest/vm1/" in s["path"]:
                    assert "Operation not permitted" in s["args"][1], s
                    failed.add(s["args"][0])
            return {"mac", "promisc", "multicast", "allmulti"} <= failed

        try:
            sub.wait_for(lambda s: seen(), 15, "HostSyncFailed for mac, promisc, multicast and allmulti")
        except TimeoutError:
            raise AssertionError("HostSyncFailed attributes seen: %r" % failed)
        for attr in ("mac", "multicast"):
            d.wait_log(r"guest vm1 nic net0: host sync of %s failed: mvt0: Operation not permitted" % attr)
        poll(lambda: prop(bus_env, "vm1", "SyncState") == "failed", 5, what="SyncState failed")
        assert "Operation not permitted" in prop(bus_env, "vm1", "LastError")
        assert netns.host_state("mvt0") == base["mvt0"] and netns.host_state("mvt1") == base["mvt1"]
        assert d.running()
    finally:
        sub.close()
    assert d.stop() == 0
