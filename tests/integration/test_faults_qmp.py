# SPDX-License-Identifier: LGPL-2.1-or-later
"""Fault injection on the QMP side (issue 7, part 3): a QEMU that hangs (SIGSTOP) with a query
pending, one killed in the middle of a query, monitors that close right after the greeting, never
greet or greet wrongly, and hostile bytes on a negotiated monitor — an endless line, a 2 MiB reply,
deep nesting, wrong types, invalid UTF-8, 10,000-entry tables. Each closes or rejects only what it
must, with a log line that says why, and the daemon keeps serving the other guest.

Every test runs two guests in its namespace: vm1 (the faulty one, macvtap mvt0) and vm2 (a healthy
one, mvt1), each a fake QEMU peer process in the namespace, both trusted. What test_robustness.py
already proves (garbage, a 1.1 MiB event, split writes, peer restart, wrong reply types) is not
repeated here.

Run as a script it is a scripted raw monitor: ``test_faults_qmp.py rawmon PATH SCENARIO``."""

import json
import os
import re
import signal
import socket
import subprocess
import sys
import time

import pytest

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

from busenv import NIC_IFACE, GUEST_IFACE, bus_env, guest_path, nic_path  # noqa: E402
from gnhelpers import expected_host, guest_dropin, poll, sanitized  # noqa: E402
from hostsync_helpers import start_bus_daemon  # noqa: E402

assert bus_env  # fixture, used by name

M_BAD = "52:54:00:12:34:56"
M_OK = "52:54:00:12:34:57"
BASELINE = {}  # the devices' state before the daemon first saw them (two_guests)
DISCONNECTED = r"guest vm1: disconnected: %s; reconnecting in (\d+) ms"


# ------------------------------------------------------------------------------------ helpers
def vm_status(pid):
    """{"rss": KiB, "fds": n} of a process."""
    rss = 0
    with open("/proc/%d/status" % pid) as f:
        for line in f:
            if line.startswith("VmRSS:"):
                rss = int(line.split()[1])
    return {"rss": rss, "fds": len(os.listdir("/proc/%d/fd" % pid))}


def two_guests(netns, fakes, daemons, bus=None, vm1_path=None, config=None):
    """vm1 on mvt0 (a fake peer unless vm1_path is given: then the caller brings vm1's monitor
    itself) and vm2 on mvt1, both Trust=all. Waits until every started peer's initial filter is on
    its device. Returns (vm1 fake or its socket path, vm2 fake, daemon)."""
    bad = vm1_path is None
    netns.add_macvtap("mvt0", "lo0")
    netns.add_macvtap("mvt1", "lo0")
    BASELINE.clear()
    BASELINE.update({dev: netns.host_state(dev) for dev in ("mvt0", "mvt1")})
    ok = fakes("vm2", nics=[{"id": "net0", "mac": M_OK}])
    if bad:
        vm1 = fakes("vm1", nics=[{"id": "net0", "mac": M_BAD}])
        vm1_path = vm1.path
    else:
        vm1 = vm1_path
    guests = {"vm1": guest_dropin("vm1", vm1_path, "all", {"net0": {"HostInterface": "mvt0"}}),
              "vm2": guest_dropin("vm2", ok.path, "all", {"net0": {"HostInterface": "mvt1"}})}
    kw = dict(guests=guests, config=config)
    d = start_bus_daemon(daemons, bus, **kw) if bus else daemons(**kw)
    for f, dev in ((vm1, "mvt0"), (ok, "mvt1")) if bad else ((ok, "mvt1"),):
        netns.wait_host(dev, timeout=15, **expected_host(f.get_filter("net0")))
        f.wait_armed("net0")
    return vm1, ok, d


_round = [0]


def other_guest_works(netns, ok, rounds=2):
    """vm2's guest changes its filter `rounds` times; each change reaches mvt1. Prints how long
    each took (a measurement, not an assertion)."""
    took = []
    for _ in range(rounds):
        _round[0] += 1
        i = _round[0]
        ok.wait_armed("net0", timeout=10)
        mac = "52:54:00:77:%02x:%02x" % (i >> 8 & 0xFF, i & 0xFF)
        t0 = time.monotonic()
        assert ok.set_filter("net0", main_mac=mac, promiscuous=bool(i % 2))
        netns.wait_host("mvt1", mac=mac, promisc=bool(i % 2))
        took.append(time.monotonic() - t0)
    print("vm2 changes applied in %s ms" % ", ".join("%.0f" % (t * 1000) for t in took))


def bad_guest_works(netns, fake, mac, timeout=15):
    fake.wait_armed("net0", timeout=timeout)
    assert fake.set_filter("net0", main_mac=mac)
    netns.wait_host("mvt0", mac=mac, timeout=timeout)


def nicprop(bus, guest, prop):
    return bus.get_property(nic_path(guest, "net0"), NIC_IFACE, prop)


# ----------------------------------------------------------------------- a QEMU that hangs
def _hang_with_pending_query(netns, fakes, daemons, bus_env, mac):
    """vm1's guest changes its filter; the daemon's query is on its way when QEMU is SIGSTOPped."""
    bad, ok, d = two_guests(netns, fakes, daemons, bus=bus_env)
    poll(lambda: nicprop(bus_env, "vm1", "SyncState") == "in-sync", 5, what="vm1 in-sync")
    bad.hold("net0")  # the query stays unanswered inside QEMU ...
    assert bad.set_filter("net0", main_mac=mac, promiscuous=False)
    bad.wait_held("net0")
    os.kill(bad.pid, signal.SIGSTOP)  # ... and QEMU stops dead (the kernel still queues our writes)
    return bad, ok, d


def _while_hung(netns, ok, d, bus_env):
    """Other guests flow; the hung guest's query times out (5 s), it is marked failed but stays
    connected (a hung QEMU is not a broken one)."""
    other_guest_works(netns, ok, rounds=3)
    m = d.wait_log(r"guest vm1 nic net0: query-rx-filter failed: (.*)", timeout=15)[-1]
    assert "no reply" in m.group(1), m.group(0)
    poll(lambda: nicprop(bus_env, "vm1", "SyncState") == "failed", 5, what="vm1/net0 SyncState failed")
    assert "no reply" in nicprop(bus_env, "vm1", "LastError")
    assert bus_env.get_property(guest_path("vm1"), GUEST_IFACE, "State") == "connected"
    other_guest_works(netns, ok, rounds=2)  # still flowing after the timeout
    assert netns.mac("mvt0") == M_BAD


def test_sigstopped_qemu_new_changes_apply_after_sigcont(netns, fakes, daemons, bus_env):
    bad, ok, d = _hang_with_pending_query(netns, fakes, daemons, bus_env, "52:54:00:00:5a:01")
    try:
        _while_hung(netns, ok, d, bus_env)
    finally:
        os.kill(bad.pid, signal.SIGCONT)
    bad.release("net0")  # QEMU answers the old query late (ignored) and re-arms the event
    bad_guest_works(netns, bad, "52:54:00:00:5a:02")
    poll(lambda: nicprop(bus_env, "vm1", "SyncState") == "in-sync", 5, what="vm1/net0 in-sync again")
    assert nicprop(bus_env, "vm1", "LastError") == ""
    assert d.running()


def test_sigstopped_qemu_pending_change_lands_after_sigcont(netns, fakes, daemons, bus_env):
    """The change the guest made just before QEMU hung must reach the host once QEMU answers again,
    without the guest having to change anything more: 'the final state always lands'
    (docs/architecture.md). The late reply re-arms QEMU's event, so no further event will come on
    its own."""
    bad, ok, d = _hang_with_pending_query(netns, fakes, daemons, bus_env, "52:54:00:00:5b:01")
    try:
        _while_hung(netns, ok, d, bus_env)
    finally:
        os.kill(bad.pid, signal.SIGCONT)
    bad.release("net0")
    netns.wait_host("mvt0", timeout=15, mac="52:54:00:00:5b:01", promisc=False)
    poll(lambda: nicprop(bus_env, "vm1", "SyncState") == "in-sync", 5, what="vm1/net0 in-sync again")


# --------------------------------------------------------------- a QEMU killed mid-query
def test_qemu_killed_in_the_middle_of_a_query(netns, fakes, daemons):
    bad, ok, d = two_guests(netns, fakes, daemons)
    bad.hold("net0")
    assert bad.set_filter("net0", main_mac="52:54:00:00:6a:01", promiscuous=False)
    bad.wait_held("net0")
    os.kill(bad.pid, signal.SIGKILL)  # QEMU dies with our query in it; the socket file stays
    bad.proc.wait()
    d.wait_log(DISCONNECTED % r"monitor closed the connection[^;]*")
    other_guest_works(netns, ok)
    # RevertOnStop=yes (default): what the guest made of mvt0 is undone; the pending query is dropped
    # without a warning (the reconnect resyncs)
    netns.wait_host("mvt0", mac=BASELINE["mvt0"]["mac"], promisc=BASELINE["mvt0"]["promisc"])
    assert not d.log_lines(r"guest vm1 nic net0: query-rx-filter failed")
    # QEMU started again on the same socket: reconnect and resync, vm2 never noticed
    again = fakes("vm1", nics=[{"id": "net0", "mac": M_BAD}], path=bad.path)
    again.wait_negotiated(1, timeout=15)
    netns.wait_host("mvt0", timeout=15, **expected_host(again.get_filter("net0")))
    bad_guest_works(netns, again, "52:54:00:00:6a:02")
    other_guest_works(netns, ok, rounds=1)


# ------------------------------------------------------- monitors that misbehave from the start
GREETING = {"QMP": {"version": {"qemu": {"major": 7, "minor": 2, "micro": 0}, "package": ""},
                    "capabilities": ["oob"]}}

RAW_SCENARIOS = {
    # name: (reason the daemon must log, what the monitor does on each connection)
    "close-after-greeting": (r"monitor closed the connection[^;]*", "greet-close"),
    "close-after-capabilities": (r"monitor closed the connection[^;]*", "greet-negotiate-close"),
    "wrong-greeting": (r"expected the QMP greeting, got another message", "wrong-greeting"),
    "no-greeting": (r"no QMP greeting within 5 s", "silent"),
}


def _rawmon(path, scenario):
    """The scripted monitor (child process in the namespace): serves every connection the same way
    until killed."""
    try:
        os.unlink(path)
    except FileNotFoundError:
        pass
    ls = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    ls.bind(path)
    ls.listen(8)
    print("ready", flush=True)
    held = []
    while True:
        c, _ = ls.accept()
        if scenario == "silent":
            held = held[-4:] + [c]  # says nothing, keeps a few connections open
            continue
        if scenario == "wrong-greeting":
            c.sendall(b'{"return": {}}\r\n')
        else:
            c.sendall(json.dumps(GREETING).encode() + b"\r\n")
        if scenario == "greet-negotiate-close":
            c.settimeout(5)
            buf = b""
            try:
                while b"qmp_capabilities" not in buf:
                    data = c.recv(4096)
                    if not data:
                        break
                    buf += data
                m = re.search(rb'"id"\s*:\s*(\d+)', buf)
                c.sendall(b'{"return": {}%s}\r\n' % ((b', "id": ' + m.group(1)) if m else b""))
            except OSError:
                pass
        if scenario == "wrong-greeting":
            time.sleep(0.2)
        c.close()


@pytest.mark.parametrize("scenario", sorted(RAW_SCENARIOS))
def test_monitor_misbehaving_from_the_start(netns, fakes, daemons, workdir, scenario):
    reason, mode = RAW_SCENARIOS[scenario]
    path = os.path.join(workdir, "vm1.qmp")
    mon = subprocess.Popen(netns.exec_argv(["/usr/bin/python3", os.path.abspath(__file__), "rawmon", path, mode]),
                           stdout=subprocess.PIPE, text=True)
    try:
        assert mon.stdout.readline().strip() == "ready"
        _, ok, d = two_guests(netns, fakes, daemons, vm1_path=path)
        count = 1 if mode == "silent" else 2  # the silent one costs 5 s a round
        lines = d.wait_log(DISCONNECTED % reason, timeout=25, count=count)
        delays = [int(m.group(1)) for m in lines]
        assert count == 1 or delays[1] > delays[0], "reconnect backoff must grow: %r" % delays
        other_guest_works(netns, ok)
        assert d.log_lines(r"guest vm1: connected to QEMU") == []
        assert netns.host_state("mvt0")["mac"] != M_BAD  # nothing of vm1 applied
    finally:
        if mon.poll() is None:
            os.kill(mon.pid, signal.SIGKILL)
        mon.wait()
    assert d.running()


# --------------------------------------------------- hostile bytes on a negotiated monitor
def _event(data):
    return json.dumps({"event": "X_TEST", "data": data, "timestamp": {"seconds": 1, "microseconds": 0}})


def _nested(depth):
    v = 1
    for _ in range(depth - 2):  # the event object and "data" count as levels too
        v = {"a": v}
    return _event(v).encode() + b"\r\n"


CLOSING = {
    # name: (bytes to send, reason to log)
    "deep-nesting": (_nested(40), r"malformed JSON from the monitor: .*(nest|depth).*"),
    "deep-array-nesting": (b"[" * 100000, r"malformed JSON from the monitor: .*(nest|depth).*"),
    "invalid-utf8": (b'{"event": "X_TEST", "data": {"s": "\xff\xfe\xc3("}}\r\n',
                     r"malformed JSON from the monitor: .*"),
    "event-name-not-a-string": (b'{"event": 42, "data": {}}\r\n', r"event name is not a string"),
    "message-not-an-object": (b'[1, 2, 3]\r\n', r"protocol error: message is a array, not an object"),
    "string-message": (b'"hello"\r\n', r"protocol error: message is a string, not an object"),
}


@pytest.mark.parametrize("name", sorted(CLOSING))
def test_hostile_message_closes_only_that_connection(netns, fakes, daemons, name):
    data, reason = CLOSING[name]
    bad, ok, d = two_guests(netns, fakes, daemons)
    bad.send_raw(data, negotiated_only=True)
    d.wait_log(DISCONNECTED % reason, timeout=10)
    other_guest_works(netns, ok)
    bad.wait_negotiated(2, timeout=15)  # reconnected ...
    bad_guest_works(netns, bad, "52:54:00:00:7a:01")  # ... and working
    assert ok.connections_total == 1  # vm2's connection never dropped


def test_nesting_under_the_cap_is_accepted(netns, fakes, daemons):
    bad, ok, d = two_guests(netns, fakes, daemons)
    bad.send_raw(_nested(30), negotiated_only=True)
    bad_guest_works(netns, bad, "52:54:00:00:7b:01")
    assert bad.connections_total == 1
    assert not d.log_lines(r"guest vm1: disconnected")


HARMLESS = [
    # wrong types and shapes that must be ignored (or answered with a warning), never close anything
    {"event": "NIC_RX_FILTER_CHANGED", "data": {"name": ["net0"], "path": 7}},
    {"event": "NIC_RX_FILTER_CHANGED", "data": "net0"},
    {"event": "NIC_RX_FILTER_CHANGED", "data": None},
    {"event": "NIC_RX_FILTER_CHANGED", "data": {"name": "net0" * 5000}},
    {"event": "DEVICE_DELETED", "data": {"device": 1, "path": {"x": 1}}},
    {"event": "DEVICE_DELETED", "data": {"path": "/machine/peripheral/net9/virtio-backend"}},
    {"event": "RESET", "timestamp": {"seconds": "yesterday", "microseconds": -1}},
    {"event": "RESET", "timestamp": [1, 2]},
    {"event": "", "data": {}},
    {"return": {}, "id": "not-a-number"},
    {"return": {}, "id": 1.5},
    {"return": [], "id": -1},
    {"return": {}, "id": 99999999999999999999},
    {"error": "not an object", "id": 123456},
    {"something": "else"},
    {},
]


def test_wrong_types_in_events_and_replies_are_ignored(netns, fakes, daemons):
    bad, ok, d = two_guests(netns, fakes, daemons)
    raw = b"".join(json.dumps(m).encode() + b"\r\n" for m in HARMLESS)
    bad.send_raw(raw, negotiated_only=True)
    bad_guest_works(netns, bad, "52:54:00:00:7c:01")
    other_guest_works(netns, ok, rounds=1)
    assert bad.connections_total == 1, d.log_tail(30)
    assert not d.log_lines(r"guest vm1: disconnected")


def send_until_hung_up(peer, d, head, chunk, max_chunks):
    """Sends head, then chunk up to max_chunks times, 10 ms apart, until the daemon hangs up on vm1.
    Returns the bytes of chunks sent."""
    peer.send_raw(head, negotiated_only=True)
    sent = 0
    for _ in range(max_chunks):
        if peer.connection_count() == 0 or d.log_lines(r"guest vm1: disconnected"):
            break
        peer.send_raw(chunk, negotiated_only=True)
        sent += len(chunk)
        time.sleep(0.01)
    return sent


def test_endless_line_is_capped_at_1_mib(netns, fakes, daemons):
    """A message that never ends (no closing quote, no newline), growing in 64 KiB writes: the daemon
    buffers at most 1 MiB of it, then closes with a reason; its memory does not follow the stream."""
    bad, ok, d = two_guests(netns, fakes, daemons)
    before = vm_status(d.pid)
    sent = send_until_hung_up(bad, d, b'{"event": "X_TEST", "data": {"s": "', b"a" * 65536, 40)  # 2.5 MiB
    m = d.wait_log(DISCONNECTED % r"(message from the monitor exceeds 1048576 bytes)", timeout=10)[-1]
    after = vm_status(d.pid)
    growth = (after["rss"] - before["rss"]) / 1024
    print("endless line: %d KiB sent before the hang-up; daemon VmRSS %+.1f MiB" % (sent // 1024, growth))
    assert growth < 16, "VmRSS grew by %.1f MiB on a capped 1 MiB message" % growth
    other_guest_works(netns, ok)
    bad.wait_negotiated(2, timeout=15)
    bad_guest_works(netns, bad, "52:54:00:00:7d:01")
    assert m


def vm_hwm_kib(pid):
    with open("/proc/%d/status" % pid) as f:
        return next(int(line.split()[1]) for line in f if line.startswith("VmHWM:"))


def test_small_message_that_json_c_would_blow_up_is_refused(netns, fakes, daemons):
    """Well-formed and under the 1 MiB cap, but an array of empty objects: json-c gives each object a
    16-entry hash table, and 1 MiB of "{}," would take 274 MiB. The daemon estimates json-c's memory from
    the bytes before it hands them over, and refuses the message once the estimate passes 24 MiB (about
    90 KiB into it): its peak RSS stays within that, the connection is closed with the reason, vm2 flows,
    and vm1 syncs again after the reconnect."""
    bad, ok, d = two_guests(netns, fakes, daemons)
    before = vm_hwm_kib(d.pid)
    sent = send_until_hung_up(bad, d, b'{"event": "X_TEST", "data": [', b"{}," * 21845, 16)  # 1 MiB
    m = d.wait_log(DISCONNECTED % r"(message from the monitor would take more than 24 MiB to parse "
                   r"\((\d+) bytes into it\): refusing it)", timeout=10)[-1]
    growth = (vm_hwm_kib(d.pid) - before) / 1024
    into = int(m.group(2))
    print("empty objects: %d KiB sent, refused %d bytes into the message; daemon VmHWM %+.1f MiB"
          % (sent // 1024, into, growth))
    assert into < 128 * 1024, "the message was refused only %d bytes into it" % into
    if not sanitized(d.pid):
        assert growth < 40, "peak RSS grew by %.1f MiB on a 24 MiB parse budget" % growth
    other_guest_works(netns, ok)
    bad.wait_negotiated(2, timeout=15)
    bad_guest_works(netns, bad, "52:54:00:00:7d:02")


def test_2_mib_reply_closes_and_recovers_once_sane(netns, fakes, daemons):
    """A QEMU whose query-rx-filter reply is 2 MiB (an extra field; a guest cannot do this, a
    compromised QEMU can): the reply is refused at the cap, the connection closed with the reason;
    every reconnect's full query meets the same reply and is refused again (with a growing backoff),
    vm2 flows throughout; once the reply is sane again the guest syncs."""
    bad, ok, d = two_guests(netns, fakes, daemons)
    good = bad.get_filter("net0")
    huge = dict(good, **{"main-mac": "52:54:00:00:7e:01", "x-pad": "p" * (2 << 20)})
    assert bad.set_filter_raw("net0", huge)
    lines = d.wait_log(DISCONNECTED % r"message from the monitor exceeds 1048576 bytes", timeout=15, count=3)
    delays = [int(m.group(1)) for m in lines]
    # A monitor that negotiates and then always sends something fatal must not be reconnected at
    # the minimum delay forever: the backoff has to grow (it resets on negotiation today).
    assert delays[2] > delays[0], "reconnect backoff does not grow: %r" % delays
    other_guest_works(netns, ok)
    # Each lost connection reverts the device (RevertOnStop=yes): the guest may have stopped.
    netns.wait_host("mvt0", timeout=10, mac=BASELINE["mvt0"]["mac"])
    bad.set_filter_raw("net0", dict(good, **{"main-mac": "52:54:00:00:7e:02"}))  # no event: not armed
    netns.wait_host("mvt0", timeout=25, mac="52:54:00:00:7e:02")  # the next reconnect's full query
    bad_guest_works(netns, bad, "52:54:00:00:7e:03")


# ------------------------------------------------------------- hostile filter contents
def _mac(i, first=0x01):
    return "%02x:00:5e:%02x:%02x:%02x" % (first, i >> 16 & 0xFF, i >> 8 & 0xFF, i & 0xFF)


# A table past QEMU's own bounds is refused without closing the connection: by the filter's validation
# (a reply json-c parses within one NIC's budget), or before any job when the reply took more to parse than
# a real filter can (RXFILTER_REPLY_COST_MAX, 512 KiB: 10,000 entries do).
TOO_LARGE = (r"query-rx-filter reply took \d+ KiB to parse, more than one NIC's filter can \(512 KiB\): "
             r"refusing it", r"^query-rx-filter reply too large$")
TABLES = {
    "multicast-table": ([_mac(i) for i in range(10000)], TOO_LARGE),
    "unicast-table": (["52:54:%02x:%02x:%02x:00" % (i >> 16 & 0xFF, i >> 8 & 0xFF, i & 0xFF) for i in range(10000)],
                      TOO_LARGE),
    "vlan-table": (list(range(10000)), TOO_LARGE),
    "multicast-table-100": ([_mac(i) for i in range(100)],
                            (r"invalid query-rx-filter reply: (.*)", r"multicast-table|64")),
    "vlan-table-4097": (list(range(4097)), (r"invalid query-rx-filter reply: (.*)", r"vlan-table")),
}


@pytest.mark.parametrize("case", sorted(TABLES))
def test_oversized_table_is_rejected_without_closing(netns, fakes, daemons, bus_env, case):
    entries, (line, why) = TABLES[case]
    table = case.rsplit("-", 1)[0] if case[-1].isdigit() else case
    bad, ok, d = two_guests(netns, fakes, daemons, bus=bus_env)
    good = bad.get_filter("net0")
    hostile = dict(good, **{"main-mac": "52:54:00:00:8a:01", table: entries,
                            "vlan": "normal" if table == "vlan-table" else good["vlan"]})
    before = netns.host_state("mvt0")
    assert bad.set_filter_raw("net0", hostile)
    m = d.wait_log(r"guest vm1 nic net0: " + line, timeout=10)[-1]
    if m.groups():
        assert re.search(why, m.group(1)), m.group(0)
    assert len(m.group(0)) < 400, "the log line quotes the hostile input: %d bytes" % len(m.group(0))
    poll(lambda: nicprop(bus_env, "vm1", "SyncState") == "failed", 5, what="SyncState failed")
    assert re.search(why, nicprop(bus_env, "vm1", "LastError"))
    assert netns.host_state("mvt0") == before  # nothing of the rejected filter applied
    other_guest_works(netns, ok, rounds=1)
    assert bad.connections_total == 1  # a bad filter is not a broken monitor
    bad.wait_armed("net0")
    bad.set_filter_raw("net0", dict(good, **{"main-mac": "52:54:00:00:8a:02"}))
    netns.wait_host("mvt0", mac="52:54:00:00:8a:02")
    poll(lambda: nicprop(bus_env, "vm1", "SyncState") == "in-sync", 5, what="in-sync again")


if __name__ == "__main__":
    if len(sys.argv) == 4 and sys.argv[1] == "rawmon":
        _rawmon(sys.argv[2], sys.argv[3])
    else:
        sys.stderr.write("usage: test_faults_qmp.py rawmon PATH SCENARIO\n")
        sys.exit(2)
