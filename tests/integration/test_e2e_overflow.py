# SPDX-License-Identifier: LGPL-2.1-or-later
"""End to end, multicast overflow (issue 12, defect 5): a trusted guest with about 13 groups joins 70
more, over virtio-net's 64-entry table (QEMU then reports multicast-overflow with an empty table and
the host device gets ALLMULTI), after a burst of mixed changes, and leaves them again. In the end the
host macvtap's user-added ("global") multicast list must equal the guest's own `ip maddr` list,
whatever the order of events and jobs: no group the guest left may stay behind on the host, none it
kept may be missing.

Two guests on one daemon, as the issue saw it: two real QEMUs (TCG, the test guest) each hold a
passthru macvtap as an fd, as libvirt passes it; guestnetd on a private bus finds them through
QEMU's fds and syncs them (drop-ins, `Trust=all`). Both guests make the same changes at once. Changes are made
by `ip` commands run back to back in the guest, so each round is a burst of kernel filter updates
(and so of NIC_RX_FILTER_CHANGED / query rounds), not one change at a time."""

import os
import threading

import pytest

from e2e_helpers import QEMU, Nic, Nicx, World, converge, guest_dev_by_mac, guest_path, wait_guest_state
from guestvm import GuestVM

pytestmark = [
    pytest.mark.qemu,
    pytest.mark.skipif(os.geteuid() != 0, reason="needs root (network namespaces, macvtaps)"),
    pytest.mark.skipif(QEMU is None, reason="qemu-system-x86_64 not installed (qemu-system-x86)"),
]

GUESTS = {"ovf1": "mvtP", "ovf2": "mvtQ"}  # two guests on one daemon, as the issue saw it
BASE = ["01:00:5e:0b:00:%02x" % i for i in range(1, 11)]       # + the guest's own 3: 13
OVER = ["01:00:5e:0c:00:%02x" % i for i in range(1, 71)]       # 70 more: over 64
MIXED = ["33:33:00:0d:00:%02x" % i for i in range(1, 4)]


class Guest:
    """One QEMU (the World's or our own) with its NIC on its passthru macvtap."""

    def __init__(self, w, name, vm, mvt):
        self.w, self.name, self.vm, self.mvt = w, name, vm, mvt
        self.nic = Nicx(name, "net0", "macvtap", mvt, guest_dev_by_mac(vm, w.ns.mac(mvt)))


@pytest.fixture(scope="module")
def ovf():
    # The reconcile timer runs every second, so that reconciles also land in the bursts.
    w = World("e2e-overflow", config="[Daemon]\nReconcileIntervalSec=1\n")
    vms = []
    try:
        for i, (name, mvt) in enumerate(GUESTS.items()):
            w.ns.add_veth("lo%d" % (2 * i + 2), "lo%d" % (2 * i + 3))
            w.ns.add_macvtap(mvt, "lo%d" % (2 * i + 2), mode="passthru")
            sock = w.daemon.qmp_dir / ("%s.sock" % name)
            w.daemon.add_dropin("%s.conf" % name, "[Guest]\nQmpSocket=%s\n\n[Nic net0]\nTrust=all\n" % sock)
        w.start_daemon()
        for name, mvt in GUESTS.items():
            vm = GuestVM(w.workdir / name, netns=w.ns.name, kernel=w.kernel, initrd=w.initrd,
                         nics=[Nic.macvtap(mvt, mac=w.ns.mac(mvt), id="net0")],
                         daemon_qmp=str(w.daemon.qmp_dir / ("%s.sock" % name)))
            vms.append(vm)
            vm.start()
        guests = []
        for vm, (name, mvt) in zip(vms, GUESTS.items()):
            vm.wait_ready()
            wait_guest_state(w.env, guest_path(name), "connected", timeout=60)
            guests.append(Guest(w, name, vm, mvt))
            converge(w.env, w.ns, vm, guests[-1].nic, trusted=True, timeout=60)
        w.guests = guests
        yield w
    finally:
        for vm in vms:
            try:
                vm.stop()
            except Exception as e:  # keep cleaning up
                print("overflow cleanup: %r" % e)
        w.close()


@pytest.fixture(autouse=True)
def _report(request, ovf):
    request.node._gn_daemons = ovf.report()


def batch(w, lines):
    """`ip` commands run back to back in each guest at the same time: a burst of changes. (Not
    `ip -batch`: iproute2 6.1 runs only the first `maddr add` of a batch.)"""
    def run(g):
        g.vm.sh("for l in %s; do ip $l || exit 1; done"
                % " ".join("'%s'" % line.replace("DEV", g.nic.dev) for line in lines))
    threads = [threading.Thread(target=lambda g=g: errors.extend(_catch(run, g))) for g in w.guests]
    errors = []
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert not errors, errors


def _catch(f, *args):
    try:
        f(*args)
        return []
    except Exception as e:
        return [e]


def joins(groups):
    return ["maddr add %s dev DEV" % g for g in groups]


def leaves(groups):
    return ["maddr del %s dev DEV" % g for g in groups]


def settle_exact(w, what):
    """Each guest converged (bus = guest, host = the filter) and, with no overflow, its host's
    global list exactly the guest's list. On failure the message names what stayed behind or is
    missing. Returns the guests' lists."""
    lists = []
    for g in w.guests:
        f, props, host = converge(w.env, w.ns, g.vm, g.nic, trusted=True, timeout=60)
        assert not f["multicast-overflow"], "%s: %s is still over the table: %r" % (what, g.name, f)
        guest = set(f["multicast-table"])
        have = w.ns.mcast_global(g.mvt)
        assert have == guest, ("%s: %s's global multicast list is not the guest's: left behind on the host %s, "
                               "missing on the host %s" % (what, g.mvt, sorted(have - guest), sorted(guest - have)))
        assert props["MulticastOverflow"] is False and host["allmulti"] is False, (props, host)
        lists.append(guest)
    return lists


def test_overflow_and_back_ends_with_the_guests_list(ovf):
    w = ovf
    batch(w, joins(BASE))
    for guest in settle_exact(w, "after joining the first groups"):
        assert set(BASE) <= guest and len(guest) >= 13, guest

    # A burst of mixed changes: MAC, flags and groups in and out.
    batch(w, ["link set dev DEV promisc on", *joins(MIXED[:2]), "link set dev DEV address 52:54:00:0d:00:01",
              "link set dev DEV allmulticast on", *leaves(MIXED[:1]), *leaves(BASE[:2]),
              "link set dev DEV promisc off", *joins(MIXED[2:]), "link set dev DEV allmulticast off",
              *joins(BASE[:1])])
    for guest in settle_exact(w, "after the burst of mixed changes"):
        assert set(MIXED[1:]) <= guest and MIXED[0] not in guest and BASE[1] not in guest, guest

    # Over the table: QEMU reports multicast-overflow and an empty table; the host gets ALLMULTI.
    batch(w, joins(OVER))
    for g in w.guests:
        f, props, host = converge(w.env, w.ns, g.vm, g.nic, trusted=True, timeout=60)
        assert f["multicast-overflow"] is True and props["MulticastOverflow"] is True and host["allmulti"] is True

    # And back: the host list must be the guest's again, with nothing of the 70 left behind.
    batch(w, leaves(OVER))
    for guest in settle_exact(w, "after leaving the 70 groups"):
        assert not set(OVER) & guest


def test_overflow_mixed_with_leaves_in_one_burst(ovf):
    """Joins over the table, leaves, flag changes and re-joins in one burst: events and jobs overlap
    the overflow in both directions."""
    w = ovf
    settle_exact(w, "at the start")
    batch(w, [*joins(OVER[:40]), "link set dev DEV promisc on", *joins(OVER[40:]), *leaves(OVER[:30]),
              *leaves(BASE[3:5]), "link set dev DEV allmulticast on", *leaves(OVER[30:60]),
              "link set dev DEV promisc off", *joins(BASE[3:4]), *leaves(OVER[60:]),
              "link set dev DEV allmulticast off", *joins(MIXED[:1])])
    for guest in settle_exact(w, "after the burst over the table and back"):
        assert not set(OVER) & guest and BASE[3] in guest and BASE[4] not in guest and MIXED[0] in guest, guest
    # Twice more, as the issue saw the outcome differ between runs.
    for round in range(2):
        batch(w, [*joins(OVER), *leaves(OVER[::2]), *leaves(OVER[1::2])])
        settle_exact(w, "after round %d of joining and leaving the 70" % (round + 1))
