# SPDX-License-Identifier: LGPL-2.1-or-later
"""Host sync, issue 4: trust per capability, grant/revoke at run time, baselines and what is ours.

Each test: a network namespace with veth + macvtaps, a fake QEMU peer process in it, guestnetd in it on
a private system bus (with a real polkitd), trust changed with Nic.SetTrust. The host is read with
`ip -d -j link` (flags, promiscuity/allmulti counters) and the namespace's /proc/net/dev_mcast."""

import os
import re

import pytest

from busenv import NOBODY_UID, bus_env
from gnhelpers import poll
from hostsync_helpers import (counters, guest_nics, hostsync_failures, hsfakes, nic_log, nic_object_exists,
                              nic_prop, processed, set_trust, start_bus_daemon, start_guest,
                              wait_processed)

assert bus_env and hsfakes  # fixtures, used by name

LINUX_MCAST = ["33:33:ff:12:34:56", "01:00:5e:00:00:01", "33:33:00:00:00:01"]
ADMIN_MC = "01:00:5e:7f:00:99"  # an administrator's own (global) entry, there before the guest
ALL = ["mac", "multicast", "allmulti", "promisc"]


def nic(i, mac):
    return {"id": "net%d" % i, "mac": mac}


def start_recording_guest(netns, hsfakes, daemons, bus_env, workdir, mac):
    """One trusted NIC on a fresh macvtap mvt0 (its MAC `mac`), the daemon's records in a runtime
    directory of the test's own: (fake, daemon, the device's baseline, the records' directory)."""
    netns.add_macvtap("mvt0", "lo0", mac=mac)
    base = netns.host_state("mvt0")
    rundir = os.path.join(workdir, "run-records")
    config = "[Daemon]\nRuntimeDirectory=%s\nReconcileIntervalSec=0\n" % rundir
    fake, d = start_guest(hsfakes, daemons, [nic(0, base["mac"])], trust="all", bus_env=bus_env,
                          nic_keys={"net0": {"HostInterface": "mvt0"}}, config=config)
    return fake, d, base, os.path.join(rundir, "baselines")


def test_capability_subsets(netns, hsfakes, daemons, bus_env):
    """Trust=multicast allmulti: list + ALLMULTI follow the guest, the guest's MAC and PROMISC do not.
    Trust=mac: only the MAC follows. Trust=all with a multicast/zero main-mac: the MAC is refused
    (LastError says so), the other attributes still apply."""
    for dev in ("mvt0", "mvt1", "mvt2"):
        netns.add_macvtap(dev, "lo0")
    netns.ip("maddr", "add", ADMIN_MC, "dev", "mvt1")
    before = {dev: netns.host_state(dev) for dev in ("mvt0", "mvt1", "mvt2")}
    cnt = {dev: counters(netns, dev) for dev in ("mvt0", "mvt1", "mvt2")}
    fake, d = start_guest(hsfakes, daemons, [nic(0, "52:54:00:00:01:00"), nic(1, "52:54:00:00:01:01"),
                                             nic(2, "52:54:00:00:01:02")], trust="none", bus_env=bus_env,
                          nic_keys={"net0": {"HostInterface": "mvt0", "Trust": "multicast allmulti"},
                                    "net1": {"HostInterface": "mvt1", "Trust": "mac"},
                                    "net2": {"HostInterface": "mvt2", "Trust": "all"}})
    assert nic_prop(bus_env, "vm1", "net0", "Trust") == ["multicast", "allmulti"]
    assert nic_prop(bus_env, "vm1", "net1", "Trust") == ["mac"]

    # --- multicast allmulti: the guest asks for a new MAC and promisc; neither reaches the host
    n0 = processed(d, "vm1", "net0")
    assert fake.set_filter("net0", main_mac="52:54:00:aa:00:00", promiscuous=True, vlan="normal", vlan_table=[42],
                           multicast_table=LINUX_MCAST)
    netns.wait_host("mvt0", mcast=set(LINUX_MCAST), multicast=True)
    wait_processed(d, "vm1", "net0", n0 + 1)
    st = netns.host_state("mvt0")
    assert st["mac"] == before["mvt0"]["mac"], "the guest's MAC was installed without mac trust"
    assert not st["promisc"] and counters(netns, "mvt0")[0] == cnt["mvt0"][0], "promisc touched without trust"
    fake.wait_armed("net0")
    assert fake.set_filter("net0", multicast="all")
    netns.wait_host("mvt0", allmulti=True, mcast=set(LINUX_MCAST), mac=before["mvt0"]["mac"], promisc=False)
    assert nic_prop(bus_env, "vm1", "net0", "Mac") == "52:54:00:aa:00:00"  # published all the same

    # --- mac only: the MAC follows; list, ALLMULTI and PROMISC stay the administrator's
    n1 = processed(d, "vm1", "net1")
    assert fake.set_filter("net1", main_mac="52:54:00:aa:00:01", promiscuous=False, multicast="all",
                           multicast_table=["01:00:5e:00:00:fb"])
    netns.wait_host("mvt1", mac="52:54:00:aa:00:01")
    wait_processed(d, "vm1", "net1", n1 + 1)
    st = netns.host_state("mvt1")
    assert st["mcast"] == {ADMIN_MC}, "multicast list touched with Trust=mac: %r" % st["mcast"]
    assert st["allmulti"] == before["mvt1"]["allmulti"] and st["promisc"] == before["mvt1"]["promisc"]
    assert counters(netns, "mvt1") == cnt["mvt1"]

    # --- all, but a multicast / all-zero main-mac: refused, the rest applies
    for i, bad in enumerate(["01:00:5e:00:00:01", "00:00:00:00:00:00", "33:33:00:00:00:01"]):
        fake.wait_armed("net2")
        mc = ["01:00:5e:00:01:%02x" % i]
        assert fake.set_filter("net2", main_mac=bad, promiscuous=i % 2 == 1, vlan="normal", vlan_table=[0],
                               multicast_table=mc)
        # the MAC stays the guest's last valid one (Trust=all installed it at the initial sync)
        netns.wait_host("mvt2", promisc=i % 2 == 1, mcast=set(mc), mac="52:54:00:00:01:02")
        poll(lambda: "refused" in nic_prop(bus_env, "vm1", "net2", "LastError"), 5,
             what="LastError of net2 to say the MAC %s was refused" % bad)
        err = nic_prop(bus_env, "vm1", "net2", "LastError")
        assert bad in err, err
    d.wait_log(nic_log(d, "vm1", "net2", r".*refused guest MAC"))
    # a valid MAC afterwards is installed and the error clears
    fake.wait_armed("net2")
    assert fake.set_filter("net2", main_mac="52:54:00:aa:00:02")
    netns.wait_host("mvt2", mac="52:54:00:aa:00:02")
    poll(lambda: nic_prop(bus_env, "vm1", "net2", "LastError") == "", 5, what="LastError to clear")
    assert nic_prop(bus_env, "vm1", "net2", "SyncState") == "in-sync"
    assert hostsync_failures(d) == [] or all("refused" in l for l in hostsync_failures(d)), hostsync_failures(d)


def test_grant_syncs_and_revoke_reverts_at_once(netns, hsfakes, daemons, bus_env):
    """Granted over the bus (by an unprivileged caller polkit authorizes): the host follows the guest's
    current filter at once, without a new guest event. Revoked: back to the baseline at once — our
    MAC, flags and entries undone, the administrator's promisc and multicast entry kept."""
    netns.add_macvtap("mvt0", "lo0")
    netns.add_macvtap("mvt1", "lo0")
    netns.ip("link", "set", "mvt0", "promisc", "on")  # the administrator's
    netns.ip("maddr", "add", ADMIN_MC, "dev", "mvt0")
    base = {dev: netns.host_state(dev) for dev in ("mvt0", "mvt1")}
    cnt = {dev: counters(netns, dev) for dev in ("mvt0", "mvt1")}
    assert base["mvt0"]["promisc"] and base["mvt0"]["mcast"] == {ADMIN_MC}
    g = "allow-vm1"  # tests/polkit rules: guests named allow-* are authorized for anyone
    fake, d = start_guest(hsfakes, daemons, [nic(0, "52:54:00:00:02:00"), nic(1, "52:54:00:00:02:01")], name=g,
                          trust="none", bus_env=bus_env,
                          nic_keys={"net0": {"HostInterface": "mvt0"}, "net1": {"HostInterface": "mvt1"}})
    # the guest's state while untrusted: observed and published, the host untouched
    want = {
        "net0": dict(main_mac="52:54:00:bb:00:00", promiscuous=False, vlan="normal", vlan_table=[0],
                     multicast="all", multicast_table=["01:00:5e:00:00:0a", "33:33:00:00:00:0b", ADMIN_MC]),
        "net1": dict(main_mac="52:54:00:bb:00:01", promiscuous=True, vlan="normal", vlan_table=[0],
                     multicast="all", multicast_table=["01:00:5e:00:00:0a", "33:33:00:00:00:0c"]),
    }
    for n, f in want.items():
        c = processed(d, g, n)
        assert fake.set_filter(n, **f)
        wait_processed(d, g, n, c + 1)
    for dev in ("mvt0", "mvt1"):
        assert netns.host_state(dev) == base[dev]
    events = {n: fake.events_emitted(n) for n in want}

    # grant: at once, from the filter QEMU reports now
    for n in want:
        res = set_trust(bus_env, g, n, ["all"], uid=NOBODY_UID)
        assert res == {"result": []}
        assert nic_prop(bus_env, g, n, "Trust") == ALL
    netns.wait_host("mvt0", mac="52:54:00:bb:00:00", promisc=True, allmulti=True,
                    mcast={"01:00:5e:00:00:0a", "33:33:00:00:00:0b", ADMIN_MC})
    netns.wait_host("mvt1", mac="52:54:00:bb:00:01", promisc=True, allmulti=True,
                    mcast={"01:00:5e:00:00:0a", "33:33:00:00:00:0c"})
    assert {n: fake.events_emitted(n) for n in want} == events, "the sync waited for a guest event"
    poll(lambda: nic_prop(bus_env, g, "net1", "SyncState") == "in-sync", 5, what="net1 in-sync")

    # partial revoke: promisc and allmulti go back, MAC and list stay
    set_trust(bus_env, g, "net1", ["mac", "multicast"], uid=NOBODY_UID)
    netns.wait_host("mvt1", promisc=False, allmulti=False, mac="52:54:00:bb:00:01",
                    mcast={"01:00:5e:00:00:0a", "33:33:00:00:00:0c"})

    # full revoke: the baseline, and only what we did undone
    set_trust(bus_env, g, "net0", ["none"], uid=NOBODY_UID)
    set_trust(bus_env, g, "net1", [], uid=NOBODY_UID)
    netns.wait_host("mvt0", mac=base["mvt0"]["mac"], promisc=True, allmulti=False, mcast={ADMIN_MC})
    netns.wait_host("mvt1", mac=base["mvt1"]["mac"], promisc=False, allmulti=False, mcast=set())
    for dev in ("mvt0", "mvt1"):
        poll(lambda: netns.host_state(dev) == base[dev] and counters(netns, dev) == cnt[dev], 5,
             what=lambda: "%s back to its baseline %r %r (have %r %r)" % (
                 dev, base[dev], cnt[dev], netns.host_state(dev), counters(netns, dev)))
    for n in want:
        poll(lambda: nic_prop(bus_env, g, n, "SyncState") == "observing", 5, what="%s observing" % n)
        assert nic_prop(bus_env, g, n, "Trust") == []
    # still observed while untrusted, and the host stays put
    c = processed(d, g, "net1")
    fake.wait_armed("net1")
    assert fake.set_filter("net1", main_mac="52:54:00:bb:00:11", promiscuous=True)
    wait_processed(d, g, "net1", c + 1)
    assert netns.host_state("mvt1") == base["mvt1"]
    d.wait_log(nic_log(d, g, "net0", r"reverted .* on mvt0 to the baseline"))
    assert hostsync_failures(d) == []


def test_unplug_reverts_and_removes_the_object(netns, hsfakes, daemons, bus_env):
    """DEVICE_DELETED of a NIC: its host device goes back to the baseline, its D-Bus object goes away,
    a query that was pending for it does not bring anything back; the other NIC carries on."""
    netns.add_macvtap("mvt0", "lo0")
    netns.add_macvtap("mvt1", "lo0")
    netns.ip("maddr", "add", ADMIN_MC, "dev", "mvt0")
    base = netns.host_state("mvt0")
    cnt = counters(netns, "mvt0")
    fake, d = start_guest(hsfakes, daemons, [nic(0, "52:54:00:00:03:00"), nic(1, "52:54:00:00:03:01")],
                          trust="all", bus_env=bus_env,
                          nic_keys={"net0": {"HostInterface": "mvt0"}, "net1": {"HostInterface": "mvt1"}})
    assert fake.set_filter("net0", main_mac="52:54:00:cc:00:00", promiscuous=True, multicast="all",
                           multicast_table=LINUX_MCAST)
    netns.wait_host("mvt0", mac="52:54:00:cc:00:00", promisc=True, allmulti=True, mcast=set(LINUX_MCAST) | {ADMIN_MC})
    fake.wait_armed("net0")
    assert len(guest_nics(bus_env, "vm1")) == 2

    # a guest change whose query is still unanswered when QEMU unplugs the NIC (a filter event can
    # arrive just before DEVICE_DELETED): QEMU then answers it with "invalid net client name"
    fake.hold("net0")
    assert fake.set_filter("net0", main_mac="52:54:00:cc:00:01", multicast_table=["01:00:5e:00:00:fe"])
    fake.wait_held("net0")
    fake.remove_nic("net0")
    assert fake.release("net0") == 1
    netns.wait_host("mvt0", mac=base["mac"], promisc=False, allmulti=False, mcast={ADMIN_MC})
    poll(lambda: not nic_object_exists(bus_env, "vm1", "net0"), 5, what="net0's object to go away")
    nics = guest_nics(bus_env, "vm1")
    assert len(nics) == 1 and nics[0].endswith("/nic/net1"), nics
    assert "net0" not in fake.stats()["nics"]
    d.wait_log(nic_log(d, "vm1", "net0", "removed"))
    d.wait_log(nic_log(d, "vm1", "net0", r"reverted .* on mvt0 to the baseline"))
    assert netns.host_state("mvt0") == base and counters(netns, "mvt0") == cnt
    # nothing more is asked about net0
    named = lambda: [m for _, m in fake.command_log(execute="query-rx-filter")  # noqa: E731
                     if (m.get("arguments") or {}).get("name") == "net0"]
    asked = len(named())

    # the other NIC is still synced
    fake.wait_armed("net1")
    assert fake.set_filter("net1", main_mac="52:54:00:cc:00:11", promiscuous=False)
    netns.wait_host("mvt1", mac="52:54:00:cc:00:11", promisc=False)
    assert netns.host_state("mvt0") == base
    assert len(named()) == asked
    assert hostsync_failures(d) == []


def test_restart_keeps_the_original_baseline(netns, hsfakes, daemons, bus_env, workdir):
    """SIGTERM does not revert; the next daemon reads the persisted record, so revoking trust after the
    restart returns the device to the state it had before the guest ever touched it."""
    netns.add_macvtap("mvt0", "lo0", mac="02:00:00:00:00:42")
    netns.ip("maddr", "add", ADMIN_MC, "dev", "mvt0")
    base = netns.host_state("mvt0")
    cnt = counters(netns, "mvt0")
    rundir = os.path.join(workdir, "run-shared")
    config = "[Daemon]\nRuntimeDirectory=%s\nReconcileIntervalSec=0\n" % rundir
    fake, d1 = start_guest(hsfakes, daemons, [nic(0, "52:54:00:00:04:00")], trust="all", bus_env=bus_env,
                           nic_keys={"net0": {"HostInterface": "mvt0"}}, config=config)
    guest_state = dict(mac="52:54:00:dd:00:00", promisc=True, allmulti=True,
                       mcast={"01:00:5e:00:00:0d", ADMIN_MC})
    assert fake.set_filter("net0", main_mac="52:54:00:dd:00:00", promiscuous=True, multicast="all",
                           multicast_table=["01:00:5e:00:00:0d"])
    netns.wait_host("mvt0", **guest_state)
    fake.wait_armed("net0")
    ifindex = netns.link("mvt0")["ifindex"]
    # "<netns cookie>-<ifindex>.json": the namespace's cookie is not visible from here, the index is
    records = [f for f in os.listdir(os.path.join(rundir, "baselines")) if f.endswith("-%d.json" % ifindex)]
    assert len(records) == 1, os.listdir(os.path.join(rundir, "baselines"))

    assert d1.stop() == 0
    state_after_stop = netns.host_state("mvt0")
    assert state_after_stop == dict(guest_state, multicast=True), "SIGTERM reverted the host device"

    d2 = start_bus_daemon(
        daemons, bus_env, guests={"vm1": open(d1.guests_dir / "vm1.conf").read()}, config=config)
    d2.wait_log(r"guest vm1: connected to QEMU 7\.2\.0")
    wait_processed(d2, "vm1", "net0", 1)
    fake.wait_armed("net0")
    assert netns.host_state("mvt0") == state_after_stop  # nothing to do: the host matches the guest

    set_trust(bus_env, "vm1", "net0", ["none"])
    netns.wait_host("mvt0", mac=base["mac"], promisc=False, allmulti=False, mcast={ADMIN_MC})
    poll(lambda: netns.host_state("mvt0") == base and counters(netns, "mvt0") == cnt, 5,
         what=lambda: "mvt0 back to %r %r (have %r %r)" % (base, cnt, netns.host_state("mvt0"),
                                                          counters(netns, "mvt0")))
    assert hostsync_failures(d2) == []


@pytest.mark.parametrize("let_go", ["trust-revoked", "daemon-stopped"])
def test_record_of_a_change_the_guest_undid_goes_with_the_nic(netns, hsfakes, daemons, bus_env, workdir, let_go):
    """A guest that undoes its own change leaves nothing of ours on the device: the record the NIC keeps
    open is rewritten, clean, and goes when the NIC lets go of the device, whether a revert (with nothing
    left to undo) runs or the daemon just stops."""
    fake, d, base, baselines = start_recording_guest(netns, hsfakes, daemons, bus_env, workdir, "02:00:00:00:00:44")
    assert fake.set_filter("net0", main_mac=base["mac"], promiscuous=True)
    netns.wait_host("mvt0", promisc=True)
    poll(lambda: len(os.listdir(baselines)) == 1, 5, what=lambda: "one record (have %r)" % os.listdir(baselines))
    fake.wait_armed("net0")
    assert fake.set_filter("net0", main_mac=base["mac"], promiscuous=False)
    netns.wait_host("mvt0", promisc=False)
    wait_processed(d, "vm1", "net0", 3)

    if let_go == "trust-revoked":
        set_trust(bus_env, "vm1", "net0", ["none"])
    else:
        assert d.stop() == 0
    poll(lambda: os.listdir(baselines) == [], 5,
         what=lambda: "no record left after the NIC let go (have %r)" % os.listdir(baselines))
    assert netns.host_state("mvt0") == base
    if let_go == "trust-revoked":
        assert hostsync_failures(d) == []


@pytest.mark.parametrize("unsafe", ["others-may-write", "owned-by-nobody"])
def test_baseline_that_cannot_be_saved_is_reported(netns, hsfakes, daemons, bus_env, workdir, unsafe):
    """Defect 10 of issue 12: the ownership record cannot be saved any more (here the baseline
    directory became one the daemon refuses to write in: others may write to it, or another user
    owns it). The device itself is still synced from the record in memory, but a restart could
    take guest-made state for the baseline: the NIC says so (SyncState failed, LastError naming the
    record and the directory) and so does the log. (A directory that is unsafe from the start
    blocks changes instead: the record cannot be read, so what is ours is unknown.)"""
    fake, d, base, baselines = start_recording_guest(netns, hsfakes, daemons, bus_env, workdir, "02:00:00:00:00:43")
    assert fake.set_filter("net0", main_mac="52:54:00:dd:00:42", promiscuous=False)
    netns.wait_host("mvt0", mac="52:54:00:dd:00:42", promisc=False)
    poll(lambda: nic_prop(bus_env, "vm1", "net0", "SyncState") == "in-sync", 5, what="in-sync")
    saved = {f: open(os.path.join(baselines, f)).read() for f in os.listdir(baselines)}
    assert len(saved) == 1, saved

    if unsafe == "others-may-write":
        os.chmod(baselines, 0o777)
    else:
        os.chown(baselines, NOBODY_UID, NOBODY_UID)
    fake.wait_armed("net0")
    assert fake.set_filter("net0", main_mac="52:54:00:dd:00:43", promiscuous=True)
    netns.wait_host("mvt0", mac="52:54:00:dd:00:43", promisc=True)

    want = r"baseline record of mvt0 cannot be saved in %s: Operation not permitted" % re.escape(baselines)
    d.wait_log(nic_log(d, "vm1", "net0", r"filter changed \[.*\]; host \w+: " + want))
    poll(lambda: re.search(want, nic_prop(bus_env, "vm1", "net0", "LastError")), 5,
         what=lambda: "LastError saying the record cannot be saved (have %r)"
         % nic_prop(bus_env, "vm1", "net0", "LastError"))
    assert nic_prop(bus_env, "vm1", "net0", "SyncState") == "failed"
    assert {f: open(os.path.join(baselines, f)).read() for f in os.listdir(baselines)} == saved

    # The record in memory still knows the baseline: revoking trust puts the device back.
    set_trust(bus_env, "vm1", "net0", ["none"])
    netns.wait_host("mvt0", mac=base["mac"], promisc=base["promisc"])


def test_detach_guest_reverts(netns, hsfakes, daemons, bus_env):
    """Manager.DetachGuest: the guest's host devices go back to their baselines, its objects go."""
    from busenv import MANAGER_IFACE, ROOT_PATH
    netns.add_macvtap("mvt0", "lo0")
    base, cnt = netns.host_state("mvt0"), counters(netns, "mvt0")
    fake, d = start_guest(hsfakes, daemons, [nic(0, "52:54:00:00:05:00")], trust="all", bus_env=bus_env,
                          nic_keys={"net0": {"HostInterface": "mvt0"}})
    assert fake.set_filter("net0", main_mac="52:54:00:ef:00:00", promiscuous=True, multicast="all",
                           multicast_table=LINUX_MCAST)
    netns.wait_host("mvt0", mac="52:54:00:ef:00:00", promisc=True, allmulti=True, mcast=set(LINUX_MCAST))
    assert bus_env.gcall(ROOT_PATH, MANAGER_IFACE, "DetachGuest", "(s)", ["vm1"]) == {"result": []}
    netns.wait_host("mvt0", mac=base["mac"], promisc=False, allmulti=False, mcast=set())
    assert netns.host_state("mvt0") == base and counters(netns, "mvt0") == cnt
    assert not nic_object_exists(bus_env, "vm1", "net0")
    fake.wait_disconnected()
    assert hostsync_failures(d) == []


def test_flag_we_set_is_ours_even_if_the_baseline_had_it(netns, hsfakes, daemons, bus_env):
    """"We remember what we set" (issue 4, point 6). The device had PROMISC when first seen, the
    administrator turned it off later; a trusted guest then asks for promisc, so guestnetd sets it —
    that bit is now guestnetd's. When the guest no longer wants promisc the daemon must be able to take
    it back (and a revocation must undo it), or the device stays promiscuous although nobody wants it
    and the NIC still reports in-sync."""
    netns.add_macvtap("mvt0", "lo0")
    netns.ip("link", "set", "mvt0", "promisc", "on")
    fake, d = start_guest(hsfakes, daemons, [nic(0, "52:54:00:00:06:00")], trust="all", bus_env=bus_env,
                          nic_keys={"net0": {"HostInterface": "mvt0"}})  # baseline: PROMISC on
    netns.ip("link", "set", "mvt0", "promisc", "off")  # the administrator changes their mind
    c = processed(d, "vm1", "net0")
    assert fake.set_filter("net0", promiscuous=False, vlan="normal", vlan_table=[0])
    wait_processed(d, "vm1", "net0", c + 1)
    netns.wait_host("mvt0", promisc=False)
    fake.wait_armed("net0")
    assert fake.set_filter("net0", promiscuous=True)  # the guest wants promisc: we set it
    netns.wait_host("mvt0", promisc=True)
    fake.wait_armed("net0")
    c = processed(d, "vm1", "net0")
    assert fake.set_filter("net0", promiscuous=False)  # ... and no longer: we clear what we set
    wait_processed(d, "vm1", "net0", c + 1)
    st = netns.host_state("mvt0")
    assert not st["promisc"], ("guestnetd set PROMISC for the guest but did not clear it when the guest "
                               "turned promisc off (SyncState %s)" % nic_prop(bus_env, "vm1", "net0", "SyncState"))
