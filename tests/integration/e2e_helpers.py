# SPDX-License-Identifier: LGPL-2.1-or-later
"""Shared pieces of the end-to-end tests (test_e2e_*.py): a real QEMU running the tiny test guest
(tests/guest) in a network namespace, guestnetd on a private system bus with a real polkitd
(busenv.py), an unprivileged signal subscriber, and the comparisons the tests make.

What is compared with what:
  * the guest's own state (`ip -d -j link`, `ip maddr` inside the guest) is turned into the
    query-rx-filter reply QEMU must be giving (guest_snapshot()); the NIC's D-Bus properties, the
    last RxFilterChanged and — for a trusted macvtap — the host device (gnhelpers.expected_host)
    must match it. query-rx-filter is never sent on the test monitor while the daemon is being
    measured (it re-arms the NIC's event); final_check() sends it once at the end of a scenario,
    after the daemon has settled, and compares it with the bus.
  * every wait polls with a timeout (scaled by GUESTNETD_TEST_TIMEOUT_SCALE); nothing asserts a
    duration.
"""

import json
import os
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

HERE = Path(__file__).resolve().parent
REPO = HERE.parents[1]
sys.path.insert(0, str(HERE))
sys.path.insert(0, str(REPO / "tests" / "guest"))

from busenv import (BUS_NAME, GUEST_IFACE, NIC_IFACE, NOBODY_GID, NOBODY_UID, ROOT_PATH,  # noqa: E402,F401
                    BusEnv, Daemon, Subscriber, as_user, guest_path, nic_path)
from gnhelpers import NetNS, T, build_dir, expected_host, poll  # noqa: E402,F401
from guestvm import GuestError, GuestVM, Nic, build_guest  # noqa: E402,F401

QEMU = shutil.which("qemu-system-x86_64")
GUESTNETCTL = build_dir() / "src" / "guestnetctl"

# D-Bus property / RxFilterChanged key  <-  query-rx-filter key
FILTER_KEYS = {
    "Mac": "main-mac", "Promiscuous": "promiscuous", "UnicastMode": "unicast",
    "MulticastMode": "multicast", "VlanMode": "vlan", "UnicastTable": "unicast-table",
    "MulticastTable": "multicast-table", "VlanTable": "vlan-table",
    "UnicastOverflow": "unicast-overflow", "MulticastOverflow": "multicast-overflow",
}
DUMP_INTR = "Dump was interrupted and may be inconsistent.\n"  # iproute2, before the JSON
QEMU_MAC_TABLE_ENTRIES = 64  # MAC_TABLE_ENTRIES in hw/net/virtio-net.c, shared by uni- and multicast


def guest_image():
    """(kernel, initrd) of the test guest, built once into BUILD/guest-cache (or
    $GUESTNETD_GUEST_CACHE); same cache as test_guest.py."""
    cache = os.environ.get("GUESTNETD_GUEST_CACHE") or str(build_dir() / "guest-cache")
    return build_guest(cache)


# ------------------------------------------------------------------------------------ the guest
def _json(text, what):
    """json.loads that names what it parsed and shows the text when it is not JSON."""
    try:
        return json.loads(text.strip() or "[]")
    except ValueError as e:
        raise AssertionError("%s is not JSON (%s): %r" % (what, e, text[-2000:])) from None


def guest_snapshot(vm, dev):
    """(filter, settled) in one command over the serial channel.

    filter: the RX filter the guest has programmed on `dev`, in query-rx-filter form, derived from
    the guest's own view only:
      promiscuous  <- the device's promiscuity count (IFF_PROMISC, what virtio-net sends)
      multicast    <- "all" if its allmulti count is non-zero (VIRTIO_NET_CTRL_RX_ALLMULTI)
      multicast-table <- its link-layer multicast list (`ip maddr`)
      unicast-table   <- the MACs of macvlans stacked on it (its secondary unicast list)
      vlan-table   <- VID 0 (8021q is loaded and the device is up) + the VLANs stacked on it
      overflow     <- QEMU's shared table of 64 entries, unicast first.
    settled: IPv6 has finished with every interface that is up (a link-local address, none
    tentative). Until then the kernel is still joining solicited-node groups on its own (an
    interface's link-local address comes when the link watcher reports its carrier, up to a
    second after `ip link set up`), so the multicast list may still change."""
    out = vm.sh("ip -d -j link show; echo @@@; ip maddr show dev %s; echo @@@; ip -j -6 addr show" % dev)
    # A dump the kernel saw change under it (NLM_F_DUMP_INTR) is complete but may be stale: read
    # it, and call the guest unsettled so that the caller looks again.
    interrupted = DUMP_INTR in out
    out = out.replace(DUMP_INTR, "")
    links_text, maddr_text, addr_text = out.split("@@@", 2)
    links = _json(links_text, "the guest's `ip -d -j link show`")
    me = next(link for link in links if link["ifname"] == dev)
    uppers = [link for link in links if link.get("link") == dev]
    kind = lambda link: link.get("linkinfo", {}).get("info_kind")  # noqa: E731
    mc = sorted({line.split()[1].lower() for line in maddr_text.splitlines()
                 if line.strip().startswith("link ")})
    uc = sorted({u["address"].lower() for u in uppers
                 if kind(u) == "macvlan" and u["linkinfo"].get("info_data", {}).get("mode") != "passthru"})
    vids = sorted({0} | {u["linkinfo"]["info_data"]["id"] for u in uppers if kind(u) == "vlan"})
    uni_over = len(uc) > QEMU_MAC_TABLE_ENTRIES
    multi_over = uni_over or len(uc) + len(mc) > QEMU_MAC_TABLE_ENTRIES
    f = {
        "main-mac": me["address"].lower(),
        "promiscuous": me.get("promiscuity", 0) > 0 or "PROMISC" in me["flags"],
        "unicast": "normal",
        "multicast": "all" if me.get("allmulti", 0) > 0 or "ALLMULTI" in me["flags"] else "normal",
        "vlan": "normal",
        "unicast-table": [] if uni_over else uc,
        "multicast-table": [] if multi_over else mc,
        "vlan-table": vids,
        "unicast-overflow": uni_over,
        "multicast-overflow": multi_over,
    }
    addrs = {a["ifname"]: a.get("addr_info", []) for a in _json(addr_text, "the guest's `ip -j -6 addr show`")}
    settled = not interrupted
    for link in links:
        if link["ifname"] == "lo" or "UP" not in link["flags"]:
            continue
        infos = addrs.get(link["ifname"], [])
        if not any(i.get("scope") == "link" for i in infos) or any(i.get("tentative") for i in infos):
            settled = False
    return f, settled


def guest_filter(vm, dev):
    """The guest's RX filter on `dev` in query-rx-filter form (see guest_snapshot)."""
    return guest_snapshot(vm, dev)[0]


def guest_dev_by_mac(vm, mac):
    """The guest interface whose permanent/current MAC is `mac` (eth0, eth1, ...)."""
    links = _json(vm.sh("ip -j link show"), "the guest's `ip -j link show`")
    for link in links:
        if link.get("address", "").lower() == mac.lower() or link.get("permaddr", "").lower() == mac.lower():
            return link["ifname"]
    raise AssertionError("no guest interface with MAC %s: %s" % (mac, [l["ifname"] for l in links]))


def props_from_filter(f):
    """A query-rx-filter dict → the D-Bus property values the daemon must publish (sorted sets,
    lower-case MACs, no VLAN table when the mode is "all")."""
    p = {}
    for prop, key in FILTER_KEYS.items():
        v = f[key]
        if prop in ("UnicastTable", "MulticastTable"):
            v = sorted(m.lower() for m in v)
        elif prop == "VlanTable":
            v = [] if f["vlan"] == "all" else sorted(set(v))
        elif prop == "Mac":
            v = v.lower()
        p[prop] = v
    return p


def diff(have, want):
    return {k: (have.get(k), v) for k, v in want.items() if have.get(k) != v}


# ------------------------------------------------------------------------------------ the bus
def _unwrap(v):
    """busctl --json=short values: {"type": ..., "data": ...} → data."""
    return v["data"] if isinstance(v, dict) and "type" in v and "data" in v else v


def get_all(env, path, iface=NIC_IFACE, uid=NOBODY_UID):
    """GetAll of one object's interface, read as an unprivileged user; None if the object is gone."""
    r = env.busctl("--json=short", "call", BUS_NAME, path, "org.freedesktop.DBus.Properties", "GetAll", "s",
                   iface, uid=uid)
    if r.returncode != 0:
        return None
    return {k: _unwrap(v) for k, v in _json(r.stdout, "busctl GetAll %s" % path)["data"][0].items()}


def managed_paths(env):
    r = env.busctl("--json=short", "call", BUS_NAME, ROOT_PATH, "org.freedesktop.DBus.ObjectManager",
                   "GetManagedObjects", uid=NOBODY_UID, check=True)
    return set(_json(r.stdout, "busctl GetManagedObjects")["data"][0].keys())


def set_trust_busctl(env, path, caps, uid=NOBODY_UID, gid=NOBODY_GID):
    """Nic.SetTrust through busctl as an unprivileged user (polkit decides)."""
    return env.busctl("call", BUS_NAME, path, NIC_IFACE, "SetTrust", "as", str(len(caps)), *caps,
                      uid=uid, gid=gid)


def guestnetctl(env, *args, uid=NOBODY_UID, gid=NOBODY_GID, timeout=30):
    argv = [str(GUESTNETCTL), "--no-pager", "--no-ask-password", *args]
    if uid is not None:
        argv = as_user(argv, uid, gid)
    return subprocess.run(argv, env=env.env(), capture_output=True, text=True, timeout=timeout, cwd="/")


class Signals:
    """An unprivileged busenv.Subscriber with marks: `mark()` before an action, then look only at
    what came after it."""

    def __init__(self, env):
        self.sub = Subscriber(env)

    def mark(self):
        self.sub.drain(0)
        return len(self.sub.seen)

    def since(self, mark, member=None, path=None):
        self.sub.drain(0)
        return [s for s in self.sub.seen[mark:]
                if (member is None or s["member"] == member) and (path is None or s["path"] == path)]

    def wait(self, mark, pred, timeout=20, what="signal"):
        def find():
            for s in self.since(mark):
                if pred(s):
                    return s
            return None
        return poll(find, timeout, interval=0.05,
                    what=lambda: "%s; got since mark: %s" % (what, json.dumps(self.since(mark))[-3000:]))

    def close(self):
        self.sub.close()


# ------------------------------------------------------------------------------------ convergence
class Nicx:
    """One NIC of the guest as the tests see it: guest device, bus path, host device, trust."""

    def __init__(self, guest, nic_id, kind, host_if, dev=None):
        self.guest, self.id, self.kind, self.host_if, self.dev = guest, nic_id, kind, host_if, dev
        self.path = nic_path(guest, nic_id)

    def __repr__(self):
        return "%s/%s(%s %s, guest %s)" % (self.guest, self.id, self.kind, self.host_if, self.dev)


def converge(env, ns, vm, nic, trusted, timeout=30, baseline=None):
    """Polls until the guest has settled and the NIC's D-Bus properties equal what the guest's own
    state says QEMU holds (re-reading the guest each round), and, for a trusted
    macvtap, the host device too. For an untrusted NIC the host device must stay `baseline`.
    Returns (guest filter, properties, host state)."""
    state = {}

    def ok():
        f, settled = guest_snapshot(vm, nic.dev)
        if not settled:
            state["why"] = "the guest's IPv6 is still configuring an interface"
            return None
        props = get_all(env, nic.path)
        state.update(filter=f, props=props)
        if props is None:
            state["why"] = "no NIC object"
            return None
        want = props_from_filter(f)
        d = diff(props, want)
        if d:
            state["why"] = "bus (have, want): %r" % d
            return None
        host = ns.host_state(nic.host_if)
        state["host"] = host
        if trusted:
            wh = expected_host(f)
            d = {k: (host.get(k), v) for k, v in wh.items() if host.get(k) != v}
            if d:
                state["why"] = "host %s (have, want): %r" % (nic.host_if, d)
                return None
        elif baseline is not None and host != baseline:
            state["why"] = "untrusted host %s changed: %r -> %r" % (nic.host_if, baseline, host)
            return None
        return f, props, host

    return poll(ok, timeout, interval=0.1, what=lambda: "%r to converge: %s" % (nic, state.get("why")))


def check_filter_signal(sig, mark, nic, props, sync, changed=()):
    """An RxFilterChanged of the NIC since `mark` carries exactly `props` (the filter the guest
    programmed) with sync outcome `sync`; every RxFilterChanged after it carries the same filter;
    and the signals since `mark` together named each field of `changed`."""
    want = {k: props[k] for k in FILTER_KEYS}
    first = sig.wait(mark, lambda s: s["member"] == "RxFilterChanged" and s["path"] == nic.path
                     and s["args"][0] == want, what="RxFilterChanged of %r with %r" % (nic, want))
    assert first["args"][2] == sync, "RxFilterChanged sync %r, want %r" % (first["args"][2], sync)
    sigs = sig.since(mark, "RxFilterChanged", nic.path)
    last = sigs[-1]["args"]
    assert last[0] == want, "last RxFilterChanged (have, want): %r" % diff(last[0], want)
    assert last[2] == sync, "last RxFilterChanged sync %r, want %r" % (last[2], sync)
    named = set().union(*(set(s["args"][1]) for s in sigs))
    missing = set(changed) - named
    assert not missing, "RxFilterChanged never named %s (named: %s)" % (sorted(missing), sorted(named))
    return sigs


def final_check(vm, nic, props):
    """After the daemon settled: QEMU's own query-rx-filter (test monitor) equals the bus. Only
    here, at the end: the query re-arms the event, which is harmless once the daemon has queried
    last."""
    q = vm.rx_filter(nic.id)
    want = props_from_filter(q)
    have = {k: props[k] for k in FILTER_KEYS}
    assert have == want, "bus vs query-rx-filter (have, want): %r" % diff(have, want)


def wait_guest_state(env, gpath, state, timeout=30):
    """Polls the Guest's State property (read as an unprivileged user)."""
    seen = {}

    def ok():
        seen["state"] = (get_all(env, gpath, GUEST_IFACE) or {}).get("State")
        return seen["state"] == state
    poll(ok, timeout, interval=0.05, what=lambda: "%s State=%s (have %r)" % (gpath, state, seen.get("state")))


# ------------------------------------------------------------------------------------ the world
class DaemonReport:
    """What conftest.py's failure report expects of a daemon (label, log_path, log_tail)."""

    def __init__(self, daemon, label):
        self.d, self.label = daemon, label

    @property
    def log_path(self):
        return self.d.log_path

    def log_tail(self, n=80):
        return "\n".join(self.d.log().splitlines()[-n:])


class World:
    """One private bus + real polkitd, one network namespace (veth lo0/lo1, macvtap mvt0 in bridge
    mode, tap tap0), one guestnetd (busenv.Daemon: not in the namespace — it finds QEMU's namespace
    through SO_PEERCRED), one unprivileged signal subscriber and at most one guest at a time.
    Everything is recorded and removed by close(): QEMU and the daemon by their PIDs, the
    namespace by the unique name we gave it. Logs are copied to BUILD/integration-logs/LABEL/."""

    def __init__(self, label, config="[Daemon]\nReconcileIntervalSec=0\n"):
        self.label = label
        self.kernel, self.initrd = guest_image()
        self.workdir = Path(tempfile.mkdtemp(prefix="gne-", dir="/tmp"))  # short: socket paths
        self.env = self.ns = self.daemon = self.sig = self.vm = None
        try:
            self.env = BusEnv()
            self.env.start_bus()
            self.env.start_polkitd()
            self.ns = NetNS(prefix="gne")
            self.ns.create()
            self.ns.add_veth("lo0", "lo1")
            self.ns.add_macvtap("mvt0", "lo0", mode="bridge")
            self.ns.add_tap("tap0", up=True)
            self.daemon = Daemon(self.env, config=config)
            self.sig = Signals(self.env)
        except BaseException:
            self.close()
            raise

    def report(self):
        return [DaemonReport(self.daemon, "guestnetd (%s)" % self.label)]

    # ---- daemon
    def start_daemon(self):
        self.daemon.start()
        return self.daemon

    def stop_daemon(self):
        """SIGTERM by PID; the daemon must exit 0."""
        self.daemon.stop()
        rc = self.daemon.proc.returncode
        assert rc == 0, "guestnetd exited with %s on SIGTERM:\n%s" % (rc, self.daemon.log()[-3000:])

    def daemon_running(self):
        return self.daemon.proc is not None and self.daemon.proc.poll() is None

    # ---- guest
    def start_vm(self, nics, daemon_qmp, no_reboot=True, wait=True):
        """Boots a guest (a new GuestVM, the same workdir: same sockets, same command channel)."""
        assert self.vm is None or not self.vm.alive(), "a guest is already running"
        if self.vm is not None:
            self.vm.stop()  # removes its private macvtap node before the new one is made
        self.vm = GuestVM(self.workdir / "vm", netns=self.ns.name, nics=nics, kernel=self.kernel,
                          initrd=self.initrd, daemon_qmp=str(daemon_qmp), no_reboot=no_reboot)
        self.vm.start()
        if wait:
            self.vm.wait_ready()
        return self.vm

    def kill_vm(self):
        """SIGKILL of our QEMU's PID (its sockets stay on disk, as after a crash)."""
        self.vm.kill()

    # ---- teardown
    def close(self):
        logdir = build_dir() / "integration-logs" / self.label
        shutil.rmtree(logdir, ignore_errors=True)
        try:
            logdir.mkdir(parents=True, exist_ok=True)
            for src, name in ((self.daemon and self.daemon.log_path, "guestnetd.log"),
                              (self.env and self.env.dir / "polkitd.log", "polkitd.log"),
                              (self.vm and self.vm.console_log, "guest-console.log"),
                              (self.vm and self.vm.qemu_log, "qemu.log")):
                if src and os.path.exists(src):
                    shutil.copy(src, logdir / name)
        except OSError:
            pass
        for step in (lambda: self.vm and self.vm.stop(),
                     lambda: self.daemon and self.daemon.stop(),
                     lambda: self.sig and self.sig.close(),
                     lambda: self.env and self.env.close(),
                     lambda: self.ns and self.ns.delete(),
                     lambda: shutil.rmtree(self.workdir, ignore_errors=True)):
            try:
                step()
            except Exception as e:  # keep cleaning up
                print("e2e cleanup: %r" % e, file=sys.stderr)
