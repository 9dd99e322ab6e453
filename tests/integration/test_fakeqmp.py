# SPDX-License-Identifier: LGPL-2.1-or-later
"""Self-tests of the fake QMP peer (no daemon needed): it must behave like QEMU 7.2, or the daemon
tests prove nothing. test_qemu.py compares it with a real QEMU as well."""

import os
import socket
import time

import pytest

from fakeqmp import FakeQmp, FakeQmpProcess
from qmpclient import QmpClient

NICS = [{"id": "net0", "mac": "52:54:00:12:34:56", "ifname": "tap0"},
        {"id": "net1", "mac": "52:54:00:12:34:57", "ifname": "tap1"}]


@pytest.fixture
def fake(workdir):
    f = FakeQmp(os.path.join(workdir, "vm1.sock"), name="vm1", nics=NICS)
    yield f
    f.stop()


def test_greeting_and_negotiation(fake):
    with QmpClient(fake.path, negotiate=False) as c:
        assert c.greeting == {"QMP": {"version": {"qemu": {"major": 7, "minor": 2, "micro": 0}, "package": ""},
                                      "capabilities": ["oob"]}}
        r = c.cmd("query-name", id=17)
        assert r["id"] == 17 and r["error"]["class"] == "CommandNotFound"
        assert c.cmd("qmp_capabilities", id={"x": [1]}) == {"return": {}, "id": {"x": [1]}}
        assert c.cmd("qmp_capabilities")["error"]["class"] == "CommandNotFound"
        assert c.cmd("query-name")["return"] == {"name": "vm1"}
        assert "UUID" in c.cmd("query-uuid")["return"]
        assert c.cmd("query-version")["return"]["qemu"] == {"major": 7, "minor": 2, "micro": 0}
        assert c.cmd("no-such-command")["error"] == {"class": "CommandNotFound",
                                                    "desc": "The command no-such-command has not been found"}


def test_rx_filter_replies(fake):
    with QmpClient(fake.path) as c:
        r = c.cmd("query-rx-filter")["return"]
        assert [x["name"] for x in r] == ["net0", "net1"]
        f = r[0]
        assert len(f) == 12
        assert f["promiscuous"] is True and f["vlan"] == "all" and f["main-mac"] == "52:54:00:12:34:56"
        assert f["vlan-table"] == list(range(4095, -1, -1))
        r = c.cmd("query-rx-filter", {"name": "net9"})
        assert r["error"] == {"class": "GenericError", "desc": "invalid net client name: net9"}
        r = c.cmd("query-rx-filter", {"name": "hostnet0"})
        assert r["error"]["desc"] == "net client(hostnet0) isn't a NIC"
        fake.set_filter("net1", multicast_table=["01:00:5e:00:00:01", "33:33:00:00:00:01"], vlan="normal",
                        vlan_table=[0, 42], promiscuous=False)
        f = c.cmd("query-rx-filter", {"name": "net1"})["return"]
        assert len(f) == 1 and f[0]["name"] == "net1"
        assert f[0]["multicast-table"] == ["33:33:00:00:00:01", "01:00:5e:00:00:01"]  # reverse order
        assert f[0]["vlan-table"] == [42, 0]
        assert f[0]["promiscuous"] is False


def test_qom_get_and_info_network(fake):
    with QmpClient(fake.path) as c:
        assert c.cmd("qom-get", {"path": "/machine/peripheral/net1", "property": "netdev"})["return"] == "hostnet1"
        assert c.cmd("qom-get", {"path": "/machine/peripheral/net0", "property": "mac"})["return"] == \
            "52:54:00:12:34:56"
        assert c.cmd("qom-get", {"path": "/machine/peripheral/nx", "property": "mac"})["error"]["class"] == \
            "DeviceNotFound"
        out = c.cmd("human-monitor-command", {"command-line": "info network"})["return"]
        assert out.startswith("net0: index=0,type=nic,model=virtio-net-pci,macaddr=52:54:00:12:34:56\r\n"
                              " \\ hostnet0: index=0,type=tap,ifname=tap0,script=no,downscript=no\r\n")
        assert "ifname=tap1" in out


def test_event_throttle_one_event_per_query(fake):
    with QmpClient(fake.path) as c:
        assert fake.armed("net0")
        assert fake.set_filter("net0", promiscuous=False) is True
        e = c.wait_event("NIC_RX_FILTER_CHANGED")
        assert e["data"] == {"name": "net0", "path": "/machine/peripheral/net0/virtio-backend"}
        assert set(e["timestamp"]) == {"seconds", "microseconds"}
        assert not fake.armed("net0")
        # further changes: no event until someone queries
        for i in range(10):
            assert fake.set_filter("net0", main_mac="52:54:00:00:00:%02x" % i) is False
        assert c.no_event("NIC_RX_FILTER_CHANGED")
        # querying another NIC does not re-arm net0
        c.cmd("query-rx-filter", {"name": "net1"})
        assert not fake.armed("net0")
        r = c.cmd("query-rx-filter", {"name": "net0"})["return"][0]
        assert r["main-mac"] == "52:54:00:00:00:09"  # the final state
        assert fake.armed("net0") and fake.query_count("net0") == 1
        assert fake.set_filter("net0", promiscuous=True) is True
        c.wait_event("NIC_RX_FILTER_CHANGED")
        # a query without a name re-arms every NIC
        fake.set_filter("net1", promiscuous=False)
        c.wait_event("NIC_RX_FILTER_CHANGED")
        c.cmd("query-rx-filter")
        assert fake.armed("net0") and fake.armed("net1") and fake.unnamed_query_count() == 1


def test_event_without_client_is_lost(fake):
    assert fake.set_filter("net0", promiscuous=False) is True
    assert fake.events_lost("net0") == 1
    with QmpClient(fake.path) as c:
        fake.set_filter("net0", promiscuous=True)
        assert c.no_event("NIC_RX_FILTER_CHANGED")
        c.cmd("query-rx-filter", {"name": "net0"})
        fake.set_filter("net0", promiscuous=False)
        c.wait_event("NIC_RX_FILTER_CHANGED")


def test_hold_release_and_freeze(fake):
    with QmpClient(fake.path) as c:
        fake.hold("net0")
        c.send({"execute": "query-rx-filter", "arguments": {"name": "net0"}, "id": "held"})
        fake.wait_held("net0")
        r = c.cmd("query-rx-filter", {"name": "net1"})  # other NIC: answered out of order
        assert r["return"][0]["name"] == "net1"
        fake.set_filter("net0", main_mac="52:54:00:aa:aa:aa")
        assert fake.release("net0") == 1
        r = c.recv()
        while "event" in r:
            r = c.recv()
        assert r["id"] == "held" and r["return"][0]["main-mac"] == "52:54:00:aa:aa:aa"
        fake.freeze()
        c.send({"execute": "query-name", "id": "f1"})
        fake.wait_frozen(1)
        c.sock.settimeout(0.2)
        with pytest.raises(socket.timeout):
            c.recv()
        c.sock.settimeout(5)
        fake.thaw()
        assert c.recv() == {"return": {"name": "vm1"}, "id": "f1"}


def test_close_on_next_query_and_reconnect(fake):
    with QmpClient(fake.path) as c:
        fake.close_on_next_query("net0")
        c.cmd("query-rx-filter", {"name": "net1"})  # not the one
        c.send({"execute": "query-rx-filter", "arguments": {"name": "net0"}, "id": 1})
        with pytest.raises(EOFError):
            c.recv()
    fake.wait_disconnected()
    with QmpClient(fake.path) as c:
        assert c.cmd("query-name")["return"]["name"] == "vm1"
    assert fake.connections_total == 2 and fake.negotiations_total == 2


def test_single_client_like_qemu(fake):
    with QmpClient(fake.path):
        s = socket.socket(socket.AF_UNIX)
        s.connect(fake.path)  # sits in the backlog, no greeting, like QEMU
        s.settimeout(0.2)
        with pytest.raises(socket.timeout):
            s.recv(100)
    s.settimeout(5)
    assert b'"QMP"' in s.recv(4096)  # accepted once the first client left
    s.close()


def test_split_writes_and_raw_bytes(fake):
    fake.set_write_chunking(7, 0.001)
    with QmpClient(fake.path) as c:
        assert c.greeting["QMP"]["version"]["qemu"]["minor"] == 2
        assert c.cmd("query-name")["return"]["name"] == "vm1"
        fake.set_write_chunking(None)
        fake.send_raw(b'{"event": "A", "timestamp": {"seconds": 1, "microseconds": 2}}\r\n'
                      b'{"event": "B", "timestamp": {"seconds": 1, "microseconds": 2}}\r\n')
        c.wait_event("A")
        c.wait_event("B")
        # the fake also splits what it reads like QEMU's streamer: several per write, split writes
        c.send(b'{"execute": "query-name", "id": 1}{"execute": "query-uuid", "id": 2}\n{"execute": "que')
        assert c.recv()["id"] == 1 and c.recv()["id"] == 2
        c.send(b'ry-version", "id": 3}')
        assert c.recv()["return"]["qemu"]["major"] == 7


def test_bad_input_gets_errors(fake):
    with QmpClient(fake.path) as c:
        c.send(b'[1, 2]\n')
        assert c.recv()["error"]["desc"] == "QMP input must be a JSON object"
        c.send(b'{"arguments": {}}\n')
        assert "lacks member 'execute'" in c.recv()["error"]["desc"]


def test_remote_process_in_netns(netns, workdir):
    """FakeQmpProcess runs the same server inside a namespace and proxies every control."""
    path = os.path.join(workdir, "vmr.sock")
    f = FakeQmpProcess(path, netns=netns.name, name="vmr", nics=NICS)
    try:
        with open("/proc/%d/ns/net" % f.pid) as _:
            pass
        assert os.readlink("/proc/%d/ns/net" % f.pid) == netns.ns_inode()
        with QmpClient(path) as c:
            assert c.cmd("query-name")["return"] == {"name": "vmr"}
            f.set_filter("net0", promiscuous=False)
            c.wait_event("NIC_RX_FILTER_CHANGED")
            assert f.armed("net0") is False
            assert f.stats()["nics"]["net0"]["events"] == 1
            f.wait_negotiated(1)
            with pytest.raises(TimeoutError):
                f.wait_queries("net0", 1, timeout=0.1)
        assert f.connections_total == 1
    finally:
        f.stop()
    assert not os.path.exists(path)
    assert f.proc.returncode is not None


def test_stop_removes_socket(workdir):
    p = os.path.join(workdir, "x.sock")
    f = FakeQmp(p)
    assert os.path.exists(p)
    f.stop()
    assert not os.path.exists(p)
    t = time.monotonic()
    f.stop()  # idempotent
    assert time.monotonic() - t < 1
