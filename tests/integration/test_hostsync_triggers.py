# SPDX-License-Identifier: LGPL-2.1-or-later
"""Host sync, issue 4: what else makes guestnetd revert or resync a host device — a lost QMP
connection (RevertOnStop=yes) and the reconnect, QEMU's silent filter reset (RESET), the reconcile
timer repairing a device changed behind the daemon's back — and the per-NIC rate limit under a flood.

A network namespace with veth + macvtap, the fake QEMU peer as a process in it, guestnetd in it."""

import time

import pytest

from busenv import Subscriber, bus_env, nic_path
from gnhelpers import expected_host
from hostsync_helpers import (counters, hostsync_failures, hsfakes, nic_log, processed, start_guest,
                              wait_processed)

assert bus_env and hsfakes  # fixtures, used by name

M0 = "52:54:00:12:34:56"
M1 = "52:54:00:12:34:57"
LINUX_MCAST = ["33:33:ff:12:34:56", "01:00:5e:00:00:01", "33:33:00:00:00:01"]
GUEST = dict(main_mac="52:54:00:ee:00:01", promiscuous=False, vlan="normal", vlan_table=[0], multicast="all",
             multicast_table=LINUX_MCAST)
GUEST_HOST = dict(mac="52:54:00:ee:00:01", promisc=False, allmulti=True, mcast=set(LINUX_MCAST))


def one_nic(dev="mvt0", trust="all"):
    return dict(nics=[{"id": "net0", "mac": M0}], trust=trust, nic_keys={"net0": {"HostInterface": dev}})


def test_disconnect_reverts_and_reconnect_resyncs(netns, hsfakes, daemons):
    """The monitor closes the connection (QEMU shutting down): the device goes back to its baseline.
    The reconnect's full query applies the guest's state again."""
    netns.add_macvtap("mvt0", "lo0")
    base, cnt = netns.host_state("mvt0"), counters(netns, "mvt0")
    fake, d = start_guest(hsfakes, daemons, **one_nic())
    assert fake.set_filter("net0", **GUEST)
    netns.wait_host("mvt0", **GUEST_HOST)
    fake.wait_armed("net0")
    # QEMU keeps the reconnect's queries unanswered for now, so the reverted state can be seen
    fake.hold("net0")
    fake.disconnect()
    netns.wait_host("mvt0", mac=base["mac"], promisc=False, allmulti=False, mcast=set())
    assert netns.host_state("mvt0") == base and counters(netns, "mvt0") == cnt
    d.wait_log(r"guest vm1: disconnected: .+; reconnecting in \d+ ms")
    d.wait_log(nic_log(d, "vm1", "net0", r"reverted .* on mvt0 to the baseline"))
    fake.wait_negotiated(2, timeout=10)
    fake.wait_held("net0")  # the reconnect starts with a query (without a name)
    assert netns.host_state("mvt0") == base
    fake.release("net0")
    netns.wait_host("mvt0", **GUEST_HOST)
    # the pipeline carries on over the new connection
    fake.wait_armed("net0")
    assert fake.set_filter("net0", promiscuous=True)
    netns.wait_host("mvt0", promisc=True)
    assert hostsync_failures(d) == []


def test_qemu_killed_reverts_and_restarted_qemu_resyncs(netns, hsfakes, daemons):
    """QEMU dies (SIGKILL: the socket file stays, nothing is closed politely): revert. A new QEMU on
    the same socket, with the guest's state set again: synced again."""
    netns.add_macvtap("mvt0", "lo0")
    base, cnt = netns.host_state("mvt0"), counters(netns, "mvt0")
    fake, d = start_guest(hsfakes, daemons, **one_nic())
    assert fake.set_filter("net0", **GUEST)
    netns.wait_host("mvt0", **GUEST_HOST)
    fake.wait_armed("net0")
    path = fake.path
    fake.crash()
    netns.wait_host("mvt0", mac=base["mac"], promisc=False, allmulti=False, mcast=set())
    assert netns.host_state("mvt0") == base and counters(netns, "mvt0") == cnt
    d.wait_log(r"guest vm1: disconnected: .+; reconnecting in \d+ ms")

    fake2 = hsfakes("vm1", nics=[{"id": "net0", "mac": M0}], path=path)
    fake2.wait_negotiated(1, timeout=15)
    fake2.wait_armed("net0")
    netns.wait_host("mvt0", **expected_host(fake2.get_filter("net0")))  # QEMU's reset state
    assert fake2.set_filter("net0", **GUEST)
    netns.wait_host("mvt0", **GUEST_HOST)
    assert hostsync_failures(d) == []


def test_reset_resyncs(netns, hsfakes, daemons, bus_env):
    """QEMU returns the filter to its reset state without an event and sends RESET: the host follows
    (promisc on, configured MAC, no entries) and MacChanged says `reset`."""
    netns.add_macvtap("mvt0", "lo0")
    netns.ip("maddr", "add", "01:00:5e:7f:00:99", "dev", "mvt0")  # someone else's, stays
    sub = Subscriber(bus_env)
    try:
        fake, d = start_guest(hsfakes, daemons, bus_env=bus_env, **one_nic())
        assert fake.set_filter("net0", **GUEST)
        netns.wait_host("mvt0", mcast=set(LINUX_MCAST) | {"01:00:5e:7f:00:99"},
                        **{k: v for k, v in GUEST_HOST.items() if k != "mcast"})
        fake.wait_armed("net0")
        events_before = fake.events_emitted("net0")
        unnamed = fake.unnamed_query_count()

        fake.reset_filters()  # silently: no NIC_RX_FILTER_CHANGED
        netns.wait_host("mvt0", mac=M0, promisc=True, allmulti=False, multicast=True, mcast={"01:00:5e:7f:00:99"})
        assert fake.events_emitted("net0") == events_before
        fake.wait_unnamed_queries(unnamed + 1)  # a full query: it re-armed every NIC
        fake.wait_armed("net0")
        d.wait_log(r"guest vm1: guest reset, resyncing all NICs")
        path = nic_path("vm1", "net0")
        sig = sub.wait_for(lambda s: s["path"] == path and s["member"] == "MacChanged" and s["args"][2] == "reset",
                           what="MacChanged(..., reset)")
        assert sig["args"][:2] == ["52:54:00:ee:00:01", M0]
        # and the guest's next change goes through
        assert fake.set_filter("net0", promiscuous=False, vlan="normal", vlan_table=[0])
        netns.wait_host("mvt0", promisc=False, mac=M0)
        assert hostsync_failures(d) == []
    finally:
        sub.close()


def test_reset_of_untrusted_nic_is_observed_only(netns, hsfakes, daemons):
    netns.add_macvtap("mvt0", "lo0")
    fake, d = start_guest(hsfakes, daemons, **one_nic(trust="none"))
    base = netns.host_state("mvt0")
    assert fake.set_filter("net0", **GUEST)
    wait_processed(d, "vm1", "net0", 2)
    n = processed(d, "vm1", "net0")
    fake.reset_filters()
    wait_processed(d, "vm1", "net0", n + 1)
    assert netns.host_state("mvt0") == base


def test_reconcile_repairs_changes_behind_our_back(netns, hsfakes, daemons):
    """ReconcileIntervalSec=1: MAC, PROMISC and a multicast entry changed by someone else come back to
    the guest's state without any guest event."""
    netns.add_macvtap("mvt0", "lo0")
    fake, d = start_guest(hsfakes, daemons, config="[Daemon]\nReconcileIntervalSec=1\n", **one_nic())
    want = dict(GUEST, promiscuous=True)
    assert fake.set_filter("net0", **want)
    netns.wait_host("mvt0", **dict(GUEST_HOST, promisc=True))
    fake.wait_armed("net0")
    queries = fake.query_count("net0"), fake.unnamed_query_count()
    d.wait_log(r"reconcile: 1 trusted NIC\(s\) checked", timeout=5)

    netns.ip("link", "set", "mvt0", "address", "02:00:00:00:be:ef")
    netns.ip("link", "set", "mvt0", "promisc", "off")
    netns.ip("maddr", "del", "01:00:5e:00:00:01", "dev", "mvt0")
    netns.wait_host("mvt0", timeout=6, **dict(GUEST_HOST, promisc=True))
    # a second round, one attribute at a time
    netns.ip("link", "set", "mvt0", "allmulticast", "off")
    netns.wait_host("mvt0", timeout=6, allmulti=True)
    # repaired from the last filter: QEMU was not asked (that would re-arm its event)
    assert (fake.query_count("net0"), fake.unnamed_query_count()) == queries
    assert hostsync_failures(d) == []


def test_reconcile_timer_sleeps_without_trusted_nics(netns, hsfakes, daemons):
    """Only trusted NICs are reconciled: with none there is no reconcile wakeup at all."""
    netns.add_macvtap("mvt0", "lo0")
    fake, d = start_guest(hsfakes, daemons, config="[Daemon]\nReconcileIntervalSec=1\n", **one_nic(trust="none"))
    assert fake.set_filter("net0", **GUEST)
    wait_processed(d, "vm1", "net0", 2)
    time.sleep(3.5)  # three and a half intervals of quiet
    assert d.log_lines(r"reconcile:") == []
    assert d.running()


@pytest.mark.parametrize("rearm", [False, True], ids=["one-event-per-query", "every-change-an-event"])
def test_flood_stays_under_the_rate_and_ends_exact(netns, hsfakes, daemons, rearm):
    """MaxQueriesPerSecond=10. The guest changes its filter 2000 times as fast as it can (~2.5 s); QEMU
    sends an event whenever the previous one was queried, or (another monitor re-arming it) on every
    change. The daemon's queries stay within rate x duration + burst, and the last state lands."""
    rate = 10
    netns.add_macvtap("mvt0", "lo0")
    fake, d = start_guest(hsfakes, daemons, config="[Daemon]\nMaxQueriesPerSecond=%d\n" % rate, **one_nic())
    time.sleep(1.0)  # the initial sync is done
    q0 = fake.query_count("net0") + fake.unnamed_query_count()
    changes = []
    for i in range(2000):
        changes.append({"main_mac": "52:54:00:f0:%02x:%02x" % (i >> 8, i & 0xFF), "promiscuous": i % 3 == 0,
                        "vlan": "normal", "vlan_table": [0] if i % 2 else [0, 100 + i % 7],
                        "multicast_table": ["01:00:5e:00:%02x:%02x" % (i >> 8, i & 0xFF), "33:33:00:00:00:01"]})
    t0 = time.monotonic()
    emitted = fake.set_filter_burst("net0", changes, pause=0.001, rearm_each=rearm)
    final = fake.get_filter("net0")
    assert emitted == 2000 if rearm else emitted >= 1
    assert final["main-mac"] == "52:54:00:f0:07:cf"
    netns.wait_host("mvt0", timeout=20, **expected_host(final))
    duration = time.monotonic() - t0
    fake.wait_armed("net0", timeout=10)  # the last event was answered too
    queries = fake.query_count("net0") + fake.unnamed_query_count() - q0
    burst = max(rate, 64)  # NIC_QUERY_BURST: a normal burst passes at once
    bound = rate * duration + burst + 1  # tokens accrued + a full bucket (+ the query in flight)
    print("flood: %d events in %.2fs, %d queries (bound %.1f)" % (emitted, duration, queries, bound))
    assert 1 <= queries <= bound, "%d queries in %.2fs at MaxQueriesPerSecond=%d" % (queries, duration, rate)
    # a quiet second later: at most the query for an event still in flight at landing time, all of it
    # within the rate, and the state still exact
    time.sleep(1.0)
    total = fake.query_count("net0") + fake.unnamed_query_count() - q0
    assert queries <= total <= queries + 1
    assert total <= rate * (time.monotonic() - t0) + burst + 1
    netns.wait_host("mvt0", timeout=0.5, **expected_host(final))
    assert hostsync_failures(d) == []


def test_nic_missing_from_a_full_query_is_reverted(netns, hsfakes, daemons):
    """A NIC unplugged while its DEVICE_DELETED was missed (RevertOnStop=no, so the reconnect is the
    first the daemon hears of it): the full query no longer lists it, so its device is reverted."""
    netns.add_macvtap("mvt0", "lo0")
    netns.add_macvtap("mvt1", "lo0")
    base = netns.host_state("mvt0")
    fake, d = start_guest(hsfakes, daemons, nics=[{"id": "net0", "mac": M0}, {"id": "net1", "mac": M1}],
                          trust="all", config="[Daemon]\nRevertOnStop=no\n",
                          nic_keys={"net0": {"HostInterface": "mvt0"}, "net1": {"HostInterface": "mvt1"}})
    assert fake.set_filter("net0", **GUEST)
    netns.wait_host("mvt0", **GUEST_HOST)
    fake.wait_armed("net0")
    fake.hold("net1")
    fake.disconnect()  # RevertOnStop=no: nothing is reverted ...
    fake.wait_negotiated(2, timeout=10)
    fake.wait_held("net1")  # (the reconnect's full query, held)
    assert netns.host_state("mvt0") == dict(GUEST_HOST, multicast=True)
    fake.remove_nic("net0", events=False)  # ... and net0 is unplugged meanwhile, unseen
    fake.release("net1")  # the full query answers without net0
    netns.wait_host("mvt0", mac=base["mac"], promisc=False, allmulti=False, mcast=set())
    d.wait_log(nic_log(d, "vm1", "net0", "removed"))
    assert netns.host_state("mvt0") == base
    assert hostsync_failures(d) == []


def test_revert_on_stop_off_keeps_the_guest_state(netns, hsfakes, daemons):
    """RevertOnStop=no: a lost monitor leaves the device as the guest had it."""
    netns.add_macvtap("mvt0", "lo0")
    fake, d = start_guest(hsfakes, daemons, config="[Daemon]\nRevertOnStop=no\n", **one_nic())
    assert fake.set_filter("net0", **GUEST)
    netns.wait_host("mvt0", **GUEST_HOST)
    fake.wait_armed("net0")
    fake.crash()
    d.wait_log(r"guest vm1: disconnected: .+; reconnecting in \d+ ms")
    time.sleep(0.5)
    assert netns.host_state("mvt0") == dict(GUEST_HOST, multicast=True)
    assert not d.log_lines(r"reverted")
