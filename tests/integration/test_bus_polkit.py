# SPDX-License-Identifier: LGPL-2.1-or-later
"""polkit on every privileged method, with a real polkitd loading our actions and
tests/polkit/50-guestnetd-test.rules (guests allow-* → yes, deny-* → no, others → the policy's
auth_admin; Manager.Resync, which has no guest, is decided by the calling user), callers being
unprivileged users:
  rule yes → the call works and its effect is visible;
  auth_admin → InteractiveAuthorizationRequired, with the allow-interactive flag set and without
      (measured with this polkitd: CheckAuthorization answers auth_admin without an agent with
      is_challenge=true in both cases, and the spec maps a challenge to that error);
  rule no → AccessDenied;  polkitd not running → AccessDenied;
and nothing changes when refused."""

import time

import pytest

from busenv import (GUEST_IFACE, MANAGER_IFACE, NIC_IFACE, NOBODY_UID, ROOT_PATH, Daemon, bus_env,
                    fake_guest, fake_queries, guest_path, nic_path, test_users, wait_until)

assert bus_env and test_users  # fixtures, used by name

CHALLENGE = "org.freedesktop.DBus.Error.InteractiveAuthorizationRequired"
DENIED = "org.freedesktop.DBus.Error.AccessDenied"
GUESTS = ["allow-g", "deny-g", "plain-g", "allow-det", "deny-det", "plain-det"]
ATTACHABLE = ["allow-att", "deny-att", "plain-att", "allow-att2"]
QUIET = 1.5  # how long a refused call must leave the guest untouched


class World:
    def __init__(self, env, daemon, fakes, users):
        self.env, self.daemon, self.fakes, self.users = env, daemon, fakes, users

    def queries(self, name):
        return fake_queries(self.fakes[name])

    def has_guest(self, name):
        return "result" in self.env.gcall(ROOT_PATH, MANAGER_IFACE, "GetGuest", "(s)", [name])

    def trust(self, name):
        return self.env.get_property(nic_path(name, "net0"), NIC_IFACE, "Trust")


@pytest.fixture(scope="module")
def world(bus_env, test_users):
    daemon = Daemon(bus_env)
    ext = daemon.dir / "q"
    ext.mkdir()
    fakes = {}
    try:
        for i, name in enumerate(GUESTS + ATTACHABLE):
            fakes[name] = fake_guest(ext / f"{name}.sock", name, ("net0",), index=i)
            if name in GUESTS:
                daemon.add_dropin(f"{name}.conf", f"[Guest]\nName={name}\nQmpSocket={ext}/{name}.sock\n")
        daemon.start()
        for name in GUESTS:
            wait_until(lambda: fake_queries(fakes[name]) >= 1, timeout=15, what=f"{name}'s filters queried")
            wait_until(lambda: bus_env.get_property(guest_path(name), GUEST_IFACE, "State") == "connected",
                       timeout=15, what=f"{name} connected")
        users = {"allow": test_users.add("gndt-allow"), "deny": test_users.add("gndt-deny"),
                 "nobody": (NOBODY_UID, None)}
        yield World(bus_env, daemon, fakes, users)
    finally:
        daemon.stop()
        for fake in fakes.values():
            fake.stop()


def call(w, who, path, iface, method, sig="()", args=(), interactive=False):
    uid, gid = w.users[who]
    return w.env.gcall(path, iface, method, sig, args, uid=uid, gid=gid, interactive=interactive)


def assert_error(res, name, w):
    assert res.get("error") == name, f"want {name}, got {res}; daemon log tail:\n{w.daemon.log()[-3000:]}"


# Each privileged method as (call it for guest G as user U, observe its effect on G). The Resync
# methods' effect: QEMU is asked for the filter again.
def attach(w, guest, who="nobody", interactive=False):
    return call(w, who, ROOT_PATH, MANAGER_IFACE, "AttachGuest", "(ssa{sv})",
                [guest, w.fakes[guest].path, {}], interactive)


def detach(w, guest, who="nobody", interactive=False):
    return call(w, who, ROOT_PATH, MANAGER_IFACE, "DetachGuest", "(s)", [guest], interactive)


def set_trust(w, guest, who="nobody", interactive=False):
    return call(w, who, nic_path(guest, "net0"), NIC_IFACE, "SetTrust", "(as)", [["mac"]], interactive)


def guest_resync(w, guest, who="nobody", interactive=False):
    return call(w, who, guest_path(guest), GUEST_IFACE, "Resync", "()", [], interactive)


def nic_resync(w, guest, who="nobody", interactive=False):
    return call(w, who, nic_path(guest, "net0"), NIC_IFACE, "Resync", "()", [], interactive)


def manager_resync(w, guest, who="nobody", interactive=False):
    return call(w, who, ROOT_PATH, MANAGER_IFACE, "Resync", "()", [], interactive)


RESYNCS = [guest_resync, nic_resync]


# --- authorized by a rule ----------------------------------------------------------------------------
def test_attach_authorized(world):
    res = attach(world, "allow-att")
    assert res.get("result") == [guest_path("allow-att")], res
    assert world.has_guest("allow-att")
    world.fakes["allow-att"].wait_negotiated(timeout=10)


def test_detach_authorized(world):
    assert detach(world, "allow-det") == {"result": []}
    assert not world.has_guest("allow-det")


def test_set_trust_authorized(world):
    assert world.trust("allow-g") == []
    assert set_trust(world, "allow-g") == {"result": []}
    assert world.trust("allow-g") == ["mac"]


@pytest.mark.parametrize("method", RESYNCS, ids=lambda f: f.__name__)
def test_resync_authorized(world, method):
    before = world.queries("allow-g")
    assert method(world, "allow-g") == {"result": []}
    wait_until(lambda: world.queries("allow-g") > before, what="a query-rx-filter after Resync")


def test_manager_resync_authorized(world):
    before = {g: world.queries(g) for g in ("allow-g", "plain-g")}
    assert manager_resync(world, None, who="allow") == {"result": []}
    for g, n in before.items():
        wait_until(lambda: world.queries(g) > n, what=f"{g} queried after Manager.Resync")


# --- refused --------------------------------------------------------------------------------------------
def unchanged(w, guest, method, before):
    """The refused call's effect must not appear."""
    time.sleep(QUIET)
    if method is attach:
        assert not w.has_guest(guest)
        assert w.fakes[guest].connections_total == 0
    elif method is detach:
        assert w.has_guest(guest)
    elif method is set_trust:
        assert w.trust(guest) == []
    else:
        assert w.queries(guest) == before


GUEST_METHODS = [attach, detach, set_trust, guest_resync, nic_resync]
TARGET = {attach: "%s-att", detach: "%s-det"}


def target(method, kind):
    return TARGET.get(method, "%s-g") % kind


@pytest.mark.parametrize("interactive", [True, False], ids=["interactive", "not-interactive"])
@pytest.mark.parametrize("method", GUEST_METHODS, ids=lambda f: f.__name__)
def test_auth_admin_is_a_challenge(world, method, interactive):
    guest = target(method, "plain")
    before = world.queries(guest)
    assert_error(method(world, guest, interactive=interactive), CHALLENGE, world)
    unchanged(world, guest, method, before)


@pytest.mark.parametrize("interactive", [True, False], ids=["interactive", "not-interactive"])
def test_manager_resync_auth_admin_is_a_challenge(world, interactive):
    before = world.queries("plain-g")
    assert_error(manager_resync(world, None, who="nobody", interactive=interactive), CHALLENGE, world)
    unchanged(world, "plain-g", manager_resync, before)


@pytest.mark.parametrize("method", GUEST_METHODS, ids=lambda f: f.__name__)
def test_rule_no_is_access_denied(world, method):
    guest = target(method, "deny")
    before = world.queries(guest)
    assert_error(method(world, guest, interactive=True), DENIED, world)
    unchanged(world, guest, method, before)


def test_manager_resync_rule_no_is_access_denied(world):
    before = world.queries("deny-g")
    assert_error(manager_resync(world, None, who="deny", interactive=True), DENIED, world)
    unchanged(world, "deny-g", manager_resync, before)


# --- polkitd gone: deny (last: it stops polkitd, and starts it again for whatever follows) -----------
@pytest.mark.parametrize("method", GUEST_METHODS + [manager_resync], ids=lambda f: f.__name__)
def test_polkitd_stopped_denies(world, method):
    """Targets that the rules would allow: only polkit's absence can refuse them."""
    guest = "allow-att2" if method is attach else "allow-g"
    world.env.stop_polkitd()
    try:
        before = world.queries(guest)
        trust = world.trust("allow-g")
        if method is set_trust:  # a grant it does not have yet
            assert "promisc" not in trust
            res = call(world, "allow", nic_path(guest, "net0"), NIC_IFACE, "SetTrust", "(as)", [["promisc"]], True)
        else:
            res = method(world, guest, who="allow", interactive=True)
        assert_error(res, DENIED, world)
        time.sleep(QUIET)
        if method is attach:
            assert not world.has_guest(guest)
        elif method is detach:
            assert world.has_guest(guest)
        elif method is set_trust:
            assert world.trust("allow-g") == trust
        else:
            assert world.queries(guest) == before
    finally:
        world.env.start_polkitd()
