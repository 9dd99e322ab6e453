# SPDX-License-Identifier: LGPL-2.1-or-later
"""dbus/io.guestnetd.GuestNet1.conf is enforced by a real dbus-daemon with the system bus's default
policy: only root may own io.guestnetd.GuestNet1; other users may not, even while it is free."""

from busenv import BUS_NAME, NOBODY_UID, BusEnv, bare_bus_env

assert bare_bus_env  # a fixture, used by name

DBUS = ("org.freedesktop.DBus", "/org/freedesktop/DBus", "org.freedesktop.DBus")


def request_name(env: BusEnv, name, uid=None):
    return env.gcall(DBUS[1], DBUS[2], "RequestName", "(su)", [name, 0], uid=uid, dest=DBUS[0])


def test_unprivileged_user_cannot_own_the_name(bare_bus_env):
    assert not bare_bus_env.name_has_owner(BUS_NAME)
    res = request_name(bare_bus_env, BUS_NAME, uid=NOBODY_UID)
    assert res.get("error") == "org.freedesktop.DBus.Error.AccessDenied", res
    assert not bare_bus_env.name_has_owner(BUS_NAME)


def test_busctl_request_name_as_nobody_is_refused(bare_bus_env):
    res = bare_bus_env.busctl("call", *DBUS, "RequestName", "su", BUS_NAME, "0", uid=NOBODY_UID)
    assert res.returncode != 0 and "Access denied" in res.stderr, res


def test_root_may_own_the_name(bare_bus_env):
    # 1 = DBUS_REQUEST_NAME_REPLY_PRIMARY_OWNER; the name is released when the caller exits.
    assert request_name(bare_bus_env, BUS_NAME) == {"result": [1]}


def test_policy_does_not_open_other_names(bare_bus_env):
    """Our file punches a hole for our name only, not for names beside it."""
    res = request_name(bare_bus_env, "io.guestnetd.Other", uid=NOBODY_UID)
    assert res.get("error") == "org.freedesktop.DBus.Error.AccessDenied", res
