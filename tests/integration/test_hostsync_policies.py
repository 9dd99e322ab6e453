# SPDX-License-Identifier: LGPL-2.1-or-later
"""Host sync, issue 4: VlanPolicy=, UnicastPolicy=, multicast overflow, and balanced flags (10,000
promisc/allmulti toggles and trust toggles end with the device's promiscuity and allmulti counts where
they started, no EOVERFLOW).

A network namespace with veth + macvtap, the fake QEMU peer as a process in it, guestnetd in it."""

import time

import pytest

from busenv import BUS_NAME, NIC_IFACE, bus_env, nic_path
from gnhelpers import expected_host
from hostsync_helpers import (counters, holders, hostsync_failures, hsfakes, processed, start_guest,
                              wait_processed)

assert bus_env and hsfakes and holders  # fixtures, used by name

M0 = "52:54:00:12:34:56"


def one_nic(trust="all", config=None):
    return dict(nics=[{"id": "net0", "mac": M0}], trust=trust, nic_keys={"net0": {"HostInterface": "mvt0"}},
                config=config)


def step(fake, d, netns, want_promisc, **fields):
    """One guest change; waits until the daemon processed it, then checks the host's PROMISC."""
    fake.wait_armed("net0")
    c = processed(d, "vm1", "net0")
    assert fake.set_filter("net0", **fields)
    wait_processed(d, "vm1", "net0", c + 1)
    netns.wait_host("mvt0", timeout=1, promisc=want_promisc)


VLAN_CASES = [  # (fields, promisc wanted by improved, libvirt, off)
    (dict(vlan="normal", vlan_table=[0]), {"improved": False, "libvirt": True, "off": False}),
    (dict(vlan="normal", vlan_table=[42, 0]), {"improved": True, "libvirt": True, "off": False}),
    (dict(vlan="all"), {"improved": False, "libvirt": True, "off": False}),
    (dict(vlan="normal", vlan_table=[]), {"improved": False, "libvirt": False, "off": False}),
    (dict(vlan="normal", vlan_table=[42]), {"improved": True, "libvirt": True, "off": False}),
    (dict(vlan="normal", vlan_table=[0]), {"improved": False, "libvirt": True, "off": False}),
]


@pytest.mark.parametrize("policy", ["improved", "libvirt", "off"])
def test_vlan_policy(netns, hsfakes, daemons, policy):
    """improved: only real VIDs ask for promisc (not VID 0, not `vlan: all`); libvirt: any VLAN entry
    does; off: VLANs never do. The guest itself never asks for promisc here."""
    netns.add_macvtap("mvt0", "lo0")
    cnt = counters(netns, "mvt0")
    fake, d = start_guest(hsfakes, daemons, **one_nic(config="[Daemon]\nVlanPolicy=%s\n" % policy))
    for fields, want in VLAN_CASES:
        step(fake, d, netns, want[policy], promiscuous=False, **fields)
        f = fake.get_filter("net0")
        assert expected_host(f, vlan_policy=policy)["promisc"] == want[policy]  # the harness agrees
    # the guest's own promisc still counts under every policy
    step(fake, d, netns, True, promiscuous=True)
    step(fake, d, netns, VLAN_CASES[-1][1][policy], promiscuous=False)
    fake.wait_armed("net0")
    assert counters(netns, "mvt0")[0] == cnt[0] + (1 if VLAN_CASES[-1][1][policy] else 0)
    assert hostsync_failures(d) == []


@pytest.mark.parametrize("policy", ["ignore", "promisc"])
def test_unicast_policy(netns, hsfakes, daemons, policy):
    """UnicastPolicy=promisc: a second MAC (a bridge or macvlan in the guest), unicast overflow or
    unicast mode `all` asks for promisc; ignore (default) never does."""
    netns.add_macvtap("mvt0", "lo0")
    config = "[Daemon]\nUnicastPolicy=%s\n" % policy if policy != "ignore" else None
    fake, d = start_guest(hsfakes, daemons, **one_nic(config=config))
    on = policy == "promisc"
    step(fake, d, netns, False, promiscuous=False, vlan="normal", vlan_table=[0])
    step(fake, d, netns, on, unicast_table=["52:54:00:99:00:01"])
    step(fake, d, netns, False, unicast_table=[])
    step(fake, d, netns, on, unicast_overflow=True)
    step(fake, d, netns, False, unicast_overflow=False)
    step(fake, d, netns, on, unicast="all")
    step(fake, d, netns, False, unicast="normal")
    step(fake, d, netns, on, unicast_table=["52:54:00:99:00:01", "52:54:00:99:00:02"])
    # the unicast table itself is never installed as multicast entries or a MAC
    st = netns.host_state("mvt0")
    assert st["mac"] == M0 and st["mcast"] == set()
    assert hostsync_failures(d) == []


def test_multicast_overflow(netns, hsfakes, daemons):
    """Overflow: QEMU reports an empty table; the daemon turns on ALLMULTI and keeps the entries it
    programmed until the overflow clears, then ALLMULTI (ours) goes and the new table applies."""
    netns.add_macvtap("mvt0", "lo0")
    fake, d = start_guest(hsfakes, daemons, **one_nic())
    a, b, c, e = "01:00:5e:00:00:0a", "01:00:5e:00:00:0b", "33:33:00:00:00:0c", "33:33:ff:00:00:0e"
    step(fake, d, netns, False, promiscuous=False, vlan="normal", vlan_table=[0], multicast_table=[a, b, c])
    netns.wait_host("mvt0", allmulti=False, mcast={a, b, c})

    step(fake, d, netns, False, multicast_overflow=True, multicast_table=[])
    netns.wait_host("mvt0", allmulti=True, multicast=True, mcast={a, b, c})
    # other changes while overflowing leave the entries alone too
    step(fake, d, netns, True, promiscuous=True)
    step(fake, d, netns, False, promiscuous=False)
    netns.wait_host("mvt0", allmulti=True, mcast={a, b, c})

    step(fake, d, netns, False, multicast_overflow=False, multicast_table=[b, e])
    netns.wait_host("mvt0", allmulti=False, multicast=True, mcast={b, e})
    # overflow with multicast mode `all`: still all-multicast, entries kept
    step(fake, d, netns, False, multicast="all", multicast_overflow=True, multicast_table=[])
    netns.wait_host("mvt0", allmulti=True, mcast={b, e})
    step(fake, d, netns, False, multicast="normal", multicast_overflow=False, multicast_table=[])
    netns.wait_host("mvt0", allmulti=False, mcast=set())
    assert hostsync_failures(d) == []


def test_10000_balanced_toggles(netns, hsfakes, daemons, holders, bus_env):
    """10,000 guest promisc/allmulti toggles, then trust toggles, then trust revoked: the macvtap's
    promiscuity and allmulti counts (and its lower device's) are back where they started. Another
    user (a packet socket) holds both counts at 1 throughout, so a stray decrement would show; the
    kernel would answer an unbalanced increment with EOVERFLOW (libvirt's bug)."""
    netns.add_macvtap("mvt0", "lo0")
    holders(netns, "mvt0")
    start = {dev: counters(netns, dev) for dev in ("mvt0", "lo0")}
    assert start["mvt0"] == (1, 1), start
    base = netns.host_state("mvt0")
    assert not base["promisc"] and not base["allmulti"]  # the packet socket's share is not a user flag
    fake, d = start_guest(hsfakes, daemons, bus_env=bus_env, workers=4,
                          # jobs are counted by their log lines: no log rate limit
                          **one_nic(config="[Daemon]\nMaxQueriesPerSecond=0\nReconcileIntervalSec=0\n"
                                           "LogRateLimitBurst=0\n"))
    step(fake, d, netns, False, promiscuous=False, vlan="normal", vlan_table=[0])
    assert counters(netns, "mvt0") == start["mvt0"]

    t0 = time.monotonic()
    assert fake.toggle_flags("net0", 10000, timeout=90) == 10000
    # the last toggle: promisc off (9999 is odd), multicast normal ((9999 // 2) is odd)
    fake.wait_armed("net0", timeout=10)
    netns.wait_host("mvt0", timeout=10, promisc=False, allmulti=False)
    jobs = processed(d, "vm1", "net0")
    print("10000 toggles in %.1fs, %d filter jobs" % (time.monotonic() - t0, jobs))
    assert counters(netns, "mvt0") == start["mvt0"]
    assert jobs > 5000, "the toggles were mostly coalesced (%d jobs): the test did not toggle the host" % jobs

    # trust toggles with the flags on
    step(fake, d, netns, True, promiscuous=True, multicast="all")
    netns.wait_host("mvt0", promisc=True, allmulti=True)
    assert counters(netns, "mvt0") == (2, 2)
    path = nic_path("vm1", "net0")
    for i in range(20):
        for caps in (["none"], ["all"]):
            r = bus_env.busctl("call", BUS_NAME, path, NIC_IFACE, "SetTrust", "as", str(len(caps)), *caps)
            assert r.returncode == 0, r.stderr
    # a barrier: a NIC's work runs in order (reverts first), so once the guest's next change is on the
    # host every revert and resync those calls queued has run
    fake.wait_armed("net0")
    assert fake.set_filter("net0", main_mac="52:54:00:10:00:00")
    netns.wait_host("mvt0", mac="52:54:00:10:00:00", promisc=True, allmulti=True)
    assert counters(netns, "mvt0") == (2, 2)
    assert len(d.log_lines(r"reverted .* on mvt0 to the baseline")) >= 1

    # revoked: back to the start
    r = bus_env.busctl("call", BUS_NAME, path, NIC_IFACE, "SetTrust", "as", "1", "none")
    assert r.returncode == 0, r.stderr
    netns.wait_host("mvt0", promisc=False, allmulti=False)
    for dev in ("mvt0", "lo0"):
        assert counters(netns, dev) == start[dev], (dev, counters(netns, dev), start[dev])
    netns.wait_host("mvt0", mac=base["mac"])
    assert netns.host_state("mvt0") == base
    assert hostsync_failures(d) == []
    assert "EOVERFLOW" not in d.log() and "Value too large" not in d.log()
