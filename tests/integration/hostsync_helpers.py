# SPDX-License-Identifier: LGPL-2.1-or-later
"""Helpers for the host-sync integration tests (tests/integration/test_hostsync_*.py, issue 4).

What the shared harness (fakeqmp.py, gnhelpers.py, busenv.py) does not have, without editing it:

* ``HsFakeQmp``: FakeQmp plus what a real QEMU 7.2 does for NICs created without ``id=`` (query name
  ``virtio-net-pci.N``, QOM path ``/machine/peripheral-anon/device[N]``, events carrying only
  ``path``, ``qom-list``, DEVICE_DELETED without ``device``), a decoy non-NIC anonymous device, and
  ``toggle_flags()``: a guest flipping promisc/allmulti N times, each change waiting for the previous
  one to be queried (QEMU's one-event-per-query throttle), all inside the peer process.
* ``HsFakeProcess``: that peer as a child process in a network namespace (like FakeQmpProcess) that can
  first open file descriptors the way libvirt hands them to QEMU: a macvtap's ``/dev/tapIFINDEX``
  (made in a private overlay of ``/dev`` when the host's ``/dev/tapN`` is missing or names another
  namespace's device) and a tap via ``/dev/net/tun`` + ``TUNSETIFF``. ``info network`` then says
  ``fd=N`` and the daemon must find the device through ``/proc/PID/fd/N`` or ``fdinfo``.
* Host probes: promiscuity/allmulti counters (``ip -d link``), bridge FDB entries, and a process that
  holds promiscuous/all-multicast memberships on a device through a packet socket (so the counters
  start above zero and a stray decrement shows).
* Fixtures: ``hsfakes`` (peers of the class above), ``other_netns`` (a second namespace), and bus
  helpers for running the conftest ``daemons`` on busenv's private system bus.

Run as a script it is the child side: ``hostsync_helpers.py serve FDSPEC CONTROL AUTHKEY KWARGS`` or
``hostsync_helpers.py hold IFNAME``.
"""

import copy
import fcntl
import json
import os
import secrets
import signal
import socket
import struct
import subprocess
import sys
import tempfile
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

import fakeqmp  # noqa: E402
from fakeqmp import FakeNic, FakeQmp, FakeQmpProcess  # noqa: E402

PYTHON = "/usr/bin/python3"
HERE = os.path.abspath(__file__)

# ----------------------------------------------------------------------------------- the fake QEMU


class AnonNic(FakeNic):
    """A virtio NIC created without id=: QEMU names it "virtio-net-pci.N" in query-rx-filter and
    `info network`, its QOM path is /machine/peripheral-anon/device[K], its events carry only the
    path (rxfilter.md)."""

    def __init__(self, query_name, mac, anon_index=0, **kw):
        kw["anonymous"] = True
        self.anon_index = anon_index
        super().__init__(query_name, mac, **kw)

    @property
    def qom_path(self):
        return "/machine/peripheral-anon/device[%d]" % self.anon_index


class HsFakeQmp(FakeQmp):
    """FakeQmp + id-less NICs, qom-list, a decoy anonymous device and toggle_flags()."""

    EXTRA_METHODS = {"toggle_flags", "anon_decoys"}

    def __init__(self, path, nics=None, decoys=(), **kw):
        plain, anon = [], []
        for i, n in enumerate(nics if nics is not None else [{"id": "net0", "mac": "52:54:00:12:34:56"}]):
            n = dict(n)
            n.setdefault("index", i)
            (anon if n.get("anonymous") else plain).append(n)
        # decoys: anonymous devices that are not NICs (e.g. a virtio-rng), {"index": K, "type": T}
        self._decoys = [dict(d) for d in decoys]
        kw["start"] = False
        super().__init__(path, nics=plain, **kw)
        for n in anon:
            n.pop("anonymous")
            nic = AnonNic(n.pop("id"), n.pop("mac"), **n)
            self.nics[nic.id] = nic
        self.start()

    def anon_decoys(self):
        return copy.deepcopy(self._decoys)

    def _cmd_qom_list(self, c, msg, args):
        path = args.get("path", "")
        if path == "/machine/peripheral-anon":
            out = [{"name": "type", "type": "string"}]
            out += [{"name": "device[%d]" % d["index"], "type": "child<%s>" % d["type"]} for d in self._decoys]
            out += [{"name": "device[%d]" % n.anon_index, "type": "child<%s>" % n.model}
                    for n in self.nics.values() if isinstance(n, AnonNic)]
            self._reply(c, msg, out)
        elif path == "/machine/peripheral":
            out = [{"name": "type", "type": "string"}]
            out += [{"name": n.id, "type": "child<%s>" % n.model}
                    for n in self.nics.values() if not isinstance(n, AnonNic)]
            self._reply(c, msg, out)
        else:
            self._reply(c, msg, error=("DeviceNotFound", "Device '%s' not found" % path))

    def _cmd_qom_get(self, c, msg, args):
        path = args.get("path", "")
        for d in self._decoys:
            if path == "/machine/peripheral-anon/device[%d]" % d["index"]:
                prop = args.get("property", "")
                if prop == "type":
                    self._reply(c, msg, d["type"])
                else:
                    self._reply(c, msg, error=("GenericError", "Property '%s.%s' not found" % (d["type"], prop)))
                return
        super()._cmd_qom_get(c, msg, args)

    def remove_nic(self, nic, events=True):
        """device_del: for an id-less NIC both DEVICE_DELETED carry only a path."""
        with self._lock:
            n = self._nic(nic)
            if not isinstance(n, AnonNic):
                return super().remove_nic(nic, events)
            self.nics.pop(nic)
            if events:
                self._emit("DEVICE_DELETED", {"path": "%s/virtio-backend" % n.qom_path})
                self._emit("DEVICE_DELETED", {"path": n.qom_path})

    def toggle_flags(self, nic, count, timeout=60.0):
        """A guest flipping its filter `count` times: change i sets promiscuous = (i even) and
        multicast = all/normal every other change (IFF_ALLMULTI). Each change waits until the NIC is
        re-armed (the daemon queried the previous state), so every state reaches the daemon as an
        event. Returns the number of changes made."""
        end = time.monotonic() + timeout
        for i in range(count):
            with self._cond:
                n = self._nic(nic)
                while not n.armed:
                    left = end - time.monotonic()
                    if left <= 0:
                        raise TimeoutError("toggle_flags: %s not re-armed after %d of %d changes; %r" %
                                           (nic, i, count, self.stats()))
                    self._cond.wait(min(left, 0.05))
                n.filter["promiscuous"] = i % 2 == 0
                n.filter["multicast"] = "all" if (i // 2) % 2 == 0 else "normal"
                self._changed(n)
        return count


# ---------------------------------------------------------------- the peer process and its fds

TUNSETIFF = 0x400454CA
IFF_TAP = 0x0002
IFF_NO_PI = 0x1000


def _macvtap_char_dev(ifname):
    ifindex = int(open("/sys/class/net/%s/ifindex" % ifname).read())
    major, minor = map(int, open("/sys/class/net/%s/macvtap/tap%d/dev" % (ifname, ifindex)).read().split(":"))
    return ifindex, os.makedev(major, minor)


def _private_dev_overlay(scratch):
    """Overlays /dev in this process's mount namespace (private: `ip netns exec` made one) so that
    nodes can be made there without touching the host's /dev."""
    os.makedirs(scratch, exist_ok=True)
    subprocess.run(["mount", "-t", "tmpfs", "tmpfs", scratch], check=True)
    os.makedirs(scratch + "/upper")
    os.makedirs(scratch + "/work")
    subprocess.run(["mount", "-t", "overlay", "overlay", "-o",
                    "lowerdir=/dev,upperdir=%s/upper,workdir=%s/work" % (scratch, scratch), "/dev"], check=True)


def _open_backend_fds(spec):
    """spec: {"scratch": dir, "fds": [{"fd": N, "macvtap": IFNAME} | {"fd": N, "tap": IFNAME}]}.
    Opens each device the way libvirt does for QEMU and puts it at fd N (inheritable)."""
    overlaid = False
    for item in spec.get("fds", []):
        if "macvtap" in item:
            ifindex, rdev = _macvtap_char_dev(item["macvtap"])
            node = "/dev/tap%d" % ifindex
            try:
                st = os.stat(node)
                ok = st.st_rdev == rdev
            except FileNotFoundError:
                ok = False
            if not ok:
                # /dev/tapN is missing here or is another namespace's macvtap with the same ifindex.
                if not overlaid:
                    _private_dev_overlay(spec["scratch"])
                    overlaid = True
                if os.path.lexists(node):
                    os.unlink(node)
                os.mknod(node, 0o600 | 0o020000, rdev)
            fd = os.open(node, os.O_RDWR)
        else:
            fd = os.open("/dev/net/tun", os.O_RDWR)
            ifr = struct.pack("16sH22x", item["tap"].encode(), IFF_TAP | IFF_NO_PI)
            fcntl.ioctl(fd, TUNSETIFF, ifr)
        if fd != item["fd"]:
            os.dup2(fd, item["fd"])
            os.close(fd)
        os.set_inheritable(item["fd"], True)


def _child_serve(argv):
    spec = json.loads(argv[0])
    _open_backend_fds(spec)
    fakeqmp.FakeQmp = HsFakeQmp  # _serve() builds fakeqmp.FakeQmp(**kwargs)
    fakeqmp._SERVE_METHODS |= HsFakeQmp.EXTRA_METHODS
    fakeqmp._serve(argv[1:])


class HsFakeProcess(FakeQmpProcess):
    """HsFakeQmp in a child process in a network namespace, optionally holding backend fds first
    (fds: list of {"fd": N, "macvtap": IFNAME} / {"fd": N, "tap": IFNAME}). Same RPC as
    FakeQmpProcess, plus HsFakeQmp's extra methods."""

    def __init__(self, path, netns=None, control_dir=None, fds=(), scratch=None, **kwargs):
        key = self._prepare(path, control_dir, kwargs)
        d = control_dir or os.path.dirname(path)
        spec = {"fds": list(fds), "scratch": scratch or os.path.join(d, ".dev-%s" % secrets.token_hex(4))}
        self._spawn([PYTHON, HERE, "serve", json.dumps(spec), self._control, key.hex(), json.dumps(self._kw)],
                    key, netns)

    def __getattr__(self, name):
        if name in HsFakeQmp.EXTRA_METHODS:
            return lambda *a, **kw: self._call(name, *a, **kw)
        return super().__getattr__(name)

    def crash(self):
        """SIGKILL, as when QEMU dies: the QMP socket file stays behind, nothing is closed politely."""
        if self.proc.poll() is None:
            os.kill(self.pid, signal.SIGKILL)
            self.proc.wait()
        self._stopped = True
        try:
            self._conn.close()
        except OSError:
            pass
        try:
            os.unlink(self._control)
        except FileNotFoundError:
            pass


# -------------------------------------------------------------------------- membership holder


def _child_hold(argv):
    """Holds promiscuous and all-multicast memberships on IFNAME (packet socket) until stdin closes."""
    SOL_PACKET, PACKET_ADD_MEMBERSHIP, PACKET_MR_PROMISC, PACKET_MR_ALLMULTI = 263, 1, 1, 2
    s = socket.socket(socket.AF_PACKET, socket.SOCK_RAW, 0)
    ifindex = socket.if_nametoindex(argv[0])
    for mr in (PACKET_MR_PROMISC, PACKET_MR_ALLMULTI):
        s.setsockopt(SOL_PACKET, PACKET_ADD_MEMBERSHIP, struct.pack("iHH8s", ifindex, mr, 0, b""))
    print("ready", flush=True)
    sys.stdin.read()


class MembershipHolder:
    """A process of ours in the namespace holding promisc+allmulti memberships on a device: its
    promiscuity and allmulti counters are 1 without IFF_PROMISC/IFF_ALLMULTI in the user flags."""

    def __init__(self, ns, ifname):
        self.proc = subprocess.Popen(ns.exec_argv([PYTHON, HERE, "hold", ifname]), stdin=subprocess.PIPE,
                                     stdout=subprocess.PIPE, text=True)
        line = self.proc.stdout.readline().strip()
        if line != "ready":
            self.stop()
            raise AssertionError("membership holder failed on %s: %r" % (ifname, line))

    def stop(self):
        if self.proc.poll() is None:
            try:
                self.proc.stdin.close()
            except OSError:
                pass
            try:
                self.proc.wait(5)
            except subprocess.TimeoutExpired:
                os.kill(self.proc.pid, signal.SIGKILL)
                self.proc.wait()


# ------------------------------------------------------------------------------- host probes


def counters(ns, dev):
    """(promiscuity, allmulti) counters of dev, from `ip -d -j link`."""
    link = ns.link(dev)
    return link["promiscuity"], link.get("allmulti")


def fdb_entries(ns, dev):
    """The bridge's FDB entries on port dev (`bridge fdb show dev`, master entries only) as
    {mac: state}; the port's own ("self") entries are not the bridge's."""
    from gnhelpers import run
    out = run(["bridge", "-n", ns.name, "-j", "fdb", "show", "dev", dev]).stdout
    entries = {}
    for e in json.loads(out or "[]"):
        if "self" in e.get("flags", []):
            continue
        entries[e["mac"].lower()] = e.get("state", "")
    return entries


def add_bridge_port_tap(ns, tap, bridge="br0", learning=False, static_macs=()):
    """tap as a port of bridge (created if needed), learning on/off, static FDB entries for MACs."""
    from gnhelpers import run
    if ns.ip("link", "show", bridge, check=False).returncode != 0:
        ns.ip("link", "add", bridge, "type", "bridge")
        ns.ip("link", "set", bridge, "up")
    ns.add_tap(tap)
    ns.ip("link", "set", tap, "master", bridge)
    run(["bridge", "-n", ns.name, "link", "set", "dev", tap, "learning", "on" if learning else "off"])
    for mac in static_macs:
        run(["bridge", "-n", ns.name, "fdb", "add", mac, "dev", tap, "master", "static"])


def hostsync_failures(d):
    """Log lines of failed host calls (a balanced, correct daemon has none)."""
    return [m.group(0) for m in d.log_lines(r".*(host sync of \w+ failed|revert of .* failed|"
                                             r"Value too large|EOVERFLOW).*")]


def nic_log(d, guest, nic, rest):
    return r"guest %s nic %s: %s" % (guest, nic, rest)


# ------------------------------------------------------------------------------- the bus


def start_bus_daemon(daemons, bus_env, **kw):
    """conftest's daemons() on busenv's private system bus; waits until it owns the bus name."""
    from busenv import BUS_NAME
    env = dict(kw.pop("env", {}) or {})
    env["DBUS_SYSTEM_BUS_ADDRESS"] = bus_env.address
    d = daemons(env=env, **kw)
    from gnhelpers import poll
    poll(lambda: bus_env.name_has_owner(BUS_NAME), 10, 0.05, what="guestnetd to own %s" % BUS_NAME)
    return d


def set_trust(bus_env, guest, nic, caps, uid=None, gid=None):
    """Nic.SetTrust(caps) over the bus (as root unless uid is given); fails the test on an error."""
    from busenv import NIC_IFACE, nic_path
    res = bus_env.gcall(nic_path(guest, nic), NIC_IFACE, "SetTrust", "(as)", [list(caps)], uid=uid, gid=gid)
    assert "result" in res, "SetTrust(%r) on %s/%s failed: %r" % (caps, guest, nic, res)
    return res


def nic_prop(bus_env, guest, nic, prop):
    from busenv import NIC_IFACE, nic_path
    return bus_env.get_property(nic_path(guest, nic), NIC_IFACE, prop)


def guest_nics(bus_env, guest):
    from busenv import GUEST_IFACE, guest_path
    return bus_env.get_property(guest_path(guest), GUEST_IFACE, "Nics")


def nic_object_exists(bus_env, guest, nic):
    from busenv import NIC_IFACE, nic_path
    r = bus_env.busctl("get-property", "io.guestnetd.GuestNet1", nic_path(guest, nic), NIC_IFACE, "Id")
    return r.returncode == 0


# ------------------------------------------------------------------------------- a guest


def start_guest(hsfakes, daemons, nics, name="vm1", trust=None, nic_keys=None, config=None, bus_env=None,
                fake_kw=None, wait_nics=None, **daemon_kw):
    """A fake guest with these NICs (fakeqmp dicts) and a daemon with a drop-in for it.
    nic_keys: {nic id: {"HostInterface": ..., "Trust": ...}} for the drop-in. Waits until the daemon
    is connected and each NIC of wait_nics (default: all) had its initial filter processed and is
    re-armed. Returns (fake, daemon)."""
    from gnhelpers import guest_dropin
    fake = hsfakes(name, nics=nics, **(fake_kw or {}))
    dropin = guest_dropin(name, fake.path, trust, nic_keys or {})
    kw = dict(guests={name: dropin}, config=config, **daemon_kw)
    d = start_bus_daemon(daemons, bus_env, **kw) if bus_env else daemons(**kw)
    d.wait_log(r"guest %s: connected to QEMU 7\.2\.0" % name)
    for n in (wait_nics if wait_nics is not None else [n["id"] for n in nics]):
        d.wait_log(nic_log(d, name, n, r"filter changed \[.*\]; host "))
        fake.wait_armed(n)
    return fake, d


PROCESSED = r"filter (changed \[.*\]|unchanged); host \w+"


def processed(d, guest, nic):
    """How many query-rx-filter replies of this NIC the daemon has processed (one log line each)."""
    return len(d.log_lines(nic_log(d, guest, nic, PROCESSED)))


def wait_processed(d, guest, nic, count, timeout=5.0):
    """Waits until the daemon processed at least `count` replies of this NIC in total."""
    return d.wait_log(nic_log(d, guest, nic, PROCESSED), timeout=timeout, count=count)


# ------------------------------------------------------------------------------- fixtures
try:
    import pytest
except ImportError:
    pytest = None

if pytest:
    @pytest.fixture
    def hsfakes(request, netns, workdir, fakes):
        """Like conftest's fakes(), with HsFakeProcess: hsfakes(name, nics=[...], fds=[...],
        ns=NetNS (default: the test's namespace), path=None, **FakeQmp kwargs)."""
        started = []
        sockdir = os.path.join(workdir, "sockets")
        os.makedirs(sockdir, exist_ok=True)
        reported = getattr(request.node, "_gn_fakes", None)

        def start(name="vm1", nics=None, path=None, ns=None, fds=(), **kw):
            p = path or os.path.join(sockdir, "%s.qmp" % name)
            f = HsFakeProcess(p, netns=(ns or netns).name, control_dir=sockdir, name=name, nics=nics, fds=fds,
                              scratch=tempfile.mkdtemp(prefix="dev-", dir=workdir), **kw)
            started.append(f)
            if reported is not None:
                reported.append(f)
            return f

        yield start
        for f in reversed(started):
            f.stop()

    @pytest.fixture
    def other_netns(request):
        """A second namespace of ours (with its own lo0/lo1 veth pair), deleted afterwards."""
        from gnhelpers import NetNS
        if os.geteuid() != 0:
            pytest.skip("needs root (network namespaces)")
        ns = NetNS(prefix="gnta")
        request.addfinalizer(ns.delete)
        ns.create()
        ns.add_veth("lo0", "lo1")
        return ns

    @pytest.fixture
    def holders(request):
        """Factory: holders(ns, ifname) -> MembershipHolder, stopped (by PID) afterwards."""
        started = []

        def start(ns, ifname):
            h = MembershipHolder(ns, ifname)
            started.append(h)
            return h

        yield start
        for h in started:
            h.stop()


if __name__ == "__main__":
    if len(sys.argv) >= 2 and sys.argv[1] == "serve":
        _child_serve(sys.argv[2:])
    elif len(sys.argv) >= 3 and sys.argv[1] == "hold":
        _child_hold(sys.argv[2:])
    else:
        sys.stderr.write("usage: hostsync_helpers.py serve FDSPEC CONTROL AUTHKEY KWARGS | hold IFNAME\n")
        sys.exit(2)
