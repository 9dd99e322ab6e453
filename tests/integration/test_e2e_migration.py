# SPDX-License-Identifier: LGPL-2.1-or-later
"""End to end, migration and restore (issue 12, defect 1): filter state that arrives in a migration
stream comes without any NIC_RX_FILTER_CHANGED, so guestnetd must refresh a guest's NICs when it
starts running (RESUME).

Two real QEMU processes (TCG, the test guest) in one network namespace, each holding its own
passthru macvtap as an fd as libvirt passes it: mvtA on lo2 for the source, mvtB on lo4 for the
destination (libvirt gives the lower device the guest's MAC before it creates a passthru macvtap;
so do we). Both are attached to one guestnetd on a private bus (drop-ins naming sockets of the
watched QMP directory, `Trust=all` on net0). The guest sets a new MAC, all-multicast and a
multicast group, then migrates live to a destination started with `-incoming unix:PATH`: the
destination's macvtap must carry the migrated filter within 1 s of the destination's RESUME (seen
on a test-owned monitor of the destination), with `MacChanged(configured, new, "resync")`, and the
source's macvtap must be back at its baseline once the source QEMU quits.

The restore variant saves the migrated guest to a file (`migrate exec:cat > FILE`) and restores it
where it came from, as `virsh save`/`virsh restore` do: a third QEMU on the source's socket (same
guest) and macvtap, started with `-incoming defer` and given `migrate-incoming exec:cat FILE` (as
libvirt restores), which lets the daemon connect before the state is loaded."""

import os
import time

import pytest

from e2e_helpers import (QEMU, Nic, Nicx, World, converge, diff, get_all, guest_dev_by_mac, guest_filter,
                         guest_path, nic_path, props_from_filter, wait_guest_state)
from gnhelpers import expected_host
from gnhelpers import T, poll
from guestvm import GuestVM

pytestmark = [
    pytest.mark.qemu,
    pytest.mark.skipif(os.geteuid() != 0, reason="needs root (network namespaces, macvtaps)"),
    pytest.mark.skipif(QEMU is None, reason="qemu-system-x86_64 not installed (qemu-system-x86)"),
]

GUEST_MAC = "52:54:00:5e:00:01"   # the domain's MAC: -device mac= on every QEMU of the guest
NEW_MAC = "52:54:00:5e:aa:01"     # what the guest sets before it migrates
GROUP = "01:00:5e:0a:0b:0c"
RESUME_BOUND = 1.0                # issue 12: the destination carries the filter within 1 s of RESUME
# The restore runs where the guest was saved from, as `virsh restore` does: the source's name, socket
# and macvtap.
NAMES = {"src": "mig-src", "dst": "mig-dst", "rst": "mig-src"}
MACVTAP = {"src": "mvtA", "dst": "mvtB", "rst": "mvtA"}


class Migration:
    """The World (bus, polkitd, namespace, daemon, subscriber) plus two passthru macvtaps and the
    QEMUs of one guest's life (source, destination, restored), each stopped by its PID in close()."""

    def __init__(self):
        self.w = World("e2e-migration")
        self.vms = {}
        try:
            for lower, peer, mvt in (("lo2", "lo3", "mvtA"), ("lo4", "lo5", "mvtB")):
                self.w.ns.add_veth(lower, peer)
                self.w.ns.ip("link", "set", lower, "address", GUEST_MAC)
                self.w.ns.add_macvtap(mvt, lower, mode="passthru")
            self.baseline = {mvt: self.w.ns.host_state(mvt) for mvt in ("mvtA", "mvtB")}
            for role in ("src", "dst"):
                self.w.daemon.add_dropin("%s.conf" % NAMES[role], "[Guest]\nQmpSocket=%s\n\n[Nic net0]\nTrust=all\n"
                                         % self.sock(role))
            self.w.start_daemon()
        except BaseException:
            self.close()
            raise

    def sock(self, role):
        return self.w.daemon.qmp_dir / ("%s.sock" % NAMES[role])

    def start_vm(self, role, incoming=None):
        """QEMU for `role` on its macvtap; a source boots the guest, the others wait for it."""
        args = ["-incoming", incoming] if incoming else []
        vm = GuestVM(self.w.workdir / role, netns=self.w.ns.name, kernel=self.w.kernel, initrd=self.w.initrd,
                     nics=[Nic.macvtap(MACVTAP[role], mac=GUEST_MAC, id="net0")], daemon_qmp=str(self.sock(role)),
                     extra_args=args)
        self.vms[role] = vm
        vm.start()
        if incoming is None:
            vm.wait_ready()
        return vm

    def nic(self, role, dev="eth0"):
        return Nicx(NAMES[role], "net0", "macvtap", MACVTAP[role], dev)

    def wait_reset_state_synced(self, role):
        """The daemon found the waiting QEMU's NIC and put its reset filter (configured MAC,
        promiscuous) on the macvtap: what the issue saw the destination keep after RESUME."""
        wait_guest_state(self.w.env, guest_path(NAMES[role]), "connected", timeout=60)
        path, props = nic_path(NAMES[role], "net0"), {}

        def synced():
            props.clear()
            props.update(get_all(self.w.env, path) or {})
            return (props.get("SyncState") == "in-sync" and props.get("Mac") == GUEST_MAC
                    and props.get("Promiscuous") is True and props.get("MulticastMode") == "normal")
        poll(synced, 60, what=lambda: "%s's NIC in sync with the reset filter: %r" % (NAMES[role], props))
        self.w.ns.wait_host(MACVTAP[role], timeout=10, mac=GUEST_MAC, promisc=True, allmulti=False)

    def incoming(self, role, run_migration):
        """Runs `run_migration()` towards the waiting QEMU of `role` and checks what the issue asks
        of the daemon after its RESUME. Returns the seconds from RESUME to the host device
        carrying the migrated filter."""
        vm = self.vms[role]
        nic = self.nic(role)
        mark = self.w.sig.mark()
        run_migration()
        ev = vm.wait_event("RESUME", timeout=T(180))
        t_resume = ev["timestamp"]["seconds"] + ev["timestamp"]["microseconds"] / 1e6
        host = {}

        def carried():
            host.update(self.w.ns.host_state(nic.host_if))
            return host["mac"] == NEW_MAC and host["allmulti"] and GROUP in host["mcast"]
        poll(carried, 20, interval=0.01,
             what=lambda: "%s to carry the migrated filter (have %r)" % (nic.host_if, host))
        seconds = time.time() - t_resume
        print("\n%s: %s carried MAC, ALLMULTI and the group %.3f s after RESUME" % (NAMES[role], nic.host_if, seconds))
        assert seconds <= T(RESUME_BOUND), (
            "%s carried the migrated filter %.3f s after RESUME (bound %.1f s)" % (nic.host_if, seconds, RESUME_BOUND))

        self.w.sig.wait(mark, lambda s: s["member"] == "MacChanged" and s["path"] == nic.path
                        and s["args"] == [GUEST_MAC, NEW_MAC, "resync"],
                        what="MacChanged(%s, %s, resync) of %s" % (GUEST_MAC, NEW_MAC, nic.path))
        # The guest runs on here now (its serial line came along): its own view of its filter, and
        # QEMU's (query-rx-filter on the test monitor, now that the daemon has settled), are what
        # the bus and the host device must show. The VLAN part is compared with QEMU only: after the
        # load QEMU 7.2 reports vlan "none" with an empty table while the guest still has VID 0 (the
        # table does not survive; seen here on every run).
        vm.ready = True
        nic.dev = guest_dev_by_mac(vm, NEW_MAC)
        f = guest_filter(vm, nic.dev)
        q = vm.rx_filter("net0")
        for key in ("main-mac", "promiscuous", "multicast", "multicast-table", "multicast-overflow"):
            have = sorted(q[key]) if isinstance(q[key], list) else q[key]
            assert have == f[key], "QEMU's %s after the migration: %r, the guest's: %r" % (key, have, f[key])
        assert f["main-mac"] == NEW_MAC and f["multicast"] == "all" and GROUP in f["multicast-table"], f
        want_props, want_host, seen = props_from_filter(q), expected_host(q), {}

        def synced():
            seen["props"] = get_all(self.w.env, nic.path) or {}
            seen["host"] = self.w.ns.host_state(nic.host_if)
            seen["diff"] = (diff(seen["props"], want_props),
                            {k: (seen["host"].get(k), v) for k, v in want_host.items() if seen["host"].get(k) != v})
            return not seen["diff"][0] and not seen["diff"][1]
        poll(synced, 20, interval=0.1, what=lambda: "bus and %s as QEMU says (have, want): %r" % (nic.host_if, seen))
        assert seen["props"]["ConfiguredMac"] == GUEST_MAC and seen["props"]["SyncState"] == "in-sync", seen
        return seconds

    def quit(self, role):
        """quit on the test monitor: the daemon loses the guest and reverts its macvtap."""
        self.vms[role].stop()
        self.w.ns.wait_host(MACVTAP[role], timeout=20, **self.baseline[MACVTAP[role]])

    def close(self):
        for vm in self.vms.values():
            try:
                vm.stop()
            except Exception as e:  # keep cleaning up
                print("migration cleanup: %r" % e)
        self.w.close()


def wait_migrated(vm):
    """query-migrate on the sending QEMU's test monitor until the migration has completed."""
    st = {}

    def done():
        st.update(vm.qmp("query-migrate"))
        assert st.get("status") not in ("failed", "cancelled"), st
        return st.get("status") == "completed"
    poll(done, 180, interval=0.1, what=lambda: "the migration to complete (%r)" % st)


@pytest.fixture(scope="module")
def mig():
    m = Migration()
    try:
        yield m
    finally:
        m.close()


@pytest.fixture(autouse=True)
def _report(request, mig):
    request.node._gn_daemons = mig.w.report()


def test_live_migration_carries_filter_to_destination(mig):
    src = mig.start_vm("src")
    wait_guest_state(mig.w.env, guest_path(NAMES["src"]), "connected", timeout=60)
    nic = mig.nic("src", guest_dev_by_mac(src, GUEST_MAC))
    converge(mig.w.env, mig.w.ns, src, nic, trusted=True, timeout=60)
    src.sh("ip link set %s address %s && ip link set %s allmulticast on && ip maddr add %s dev %s"
           % (nic.dev, NEW_MAC, nic.dev, GROUP, nic.dev))
    f, props, host = converge(mig.w.env, mig.w.ns, src, nic, trusted=True)
    assert host["mac"] == NEW_MAC and host["allmulti"] and GROUP in host["mcast"], host

    migsock = mig.w.workdir / "migrate.sock"
    mig.start_vm("dst", incoming="unix:%s" % migsock)
    mig.wait_reset_state_synced("dst")

    mig.incoming("dst", lambda: src.qmp("migrate", {"uri": "unix:%s" % migsock}))
    wait_migrated(src)
    # The source QEMU (paused after the migration) quits: its macvtap goes back to its baseline.
    mig.quit("src")


def test_restore_from_saved_state(mig):
    """The migrated guest saved to a file and restored on the source's socket and macvtap."""
    if "dst" not in mig.vms or not mig.vms["dst"].alive():
        pytest.skip("needs the migrated guest of test_live_migration_carries_filter_to_destination")
    state = mig.w.workdir / "saved-state"
    dst = mig.vms["dst"]
    dst.qmp("migrate", {"uri": "exec:cat > %s" % state})
    wait_migrated(dst)
    mig.quit("dst")

    mig.start_vm("rst", incoming="defer")
    mig.wait_reset_state_synced("rst")
    rst = mig.vms["rst"]
    mig.incoming("rst", lambda: rst.qmp("migrate-incoming", {"uri": "exec:cat %s" % state}))
    mig.quit("rst")
