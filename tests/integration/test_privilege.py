# SPDX-License-Identifier: LGPL-2.1-or-later
"""Least privilege (issue 7, part 4): macvtap sync needs CAP_NET_ADMIN and nothing else.

Two ways of running the build's daemon, both through setpriv (every capability set reduced to
CAP_NET_ADMIN: bounding, inheritable, ambient; the kernel then leaves nothing else in permitted and
effective):

* uid 0 with only CAP_NET_ADMIN — the shape of the systemd unit (root, CapabilityBoundingSet=);
  proves no other capability (DAC_OVERRIDE, SYS_ADMIN, SYS_PTRACE, ...) is used for the sync itself;
* an unprivileged uid (nobody) with ambient CAP_NET_ADMIN — proves that not even root's ownership
  of files and devices is needed for it: QMP socket, configuration and RuntimeDirectory are made
  accessible to that uid, as a deployment would.

Each run: the guest's MAC, PROMISC, ALLMULTI, MULTICAST and a multicast list that gains and loses
entries reach the macvtap; an unplug-free revert (the monitor lost, RevertOnStop=yes) puts back
the baseline; no host call fails; /proc/PID/status shows exactly CAP_NET_ADMIN. The negative
control (no capability at all: every change fails with EPERM, reported per attribute) is
test_faults_hostdev.py::test_netlink_eperm_is_reported_per_attribute. What the unit adds on top
(CAP_DAC_OVERRIDE for sockets of other users, CAP_SYS_PTRACE for fd-passed backends of other
users, CAP_SYS_ADMIN for setns) is explained in service/guestnetd.service and docs/security.md."""

import os

import pytest

from gnhelpers import daemon_binary, expected_host, guest_dropin

M0 = "52:54:00:12:34:56"
CAP_NET_ADMIN = 1 << 12
NOBODY = 65534
STEPS = [
    dict(main_mac="52:54:00:00:c0:01", promiscuous=False, vlan="normal", vlan_table=[0],
         multicast_table=["33:33:ff:00:c0:01", "01:00:5e:00:00:01", "33:33:00:00:00:01"]),
    dict(multicast="all", multicast_table=["01:00:5e:00:00:fb", "33:33:00:00:00:01"]),
    dict(multicast="normal", promiscuous=True, main_mac="52:54:00:00:c0:02", multicast_table=["01:00:5e:00:00:fb"]),
    dict(promiscuous=False, multicast_table=[]),
]


def same_namespace(dropin, netns):
    """Without CAP_SYS_PTRACE the QEMU's /proc/PID/ns/net cannot be opened, and a namespace that cannot
    be opened fails closed (issue 11): name it (ours) by its bind mount, as docs/operating.md says."""
    return dropin.replace("[Guest]\n", "[Guest]\nNetworkNamespace=/run/netns/%s\n" % netns.name, 1)


def wrapper(workdir, uid=None):
    """A script that makes the test's notify socket reachable for the daemon's uid, then execs the
    build's daemon through setpriv with only CAP_NET_ADMIN (and uid/gid when given)."""
    path = os.path.join(workdir, "guestnetd-net-admin-%s" % (uid if uid is not None else "root"))
    ids = "--reuid=%d --regid=%d --clear-groups " % (uid, uid) if uid is not None else ""
    with open(path, "w") as f:
        f.write("#!/bin/sh\n"
                "[ -n \"$NOTIFY_SOCKET\" ] && chmod 0666 \"$NOTIFY_SOCKET\"\n"
                "exec setpriv %s--inh-caps=-all,+net_admin --ambient-caps=-all,+net_admin "
                "--bounding-set=-all,+net_admin -- %s \"$@\"\n" % (ids, daemon_binary()))
    os.chmod(path, 0o755)
    return path


def caps(pid):
    out = {}
    with open("/proc/%d/status" % pid) as f:
        for line in f:
            k, _, v = line.partition(":")
            if k in ("CapInh", "CapPrm", "CapEff", "CapBnd", "CapAmb", "Uid"):
                out[k] = v.split()[0] if k == "Uid" else int(v, 16)
    return out


def sync_sequence(netns, fake, d, base):
    netns.wait_host("mvt0", timeout=15, **expected_host(fake.get_filter("net0")))
    for step in STEPS:
        fake.wait_armed("net0")
        assert fake.set_filter("net0", **step)
        netns.wait_host("mvt0", **expected_host(fake.get_filter("net0")))
    fake.wait_armed("net0")
    fake.disconnect()  # RevertOnStop=yes: back to what the device was before the daemon
    d.wait_log(r"guest vm1 nic net0: reverted .* on mvt0 to the baseline")
    netns.wait_host("mvt0", mac=base["mac"], promisc=base["promisc"], allmulti=base["allmulti"], mcast=set())
    fake.wait_negotiated(2, timeout=15)
    fake.wait_armed("net0")
    assert fake.set_filter("net0", main_mac="52:54:00:00:c0:03")
    netns.wait_host("mvt0", mac="52:54:00:00:c0:03")
    # (the QEMU process's /proc/PID/ns/net is not readable without CAP_SYS_PTRACE: the daemon says so
    # and uses its own namespace, where the devices are; that is not part of the sync)
    failures = d.log_lines(r".*(host sync of .* failed|revert of .* failed|Operation not permitted|failed: .*mvt0).*")
    assert failures == [], [m.group(0) for m in failures]


def test_uid0_with_only_cap_net_admin_syncs_macvtap(netns, fakes, daemons, workdir):
    netns.add_macvtap("mvt0", "lo0")
    base = netns.host_state("mvt0")
    fake = fakes("vm1", nics=[{"id": "net0", "mac": M0}])
    d = daemons(binary=wrapper(workdir),
                guests={"vm1": same_namespace(guest_dropin("vm1", fake.path, "all", {"net0": {"HostInterface": "mvt0"}}), netns)})
    c = caps(d.pid)
    assert c["Uid"] == "0"
    assert c["CapEff"] == c["CapPrm"] == c["CapBnd"] == c["CapAmb"] == CAP_NET_ADMIN, c
    sync_sequence(netns, fake, d, base)


def test_unprivileged_uid_with_ambient_cap_net_admin_syncs_macvtap(netns, fakes, daemons, workdir):
    netns.add_macvtap("mvt0", "lo0")
    base = netns.host_state("mvt0")
    os.chmod(workdir, 0o755)  # our own temp dir: the daemon's uid must reach its files below
    fake = fakes("vm1", nics=[{"id": "net0", "mac": M0}])
    os.chmod(os.path.dirname(fake.path), 0o755)
    os.chmod(fake.path, 0o666)  # connect() needs write access to the socket, as for QEMU's own user
    run = os.path.join(workdir, "run-nobody")
    os.makedirs(run)
    os.chown(run, NOBODY, NOBODY)
    d = daemons(binary=wrapper(workdir, NOBODY), config="[Daemon]\nRuntimeDirectory=%s\n" % run,
                guests={"vm1": same_namespace(guest_dropin("vm1", fake.path, "all", {"net0": {"HostInterface": "mvt0"}}), netns)})
    c = caps(d.pid)
    assert c["Uid"] == str(NOBODY)
    assert c["CapEff"] == c["CapPrm"] == c["CapAmb"] == CAP_NET_ADMIN, c
    sync_sequence(netns, fake, d, base)
    # the ownership record (baseline) was written by that uid
    files = [os.path.join(r, f) for r, _, fs in os.walk(run) for f in fs]
    assert files, "no baseline written under %s" % run
    assert all(os.stat(f).st_uid == NOBODY for f in files), files


@pytest.mark.parametrize("unit_key", ["CapabilityBoundingSet", "RestrictAddressFamilies", "NoNewPrivileges"])
def test_unit_keeps_the_hardening_this_relies_on(unit_key):
    """The unit is what runs in production: it must still say what these tests assume."""
    text = (daemon_binary().parents[1] / "guestnetd.service").read_text()
    lines = [line for line in text.splitlines() if line.startswith(unit_key + "=")]
    assert lines, unit_key
    if unit_key == "CapabilityBoundingSet":
        assert "CAP_NET_ADMIN" in lines[0]
    elif unit_key == "RestrictAddressFamilies":
        assert set(lines[0].split("=", 1)[1].split()) == {"AF_UNIX", "AF_NETLINK"}
    else:
        assert lines[0] == "NoNewPrivileges=yes"
