# SPDX-License-Identifier: LGPL-2.1-or-later
"""The pipeline end to end, against the fake QEMU peer in a network namespace with veth + macvtap:
NIC_RX_FILTER_CHANGED -> query-rx-filter (async) -> worker -> the host macvtap.

Each test starts its own namespace, fake peer(s) (child processes in the namespace, like QEMU) and
daemon; everything is polled with timeouts, no test asserts how long something took."""

from gnhelpers import expected_host, guest_dropin, poll

M0 = "52:54:00:12:34:56"
M1 = "52:54:00:12:34:57"
LINUX_MCAST = ["33:33:ff:12:34:56", "01:00:5e:00:00:01", "33:33:00:00:00:01"]


def start_vm(netns, fakes, daemons, trust="all", nics=(("net0", M0, "mvt0"),), name="vm1", nic_trust=None,
             config=None, **daemon_kw):
    """macvtaps on lo0 + a fake guest with these NICs + a daemon with a drop-in for it; waits until
    the daemon is connected and every NIC's initial filter is on its device (for trusted NICs)."""
    for _, _, dev in nics:
        if dev:
            netns.add_macvtap(dev, "lo0")
    fake = fakes(name, nics=[{"id": i, "mac": m} for i, m, _ in nics])
    dropin = guest_dropin(name, fake.path, trust,
                          {i: dict({"HostInterface": dev} if dev else {},
                                   **({"Trust": nic_trust[i]} if nic_trust and i in nic_trust else {}))
                           for i, _, dev in nics})
    d = daemons(guests={name: dropin}, config=config, **daemon_kw)
    d.wait_log(r"guest %s: connected to QEMU 7\.2\.0" % name)
    for i, _, dev in nics:
        d.wait_log(r"guest %s nic %s: host interface %s \(macvtap\)" % (name, i, dev))
        d.wait_log(r"guest %s nic %s: filter changed \[.*\]; host " % (name, i))
    if trust == "all" and not nic_trust:
        for i, _, dev in nics:
            netns.wait_host(dev, **expected_host(fake.get_filter(i)))
    return fake, d


def filter_lines(d, name, nic):
    return d.log_lines(r"guest %s nic %s: filter changed \[(.*)\]; host (\w+)" % (name, nic))


def test_event_applies_filter_to_macvtap(netns, fakes, daemons):
    fake, d = start_vm(netns, fakes, daemons)
    # initial full sync: QEMU's reset state (promisc on, configured MAC, vlan all, empty table)
    st = netns.host_state("mvt0")
    assert st["mac"] == M0 and st["promisc"] and not st["allmulti"] and st["mcast"] == set()

    # a Linux guest after `ip link set eth0 up` (rxfilter.md vector), with a new MAC
    n_lines = len(filter_lines(d, "vm1", "net0"))
    assert fake.set_filter("net0", main_mac="52:54:00:aa:bb:cc", promiscuous=False, vlan="normal",
                           vlan_table=[0], multicast_table=LINUX_MCAST)
    netns.wait_host("mvt0", mac="52:54:00:aa:bb:cc", promisc=False, allmulti=False, multicast=True,
                    mcast=set(LINUX_MCAST))
    fake.wait_armed("net0")  # the event was answered with a query (QEMU re-armed)
    line = d.wait_log(r"guest vm1 nic net0: filter changed \[.*\]; host applied", count=1)[-1]
    assert "Mac" in line.group(0)
    assert len(filter_lines(d, "vm1", "net0")) > n_lines

    # multicast "all" -> ALLMULTI
    fake.set_filter("net0", multicast="all")
    netns.wait_host("mvt0", allmulti=True, promisc=False, mac="52:54:00:aa:bb:cc")

    # overflow (QEMU then reports an empty table) -> all-multicast; the programmed entries stay
    # until the overflow clears (docs/host-sync.md)
    fake.wait_armed("net0")
    fake.set_filter("net0", multicast="normal", multicast_overflow=True, multicast_table=[])
    netns.wait_host("mvt0", allmulti=True, multicast=True)
    fake.wait_armed("net0")
    assert netns.mcast_global("mvt0") == set(LINUX_MCAST)

    # a real VID asks for promisc (VlanPolicy=improved); the table changes: entries added and removed
    fake.wait_armed("net0")
    new = ["01:00:5e:00:00:fb", "33:33:00:00:00:fb", "33:33:ff:12:34:56"]
    fake.set_filter("net0", multicast_overflow=False, multicast_table=new, vlan_table=[42, 0])
    netns.wait_host("mvt0", promisc=True, allmulti=False, mcast=set(new))

    # back to the guest's configured MAC, nothing else pending
    fake.wait_armed("net0")
    fake.set_filter("net0", main_mac=M0, vlan_table=[0])
    final = expected_host(fake.get_filter("net0"))
    netns.wait_host("mvt0", **final)
    fake.wait_armed("net0")


def test_kernel_multicast_entries_untouched(netns, fakes, daemons):
    """Only user-added (global) entries are ours: the kernel's own rows stay as they are."""
    fake, d = start_vm(netns, fakes, daemons)
    kernel_rows = sorted(r[4] for r in netns.dev_mcast() if r[1] == "mvt0" and r[3] == 0)
    fake.set_filter("net0", promiscuous=False, multicast_table=["33:33:00:00:00:01", "01:00:5e:00:00:fc"])
    netns.wait_host("mvt0", mcast={"33:33:00:00:00:01", "01:00:5e:00:00:fc"}, promisc=False)
    fake.wait_armed("net0")
    fake.set_filter("net0", multicast_table=[])
    netns.wait_host("mvt0", mcast=set())
    assert sorted(r[4] for r in netns.dev_mcast() if r[1] == "mvt0" and r[3] == 0) == kernel_rows


def test_event_with_no_visible_change_is_still_queried(netns, fakes, daemons):
    """rxfilter.md: a Linux guest's first event after `ip link set eth0 promisc on` shows the old
    state; the real change comes with the next event. Every event must end in a query."""
    fake, d = start_vm(netns, fakes, daemons)
    fake.wait_armed("net0")
    q = fake.query_count("net0")
    assert fake.set_filter("net0")  # announces, changes nothing
    fake.wait_queries("net0", q + 1)
    fake.wait_armed("net0")
    assert fake.set_filter("net0", promiscuous=False)  # armed again: the real change gets an event
    netns.wait_host("mvt0", promisc=False)
    fake.wait_armed("net0")


def test_untrusted_nic_is_queried_but_untouched(netns, fakes, daemons):
    netns.add_macvtap("mvt0", "lo0")
    before = netns.host_state("mvt0")
    fake = fakes("vm1", nics=[{"id": "net0", "mac": M0}])
    d = daemons(guests={"vm1": guest_dropin("vm1", fake.path, "none", {"net0": {"HostInterface": "mvt0"}})})
    d.wait_log(r"guest vm1: connected to QEMU 7\.2\.0")
    d.wait_log(r"guest vm1 nic net0: filter changed \[.*\]; host (observed|unchanged)")
    fake.wait_armed("net0")
    q = fake.query_count("net0")
    n = len(filter_lines(d, "vm1", "net0"))
    assert fake.set_filter("net0", main_mac="52:54:00:aa:bb:cc", promiscuous=False, multicast="all",
                           multicast_table=LINUX_MCAST)
    fake.wait_queries("net0", q + 1)  # queried, so QEMU re-arms the event ...
    fake.wait_armed("net0")
    d.wait_log(r"guest vm1 nic net0: filter changed \[.*\]; host (observed|unchanged)", count=n + 1)
    assert netns.host_state("mvt0") == before  # ... and the host is untouched
    assert not d.log_lines(r"guest vm1 nic net0: .*host (applied|partial)")
    # still listening: the next change is queried too
    assert fake.set_filter("net0", promiscuous=True)
    fake.wait_queries("net0", q + 2)
    fake.wait_armed("net0")
    d.wait_log(r"guest vm1 nic net0: filter changed \[.*\]; host (observed|unchanged)", count=n + 2)
    assert netns.host_state("mvt0") == before


def test_partial_trust_applies_only_trusted_capabilities(netns, fakes, daemons):
    """Trust=multicast allmulti: the multicast list and ALLMULTI follow the guest, MAC and PROMISC
    stay as they were."""
    netns.add_macvtap("mvt0", "lo0")
    before = netns.host_state("mvt0")
    fake = fakes("vm1", nics=[{"id": "net0", "mac": M0}])
    d = daemons(guests={"vm1": guest_dropin("vm1", fake.path, "none",
                                            {"net0": {"HostInterface": "mvt0", "Trust": "multicast allmulti"}})})
    d.wait_log(r"guest vm1 nic net0: filter changed \[.*\]; host ")
    fake.wait_armed("net0")
    fake.set_filter("net0", main_mac="52:54:00:aa:bb:cc", promiscuous=True, multicast_table=LINUX_MCAST)
    netns.wait_host("mvt0", mcast=set(LINUX_MCAST))
    fake.wait_armed("net0")
    fake.set_filter("net0", multicast="all")
    netns.wait_host("mvt0", allmulti=True)
    st = netns.host_state("mvt0")
    assert st["mac"] == before["mac"] and st["promisc"] == before["promisc"]


def _burst(n):
    out = []
    for i in range(n):
        out.append({"main_mac": "52:54:00:01:%02x:%02x" % (i >> 8, i & 0xFF),
                    "promiscuous": i % 2 == 0,
                    "multicast_table": ["01:00:5e:00:%02x:%02x" % (i >> 8, i & 0xFF)] + (
                        ["33:33:00:00:00:01"] if i % 3 else [])})
    return out


def test_burst_of_200_changes_ends_in_final_state(netns, fakes, daemons):
    fake, d = start_vm(netns, fakes, daemons)
    fake.wait_armed("net0")
    q0 = fake.query_count("net0")
    changes = _burst(200)
    emitted = fake.set_filter_burst("net0", changes)
    final = fake.get_filter("net0")
    assert final["main-mac"] == "52:54:00:01:00:c7"
    netns.wait_host("mvt0", timeout=10, **expected_host(final))
    fake.wait_armed("net0")  # every event ended in a query: nothing is left unanswered
    queries = fake.query_count("net0") - q0
    stats = fake.stats()["nics"]["net0"]
    assert emitted >= 1 and queries >= 1
    assert queries <= len(changes) // 4, "%d queries for %d changes (%r)" % (queries, len(changes), stats)
    print("burst: %d changes, %d events, %d queries" % (len(changes), emitted, queries))


def test_burst_of_200_events_is_coalesced_by_the_daemon(netns, fakes, daemons):
    """Another monitor keeps re-arming the NIC (as a second QMP client's queries do), so all 200
    changes reach the daemon as events. The first event's query is held unanswered: the other 199
    arrive while the NIC is busy with it and fold into one rerun, so the burst costs exactly two
    queries whatever the daemon's speed against the emitter's (how many rounds fit into an unheld
    burst is a matter of timing, not of design)."""
    fake, d = start_vm(netns, fakes, daemons)
    fake.wait_armed("net0")
    q0 = fake.query_count("net0")
    changes = _burst(200)
    fake.hold("net0")
    emitted = fake.set_filter_burst("net0", changes, rearm_each=True)
    assert emitted == 200
    poll(lambda: fake.held_count("net0") == 1, what=lambda: "held queries: %d" % fake.held_count("net0"))
    assert fake.query_count("net0") - q0 == 1  # nothing else asked while the first is out
    fake.release("net0")
    final = fake.get_filter("net0")
    netns.wait_host("mvt0", timeout=10, **expected_host(final))
    fake.wait_armed("net0")  # the rerun was answered too
    queries = fake.query_count("net0") - q0
    assert queries == 2, "%d queries for %d events" % (queries, emitted)
    print("coalesced burst: %d events, %d queries" % (emitted, queries))
    # still live afterwards
    fake.wait_armed("net0")
    fake.set_filter("net0", main_mac=M0)
    netns.wait_host("mvt0", mac=M0)


def test_paced_changes_while_jobs_run_end_in_final_state(netns, fakes, daemons):
    """Changes arrive while the NIC's job is queued or running (setting a macvtap MAC takes ms):
    the NIC absorbs them into a rerun and the last state still lands."""
    fake, d = start_vm(netns, fakes, daemons)
    fake.wait_armed("net0")
    q0 = fake.query_count("net0")
    changes = _burst(120)
    emitted = fake.set_filter_burst("net0", changes, pause=0.002)
    final = fake.get_filter("net0")
    netns.wait_host("mvt0", timeout=10, **expected_host(final))
    fake.wait_armed("net0")
    queries = fake.query_count("net0") - q0
    assert queries <= len(changes)
    print("paced: %d changes, %d events, %d queries" % (len(changes), emitted, queries))


def test_two_nics_proceed_in_parallel(netns, fakes, daemons):
    fake, d = start_vm(netns, fakes, daemons, nics=(("net0", M0, "mvt0"), ("net1", M1, "mvt1")))
    fake.wait_armed("net0")
    fake.wait_armed("net1")
    fake.hold("net0")
    q0 = fake.query_count("net0")
    assert fake.set_filter("net0", main_mac="52:54:00:00:00:a0", promiscuous=False)
    fake.wait_held("net0")  # the daemon asked about net0; QEMU "is slow" to answer
    assert fake.set_filter("net1", main_mac="52:54:00:00:00:b1", promiscuous=False,
                           multicast_table=["01:00:5e:00:00:b1"])
    netns.wait_host("mvt1", mac="52:54:00:00:00:b1", promisc=False, mcast={"01:00:5e:00:00:b1"})
    # net0's answer is still pending and its device still has the old state
    assert fake.held_count("net0") == 1
    assert fake.query_count("net0") == q0 + 1
    assert netns.mac("mvt0") == M0
    fake.release("net0")
    netns.wait_host("mvt0", mac="52:54:00:00:00:a0", promisc=False)
    fake.wait_armed("net0")
    fake.wait_armed("net1")


def test_peer_that_never_answers_delays_only_its_own_nics(netns, fakes, daemons):
    netns.add_macvtap("mvt0", "lo0")
    netns.add_macvtap("mvt1", "lo0")
    hung = fakes("vm1", nics=[{"id": "net0", "mac": M0}])
    ok = fakes("vm2", nics=[{"id": "net0", "mac": M1}])
    d = daemons(guests={
        "vm1": guest_dropin("vm1", hung.path, "all", {"net0": {"HostInterface": "mvt0"}}),
        "vm2": guest_dropin("vm2", ok.path, "all", {"net0": {"HostInterface": "mvt1"}}),
    })
    netns.wait_host("mvt0", **expected_host(hung.get_filter("net0")))
    netns.wait_host("mvt1", **expected_host(ok.get_filter("net0")))
    hung.wait_armed("net0")
    ok.wait_armed("net0")
    hung.freeze()  # reads commands, answers none
    assert hung.set_filter("net0", main_mac="52:54:00:00:00:a0", promiscuous=False)
    hung.wait_frozen(1)
    for i in range(3):  # the other guest keeps going, several times over
        ok.wait_armed("net0")
        mac = "52:54:00:00:00:b%d" % i
        assert ok.set_filter("net0", main_mac=mac, promiscuous=bool(i % 2))
        netns.wait_host("mvt1", mac=mac, promisc=bool(i % 2))
    assert netns.mac("mvt0") == M0
    hung.thaw()  # answers now (or the daemon timed out and reconnects): the state lands either way
    netns.wait_host("mvt0", timeout=30, mac="52:54:00:00:00:a0", promisc=False)


def test_peer_closing_mid_query_reconnects_and_resyncs(netns, fakes, daemons):
    fake, d = start_vm(netns, fakes, daemons)
    fake.wait_armed("net0")
    first = fake.current_connection()
    fake.close_on_next_query("net0")
    assert fake.set_filter("net0", main_mac="52:54:00:00:00:c0", promiscuous=False,
                           multicast_table=LINUX_MCAST)
    d.wait_log(r"guest vm1: disconnected: .+; reconnecting in \d+ ms")
    fake.wait_negotiated(2, timeout=15)
    d.wait_log(r"guest vm1: connected to QEMU 7\.2\.0", count=2, timeout=15)
    netns.wait_host("mvt0", timeout=15, mac="52:54:00:00:00:c0", promisc=False, mcast=set(LINUX_MCAST))
    second = fake.current_connection()
    assert second != first
    queries = [m for _, m in fake.command_log(conn=second, execute="query-rx-filter")]
    assert any("name" not in (m.get("arguments") or {}) for m in queries), queries  # full resync
    fake.wait_armed("net0")
    # and the pipeline still works on the new connection
    fake.set_filter("net0", promiscuous=True)
    netns.wait_host("mvt0", promisc=True)


def test_reset_event_resyncs(netns, fakes, daemons):
    """QEMU resets the filter silently (no NIC_RX_FILTER_CHANGED) and sends RESET: full resync."""
    fake, d = start_vm(netns, fakes, daemons)
    fake.wait_armed("net0")
    fake.set_filter("net0", main_mac="52:54:00:00:00:d0", promiscuous=False, multicast_table=LINUX_MCAST)
    netns.wait_host("mvt0", mac="52:54:00:00:00:d0", promisc=False, mcast=set(LINUX_MCAST))
    fake.wait_armed("net0")
    fake.reset_filters()
    netns.wait_host("mvt0", mac=M0, promisc=True, mcast=set())


def test_refuses_multicast_main_mac(netns, fakes, daemons):
    """A multicast/broadcast/zero main-mac is never installed; the other attributes still apply."""
    fake, d = start_vm(netns, fakes, daemons)
    for i, bad in enumerate(["01:00:5e:00:00:01", "ff:ff:ff:ff:ff:ff", "00:00:00:00:00:00"]):
        fake.wait_armed("net0")
        promisc = i % 2 == 0
        mc = ["33:33:00:00:00:%02x" % (i + 1)]
        fake.set_filter("net0", main_mac=bad, promiscuous=not promisc, multicast_table=mc)
        netns.wait_host("mvt0", promisc=not promisc, mcast=set(mc))
        assert netns.mac("mvt0") == M0
    d.wait_log(r"guest vm1 nic net0: filter changed \[.*Mac.*\]; host (partial|failed)")
