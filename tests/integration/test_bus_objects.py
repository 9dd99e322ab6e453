# SPDX-License-Identifier: LGPL-2.1-or-later
"""The object tree on a private system bus with our policy: busctl tree and introspect show every
path and member of dbus-api.md, GetManagedObjects returns guests and NICs with their properties,
guest names round-trip through sd_bus_path_encode()d paths, and an unprivileged user reads every
property and receives RxFilterChanged, PropertiesChanged, InterfacesAdded/Removed and NetEvent."""

import json
import xml.etree.ElementTree as ET

import pytest

from busenv import (BUS_NAME, GUEST_IFACE, MANAGER_IFACE, NIC_IFACE, ROOT_PATH, Daemon, Subscriber,
                    bus_env, fake_guest, fake_queries, guest_path, nic_path, read_all_properties, wait_until)

assert bus_env  # a fixture, used by name

OM_IFACE = "org.freedesktop.DBus.ObjectManager"
CONST = "const"
EMITS = "emits-change"

# dbus-api.md, member by member: properties (type, change behaviour), methods (in args, out
# signature), signals (args).
SPEC = {
    MANAGER_IFACE: {
        "properties": {"Version": ("s", CONST), "Guests": ("ao", EMITS), "DefaultTrust": ("as", EMITS),
                       "EmitSignals": ("b", CONST)},
        "methods": {"ListGuests": ([], "a(sso)"), "GetGuest": ([("name", "s")], "o"),
                    "FindNicByHostInterface": ([("ifname", "s")], "o"),
                    "AttachGuest": ([("name", "s"), ("qmp_socket", "s"), ("options", "a{sv}")], "o"),
                    "DetachGuest": ([("name", "s")], ""), "Resync": ([], ""),
                    "GetMetrics": ([], "a(sssa(a{ss}d))")},
        "signals": {},
    },
    GUEST_IFACE: {
        "properties": {"Name": ("s", CONST), "UUID": ("s", EMITS), "QmpSocket": ("s", CONST),
                       "State": ("s", EMITS), "QemuVersion": ("s", EMITS), "Nics": ("ao", EMITS)},
        "methods": {"Resync": ([], "")},
        "signals": {"NetEvent": [("event", "s"), ("data", "a{sv}")]},
    },
    NIC_IFACE: {
        "properties": {"Id": ("s", CONST), "Guest": ("o", CONST), "QomPath": ("s", CONST),
                       "HostInterface": ("s", EMITS), "HostInterfaceKind": ("s", EMITS),
                       "ConfiguredMac": ("s", EMITS), "Mac": ("s", EMITS), "Promiscuous": ("b", EMITS),
                       "UnicastMode": ("s", EMITS), "MulticastMode": ("s", EMITS), "VlanMode": ("s", EMITS),
                       "UnicastTable": ("as", EMITS), "MulticastTable": ("as", EMITS),
                       "VlanTable": ("aq", EMITS), "UnicastOverflow": ("b", EMITS),
                       "MulticastOverflow": ("b", EMITS), "Trust": ("as", EMITS), "SyncState": ("s", EMITS),
                       "LastError": ("s", EMITS), "Changes": ("t", EMITS), "LastChangeUSec": ("t", EMITS)},
        "methods": {"SetTrust": ([("capabilities", "as")], ""), "Resync": ([], "")},
        "signals": {"RxFilterChanged": [("filter", "a{sv}"), ("changed", "as"), ("sync", "s")],
                    "MacChanged": [("old", "s"), ("new", "s"), ("reason", "s")],
                    "HostSyncFailed": [("attribute", "s"), ("error", "s")]},
    },
}
FILTER_FIELDS = {"Mac", "Promiscuous", "UnicastMode", "MulticastMode", "VlanMode", "UnicastTable",
                 "MulticastTable", "VlanTable", "UnicastOverflow", "MulticastOverflow"}

LONG_NAME = "long-" + "x" * 190 + "-0123"  # 200 bytes, the longest name allowed
# name -> (how it is attached, NIC ids)
GUESTS = {
    "web-01": ("qmp-dir", ("net0", "net1")),
    "db.prod": ("dropin", ("net0",)),
    "ünï": ("qmp-dir", ("net0",)),
    LONG_NAME: ("attach", ("net0",)),
}


@pytest.fixture(scope="module")
def world(bus_env):
    """The daemon with four guests: two found in the watched QMP directory, one from a drop-in, one
    attached by AttachGuest (a 200-byte name does not fit in a socket path)."""
    daemon = Daemon(bus_env)
    fakes = {}
    ext = daemon.dir / "q"
    ext.mkdir()
    try:
        for i, (name, (how, nics)) in enumerate(GUESTS.items()):
            if how == "qmp-dir":
                fakes[name] = fake_guest(daemon.qmp_dir / f"{name}.sock", name, nics, index=i)
            else:
                fakes[name] = fake_guest(ext / f"g{i}.sock", name, nics, index=i)
            if how == "dropin":
                daemon.add_dropin(f"g{i}.conf", f"[Guest]\nName={name}\nQmpSocket={ext}/g{i}.sock\n")
        daemon.start()
        for i, (name, (how, _)) in enumerate(GUESTS.items()):
            if how == "attach":
                assert bus_env.call_data(ROOT_PATH, MANAGER_IFACE, "AttachGuest", "ssa{sv}", name,
                                         fakes[name].path, 0) == [guest_path(name)]
        for name, fake in fakes.items():
            wait_until(lambda: fake_queries(fake) >= 1, timeout=15, what=f"{name}'s filters queried")
        for name, (_, nics) in GUESTS.items():
            wait_until(lambda: bus_env.busctl("get-property", BUS_NAME, guest_path(name), GUEST_IFACE,
                                              "State").stdout.strip() == 's "connected"',
                       timeout=15, what=f"guest {name} connected")
        yield bus_env, daemon, fakes
    finally:
        daemon.stop()
        for fake in fakes.values():
            fake.stop()


def all_paths():
    paths = {ROOT_PATH}
    for name, (_, nics) in GUESTS.items():
        paths.add(guest_path(name))
        paths.update(nic_path(name, nic) for nic in nics)
    return paths


def test_tree_shows_root_guests_and_nics(world):
    env, daemon, _ = world
    res = env.busctl("tree", "--list", BUS_NAME, check=True)
    listed = set(res.stdout.split())
    missing = all_paths() - listed
    assert not missing, f"busctl tree lacks {missing}; it shows {sorted(listed)}; log:\n{daemon.log()}"


@pytest.mark.parametrize("name", list(GUESTS))
def test_guest_name_round_trips_through_path(world, name):
    env, _, _ = world
    path = guest_path(name)
    assert env.call_data(ROOT_PATH, MANAGER_IFACE, "GetGuest", "s", name) == [path]
    assert env.get_property(path, GUEST_IFACE, "Name") == name
    listed = env.call_data(ROOT_PATH, MANAGER_IFACE, "ListGuests")[0]
    assert [name, path] in [[n, p] for n, _uuid, p in listed]
    assert path in env.get_property(ROOT_PATH, MANAGER_IFACE, "Guests")
    for nic in GUESTS[name][1]:
        assert env.get_property(nic_path(name, nic), NIC_IFACE, "Id") == nic
        assert env.get_property(nic_path(name, nic), NIC_IFACE, "Guest") == path


def introspect(env, path):
    res = env.busctl("introspect", "--xml-interface", BUS_NAME, path, check=True)
    return ET.fromstring(res.stdout)


@pytest.mark.parametrize("iface,path", [(MANAGER_IFACE, ROOT_PATH), (GUEST_IFACE, guest_path("web-01")),
                                        (NIC_IFACE, nic_path("web-01", "net0"))])
def test_introspect_shows_every_member(world, iface, path):
    env, _, _ = world
    node = introspect(env, path)
    ifaces = {i.get("name"): i for i in node.findall("interface")}
    assert iface in ifaces, f"{path} does not implement {iface}: {sorted(ifaces)}"
    if iface == MANAGER_IFACE:
        assert OM_IFACE in ifaces
    spec, xml = SPEC[iface], ifaces[iface]

    props = {p.get("name"): p for p in xml.findall("property")}
    assert set(props) == set(spec["properties"])
    for name, (sig, change) in spec["properties"].items():
        p = props[name]
        assert p.get("type") == sig and p.get("access") == "read", f"{name}: {p.attrib}"
        notes = {a.get("name"): a.get("value") for a in p.findall("annotation")}
        emits = notes.get("org.freedesktop.DBus.Property.EmitsChangedSignal", "true")
        assert emits == ("const" if change == CONST else "true"), f"{name}: EmitsChangedSignal={emits}"

    methods = {m.get("name"): m for m in xml.findall("method")}
    assert set(methods) == set(spec["methods"])
    for name, (in_args, out_sig) in spec["methods"].items():
        args = methods[name].findall("arg")
        got_in = [(a.get("name"), a.get("type")) for a in args if a.get("direction", "in") == "in"]
        assert got_in == in_args, f"{name} in-args {got_in}"
        outs = [a for a in args if a.get("direction") == "out"]
        assert "".join(a.get("type") for a in outs) == out_sig, f"{name} returns {[a.attrib for a in outs]}"
        assert all(a.get("name") for a in outs), f"{name}: unnamed out-args"

    signals = {s.get("name"): s for s in xml.findall("signal")}
    assert set(signals) == set(spec["signals"])
    for name, args in spec["signals"].items():
        assert [(a.get("name"), a.get("type")) for a in signals[name].findall("arg")] == args


def test_busctl_introspect_table_lists_members(world):
    """The human-readable `busctl introspect` of a NIC (the issue's note shows it) names every member."""
    env, _, _ = world
    out = env.busctl("introspect", BUS_NAME, nic_path("web-01", "net0"), check=True).stdout
    for member in [*SPEC[NIC_IFACE]["properties"], *SPEC[NIC_IFACE]["methods"], *SPEC[NIC_IFACE]["signals"]]:
        assert f".{member} " in out, f"{member} missing from:\n{out}"


def test_get_managed_objects(world):
    env, _, fakes = world
    objects = env.call_data(ROOT_PATH, OM_IFACE, "GetManagedObjects")[0]
    assert set(objects) == all_paths() - {ROOT_PATH}
    for name, (_, nics) in GUESTS.items():
        g = objects[guest_path(name)][GUEST_IFACE]
        assert set(g) == set(SPEC[GUEST_IFACE]["properties"])
        assert g["Name"]["data"] == name
        assert g["State"]["data"] == "connected"
        assert g["UUID"]["data"] == fakes[name].uuid
        assert g["QemuVersion"]["data"].startswith("7.2")
        assert sorted(g["Nics"]["data"]) == sorted(nic_path(name, n) for n in nics)
        for nic in nics:
            n = objects[nic_path(name, nic)][NIC_IFACE]
            assert set(n) == set(SPEC[NIC_IFACE]["properties"])
            info = fakes[name].get_filter(nic)
            assert n["Id"]["data"] == nic
            assert n["Guest"]["data"] == guest_path(name)
            assert n["Mac"]["data"] == info["main-mac"]
            assert n["ConfiguredMac"]["data"] == fakes[name].nics[nic].mac
            assert n["Promiscuous"]["data"] is True
            assert n["VlanMode"]["data"] == "all" and n["VlanTable"]["data"] == []
            assert n["Trust"]["data"] == [] and n["SyncState"]["data"] == "observing"


def test_unprivileged_user_reads_every_property(world):
    env, _, _ = world
    seen = read_all_properties(env)  # as nobody, Get and GetAll
    assert set(seen) == all_paths()
    for path, ifaces in seen.items():
        iface = MANAGER_IFACE if path == ROOT_PATH else GUEST_IFACE if "/nic/" not in path else NIC_IFACE
        assert set(ifaces) == {iface}
        assert set(ifaces[iface]["getall"]) == set(SPEC[iface]["properties"])
        assert ifaces[iface]["get"] == ifaces[iface]["getall"]


def is_signal(path, member, iface=None):
    return lambda s: s["path"] == path and s["member"] == member and (iface is None or s["interface"] == iface)


def test_unprivileged_subscriber_gets_filter_signals(world):
    env, daemon, fakes = world
    fake, path = fakes["web-01"], nic_path("web-01", "net0")
    changes = env.get_property(path, NIC_IFACE, "Changes")
    sub = Subscriber(env)
    try:
        fake.wait_armed("net0")
        assert fake.set_filter("net0", promiscuous=False, multicast_table=["01:00:5e:00:00:fb", "33:33:00:00:00:01"])
        rx = sub.wait_for(is_signal(path, "RxFilterChanged", NIC_IFACE), what="RxFilterChanged")
        flt, changed, sync = rx["args"]
        assert FILTER_FIELDS <= set(flt) <= set(SPEC[NIC_IFACE]["properties"])
        assert flt["Promiscuous"] is False
        assert flt["MulticastTable"] == ["01:00:5e:00:00:fb", "33:33:00:00:00:01"]
        assert {"Promiscuous", "MulticastTable"} <= set(changed) <= FILTER_FIELDS
        assert "Mac" not in changed
        assert sync == "observed"  # no trust: nothing is applied on the host

        pc = sub.wait_for(lambda s: is_signal(path, "PropertiesChanged")(s) and s["args"][0] == NIC_IFACE,
                          what="PropertiesChanged")
        assert {"Promiscuous", "MulticastTable", "Changes"} <= set(pc["args"][1])
        assert pc["args"][1]["Promiscuous"] is False
        assert pc["args"][1]["Changes"] == changes + 1
        sub.drain()
        per_set = [s for s in sub.seen if is_signal(path, "PropertiesChanged")(s) and s["args"][0] == NIC_IFACE]
        assert len(per_set) == 1, f"one PropertiesChanged per change set, got {per_set}"
        assert len([s for s in sub.seen if is_signal(path, "RxFilterChanged")(s)]) == 1
        assert env.get_property(path, NIC_IFACE, "Promiscuous") is False
    finally:
        sub.close()


def test_unprivileged_subscriber_gets_net_event(world):
    env, _, fakes = world
    sub = Subscriber(env)
    try:
        fakes["db.prod"].emit_event("NETDEV_STREAM_CONNECTED", {"netdev-id": "st0",
                                                                "addr": {"type": "unix", "path": "/x"}})
        ev = sub.wait_for(is_signal(guest_path("db.prod"), "NetEvent", GUEST_IFACE), what="NetEvent")
        event, data = ev["args"]
        assert event == "NETDEV_STREAM_CONNECTED"
        assert data["netdev-id"] == "st0" and data["timestamp"] > 0
    finally:
        sub.close()


def test_unprivileged_subscriber_sees_guests_come_and_go(world):
    env, daemon, _ = world
    name = "hot-plug.1"
    gpath, npath = guest_path(name), nic_path(name, "net0")
    sub = Subscriber(env)
    fake = fake_guest(daemon.dir / "q" / "hot.sock", name, ("net0",), index=99)
    try:
        res = env.call_data(ROOT_PATH, MANAGER_IFACE, "AttachGuest", "ssa{sv}", name, fake.path, 0)
        assert res == [gpath]
        added = sub.wait_for(lambda s: is_signal(ROOT_PATH, "InterfacesAdded", OM_IFACE)(s)
                             and s["args"][0] == gpath, what="InterfacesAdded for the guest")
        assert added["args"][1][GUEST_IFACE]["Name"] == name
        added = sub.wait_for(lambda s: is_signal(ROOT_PATH, "InterfacesAdded", OM_IFACE)(s)
                             and s["args"][0] == npath, timeout=15, what="InterfacesAdded for the NIC")
        assert added["args"][1][NIC_IFACE]["Id"] == "net0"
        assert set(added["args"][1][NIC_IFACE]) == set(SPEC[NIC_IFACE]["properties"])
        gpc = sub.wait_for(lambda s: is_signal(ROOT_PATH, "PropertiesChanged")(s) and s["args"][0] == MANAGER_IFACE
                           and gpath in s["args"][1].get("Guests", []), what="Manager.Guests change")
        assert gpc

        assert env.call_data(ROOT_PATH, MANAGER_IFACE, "DetachGuest", "s", name) == []
        removed = sub.wait_for(lambda s: is_signal(ROOT_PATH, "InterfacesRemoved", OM_IFACE)(s)
                               and s["args"][0] == gpath, what="InterfacesRemoved for the guest")
        assert GUEST_IFACE in removed["args"][1]
        nic_removed = sub.wait_for(lambda s: is_signal(ROOT_PATH, "InterfacesRemoved", OM_IFACE)(s)
                                   and s["args"][0] == npath, what="InterfacesRemoved for the NIC")
        assert NIC_IFACE in nic_removed["args"][1]
        listed = set(env.busctl("tree", "--list", BUS_NAME, check=True).stdout.split())
        assert gpath not in listed and npath not in listed
        res = env.gcall(ROOT_PATH, MANAGER_IFACE, "GetGuest", "(s)", [name])
        assert res.get("error", "").endswith(".NoSuchGuest"), res
    finally:
        sub.close()
        fake.stop()


def test_guests_property_matches_list(world):
    env, _, _ = world
    guests = env.get_property(ROOT_PATH, MANAGER_IFACE, "Guests")
    assert sorted(guests) == sorted(guest_path(n) for n in GUESTS)
    assert json.dumps(env.get_property(ROOT_PATH, MANAGER_IFACE, "EmitSignals")) == "true"
