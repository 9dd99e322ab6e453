# SPDX-License-Identifier: LGPL-2.1-or-later
"""Issue 11, an unprivileged local user as the attacker, on the private system bus with our policy
and a real polkitd (tests/polkit/50-guestnetd-test.rules): work before authorization is bounded,
per-guest delegation cannot be stretched into trust or other guests' devices, paths are opened only
after authorization and never block, and one caller's polkit flood is refused, not served."""

import os
import subprocess
import tempfile
import threading
import time

import pytest

from busenv import (MANAGER_IFACE, NOBODY_GID, NOBODY_UID, PYTHON, ROOT_PATH, Daemon, as_user, bus_env,
                    guest_path, test_users)

assert bus_env and test_users  # fixtures, used by name

DENIED = "org.freedesktop.DBus.Error.AccessDenied"
CHALLENGE = "org.freedesktop.DBus.Error.InteractiveAuthorizationRequired"
INVALID = "io.guestnetd.GuestNet1.InvalidArgument"
LIMITS = "org.freedesktop.DBus.Error.LimitsExceeded"

ATTACKER = r"""
import sys, time, json
import dbus, dbus.mainloop.glib
from gi.repository import GLib
mode, address = sys.argv[1], sys.argv[-1]
dbus.mainloop.glib.DBusGMainLoop(set_as_default=True)
bus = dbus.bus.BusConnection(address)
root = bus.get_object("io.guestnetd.GuestNet1", "/io/guestnetd/GuestNet1")
if mode == "big-attach":
    nics = dbus.Dictionary({"n%d" % i: "e%d" % i for i in range(160000)}, signature="ss")
    t = time.monotonic()
    try:
        root.AttachGuest("x", "/x", {"nics": nics}, dbus_interface="io.guestnetd.GuestNet1.Manager",
                         timeout=120)
        out = {"result": "ok"}
    except dbus.exceptions.DBusException as e:
        out = {"error": e.get_dbus_name(), "message": e.get_dbus_message()}
    out["seconds"] = time.monotonic() - t
    print(json.dumps(out), flush=True)
elif mode == "attach":
    name, sock, spec = sys.argv[2], sys.argv[3], json.loads(sys.argv[4])
    opts = {}
    for k, (sig, v) in spec.items():
        if sig == "as":
            opts[k] = dbus.Array(v, signature="s", variant_level=1)
        elif sig == "a{ss}":
            opts[k] = dbus.Dictionary(v, signature="ss", variant_level=1)
        else:
            opts[k] = dbus.String(v, variant_level=1)
    try:
        r = root.AttachGuest(name, sock, dbus.Dictionary(opts, signature="sv"),
                             dbus_interface="io.guestnetd.GuestNet1.Manager", timeout=30)
        out = {"result": str(r)}
    except dbus.exceptions.DBusException as e:
        out = {"error": e.get_dbus_name(), "message": e.get_dbus_message()}
    print(json.dumps(out), flush=True)
elif mode == "flood":
    n = int(sys.argv[2])
    answers = {}
    loop = GLib.MainLoop()
    def done(name):
        answers[name] = answers.get(name, 0) + 1
        if sum(answers.values()) == n:
            loop.quit()
    for i in range(n):
        root.Resync(dbus_interface="io.guestnetd.GuestNet1.Manager", timeout=120,
                    reply_handler=lambda *a: done("ok"),
                    error_handler=lambda e: done(e.get_dbus_name()))
    GLib.timeout_add_seconds(110, loop.quit)
    loop.run()
    print(json.dumps(answers), flush=True)
elif mode == "resync":
    try:
        root.Resync(dbus_interface="io.guestnetd.GuestNet1.Manager", timeout=120)
        out = {"result": "ok"}
    except dbus.exceptions.DBusException as e:
        out = {"error": e.get_dbus_name(), "message": e.get_dbus_message()}
    print(json.dumps(out), flush=True)
elif mode == "hold":
    # NCONN connections, PER Resync calls each, all at once; what was answered after 3 s, then at the end.
    nconn, per = int(sys.argv[2]), int(sys.argv[3])
    answers, conns = {}, []
    loop = GLib.MainLoop()
    def done(name):
        answers[name] = answers.get(name, 0) + 1
        if sum(answers.values()) == nconn * per:
            loop.quit()
    for c in range(nconn):
        conns.append(dbus.bus.BusConnection(address))
        obj = conns[-1].get_object("io.guestnetd.GuestNet1", "/io/guestnetd/GuestNet1")
        for i in range(per):
            obj.Resync(dbus_interface="io.guestnetd.GuestNet1.Manager", timeout=120,
                       reply_handler=lambda *a: done("ok"), error_handler=lambda e: done(e.get_dbus_name()))
    def early():
        print(json.dumps(answers), flush=True)
        return False
    GLib.timeout_add(3000, early)
    GLib.timeout_add_seconds(100, loop.quit)
    loop.run()
    print(json.dumps(answers), flush=True)
"""


@pytest.fixture(scope="module")
def daemon(bus_env):
    d = Daemon(bus_env)
    d.start()
    yield d
    d.stop()


def start_attacker(env, *args, uid=NOBODY_UID, gid=NOBODY_GID):
    """The ATTACKER script in MODE (args[0]) as uid, its standard output a pipe of JSON lines."""
    argv = as_user([PYTHON, "-I", "-c", ATTACKER, args[0], *args[1:], env.address], uid, gid)
    return subprocess.Popen(argv, env=env.env(), stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                            cwd="/")


def attacker(env, *args, uid=NOBODY_UID, gid=NOBODY_GID):
    import json
    p = start_attacker(env, *args, uid=uid, gid=gid)
    out, err = p.communicate(timeout=150)
    assert p.returncode == 0, err
    return json.loads(out)


def list_guests_latency(env, stop, samples):
    """Times ListGuests as root while an attack runs: the main loop must keep answering."""
    while not stop.is_set():
        t = time.monotonic()
        res = env.gcall(ROOT_PATH, MANAGER_IFACE, "ListGuests")
        samples.append((time.monotonic() - t, "result" in res))


def test_huge_attach_options_refused_before_authorization(bus_env, daemon):
    """(1) AttachGuest with 160,000 'nics' from a user without any grant: refused as invalid at
    entry 65, before polkit is asked; ListGuests keeps answering meanwhile."""
    stop, samples = threading.Event(), []
    t = threading.Thread(target=list_guests_latency, args=(bus_env, stop, samples))
    t.start()
    try:
        out = attacker(bus_env, "big-attach")
    finally:
        stop.set()
        t.join()
    worst = max(s for s, _ in samples) if samples else 0
    print("AttachGuest with 160,000 NICs: answered in %.3f s; ListGuests during it (fresh client process each): %d calls, worst %.3f s"
          % (out["seconds"], len(samples), worst))
    assert out.get("error") == INVALID, out
    assert "more than 64 entries" in out["message"], out
    assert all(ok for _, ok in samples)


def attach(env, name, options, user=(NOBODY_UID, NOBODY_GID), sock="/run/gn-none.sock"):
    """AttachGuest(name, sock, options) as user; options {key: (signature, value)}."""
    import json
    return attacker(env, "attach", name, sock, json.dumps(options), uid=user[0], gid=user[1])


@pytest.fixture(scope="module")
def delegate(test_users):
    return test_users.add("gndt-own")


def test_delegate_may_attach_own_guest(bus_env, daemon, delegate):
    """The rule's purpose works: a plain attach of an own-* guest is allowed."""
    res = attach(bus_env, "own-plain", {}, delegate)
    assert res.get("result") == guest_path("own-plain"), res
    assert bus_env.gcall(ROOT_PATH, MANAGER_IFACE, "DetachGuest", "(s)", ["own-plain"]) == {"result": []}


@pytest.mark.parametrize("options,why", [
    ({"trust": ("as", ["all"])}, "set-trust"),
    ({"trust": ("as", ["promisc"])}, "set-trust"),
    ({"nics": ("a{ss}", {"net0": "victim0"})}, "manage guests"),
    ({"netns": ("s", "/run/netns/other")}, "manage guests"),
], ids=["trust-all", "trust-promisc", "victim-interface", "netns"])
def test_delegate_cannot_stretch_manage_guests(bus_env, daemon, delegate, options, why):
    """(3) manage-guests for own-* only, set-trust denied: options that grant trust need set-trust;
    the host interfaces and the namespace reach polkit as details, so the rule can refuse them."""
    name = "own-" + "-".join(options)
    res = attach(bus_env, name, options, delegate)
    assert res.get("error") == DENIED, res
    assert why in res["message"], res
    assert "result" not in bus_env.gcall(ROOT_PATH, MANAGER_IFACE, "GetGuest", "(s)", [name])


def test_delegate_cannot_attach_a_trusted_guest_under_default_trust(bus_env, daemon, delegate):
    """(3) With DefaultTrust=all, an AttachGuest without options would make the QEMU at the socket drive
    the devices it holds: it needs set-trust as well, so manage-guests alone is refused; with trust none
    the delegation still works."""
    daemon.stop()
    trusting = Daemon(bus_env, config="[Daemon]\nReconcileIntervalSec=0\nDefaultTrust=all\n")
    trusting.start()
    try:
        res = attach(bus_env, "own-default-trust", {}, delegate)
        assert res.get("error") == DENIED and "set-trust" in res["message"], res
        assert "result" not in bus_env.gcall(ROOT_PATH, MANAGER_IFACE, "GetGuest", "(s)", ["own-default-trust"])
        res = attach(bus_env, "own-no-trust", {"trust": ("as", ["none"])}, delegate)
        assert res.get("result") == guest_path("own-no-trust"), res
    finally:
        trusting.stop()
        daemon.start()


def test_fifo_as_netns_does_not_block(bus_env, daemon, tmp_path):
    """(4) netns naming a FIFO (root: no polkit): opened without blocking, refused as not a network
    namespace; the daemon keeps answering. A symbolic link is not followed."""
    fifo = tmp_path / "fifo"
    os.mkfifo(fifo)
    link = tmp_path / "link"
    link.symlink_to("/proc/self/ns/net")
    res = attach(bus_env, "fifo-ns", {"netns": ("s", str(fifo))}, user=(0, 0))
    assert res.get("error") == INVALID and "not a network namespace" in res["message"], res
    res = attach(bus_env, "link-ns", {"netns": ("s", str(link))}, user=(0, 0))
    assert res.get("error") == INVALID and "symbolic link" in res["message"], res
    assert "result" in bus_env.gcall(ROOT_PATH, MANAGER_IFACE, "ListGuests")


def test_netns_path_is_not_probed_before_authorization(bus_env, daemon):
    """(4) Whether a root-only file exists is nobody's business: an unauthorized caller gets the
    same polkit answer for an existing and a missing path."""
    secret_dir = tempfile.mkdtemp(prefix="gn-secret-")
    os.chmod(secret_dir, 0o700)
    existing = os.path.join(secret_dir, "exists")
    open(existing, "w").close()
    try:
        a = attach(bus_env, "probe-a", {"netns": ("s", existing)})
        b = attach(bus_env, "probe-b", {"netns": ("s", os.path.join(secret_dir, "missing"))})
    finally:
        os.unlink(existing)
        os.rmdir(secret_dir)
    assert a.get("error") == b.get("error") == CHALLENGE, (a, b)
    assert a["message"] == b["message"]


def test_polkit_flood_from_one_caller_is_limited(bus_env, daemon):
    """(10) 400 Resync calls at once from one unprivileged caller: at most 8 of its authorizations are
    in flight, the rest answered LimitsExceeded at once; root is still served meanwhile."""
    out = attacker(bus_env, "flood", "400")
    print("polkit flood: %r" % out)
    assert out.get(LIMITS, 0) >= 300, out
    assert sum(out.values()) == 400, out
    assert out.get(CHALLENGE, 0) >= 1, out  # the ones within the limit got polkit's real answer
    assert bus_env.gcall(ROOT_PATH, MANAGER_IFACE, "Resync") == {"result": []}


def test_one_user_cannot_fill_the_authorization_table(bus_env, daemon, test_users):
    """(10) polkitd stalled (SIGSTOP: every CheckAuthorization waits, as behind an authentication agent
    that never answers): one unprivileged user with 6 connections × 8 calls gets at most 8 in flight
    over all its connections, the other 40 are refused at once; another user still gets its 8 in, and
    root is served meanwhile. Without the per-user limit all 48 would wait, 8 per connection."""
    import json
    import signal
    other = test_users.add("gndt-other")
    os.kill(bus_env.polkitd.pid, signal.SIGSTOP)
    attackers = []
    try:
        try:
            attackers.append(start_attacker(bus_env, "hold", "6", "8"))
            attackers.append(start_attacker(bus_env, "hold", "1", "8", uid=other[0], gid=other[1]))
            early = [json.loads(p.stdout.readline()) for p in attackers]
            root = bus_env.gcall(ROOT_PATH, MANAGER_IFACE, "Resync")
        finally:
            os.kill(bus_env.polkitd.pid, signal.SIGCONT)
        final = [json.loads(p.stdout.readline()) for p in attackers]
        for p in attackers:
            p.wait(timeout=30)
    finally:
        for p in attackers:  # by PID, whatever failed above
            if p.poll() is None:
                p.kill()
                p.wait()
    print("polkit stalled: after 3 s %r; at the end %r; root: %r" % (early, final, root))
    assert early[0] == {LIMITS: 40}, early
    assert early[1] == {}, early  # all 8 waiting for polkit, none refused
    assert root == {"result": []}, root
    assert final[0] == {LIMITS: 40, CHALLENGE: 8}, final
    assert final[1] == {CHALLENGE: 8}, final


def test_an_unanswered_authorization_says_so(bus_env, daemon):
    """A check polkitd never answers (stopped here; an authentication agent nobody answers is the same)
    is denied after the bus's 25 s with what happened, not "polkit is not available"."""
    import signal
    os.kill(bus_env.polkitd.pid, signal.SIGSTOP)
    t = time.monotonic()
    try:
        out = attacker(bus_env, "resync")
    finally:
        os.kill(bus_env.polkitd.pid, signal.SIGCONT)
    print("unanswered check: %r after %.1f s" % (out, time.monotonic() - t))
    assert out.get("error") == DENIED, out
    assert "the authorization was not answered in time" in out["message"], out
    assert "polkit is not available" not in out["message"], out
    assert bus_env.gcall(ROOT_PATH, MANAGER_IFACE, "Resync") == {"result": []}


def test_invalid_utf8_socket_name_does_not_break_listguests(bus_env, daemon):
    """(7) A socket whose name is not UTF-8 in the watched directory is ignored with a log line; it
    must not make ListGuests fail for every caller (D-Bus strings are UTF-8)."""
    import socket
    path = os.path.join(os.fsencode(str(daemon.qmp_dir)), b"bad\xff\xfe.sock")
    s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    s.bind(path)
    s.listen(1)
    try:
        from busenv import wait_until
        wait_until(lambda: "not a valid guest name: the name is not valid UTF-8" in daemon.log(), timeout=10,
                   what="the bad socket name logged")
        res = bus_env.gcall(ROOT_PATH, MANAGER_IFACE, "ListGuests", uid=NOBODY_UID, gid=NOBODY_GID)
        assert "result" in res, res
    finally:
        s.close()
        os.unlink(path)
