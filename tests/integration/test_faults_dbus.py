# SPDX-License-Identifier: LGPL-2.1-or-later
"""Hostile D-Bus callers (issue 7, part 3): wrong signatures, unknown objects, methods and
properties, 1 MiB strings, names with path characters. Each gets a clear error (the error name is
asserted, and what the message starts with), nothing changes (guests, trust, the host device, the
daemon's open fds), and the daemon keeps running (and exits 0 on SIGTERM: conftest's teardown).

The daemon runs in the test's namespace on busenv's private system bus (our policy file, a real
polkitd). Calls come from root through dbus-python in this process (root is authorized without
polkit, so they reach the argument checks behind it; argv cannot carry 1 MiB, so not through a
helper process) and, for the signature checks, from nobody through busenv's Gio client."""

import os

import dbus
import pytest

from busenv import (BUS_NAME, GUEST_IFACE, MANAGER_IFACE, NIC_IFACE, NOBODY_UID, ROOT_PATH, bus_env, guest_path,
                    nic_path)
from gnhelpers import expected_host, guest_dropin, poll
from hostsync_helpers import start_bus_daemon

assert bus_env  # fixture, used by name

ERR = "io.guestnetd.GuestNet1."
DBUS_ERR = "org.freedesktop.DBus.Error."
PROPS = "org.freedesktop.DBus.Properties"
MIB = 1 << 20
M0 = "52:54:00:12:34:56"


class World:
    def __init__(self, bus_env, netns, fake, d):
        self.env, self.netns, self.fake, self.d = bus_env, netns, fake, d
        self.bus = dbus.bus.BusConnection(bus_env.address)

    def call(self, path, iface, method, sig, *args):
        """(error name or "ok", message or result)."""
        obj = self.bus.get_object(BUS_NAME, path, introspect=False)
        try:
            return "ok", obj.get_dbus_method(method, iface)(*args, signature=sig, timeout=30)
        except dbus.exceptions.DBusException as e:
            return e.get_dbus_name(), e.get_dbus_message() or ""

    def snapshot(self):
        guests = self.call(ROOT_PATH, MANAGER_IFACE, "ListGuests", "")[1]
        nic = self.call(nic_path("vm1", "net0"), PROPS, "GetAll", "s", NIC_IFACE)[1]
        return {"guests": sorted((str(n), str(p)) for n, _, p in guests),
                "trust": [str(t) for t in nic["Trust"]], "mac": str(nic["Mac"]),
                "host": self.netns.host_state("mvt0"), "fds": len(os.listdir("/proc/%d/fd" % self.d.pid))}


@pytest.fixture
def world(netns, fakes, daemons, bus_env):
    netns.add_macvtap("mvt0", "lo0")
    fake = fakes("vm1", nics=[{"id": "net0", "mac": M0}])
    d = start_bus_daemon(daemons, bus_env, guests={
        "vm1": guest_dropin("vm1", fake.path, "all", {"net0": {"HostInterface": "mvt0"}})})
    netns.wait_host("mvt0", timeout=15, **expected_host(fake.get_filter("net0")))
    w = World(bus_env, netns, fake, d)
    poll(lambda: w.call(nic_path("vm1", "net0"), PROPS, "Get", "ss", NIC_IFACE, "SyncState")[1] == "in-sync", 10,
         what="vm1/net0 in-sync")
    before = w.snapshot()
    yield w
    assert d.running(), "the daemon died"
    after = w.snapshot()
    assert after == before, "something changed:\nbefore %r\nafter  %r" % (before, after)
    w.bus.close()


def check(w, cases):
    bad = []
    for path, iface, method, sig, args, want, msg in cases:
        name, text = w.call(path, iface, method, sig, *args)
        text = str(text)
        if name != want or (msg and not text.startswith(msg)):
            bad.append("%s.%s(%s) on %s: got %s %r, want %s %r" % (iface, method, sig, path[:80], name, text[:200],
                                                                 want, msg))
        else:
            print("%s.%s(%s): %s: %s" % (iface.rsplit(".", 1)[-1], method, sig, name, text[:100]))
    assert not bad, "\n".join(bad)


NIC = nic_path("vm1", "net0")
GUEST = guest_path("vm1")


def test_wrong_signatures(world):
    I = DBUS_ERR + "InvalidArgs"
    check(world, [
        (ROOT_PATH, MANAGER_IFACE, "GetGuest", "i", (5,), I, ""),
        (ROOT_PATH, MANAGER_IFACE, "GetGuest", "", (), I, ""),
        (ROOT_PATH, MANAGER_IFACE, "GetGuest", "ss", ("vm1", "vm1"), I, ""),
        (ROOT_PATH, MANAGER_IFACE, "AttachGuest", "ss", ("x", "/tmp/x.sock"), I, ""),
        (ROOT_PATH, MANAGER_IFACE, "AttachGuest", "ssa{ss}", ("x", "/tmp/x.sock", {}), I, ""),
        (ROOT_PATH, MANAGER_IFACE, "AttachGuest", "ssa{sv}", ("x", "/tmp/x.sock", {"nics": dbus.String("mvt0")}),
         ERR + "InvalidArgument", ""),
        (ROOT_PATH, MANAGER_IFACE, "AttachGuest", "ssa{sv}", ("x", "/tmp/x.sock", {"trust": dbus.UInt32(7)}),
         ERR + "InvalidArgument", ""),
        (ROOT_PATH, MANAGER_IFACE, "DetachGuest", "as", (["vm1"],), I, ""),
        (ROOT_PATH, MANAGER_IFACE, "DetachGuest", "o", (GUEST,), I, ""),
        (ROOT_PATH, MANAGER_IFACE, "Resync", "s", ("vm1",), I, ""),
        (NIC, NIC_IFACE, "SetTrust", "s", ("none",), I, ""),
        (NIC, NIC_IFACE, "SetTrust", "asas", (["none"], ["none"]), I, ""),
        (NIC, NIC_IFACE, "SetTrust", "aay", ([b"none"],), I, ""),
        (NIC, NIC_IFACE, "Resync", "b", (True,), I, ""),
        (GUEST, GUEST_IFACE, "Resync", "u", (1,), I, ""),
        (NIC, PROPS, "Get", "s", (NIC_IFACE,), I, ""),
        # Properties.Set is not even let through by our bus policy file (dbus-daemon answers)
        (NIC, PROPS, "Set", "ssv", (NIC_IFACE, "Trust", dbus.Array(["none"], signature="s")),
         DBUS_ERR + "AccessDenied", "Rejected send message"),
        (NIC, PROPS, "Set", "ssv", (NIC_IFACE, "Mac", dbus.String("52:54:00:00:00:01")),
         DBUS_ERR + "AccessDenied", "Rejected send message"),
    ])


def test_wrong_signatures_from_an_unprivileged_caller(world):
    """Before polkit is even asked: the arguments' signature."""
    for path, iface, method, sig, args in [
        (ROOT_PATH, MANAGER_IFACE, "DetachGuest", "(i)", [1]),
        (ROOT_PATH, MANAGER_IFACE, "AttachGuest", "(s)", ["x"]),
        (NIC, NIC_IFACE, "SetTrust", "(s)", ["all"]),
        (NIC, NIC_IFACE, "SetTrust", "(as)", [["all"]]),  # right signature: polkit says no to nobody
    ]:
        res = world.env.gcall(path, iface, method, sig, args, uid=NOBODY_UID)
        want = DBUS_ERR + ("InvalidArgs" if sig != "(as)" else "AccessDenied")
        if sig == "(as)" and res.get("error") == DBUS_ERR + "InteractiveAuthorizationRequired":
            want = res["error"]  # auth_admin without an agent: a challenge
        assert res.get("error") == want, (method, sig, res)


def test_unknown_objects_methods_properties(world):
    U = DBUS_ERR + "UnknownObject"
    check(world, [
        (nic_path("vm1", "nope"), NIC_IFACE, "SetTrust", "as", (["all"],), U, ""),
        (nic_path("nope", "net0"), NIC_IFACE, "SetTrust", "as", (["none"],), U, ""),
        (guest_path("nope"), GUEST_IFACE, "Resync", "", (), U, ""),
        (ROOT_PATH + "/foo", MANAGER_IFACE, "ListGuests", "", (), U, ""),
        (ROOT_PATH + "/guest/vm1/nic/net0/extra", NIC_IFACE, "Resync", "", (), U, ""),
        (ROOT_PATH + "/guest/" + "a" * 32768, GUEST_IFACE, "Resync", "", (), U, ""),
        (ROOT_PATH, MANAGER_IFACE, "Frobnicate", "", (), DBUS_ERR + "UnknownMethod", ""),
        (NIC, NIC_IFACE, "DetachGuest", "s", ("vm1",), DBUS_ERR + "UnknownMethod", ""),
        # interfaces the policy file does not name are refused by dbus-daemon already
        (GUEST, "io.guestnetd.GuestNet1.Nope", "Resync", "", (), DBUS_ERR + "AccessDenied", "Rejected send message"),
        (NIC, PROPS, "Get", "ss", (NIC_IFACE, "Nope"), DBUS_ERR + "UnknownProperty", ""),
        (NIC, PROPS, "Get", "ss", ("io.guestnetd.GuestNet1.Nope", "Mac"), DBUS_ERR + "UnknownProperty", ""),
        (NIC, PROPS, "GetAll", "s", ("x" * MIB,), DBUS_ERR + "UnknownInterface", "Unknown interface"),
    ])


def test_object_path_of_1_mib(world):
    """Measured: object paths from 64 KiB up get no reply at all (the caller's timeout), shorter
    ones UnknownObject. Either way the daemon stays on the bus and keeps answering."""
    obj = world.bus.get_object(BUS_NAME, ROOT_PATH + "/guest/" + "a" * MIB, introspect=False)
    try:
        obj.get_dbus_method("Resync", GUEST_IFACE)(timeout=3)
        name = "ok"
    except dbus.exceptions.DBusException as e:
        name = e.get_dbus_name()
    print("1 MiB object path: %s" % name)
    assert name in (DBUS_ERR + "UnknownObject", DBUS_ERR + "NoReply"), name
    assert world.call(ROOT_PATH, MANAGER_IFACE, "GetGuest", "s", "vm1") == ("ok", GUEST)


def test_huge_strings(world):
    huge = "x" * MIB
    IA = ERR + "InvalidArgument"
    check(world, [
        (ROOT_PATH, MANAGER_IFACE, "GetGuest", "s", (huge,), ERR + "NoSuchGuest", "No guest named"),
        (ROOT_PATH, MANAGER_IFACE, "DetachGuest", "s", (huge,), ERR + "NoSuchGuest", "No guest named"),
        (ROOT_PATH, MANAGER_IFACE, "FindNicByHostInterface", "s", (huge,), IA, "Invalid interface name"),
        (ROOT_PATH, MANAGER_IFACE, "AttachGuest", "ssa{sv}", (huge, "/run/x.sock", {}), IA, "Invalid guest name"),
        (ROOT_PATH, MANAGER_IFACE, "AttachGuest", "ssa{sv}", ("big", "/" + huge, {}), IA,
         "Invalid QMP socket path: too long for a unix socket"),
        (ROOT_PATH, MANAGER_IFACE, "AttachGuest", "ssa{sv}",
         ("big", "/run/x.sock", {"nics": dbus.Dictionary({huge: "mvt0"}, signature="ss")}), IA, "Invalid NIC id"),
        (ROOT_PATH, MANAGER_IFACE, "AttachGuest", "ssa{sv}",
         ("big", "/run/x.sock", {"nics": dbus.Dictionary({"net0": huge}, signature="ss")}), IA,
         "Invalid host interface"),
        (ROOT_PATH, MANAGER_IFACE, "AttachGuest", "ssa{sv}",
         ("big", "/run/x.sock", {"trust": dbus.Array([huge], signature="s")}), IA, ""),
        (ROOT_PATH, MANAGER_IFACE, "AttachGuest", "ssa{sv}", ("big", "/run/x.sock", {huge: dbus.String("x")}), IA, ""),
        (NIC, NIC_IFACE, "SetTrust", "as", ([huge],), IA, ""),
        (NIC, NIC_IFACE, "SetTrust", "as", (["mac", huge],), IA, ""),
        # 1.6 MB of valid words: refused at the first repeat, so no list is longer than the capabilities
        (NIC, NIC_IFACE, "SetTrust", "as", (["mac"] * 200000,), IA, "Trust capability 'mac' is given twice"),
        (ROOT_PATH, MANAGER_IFACE, "AttachGuest", "ssa{sv}",
         ("big", "/run/x.sock", {"trust": dbus.Array(["promisc"] * 200000, signature="s")}), IA,
         "Trust capability 'promisc' is given twice"),
    ])


def test_names_with_path_characters(world):
    IA = ERR + "InvalidArgument"
    check(world, [
        (ROOT_PATH, MANAGER_IFACE, "AttachGuest", "ssa{sv}", ("a/b", "/run/x.sock", {}), IA,
         "Invalid guest name 'a/b': the name contains '/'"),
        (ROOT_PATH, MANAGER_IFACE, "AttachGuest", "ssa{sv}", ("../../etc/passwd", "/run/x.sock", {}), IA,
         "Invalid guest name"),
        (ROOT_PATH, MANAGER_IFACE, "AttachGuest", "ssa{sv}", ("x\ny", "/run/x.sock", {}), IA,
         "Invalid guest name"),
        (ROOT_PATH, MANAGER_IFACE, "AttachGuest", "ssa{sv}", ("", "/run/x.sock", {}), IA, "Invalid guest name"),
        (ROOT_PATH, MANAGER_IFACE, "AttachGuest", "ssa{sv}", ("rel", "run/x.sock", {}), IA,
         "Invalid QMP socket path: not an absolute path"),
        (ROOT_PATH, MANAGER_IFACE, "AttachGuest", "ssa{sv}", ("ctl", "/run/x\n<0>forged.sock", {}), IA,
         "Invalid QMP socket path: the path contains control characters"),
        (ROOT_PATH, MANAGER_IFACE, "AttachGuest", "ssa{sv}", ("long", "/" + "x" * 107, {}), IA,
         "Invalid QMP socket path: too long for a unix socket (at most 107 bytes)"),
        (ROOT_PATH, MANAGER_IFACE, "AttachGuest", "ssa{sv}", ("vm1", "/run/other.sock", {}), IA,
         "A guest named 'vm1' is already attached"),
        (ROOT_PATH, MANAGER_IFACE, "AttachGuest", "ssa{sv}",
         ("p", "/run/x.sock", {"nics": dbus.Dictionary({"net0": "../mvt0"}, signature="ss")}), IA,
         "Invalid host interface"),
        (ROOT_PATH, MANAGER_IFACE, "AttachGuest", "ssa{sv}",
         ("p", "/run/x.sock", {"nics": dbus.Dictionary({"a/b": "mvt0"}, signature="ss")}), IA, "Invalid NIC id"),
        (ROOT_PATH, MANAGER_IFACE, "AttachGuest", "ssa{sv}",
         ("p", "/run/x.sock", {"nics": dbus.Dictionary({"net0": ".."}, signature="ss")}), IA,
         "Invalid host interface"),
        (ROOT_PATH, MANAGER_IFACE, "FindNicByHostInterface", "s", ("../mvt0",), IA, "Invalid interface name"),
        (ROOT_PATH, MANAGER_IFACE, "FindNicByHostInterface", "s", ("..",), IA, "Invalid interface name"),
        (ROOT_PATH, MANAGER_IFACE, "FindNicByHostInterface", "s", ("mvtü",), IA, "Invalid interface name"),
        (ROOT_PATH, MANAGER_IFACE, "GetGuest", "s", ("../vm1",), ERR + "NoSuchGuest", "No guest named"),
        (NIC, NIC_IFACE, "SetTrust", "as", (["../mac"],), IA, ""),
        (NIC, NIC_IFACE, "SetTrust", "as", (["mac", "promisc", "mac"],), IA, "Trust capability 'mac' is given twice"),
    ])


@pytest.mark.parametrize("name", ["..", ".", "ü-gäst", "a b", "_2f", "-", "0lead"])
def test_odd_but_valid_names_round_trip(world, workdir, name):
    """Names that are legal but look like path parts: attached with an encoded object path (no
    '/' or '..' in it), found again by name, detached cleanly; the daemon writes no file for them."""
    run = world.d.runtime_dir
    files = sorted(str(p) for p in run.rglob("*")) if run.exists() else []
    sock = os.path.join(workdir, "nowhere.sock")  # nobody listens: the guest stays connecting
    res, path = world.call(ROOT_PATH, MANAGER_IFACE, "AttachGuest", "ssa{sv}", name, sock, {})
    assert res == "ok", (res, path)
    assert path == guest_path(name), path
    tail = path[len(ROOT_PATH + "/guest/"):]
    assert "/" not in tail and ".." not in tail and tail.isascii(), path
    assert world.call(ROOT_PATH, MANAGER_IFACE, "GetGuest", "s", name) == ("ok", path)
    world.d.wait_log(r"guest .*: connect failed", timeout=10)
    assert world.call(ROOT_PATH, MANAGER_IFACE, "DetachGuest", "s", name)[0] == "ok"
    assert world.call(ROOT_PATH, MANAGER_IFACE, "GetGuest", "s", name)[0] == ERR + "NoSuchGuest"
    assert (sorted(str(p) for p in run.rglob("*")) if run.exists() else []) == files
