# SPDX-License-Identifier: LGPL-2.1-or-later
"""D-Bus activation: with an activation file for io.guestnetd.GuestNet1 in the bus's servicedir
(dbus-daemon without --systemd-activation runs Exec=), a call to the name while no daemon runs
starts guestnetd, which answers it. The activated daemon is found through
GetConnectionUnixProcessID and killed by that PID."""

import configparser
import os
import signal

from busenv import BUS_NAME, MANAGER_IFACE, NOBODY_UID, REPO, ROOT_PATH, Daemon, bare_bus_env, wait_until

assert bare_bus_env  # a fixture, used by name


def test_call_activates_the_daemon(bare_bus_env):
    env = bare_bus_env
    daemon = Daemon(env)  # only for its config and directories: the bus starts the process
    shipped = configparser.ConfigParser(interpolation=None)
    shipped.optionxform = str
    shipped.read(REPO / "dbus" / f"{BUS_NAME}.service")
    section = shipped["D-BUS Service"]
    section["Exec"] = " ".join(daemon.argv())
    with open(env.services / f"{BUS_NAME}.service", "w") as f:
        shipped.write(f, space_around_delimiters=False)
    assert not env.name_has_owner(BUS_NAME)

    pid = None
    try:
        # An unprivileged caller: activation is the bus's business, not the caller's.
        res = env.gcall(ROOT_PATH, MANAGER_IFACE, "ListGuests", "()", [], uid=NOBODY_UID)
        assert env.name_has_owner(BUS_NAME), res
        pid = env.name_owner_pid(BUS_NAME)
        assert res == {"result": [[]]}, f"{res}\n{env.read_log('dbus-daemon.log')}"
        with open(f"/proc/{pid}/cmdline", "rb") as f:
            assert f.read().split(b"\0")[0] == str(daemon.argv()[0]).encode()
        assert env.get_property(ROOT_PATH, MANAGER_IFACE, "Version")
    finally:
        if pid is None and env.name_has_owner(BUS_NAME):
            pid = env.name_owner_pid(BUS_NAME)
        if pid:
            os.kill(pid, signal.SIGTERM)
            wait_until(lambda: not env.name_has_owner(BUS_NAME), what="the activated daemon to exit")
