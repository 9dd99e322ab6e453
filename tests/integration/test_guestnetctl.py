# SPDX-License-Identifier: LGPL-2.1-or-later
"""guestnetctl against the daemon on a private system bus with our policy, a real polkitd
(tests/polkit/50-guestnetd-test.rules: guests allow-* authorized, deny-* refused, others auth_admin,
i.e. a challenge without an agent) and fake QMP peers:
  every read command, human and --json (parsed, fields asserted);
  monitor sees a change the peer makes, one line per event, and exits 0 on SIGINT;
  trust / resync / attach / detach authorized, challenged and denied, as an unprivileged user, with
      the message and exit status of guestnetctl(1);
  no daemon (and no bus) gives "guestnetd is not running" and exit status 5;
  the man pages build and render, --help and the man pages name the same options and commands;
  the bash completion completes guest names, NIC ids and capabilities from the bus;
  docs/dbus-api.md is what scripts/gen-dbus-doc makes of dbus/*.xml."""

import json
import os
import queue
import re
import shutil
import signal
import subprocess
import threading
import time

import pytest

from busenv import (GUEST_IFACE, NIC_IFACE, NOBODY_GID, NOBODY_UID, REPO, Daemon, as_user, bare_bus_env,
                    build_dir, bus_env, fake_guest, fake_queries, guest_path, nic_path, wait_until)

assert bus_env and bare_bus_env  # fixtures, used by name

UUID = "9f0d7a1e-5b1c-4c3e-8d2b-1a2b3c4d5e6f"  # the fake peer's query-uuid
# name -> (how the daemon finds it, NIC ids)
GUESTS = {
    "web1": ("qmp-dir", ("net0", "net1")),
    "db.prod": ("qmp-dir", ("net0",)),
    "allow-g": ("dropin", ("net0",)),
    "deny-g": ("dropin", ("net0",)),
}
ATTACHABLE = ["allow-att", "deny-att", "plain-att", "allow-rel"]

EXIT_USAGE, EXIT_NO_SUCH_OBJECT, EXIT_NOT_AUTHORIZED, EXIT_NOT_RUNNING, EXIT_INVALID_ARGUMENT = 2, 3, 4, 5, 6


def ctl_binary():
    return build_dir() / "src" / "guestnetctl"


def mac_of(index, i):
    """The MAC busenv.fake_guest gives NIC i of the guest with this index."""
    return "52:54:00:%02x:%02x:%02x" % (index >> 8 & 0xff, index & 0xff, i)


def ctl(env, *args, uid=NOBODY_UID, gid=NOBODY_GID, cwd="/", extra_env=None, timeout=30):
    """guestnetctl ARGS on env's bus, as an unprivileged user by default (uid=None: as root)."""
    argv = [str(ctl_binary()), *args]
    if uid is not None:
        argv = as_user(argv, uid, gid)
    e = env.env(**(extra_env or {})) if env is not None else dict(os.environ, **(extra_env or {}))
    e.pop("NO_COLOR", None)
    return subprocess.run(argv, env=e, capture_output=True, text=True, timeout=timeout, cwd=cwd)


def ok(res):
    assert res.returncode == 0, f"exit {res.returncode}: {res.stderr}"
    assert res.stderr == "", res.stderr
    return res.stdout


def fails(res, status, message):
    """Exits with `status`, one line on stderr matching `message` (a regex), nothing on stdout."""
    assert res.returncode == status, f"want exit {status}, got {res.returncode}: {res.stderr!r}"
    lines = res.stderr.splitlines()
    assert len(lines) == 1, f"want one line on stderr, got {lines!r}"
    assert re.search(message, lines[0]), f"{message!r} not in {lines[0]!r}"
    assert res.stdout == ""


class World:
    def __init__(self, env, daemon, fakes, ext):
        self.env, self.daemon, self.fakes, self.ext = env, daemon, fakes, ext

    def prop(self, path, iface, name):
        return self.env.get_property(path, iface, name)

    def trust(self, guest, nic="net0"):
        return self.prop(nic_path(guest, nic), NIC_IFACE, "Trust")

    def has_guest(self, name):
        return "result" in self.env.gcall("/io/guestnetd/GuestNet1", "io.guestnetd.GuestNet1.Manager", "GetGuest",
                                          "(s)", [name])


@pytest.fixture(scope="module")
def world(bus_env):
    if not ctl_binary().exists():
        pytest.fail(f"{ctl_binary()} does not exist: build first (scripts/test does)")
    daemon = Daemon(bus_env)
    ext = daemon.dir / "q"
    ext.mkdir()
    os.chmod(ext, 0o755)
    fakes = {}
    try:
        for i, (name, (how, nics)) in enumerate(GUESTS.items()):
            if how == "qmp-dir":
                fakes[name] = fake_guest(daemon.qmp_dir / f"{name}.sock", name, nics, index=i)
            else:
                fakes[name] = fake_guest(ext / f"{name}.sock", name, nics, index=i)
                daemon.add_dropin(f"{name}.conf", f"[Guest]\nName={name}\nQmpSocket={ext}/{name}.sock\n")
        for j, name in enumerate(ATTACHABLE):
            fakes[name] = fake_guest(ext / f"{name}.sock", name, ("net0",), index=100 + j)
        daemon.start()
        for name, (_, nics) in GUESTS.items():
            wait_until(lambda: bus_env.get_property(guest_path(name), GUEST_IFACE, "State") == "connected",
                       timeout=15, what=f"{name} connected")
            for nic in nics:
                wait_until(lambda: bus_env.get_property(nic_path(name, nic), NIC_IFACE, "Mac") != "",
                           timeout=15, what=f"{name}/{nic}'s filter read")
        yield World(bus_env, daemon, fakes, ext)
    finally:
        daemon.stop()
        for fake in fakes.values():
            fake.stop()


# --- list ------------------------------------------------------------------------------------------------
def test_list_human(world):
    out = ok(ctl(world.env, "list")).splitlines()
    assert re.fullmatch(r"GUEST +STATE +NICS UUID", out[0]), out
    rows = {line.split()[0]: line.split() for line in out[1:len(GUESTS) + 1]}
    assert sorted(rows) == sorted(GUESTS)  # the attachable ones are not attached
    assert rows["web1"] == ["web1", "connected", "2", UUID]
    assert rows["db.prod"] == ["db.prod", "connected", "1", UUID]
    assert out[-2:] == ["", f"{len(GUESTS)} guests listed."]
    # The default command is list; --no-legend drops header and footer.
    assert ok(ctl(world.env)) == "\n".join(out) + "\n"
    bare = ok(ctl(world.env, "--no-legend", "list")).splitlines()
    assert bare == out[1:len(GUESTS) + 1]


def test_list_json(world):
    data = json.loads(ok(ctl(world.env, "--json", "list")))
    guests = {g["Name"]: g for g in data["guests"]}
    assert sorted(guests) == sorted(GUESTS)
    for name, (_, nics) in GUESTS.items():
        g = guests[name]
        assert g["State"] == "connected"
        assert g["UUID"] == UUID
        assert g["QemuVersion"] == "7.2.0"
        assert g["Path"] == guest_path(name)
        assert g["NicIds"] == sorted(nics)
        assert g["Nics"] == sorted(nic_path(name, n) for n in nics)
    assert guests["web1"]["QmpSocket"] == str(world.daemon.qmp_dir / "web1.sock")


# --- status and nic --------------------------------------------------------------------------------------
def test_status_human(world):
    out = ok(ctl(world.env, "status", "web1"))
    lines = out.splitlines()
    assert lines[0] == "● web1"
    fields = {}
    for line in lines:
        m = re.fullmatch(r" *([A-Za-z ]+): (.*)", line)
        if m:
            fields.setdefault(m.group(1), []).append(m.group(2))
    assert fields["State"] == ["connected"]
    assert fields["UUID"] == [UUID]
    assert fields["QEMU version"] == ["7.2.0"]
    assert fields["QMP socket"] == [str(world.daemon.qmp_dir / "web1.sock")]
    assert fields["NICs"] == ["net0, net1"]
    assert "● net0 (guest web1)" in lines and "● net1 (guest web1)" in lines
    assert fields["MAC"] == [mac_of(0, 0), mac_of(0, 1)]
    assert fields["Trust"] == ["none", "none"]
    assert fields["Sync state"] == ["observing", "observing"]
    assert fields["Host interface"] == ["unknown", "unknown"]
    assert fields["Promiscuous"] == ["yes", "yes"]  # QEMU's reset state
    assert fields["QOM path"] == ["/machine/peripheral/net0", "/machine/peripheral/net1"]
    assert all(re.fullmatch(r"[1-9]\d* \(last .+\)", c) for c in fields["Changes"]), fields["Changes"]
    assert "\x1b[" not in out  # not a terminal: no colours


def test_status_json(world):
    data = json.loads(ok(ctl(world.env, "--json", "status", "web1")))
    assert data["guest"]["Name"] == "web1"
    assert data["guest"]["Path"] == guest_path("web1")
    assert data["guest"]["State"] == "connected"
    nics = {n["Id"]: n for n in data["nics"]}
    assert sorted(nics) == ["net0", "net1"]
    for i, nic in enumerate(("net0", "net1")):
        n = nics[nic]
        assert n["Path"] == nic_path("web1", nic)
        assert n["Guest"] == guest_path("web1")
        assert n["Mac"] == mac_of(0, i)
        assert n["Promiscuous"] is True
        assert n["VlanMode"] == "all" and n["VlanTable"] == []
        assert n["Trust"] == [] and n["SyncState"] == "observing"
        assert n["Changes"] >= 1 and n["LastChangeUSec"] > 0


def test_nic_human_and_json(world):
    fake = world.fakes["db.prod"]
    fake.rearm("net0")
    fake.set_filter("net0", promiscuous=False, multicast_table=["33:33:00:00:00:01", "01:00:5e:00:00:fb"],
                    vlan="normal", vlan_table=[0, 10])
    wait_until(lambda: world.prop(nic_path("db.prod", "net0"), NIC_IFACE, "VlanTable") == [0, 10],
               what="db.prod/net0's new filter")
    out = ok(ctl(world.env, "nic", "db.prod", "net0")).splitlines()
    assert out[0] == "● net0 (guest db.prod)"
    text = "\n".join(out)
    assert re.search(r"^ +Promiscuous: no$", text, re.M)
    assert re.search(r"^ +Multicast table: 01:00:5e:00:00:fb\n +33:33:00:00:00:01$", text, re.M)
    assert re.search(r"^ +VLAN: normal\n +VLAN table: 0 10$", text, re.M)

    n = json.loads(ok(ctl(world.env, "--json", "nic", "db.prod", "net0")))
    assert n["Path"] == nic_path("db.prod", "net0") == "/io/guestnetd/GuestNet1/guest/db_2eprod/nic/net0"
    assert n["Promiscuous"] is False
    assert n["MulticastTable"] == ["01:00:5e:00:00:fb", "33:33:00:00:00:01"]
    assert n["VlanMode"] == "normal" and n["VlanTable"] == [0, 10]


def test_read_commands_no_such_object(world):
    fails(ctl(world.env, "status", "nope"), EXIT_NO_SUCH_OBJECT, r"^No guest named 'nope'")
    fails(ctl(world.env, "--json", "status", "nope"), EXIT_NO_SUCH_OBJECT, r"^No guest named 'nope'")
    fails(ctl(world.env, "nic", "nope", "net0"), EXIT_NO_SUCH_OBJECT, r"^No guest named 'nope'")
    fails(ctl(world.env, "nic", "web1", "net9"), EXIT_NO_SUCH_OBJECT, r"^Guest 'web1' has no NIC 'net9'\.$")


def test_usage_errors(world):
    fails(ctl(world.env, "status"), EXIT_USAGE, r"Too few arguments for 'status'")
    fails(ctl(world.env, "nic", "a", "b", "c"), EXIT_USAGE, r"Too many arguments for 'nic'")
    fails(ctl(world.env, "frobnicate"), EXIT_USAGE, r"Unknown command 'frobnicate'")
    fails(ctl(world.env, "--frobnicate", "list"), EXIT_USAGE, r"Unknown option '--frobnicate'")
    fails(ctl(world.env, "--trust=all", "list"), EXIT_USAGE, r"--trust= is only valid with 'attach'")
    fails(ctl(world.env, "attach", "x", "/x.sock", "net0"), EXIT_USAGE, r"Expected NIC=IFNAME, got 'net0'")


def test_version(world):
    version = re.search(r"version\s*:\s*'([^']+)'", (REPO / "meson.build").read_text()).group(1)
    assert ok(ctl(None, "--version", uid=None)) == f"guestnetctl {version}\n"


# --- monitor ---------------------------------------------------------------------------------------------
class Monitor:
    """guestnetctl monitor as an unprivileged user; its stdout and stderr lines in queues."""

    def __init__(self, env, *args):
        self.proc = env.spawn(as_user([str(ctl_binary()), *args]), stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                              text=True, cwd="/")
        self.out, self.err = queue.Queue(), queue.Queue()
        for stream, q in ((self.proc.stdout, self.out), (self.proc.stderr, self.err)):
            threading.Thread(target=self._pump, args=(stream, q), daemon=True).start()

    @staticmethod
    def _pump(stream, q):
        for line in stream:
            q.put(line.rstrip("\n"))
        q.put(None)

    def line(self, q, timeout=10):
        try:
            line = q.get(timeout=timeout)
        except queue.Empty:
            raise AssertionError(f"no line from guestnetctl monitor within {timeout} s")
        assert line is not None, f"guestnetctl monitor exited ({self.proc.poll()})"
        return line

    def wait_ready(self):
        line = self.line(self.err)
        assert line.startswith("Monitoring "), line

    def interrupt(self):
        self.proc.send_signal(signal.SIGINT)
        return self.proc.wait(10)


def change_filter(fake, nic, **fields):
    fake.rearm(nic)  # as a query on another monitor does: the next change is an event for sure
    assert fake.set_filter(nic, **fields)


def test_monitor_human(world):
    mon = Monitor(world.env, "monitor")
    try:
        mon.wait_ready()
        change_filter(world.fakes["web1"], "net0", promiscuous=False, multicast_table=["01:00:5e:00:00:01"])
        line = mon.line(mon.out)
        assert re.fullmatch(r"\d{4}-\d\d-\d\d \d\d:\d\d:\d\d\.\d{6} web1/net0 RxFilterChanged: "
                            r"Promiscuous=no MulticastTable=01:00:5e:00:00:01 \(sync: observed\)", line), line
        change_filter(world.fakes["web1"], "net1", main_mac="52:54:00:aa:bb:cc")
        lines = [mon.line(mon.out), mon.line(mon.out)]
        assert lines[0].endswith(" web1/net1 RxFilterChanged: Mac=52:54:00:aa:bb:cc (sync: observed)"), lines
        assert lines[1].endswith(f" web1/net1 MacChanged: {mac_of(0, 1)} -> 52:54:00:aa:bb:cc (guest)"), lines
        world.fakes["web1"].emit_event("NETDEV_STREAM_DISCONNECTED", {"netdev-id": "hostnet0"})
        line = mon.line(mon.out)
        assert line.endswith(" web1 NetEvent: NETDEV_STREAM_DISCONNECTED netdev-id=hostnet0"), line
        assert mon.interrupt() == 0
    finally:
        if mon.proc.poll() is None:
            mon.proc.kill()
    print("monitor output:\n" + line)


def test_monitor_json_one_guest(world):
    mon = Monitor(world.env, "--json", "monitor", "db.prod")
    try:
        mon.wait_ready()
        change_filter(world.fakes["web1"], "net0", promiscuous=True)  # another guest: not shown
        change_filter(world.fakes["db.prod"], "net0", multicast="all")
        ev = json.loads(mon.line(mon.out))
        assert ev["type"] == "RxFilterChanged"
        assert ev["guest"] == "db.prod" and ev["nic"] == "net0"
        assert ev["path"] == nic_path("db.prod", "net0")
        assert ev["changed"] == ["MulticastMode"]
        assert ev["filter"]["MulticastMode"] == "all"
        assert ev["sync"] == "observed"
        assert abs(ev["timestamp"] / 1e6 - time.time()) < 60
        assert mon.interrupt() == 0
    finally:
        if mon.proc.poll() is None:
            mon.proc.kill()


def test_monitor_guests_appearing_and_going(world):
    mon = Monitor(world.env, "--json", "monitor")
    try:
        mon.wait_ready()
        assert ok(ctl(world.env, "attach", "allow-rel", str(world.ext / "allow-rel.sock"))) == ""
        seen = []
        while not any(e["type"] == "NicAdded" for e in seen):
            seen.append(json.loads(mon.line(mon.out)))
        assert seen[0]["type"] == "GuestAdded" and seen[0]["guest"] == "allow-rel"
        assert ok(ctl(world.env, "detach", "allow-rel")) == ""
        while not any(e["type"] == "GuestRemoved" for e in seen):
            seen.append(json.loads(mon.line(mon.out)))
        types = [e["type"] for e in seen if e.get("guest") == "allow-rel"]
        assert types.index("NicRemoved") < types.index("GuestRemoved"), types
        assert mon.interrupt() == 0
    finally:
        if mon.proc.poll() is None:
            mon.proc.kill()


# --- privileged commands -----------------------------------------------------------------------------------
def test_trust_authorized(world):
    assert ok(ctl(world.env, "trust", "allow-g", "net0", "mac", "multicast")) == ""
    assert world.trust("allow-g") == ["mac", "multicast"]
    assert ok(ctl(world.env, "trust", "allow-g", "net0", "allmulti,promisc")) == ""
    assert world.trust("allow-g") == ["allmulti", "promisc"]
    assert ok(ctl(world.env, "trust", "allow-g", "net0", "none")) == ""
    assert world.trust("allow-g") == []


@pytest.mark.parametrize("opts", [[], ["--no-ask-password"]], ids=["interactive", "no-ask-password"])
def test_trust_challenged(world, opts):
    fails(ctl(world.env, *opts, "trust", "web1", "net0", "all"), EXIT_NOT_AUTHORIZED, r"^Not authorized")
    assert world.trust("web1") == []


def test_trust_denied(world):
    fails(ctl(world.env, "trust", "deny-g", "net0", "all"), EXIT_NOT_AUTHORIZED, r"^Not authorized")
    assert world.trust("deny-g") == []


def test_trust_invalid(world):
    fails(ctl(world.env, "trust", "allow-g", "net0", "mac", "bogus"), EXIT_INVALID_ARGUMENT,
          r"^Invalid argument: .*'bogus'")
    fails(ctl(world.env, "trust", "allow-g", "net0", "all", "mac"), EXIT_INVALID_ARGUMENT, r"^Invalid argument: ")
    fails(ctl(world.env, "trust", "allow-g", "net9", "all"), EXIT_NO_SUCH_OBJECT,
          r"^Guest 'allow-g' has no NIC 'net9'\.$")
    fails(ctl(world.env, "trust", "nope", "net0", "all"), EXIT_NO_SUCH_OBJECT, r"^No guest named 'nope'")


def test_trust_as_root(world):
    """root is authorized by polkit itself; trust then shows in status."""
    assert ok(ctl(world.env, "trust", "web1", "net1", "mac", uid=None)) == ""
    try:
        out = ok(ctl(world.env, "nic", "web1", "net1"))
        assert re.search(r"^ +Trust: mac$", out, re.M), out
    finally:
        ok(ctl(world.env, "trust", "web1", "net1", "none", uid=None))


@pytest.mark.parametrize("nic", [None, "net0"], ids=["guest", "nic"])
def test_resync(world, nic):
    args = ["resync", "allow-g"] + ([nic] if nic else [])
    before = fake_queries(world.fakes["allow-g"])
    assert ok(ctl(world.env, *args)) == ""
    wait_until(lambda: fake_queries(world.fakes["allow-g"]) > before, what="a query-rx-filter after resync")
    fails(ctl(world.env, "resync", "web1", *([nic] if nic else [])), EXIT_NOT_AUTHORIZED, r"^Not authorized")
    fails(ctl(world.env, "resync", "deny-g", *([nic] if nic else [])), EXIT_NOT_AUTHORIZED, r"^Not authorized")
    fails(ctl(world.env, "resync", "nope"), EXIT_NO_SUCH_OBJECT, r"^No guest named 'nope'")


def test_attach_and_detach_authorized(world):
    sock = world.ext / "allow-att.sock"
    assert ok(ctl(world.env, "attach", "allow-att", str(sock), "net0=mvt0", "--trust=mac,multicast")) == ""
    try:
        assert world.has_guest("allow-att")
        assert world.prop(guest_path("allow-att"), GUEST_IFACE, "QmpSocket") == str(sock)
        wait_until(lambda: world.prop(guest_path("allow-att"), GUEST_IFACE, "Nics") == [nic_path("allow-att", "net0")],
                   what="allow-att's NIC")
        assert world.prop(nic_path("allow-att", "net0"), NIC_IFACE, "HostInterface") == "mvt0"
        assert world.trust("allow-att") == ["mac", "multicast"]
        fails(ctl(world.env, "attach", "allow-att", str(sock)), EXIT_INVALID_ARGUMENT, r"already attached")
    finally:
        res = ctl(world.env, "detach", "allow-att")
    assert ok(res) == ""
    assert not world.has_guest("allow-att")
    fails(ctl(world.env, "detach", "allow-att"), EXIT_NO_SUCH_OBJECT, r"^No guest named 'allow-att'")


def test_attach_relative_socket_path(world):
    """The daemon wants an absolute path: guestnetctl makes a relative one absolute."""
    assert ok(ctl(world.env, "attach", "allow-rel", "allow-rel.sock", cwd=str(world.ext))) == ""
    try:
        assert world.prop(guest_path("allow-rel"), GUEST_IFACE, "QmpSocket") == str(world.ext / "allow-rel.sock")
    finally:
        ok(ctl(world.env, "detach", "allow-rel"))


@pytest.mark.parametrize("guest", ["deny-att", "plain-att"])
def test_attach_refused(world, guest):
    fails(ctl(world.env, "attach", guest, str(world.ext / f"{guest}.sock")), EXIT_NOT_AUTHORIZED,
          r"^Not authorized")
    assert not world.has_guest(guest)
    fails(ctl(world.env, "--no-ask-password", "attach", guest, str(world.ext / f"{guest}.sock")),
          EXIT_NOT_AUTHORIZED, r"^Not authorized")
    assert world.fakes[guest].connections_total == 0


@pytest.mark.parametrize("guest", ["deny-g", "web1"])
def test_detach_refused(world, guest):
    fails(ctl(world.env, "detach", guest), EXIT_NOT_AUTHORIZED, r"^Not authorized")
    assert world.has_guest(guest)


def test_attach_invalid(world):
    fails(ctl(world.env, "attach", "allow-x", "/x.sock", "net0=bad/name"), EXIT_INVALID_ARGUMENT,
          r"^Invalid argument: Invalid host interface 'bad/name'")
    fails(ctl(world.env, "attach", "allow-x", "/x.sock", "--trust=everything"), EXIT_INVALID_ARGUMENT,
          r"^Invalid argument: .*'everything'")


# --- no daemon ---------------------------------------------------------------------------------------------
@pytest.mark.parametrize("args", [["list"], ["--json", "status", "web1"], ["nic", "web1", "net0"],
                                  ["monitor"], ["trust", "web1", "net0", "all"], ["resync", "web1"],
                                  ["attach", "x", "/x.sock"], ["detach", "x"]], ids=lambda a: a[-1] if a[0] == "--json" else a[0])
def test_daemon_not_running(bare_bus_env, args):
    fails(ctl(bare_bus_env, *args), EXIT_NOT_RUNNING, r"^guestnetd is not running")


def test_no_bus(workdir):
    res = ctl(None, "list", extra_env={"DBUS_SYSTEM_BUS_ADDRESS": f"unix:path={workdir}/no-bus"})
    fails(res, EXIT_NOT_RUNNING, r"^Cannot reach guestnetd: the system bus is down")


# --- man pages, --help ----------------------------------------------------------------------------------------
MAN_PAGES = {"guestnetd.8": "guestnetd", "guestnetctl.1": "guestnetctl", "guestnetd.conf.5": None}


@pytest.fixture(scope="module")
def man_pages():
    if not os.path.exists("/usr/bin/scdoc"):
        pytest.fail("scdoc is not installed (Debian package scdoc): the man pages cannot be built")
    targets = json.loads(subprocess.run(["meson", "introspect", "--targets", str(build_dir())], check=True,
                                        capture_output=True, text=True).stdout)
    names = {t["name"] for t in targets}
    missing = [p for p in MAN_PAGES if p not in names]
    assert not missing, f"no meson target for {missing}"
    out = [f"man/{p}" for p in MAN_PAGES]
    subprocess.run(["ninja", "-C", str(build_dir()), *out], check=True, capture_output=True)
    return {p: build_dir() / "man" / p for p in MAN_PAGES}


@pytest.mark.parametrize("page", MAN_PAGES)
def test_man_page_renders(man_pages, page):
    res = subprocess.run(["groff", "-man", "-Tutf8", "-ww", "-z", str(man_pages[page])], capture_output=True,
                         text=True)
    assert res.returncode == 0 and res.stderr == "", res.stderr
    res = subprocess.run(["man", "-l", str(man_pages[page])], capture_output=True, text=True,
                         env=dict(os.environ, MANWIDTH="80", MAN_KEEP_FORMATTING="0", PAGER="cat"))
    assert res.returncode == 0 and res.stderr == "", res.stderr
    text = re.sub(r".\x08", "", res.stdout)  # overstrike bold and underline
    assert "NAME" in text and "SEE ALSO" in text


def help_options(text):
    return set(re.findall(r"(?<![\w-])(--[a-z][a-z-]*=?|-[a-zA-Z])\b", text))


def man_section(scd, title):
    m = re.search(rf"^# {title}\n(.*?)(?=^# |\Z)", scd, re.M | re.S)
    assert m, f"no section {title}"
    return m.group(1)


def man_options(scd):
    """The options an OPTIONS section describes: "*--foo=*_ARG_" and "*-h*, *--help*" lines."""
    heads = [line for line in man_section(scd, "OPTIONS").splitlines() if line.startswith("*")]
    return {o for line in heads for o in re.findall(r"\*(--?[a-zA-Z][a-z-]*=?)\*", line)}


@pytest.mark.parametrize("page", ["guestnetd.8", "guestnetctl.1"])
def test_help_matches_man_page(page):
    program = MAN_PAGES[page]
    binary = build_dir() / "src" / program
    res = subprocess.run([str(binary), "--help"], capture_output=True, text=True)
    assert res.returncode == 0, res.stderr
    scd = (REPO / "man" / f"{page}.scd").read_text()
    in_help = help_options(res.stdout)
    in_man = man_options(scd)
    assert in_help, res.stdout
    assert in_help - in_man == set(), f"options in --help but not in man/{page}.scd"
    assert in_man - in_help == set(), f"options in man/{page}.scd but not in --help"
    if program == "guestnetctl":
        commands = set(re.findall(r"^  ([a-z]+)\b", res.stdout.split("Commands:")[1].split("Options:")[0], re.M))
        in_man_cmds = set(re.findall(r"^\*([a-z]+)\*", man_section(scd, "COMMANDS"), re.M))
        assert commands == in_man_cmds
        assert commands == {"list", "status", "nic", "monitor", "trust", "resync", "attach", "detach", "metrics",
                            "help"}


def test_conf_man_page_names_every_key():
    """Every key src/config.c parses is documented in guestnetd.conf(5), and nothing else."""
    src = (REPO / "src" / "config.c").read_text()
    keys = set(re.findall(r'streq\(key, "([A-Za-z]+)"\)', src))
    assert {"QmpDirectory", "RuntimeDirectory", "RevertOnStop", "NetworkNamespace", "HostInterface"} <= keys
    scd = (REPO / "man" / "guestnetd.conf.5.scd").read_text()
    documented = set(re.findall(r"^\*([A-Za-z]+)=\*$", scd, re.M))
    assert documented == keys


# --- bash completion ------------------------------------------------------------------------------------------
def complete(env, words):
    script = REPO / "shell-completion" / "bash" / "guestnetctl"
    words_s = " ".join(f"'{w}'" for w in words)
    cmd = (f"source {script}; COMP_WORDS=({words_s}); COMP_CWORD={len(words) - 1}; _guestnetctl; "
           'printf "%s\\n" "${COMPREPLY[@]}"')
    e = env.env(PATH=f"{build_dir() / 'src'}:{os.environ.get('PATH', '/usr/bin:/bin')}")
    res = subprocess.run(as_user(["bash", "--norc", "--noprofile", "-c", cmd]), env=e, capture_output=True,
                         text=True, timeout=30, cwd="/")
    assert res.returncode == 0 and res.stderr == "", res.stderr
    return [w for w in res.stdout.splitlines() if w]


def test_completion_guest_names(world):
    assert sorted(complete(world.env, ["guestnetctl", "status", ""])) == sorted(GUESTS)
    assert complete(world.env, ["guestnetctl", "--json", "trust", "we"]) == ["web1"]
    assert complete(world.env, ["guestnetctl", "monitor", "db"]) == ["db.prod"]


def test_completion_nics_commands_options_caps(world):
    assert complete(world.env, ["guestnetctl", "nic", "web1", ""]) == ["net0", "net1"]
    assert complete(world.env, ["guestnetctl", "resync", "db.prod", ""]) == ["net0"]
    assert complete(world.env, ["guestnetctl", "st"]) == ["status"]
    assert complete(world.env, ["guestnetctl", "--no-p"]) == ["--no-pager"]
    assert complete(world.env, ["guestnetctl", "trust", "web1", "net0", "m"]) == ["mac", "multicast"]
    assert complete(world.env, ["guestnetctl", "attach", "x", "--trust=mac,p"]) == ["--trust=mac,promisc"]


# --- zsh completion -------------------------------------------------------------------------------------------
def zsh_candidates(env, function, *args):
    """Runs one of _guestnetctl's helpers with zsh's completion builtins replaced by printers: the
    candidates it would offer, from the real guestnetctl on the bus."""
    script = REPO / "shell-completion" / "zsh" / "_guestnetctl"
    stubs = ("_arguments() { return 1 }; _call_program() { shift; \"$@\" }; "
             "_describe() { print -rl -- ${(P)${@[-1]}} }")
    cmd = f"{stubs}; source {script}; _guestnetctl_prog=guestnetctl; {function} {' '.join(args)}"
    e = env.env(PATH=f"{build_dir() / 'src'}:{os.environ.get('PATH', '/usr/bin:/bin')}")
    res = subprocess.run(as_user(["zsh", "-f", "-c", cmd]), env=e, capture_output=True, text=True, timeout=30,
                         cwd="/")
    assert res.returncode == 0 and res.stderr == "", res.stderr
    return [w for w in res.stdout.splitlines() if w]


@pytest.mark.skipif(shutil.which("zsh") is None, reason="zsh not installed")
def test_zsh_completion_guests_and_nics(world):
    res = subprocess.run(["zsh", "-n", str(REPO / "shell-completion" / "zsh" / "_guestnetctl")],
                         capture_output=True, text=True)
    assert res.returncode == 0, res.stderr
    assert sorted(zsh_candidates(world.env, "_guestnetctl_guests")) == sorted(GUESTS)
    assert zsh_candidates(world.env, "_guestnetctl_nics", "web1") == ["net0", "net1"]
    assert zsh_candidates(world.env, "_guestnetctl_nics", "db.prod") == ["net0"]


# --- docs ------------------------------------------------------------------------------------------------------
def test_dbus_api_doc_is_generated_from_xml():
    res = subprocess.run([str(REPO / "scripts" / "gen-dbus-doc"), "--check"], capture_output=True, text=True)
    assert res.returncode == 0, res.stdout + res.stderr


# --- installation ---------------------------------------------------------------------------------------------
def test_installed_locations(tmp_path):
    """guestnetctl in bindir, the man pages in mandir/manN, the completion in bash-completion's dir (or
    DATADIR/bash-completion/completions), all under the prefix."""
    build = tmp_path / "build"
    subprocess.run(["meson", "setup", str(build), str(REPO), "-Dtests=false", "--prefix=/opt/gnd"], check=True,
                   capture_output=True, text=True)
    res = subprocess.run(["meson", "introspect", str(build), "--installed"], check=True, capture_output=True,
                         text=True)
    installed = json.loads(res.stdout)  # {source or build file: install path}

    def where(suffix):
        found = [v for k, v in installed.items() if k.endswith(suffix)]
        assert len(found) == 1, f"{suffix}: {found}"
        return found[0]

    assert where("/src/guestnetctl") == "/opt/gnd/bin/guestnetctl"
    assert where("/man/guestnetd.8") == "/opt/gnd/share/man/man8/guestnetd.8"
    assert where("/man/guestnetctl.1") == "/opt/gnd/share/man/man1/guestnetctl.1"
    assert where("/man/guestnetd.conf.5") == "/opt/gnd/share/man/man5/guestnetd.conf.5"
    assert where("shell-completion/bash/guestnetctl") == "/opt/gnd/share/bash-completion/completions/guestnetctl"
    assert where("shell-completion/zsh/_guestnetctl") == "/opt/gnd/share/zsh/site-functions/_guestnetctl"
