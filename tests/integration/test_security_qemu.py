# SPDX-License-Identifier: LGPL-2.1-or-later
"""Issue 11, a compromised QEMU as the attacker: it may lie in `info network` and in its fd numbers,
flood events and never read, but it reaches no device it does not hold, and the daemon stays bounded.

Every test has a victim macvtap in the same namespace as the attacker's own, and checks the victim's
state after the attack. The fake QEMU is a process in the namespace that really holds what it holds."""

import os
import tempfile
import time

from gnhelpers import guest_dropin, poll, sanitized
from hostsync_helpers import hsfakes, nic_log, start_guest, wait_processed

assert hsfakes  # fixture, used by name

M0 = "52:54:00:12:34:56"
EVIL_MAC = "52:54:00:66:66:66"
GROUP = "01:00:5e:01:02:03"


def victim_setup(netns):
    """mvt0: the attacker's own macvtap; mvt1: another guest's."""
    netns.add_macvtap("mvt0", "lo0", mode="passthru")
    netns.add_macvtap("mvt1", "lo1", mode="passthru")
    return netns.host_state("mvt1")


def attack(fake):
    """Everything a trusted guest could ask of its host device."""
    assert fake.set_filter("net0", main_mac=EVIL_MAC, promiscuous=True, multicast="all",
                           multicast_table=[GROUP])


def assert_untouched(netns, before, d, seconds=1.5):
    time.sleep(seconds)  # give a wrong sync every chance to land
    assert netns.host_state("mvt1") == before, "victim changed: %r -> %r\n%s" % (
        before, netns.host_state("mvt1"), d.log()[-3000:])


def test_reported_ifname_of_another_macvtap_is_refused(netns, hsfakes, daemons):
    """(2a) QEMU holds its own macvtap as an fd but `info network` names the victim's: the daemon
    checks QEMU's fds, finds no fd of mvt1, and refuses to act on it."""
    before = victim_setup(netns)
    fake, d = start_guest(hsfakes, daemons, trust="all", fake_kw={"fds": [{"fd": 40, "macvtap": "mvt0"}]},
                          nics=[{"id": "net0", "mac": M0, "ifname": "mvt1", "hold": False}])
    fake.wait_armed("net0")
    attack(fake)
    d.wait_log(nic_log(d, "vm1", "net0", r".*host interface mvt1: QEMU \(pid \d+\) does not hold it open"),
               count=2)
    assert_untouched(netns, before, d)


def test_fd_of_an_ordinary_file_named_tapN_is_refused(netns, hsfakes, daemons, workdir):
    """(2b) QEMU holds an ordinary file named tap<victim's ifindex> and reports fd=N: a name proves
    nothing; the fd's device number must be the macvtap's."""
    before = victim_setup(netns)
    ifindex = netns.link("mvt1")["ifindex"]
    decoy_dir = tempfile.mkdtemp(dir=workdir)
    decoy = os.path.join(decoy_dir, "tap%d" % ifindex)
    with open(decoy, "w") as f:
        f.write("not a device\n")
    fake, d = start_guest(hsfakes, daemons, trust="all",
                          nics=[{"id": "net0", "mac": M0, "open_path": decoy}])
    attack(fake)
    d.wait_log(nic_log(d, "vm1", "net0", r".*host interface: fd \d+ of QEMU \(pid \d+\) is not a tap or "
                                         r"macvtap: refusing it"), count=2)
    assert_untouched(netns, before, d)


def test_a_device_is_driven_by_one_nic(netns, hsfakes, daemons):
    """Two guests configured (or tricked) onto one macvtap: the first NIC that syncs it holds it; the
    second fails with who holds it, and the device follows only the first."""
    netns.add_macvtap("mvt0", "lo0", mode="passthru")
    f1 = hsfakes("vm1", nics=[{"id": "net0", "mac": M0}])
    f2 = hsfakes("vm2", nics=[{"id": "net0", "mac": "52:54:00:00:00:02"}])
    dropins = {name: guest_dropin(name, f.path, "all", {"net0": {"HostInterface": "mvt0"}})
               for name, f in (("vm1", f1), ("vm2", f2))}
    d2 = daemons(guests=dropins)
    d2.wait_log(nic_log(d2, "vm[12]", "net0", r".*host interface mvt0 is already driven by guest vm[12] "
                                              r"nic net0"))
    holder = "vm1" if d2.log_lines(r"guest vm2 nic net0: .*already driven by guest vm1") else "vm2"
    fake = f1 if holder == "vm1" else f2
    loser = f2 if holder == "vm1" else f1
    fake.wait_armed("net0")
    loser.wait_armed("net0")
    assert loser.set_filter("net0", main_mac=EVIL_MAC, promiscuous=True)
    assert fake.set_filter("net0", main_mac="52:54:00:aa:00:01", promiscuous=False, multicast_table=[GROUP])
    netns.wait_host("mvt0", mac="52:54:00:aa:00:01", mcast={GROUP})
    time.sleep(1.0)
    assert netns.host_state("mvt0")["mac"] == "52:54:00:aa:00:01", d2.log()[-3000:]

    # The holder's QEMU quits: its changes are reverted and the device is free for the other NIC.
    fake.stop()
    loser.wait_armed("net0")
    assert loser.set_filter("net0", main_mac="52:54:00:aa:00:02", promiscuous=True)
    netns.wait_host("mvt0", timeout=10, mac="52:54:00:aa:00:02")


def test_namespace_that_cannot_be_opened_fails_closed(netns, hsfakes, daemons):
    """(9) NetworkNamespace= that cannot be opened: host work must not fall back to the daemon's own
    namespace and match a device of the same name there."""
    before = victim_setup(netns)
    fake = hsfakes("vm1", nics=[{"id": "net0", "mac": M0}])
    dropin = guest_dropin("vm1", fake.path, "all", {"net0": {"HostInterface": "mvt1"}})
    dropin = dropin.replace("[Guest]\n", "[Guest]\nNetworkNamespace=/run/netns/gn-no-such-namespace\n")
    d = daemons(guests={"vm1": dropin})
    wait_processed(d, "vm1", "net0", 1)
    fake.wait_armed("net0")
    d.wait_log(r"guest vm1: cannot open network namespace /run/netns/gn-no-such-namespace: .*; its NICs "
               r"will not be synced")
    attack(fake)
    d.wait_log(nic_log(d, "vm1", "net0", r".*cannot enter the guest's network namespace"), count=2)
    assert_untouched(netns, before, d)


def rss_kib(pid):
    with open("/proc/%d/status" % pid) as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    return 0


def test_reset_flood_from_a_monitor_that_never_answers(netns, hsfakes, daemons):
    """(5) A monitor that reads our commands but never answers, flooding RESET: commands in flight
    are capped per connection (the connection is closed and retried with backoff), so memory stays
    flat however long the flood."""
    netns.add_macvtap("mvt0", "lo0", mode="passthru")
    fake, d = start_guest(hsfakes, daemons, trust="all", nics=[{"id": "net0", "mac": M0, "ifname": "mvt0"}])
    rss_before = rss_kib(d.pid)
    fake.freeze()
    event = b'{"event": "RESET", "data": {"guest": true, "reason": "guest-reset"}, ' \
            b'"timestamp": {"seconds": 1, "microseconds": 2}}\r\n'
    sent = 0
    for _ in range(20):
        fake.send_raw(event * 5000, negotiated_only=True)
        sent += 5000
    poll(lambda: d.log_lines(r"the monitor does not keep up: 512 commands without a reply")
         or d.log_lines(r"guest vm1: .*(disconnected|reconnecting)"), 30,
         what="the flooding monitor to be cut off")
    rss_after = rss_kib(d.pid)
    print("RESET flood: %d events; daemon RSS %d -> %d KiB" % (sent, rss_before, rss_after))
    if not sanitized(d.pid):
        assert rss_after - rss_before < 32 * 1024, "RSS grew by %d KiB" % (rss_after - rss_before)
    fake.thaw()


def test_monitor_names_are_validated_before_use(netns, hsfakes, daemons):
    """(7) What a monitor says about itself is checked before it is kept, published or used: a UUID
    not of the 8-4-4-4-12 form, a name with control characters and a NIC id with a forged log line are
    ignored (the NIC is not created), each with one line saying so."""
    netns.add_macvtap("mvt0", "lo0", mode="passthru")
    fake = hsfakes("vm1", nics=[{"id": "net0", "mac": M0, "ifname": "mvt0"},
                                {"id": "net1\n<0>forged: root login", "mac": "52:54:00:00:00:09"}])
    fake.set_identity(name="evil\x1b]0;pwned\x07", uuid="9f0d7a1e\n<0>forged")
    d = daemons(guests={"vm1": guest_dropin("vm1", fake.path, "all", {})})
    d.wait_log(r"guest vm1: ignoring the UUID QEMU reports: not of the form 8-4-4-4-12 hex digits")
    d.wait_log(r"guest vm1: ignoring the name QEMU reports: contains control characters")
    d.wait_log(r"guest vm1: query-rx-filter entry \d has no valid name")
    line = d.wait_log(r"guest vm1: connected to QEMU 7\.2\.0(.*)")[-1]
    assert "uuid" not in line.group(1) and "evil" not in line.group(1), line.group(0)
    wait_processed(d, "vm1", "net0", 1)
    assert not d.log_lines(r"nic net1")
    assert not any(l.startswith("<0>") for l in d.log().splitlines())


def test_baseline_of_a_deleted_device_is_not_applied_to_its_successor(netns, hsfakes, daemons, workdir):
    """(8) A record names a device by namespace and ifindex, and the kernel hands an ifindex out again:
    a device created with a dead device's index (while guestnetd was stopped) must get its own
    baseline, never the dead one's MAC on revert."""
    rundir = os.path.join(workdir, "run-shared")
    config = "[Daemon]\nRuntimeDirectory=%s\nReconcileIntervalSec=0\n" % rundir
    netns.add_macvtap("mvt0", "lo0", mode="passthru")
    ifindex = str(netns.link("mvt0")["ifindex"])
    f1, d1 = start_guest(hsfakes, daemons, name="vm1", trust="all", config=config,
                         nics=[{"id": "net0", "mac": M0}], nic_keys={"net0": {"HostInterface": "mvt0"}})
    assert f1.set_filter("net0", main_mac="52:54:00:aa:aa:01")
    netns.wait_host("mvt0", mac="52:54:00:aa:aa:01")
    assert os.listdir(os.path.join(rundir, "baselines")), "no record of our change was kept"
    assert d1.stop() == 0  # a stopping daemon leaves the device as it is (the guest runs on)
    f1.stop()

    netns.ip("link", "del", "mvt0")
    netns.add_macvtap("mvt1", "lo1", mode="passthru", index=ifindex)
    assert str(netns.link("mvt1")["ifindex"]) == ifindex
    own_mac = netns.mac("mvt1")
    f2, d2 = start_guest(hsfakes, daemons, name="vm2", trust="all", config=config,
                         nics=[{"id": "net0", "mac": "52:54:00:00:00:02"}],
                         nic_keys={"net0": {"HostInterface": "mvt1"}})
    assert f2.set_filter("net0", main_mac="52:54:00:aa:aa:02")
    netns.wait_host("mvt1", mac="52:54:00:aa:aa:02")
    f2.stop()  # QEMU gone: RevertOnStop= puts the device back to ITS baseline
    netns.wait_host("mvt1", mac=own_mac)
    time.sleep(0.5)
    assert netns.mac("mvt1") == own_mac, d2.log()[-3000:]
