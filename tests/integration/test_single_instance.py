# SPDX-License-Identifier: LGPL-2.1-or-later
"""One instance per bus: a second guestnetd started by hand with the same configuration, drop-ins and
QMP directory does not queue for io.guestnetd.GuestNet1. It exits with status 1 and a message that
says why, before it attaches any guest: the first keeps the name, its guest and its only QMP
connection."""

import subprocess

from busenv import BUS_NAME, GUEST_IFACE, Daemon, bus_env, fake_guest, guest_path

assert bus_env  # a fixture, used by name


def test_second_instance_refuses_to_start(bus_env):
    env = bus_env
    first = Daemon(env)
    fake = fake_guest(first.qmp_dir / "vm1.sock", "vm1")
    try:
        first.start()
        fake.wait_negotiated()
        owner = env.name_owner_pid(BUS_NAME)
        assert owner == first.proc.pid

        # The same files as the first: what a second `guestnetd` typed by an administrator would use.
        log = first.dir / "second.log"
        with open(log, "wb") as f:
            second = env.spawn(first.argv(), stdout=f, stderr=subprocess.STDOUT)
            try:
                rc = second.wait(30)
            except subprocess.TimeoutExpired:
                second.kill()
                second.wait()
                raise AssertionError("the second guestnetd kept running:\n" + log.read_text())
        text = log.read_text()
        assert rc == 1, text
        assert f"Another process owns {BUS_NAME} on this bus" in text, text
        assert "refusing to start a second instance" in text, text
        for never in ("Acquired bus name", "attached", "guest vm1", "running:"):
            assert never not in text, f"the second instance went as far as {never!r}:\n{text}"

        # The first is untouched: it owns the name, its guest is connected, the peer saw one client.
        assert env.name_owner_pid(BUS_NAME) == owner
        assert env.get_property(guest_path("vm1"), GUEST_IFACE, "State") == "connected"
        assert fake.stats()["connections_total"] == 1, fake.stats()
        assert first.proc.poll() is None
    finally:
        first.stop()
        fake.stop()
