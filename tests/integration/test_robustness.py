# SPDX-License-Identifier: LGPL-2.1-or-later
"""Bad or unusual input from the QMP peer: the daemon closes that one connection with a reason,
reconnects and resyncs, and everything else keeps working. Split messages and several messages in
one read are normal and must just work."""

import json

from gnhelpers import expected_host, guest_dropin

M0 = "52:54:00:12:34:56"
M1 = "52:54:00:12:34:57"


def start(netns, fakes, daemons, nics=(("net0", M0, "mvt0"),), chunking=None):
    for _, _, dev in nics:
        netns.add_macvtap(dev, "lo0")
    fake = fakes("vm1", nics=[{"id": i, "mac": m} for i, m, _ in nics])
    if chunking:
        fake.set_write_chunking(*chunking)
    d = daemons(guests={"vm1": guest_dropin("vm1", fake.path, "all",
                                            {i: {"HostInterface": dev} for i, _, dev in nics})})
    d.wait_log(r"guest vm1: connected to QEMU 7\.2\.0", timeout=15)
    for i, _, dev in nics:
        netns.wait_host(dev, timeout=15, **expected_host(fake.get_filter(i)))
        fake.wait_armed(i)
    return fake, d


def assert_still_works(netns, fake, mac, nic="net0", dev="mvt0", timeout=15):
    fake.wait_armed(nic, timeout=timeout)
    fake.set_filter(nic, main_mac=mac)
    netns.wait_host(dev, mac=mac, timeout=timeout)


def test_split_writes(netns, fakes, daemons):
    """Greeting, replies and events arrive in 61-byte pieces (json tokenizer across reads)."""
    fake, d = start(netns, fakes, daemons, chunking=(61, 0.0005))
    assert_still_works(netns, fake, "52:54:00:00:01:01")


def test_several_messages_in_one_read(netns, fakes, daemons):
    fake, d = start(netns, fakes, daemons, nics=(("net0", M0, "mvt0"), ("net1", M1, "mvt1")))
    # writes at most every 200 ms: both events (and any replies) go out in one write
    fake.set_write_chunking(1 << 20, 0.2)
    fake.send_raw(b"\r\n")
    fake.set_filter("net0", main_mac="52:54:00:00:02:00", promiscuous=False)
    fake.set_filter("net1", main_mac="52:54:00:00:02:01", promiscuous=False)
    netns.wait_host("mvt0", mac="52:54:00:00:02:00", promisc=False)
    netns.wait_host("mvt1", mac="52:54:00:00:02:01", promisc=False)
    fake.set_write_chunking(None)
    assert fake.connections_total == 1


def test_garbage_closes_connection_and_recovers(netns, fakes, daemons):
    fake, d = start(netns, fakes, daemons)
    fake.send_raw(b'}}]] {"event": nope \x00\xff\r\n')
    d.wait_log(r"guest vm1: disconnected: .+; reconnecting in \d+ ms")
    fake.wait_negotiated(2, timeout=15)
    assert d.running()
    assert_still_works(netns, fake, "52:54:00:00:03:00")


def test_oversized_message_closes_connection_and_recovers(netns, fakes, daemons):
    fake, d = start(netns, fakes, daemons)
    big = json.dumps({"event": "X", "data": {"pad": "a" * (1100 * 1024)},
                      "timestamp": {"seconds": 1, "microseconds": 0}}).encode() + b"\r\n"
    fake.send_raw(big)
    d.wait_log(r"guest vm1: disconnected: .+; reconnecting in \d+ ms")
    fake.wait_negotiated(2, timeout=15)
    assert_still_works(netns, fake, "52:54:00:00:04:00")


def test_unknown_events_and_nics_are_harmless(netns, fakes, daemons):
    fake, d = start(netns, fakes, daemons)
    fake.emit_event("SOMETHING_NEW", {"x": 1})
    fake.emit_event("NIC_RX_FILTER_CHANGED", {"name": "net7", "path": "/machine/peripheral/net7/virtio-backend"})
    fake.emit_event("NIC_RX_FILTER_CHANGED", {"path": "/machine/peripheral-anon/device[3]/virtio-backend"})
    fake.emit_event("NIC_RX_FILTER_CHANGED", {})
    fake.emit_event("STOP")
    assert_still_works(netns, fake, "52:54:00:00:05:00")
    assert fake.connections_total == 1 or d.running()


def test_peer_restart_reconnects_and_resyncs(netns, fakes, daemons):
    """QEMU drops the connection (e.g. restarted monitor); changes made meanwhile are lost as
    events (no client), so only the full resync on reconnect can bring them over."""
    fake, d = start(netns, fakes, daemons)
    fake.disconnect()
    fake.set_filter("net0", main_mac="52:54:00:00:06:00", promiscuous=False)  # event lost: nobody listens
    d.wait_log(r"guest vm1: disconnected: .+; reconnecting in \d+ ms")
    fake.wait_negotiated(2, timeout=15)
    netns.wait_host("mvt0", mac="52:54:00:00:06:00", promisc=False, timeout=15)
    fake.wait_armed("net0")


def test_query_error_for_a_gone_nic_keeps_others_working(netns, fakes, daemons):
    fake, d = start(netns, fakes, daemons, nics=(("net0", M0, "mvt0"), ("net1", M1, "mvt1")))
    fake.remove_nic("net1")  # DEVICE_DELETED x2; a late filter event names it anyway
    fake.emit_event("NIC_RX_FILTER_CHANGED", {"name": "net1", "path": "/machine/peripheral/net1/virtio-backend"})
    assert_still_works(netns, fake, "52:54:00:00:07:00")
    assert d.running()


def test_wrong_reply_types_are_rejected_not_applied(netns, fakes, daemons):
    """Everything in a query-rx-filter reply is guest-controlled: a reply with a missing field or a
    wrong type is not applied (and the daemon survives); a good one afterwards is."""
    fake, d = start(netns, fakes, daemons)
    good = fake.get_filter("net0")
    bad = dict(good)
    bad["main-mac"] = "52:54:00:00:08:00"
    bad["promiscuous"] = "yes"  # wrong type
    fake.set_filter_raw("net0", bad)
    fake.wait_armed("net0")
    missing = dict(good)
    missing["main-mac"] = "52:54:00:00:08:01"
    del missing["multicast-table"]
    fake.set_filter_raw("net0", missing)
    fake.wait_armed("net0")
    assert d.running()
    assert netns.mac("mvt0") == M0
    fake.set_filter_raw("net0", dict(good, **{"main-mac": "52:54:00:00:08:02"}))
    netns.wait_host("mvt0", mac="52:54:00:00:08:02")
