# SPDX-License-Identifier: LGPL-2.1-or-later
"""valgrind memcheck over a daemon integration run (issue 7, part 2).

The build's daemon runs under
    valgrind --leak-check=full --errors-for-leak-kinds=definite,indirect --error-exitcode=99
             --track-fds=yes
in the test's namespace on busenv's private system bus, through a realistic sequence with fake QEMU
peers: two guests attached (a drop-in and a socket appearing in the watched QMP directory), filter
changes, trusted applies on macvtaps, trust revoked and granted over D-Bus, a QEMU reconnect, a
query answered after a hold, a detach (socket removed), then SIGTERM. Asserted: exit status 0 (99
would be a memcheck error), no "definitely lost"/"indirectly lost" bytes, no invalid read/write or
other error, no descriptor left open at exit that the daemon opened itself.

Slow by nature (valgrind runs the daemon ~20x slower): timeouts here are generous, nothing is timed.
Skipped when valgrind is not installed or the build is an ASan/TSan one."""

import os
import re
import shutil

import pytest

from busenv import NIC_IFACE, bus_env, nic_path
from gnhelpers import daemon_binary, expected_host, guest_dropin, poll
from hostsync_helpers import set_trust, start_bus_daemon

assert bus_env  # fixture, used by name

VALGRIND = shutil.which("valgrind")


def _sanitized_build():
    """valgrind cannot run an ASan/TSan binary (scripts/sanitize runs this suite against one)."""
    try:
        data = daemon_binary().read_bytes()
    except OSError:
        return False
    return any(s in data for s in (b"libasan.so", b"libtsan.so", b"__asan_init", b"__tsan_init"))
M0 = "52:54:00:12:34:56"
M1 = "52:54:00:12:34:57"
SLOW = 30  # seconds for anything the daemon must do under valgrind


def valgrind_wrapper(workdir, log):
    path = os.path.join(workdir, "guestnetd-memcheck")
    with open(path, "w") as f:
        f.write("#!/bin/sh\nexec %s --quiet --leak-check=full --errors-for-leak-kinds=definite,indirect "
                "--show-leak-kinds=definite,indirect --error-exitcode=99 --track-fds=yes --num-callers=30 "
                "--log-file=%s -- %s \"$@\"\n" % (VALGRIND, log, daemon_binary()))
    os.chmod(path, 0o755)
    return path


def own_open_fds(text):
    """Descriptors open at exit that the daemon opened (not inherited from us), from --track-fds."""
    out = []
    blocks = re.split(r"==\d+== Open ", text)
    for b in blocks[1:]:
        head = b.splitlines()[0]
        if "<inherited from parent>" in b.split("==\n", 1)[0] or re.match(r"file descriptor [012]:", head):
            continue
        out.append(head)
    return out


@pytest.mark.skipif(VALGRIND is None, reason="valgrind is not installed")
@pytest.mark.skipif(_sanitized_build(), reason="the daemon is a sanitizer build: valgrind cannot run it")
def test_daemon_run_is_memcheck_clean(netns, fakes, daemons, bus_env, workdir):
    log = os.path.join(workdir, "memcheck.log")
    netns.add_macvtap("mvt0", "lo0")
    netns.add_macvtap("mvt1", "lo0")
    qmpdir = os.path.join(workdir, "qmpdir")
    os.makedirs(qmpdir)
    vm1 = fakes("vm1", nics=[{"id": "net0", "mac": M0}, {"id": "net1", "mac": M1}])
    d = start_bus_daemon(daemons, bus_env, binary=valgrind_wrapper(workdir, log), qmp_dir=qmpdir, workers=2,
                         config="[Daemon]\nDefaultTrust=all\n",
                         guests={"vm1": guest_dropin("vm1", vm1.path, "all",
                                                     {"net0": {"HostInterface": "mvt0"},
                                                      "net1": {"HostInterface": "mvt1"}})})
    try:
        for nic, dev in (("net0", "mvt0"), ("net1", "mvt1")):
            netns.wait_host(dev, timeout=SLOW, **expected_host(vm1.get_filter(nic)))
            vm1.wait_armed(nic, timeout=SLOW)
        # filter changes applied to the macvtaps
        for i, step in enumerate([
                dict(main_mac="52:54:00:00:d0:01", promiscuous=False, vlan="normal", vlan_table=[0],
                     multicast_table=["33:33:ff:00:d0:01", "01:00:5e:00:00:01", "33:33:00:00:00:01"]),
                dict(multicast="all", vlan_table=[0, 42]),
                dict(multicast="normal", multicast_overflow=True, multicast_table=[]),
                dict(multicast_overflow=False, multicast_table=["01:00:5e:00:00:fb"], main_mac=M0)]):
            vm1.wait_armed("net0", timeout=SLOW)
            assert vm1.set_filter("net0", **step)
            netns.wait_host("mvt0", timeout=SLOW, **expected_host(vm1.get_filter("net0")))
        # a refused MAC, and a malformed reply
        vm1.wait_armed("net1", timeout=SLOW)
        assert vm1.set_filter("net1", main_mac="01:00:5e:00:00:01", promiscuous=False)
        netns.wait_host("mvt1", timeout=SLOW, promisc=False)
        vm1.wait_armed("net1", timeout=SLOW)
        bad = dict(vm1.get_filter("net1"), promiscuous="yes")
        assert vm1.set_filter_raw("net1", bad)
        d.wait_log(r"guest vm1 nic net1: invalid query-rx-filter reply", timeout=SLOW)
        # trust revoked and granted over the bus: revert, then sync
        vm1.wait_armed("net0", timeout=SLOW)
        set_trust(bus_env, "vm1", "net0", ["none"])
        d.wait_log(r"guest vm1 nic net0: reverted", timeout=SLOW)
        set_trust(bus_env, "vm1", "net0", ["all"])
        poll(lambda: bus_env.get_property(nic_path("vm1", "net0"), NIC_IFACE, "SyncState") == "in-sync", SLOW,
             what="net0 in-sync after the grant")
        # a query held, then answered; a reconnect with a full resync
        vm1.hold("net0")
        assert vm1.set_filter("net0", main_mac="52:54:00:00:d0:02")
        vm1.wait_held("net0", timeout=SLOW)
        vm1.release("net0")
        netns.wait_host("mvt0", timeout=SLOW, mac="52:54:00:00:d0:02")
        vm1.disconnect()
        vm1.wait_negotiated(2, timeout=SLOW)
        d.wait_log(r"guest vm1: connected to QEMU", count=2, timeout=SLOW)
        netns.wait_host("mvt0", timeout=SLOW, mac="52:54:00:00:d0:02")
        # a guest appearing in the QMP directory, synced (DefaultTrust=all, interface from info network),
        # then gone: detached
        vm2 = fakes("vm2", nics=[{"id": "net0", "mac": "52:54:00:00:d0:10", "ifname": "mvt1"}],
                    path=os.path.join(qmpdir, "vm2.sock"))
        d.wait_log(r"guest vm2: connected to QEMU", timeout=SLOW)
        vm2.wait_unnamed_queries(1, timeout=SLOW)
        vm2.wait_armed("net0", timeout=SLOW)
        vm2.stop()
        d.wait_log(r"guest vm2: detached", timeout=SLOW)
    finally:
        rc = d.stop(timeout=60)
    text = open(log).read() if os.path.exists(log) else ""
    print(text[-6000:])
    assert rc == 0, "exit status %s under valgrind (99: memcheck errors)\n%s" % (rc, text[-8000:])
    for what in (r"definitely lost: [1-9]", r"indirectly lost: [1-9]", r"Invalid (read|write|free)",
                 r"uninitialised", r"ERROR SUMMARY: [1-9]", r"Mismatched free", r"overlap"):
        assert not re.search(what, text), "memcheck: %s\n%s" % (what, text[-8000:])
    leftover = own_open_fds(text)
    assert not leftover, "descriptors the daemon left open at exit: %r" % leftover
