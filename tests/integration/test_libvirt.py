# SPDX-License-Identifier: LGPL-2.1-or-later
"""guestnetd next to a real libvirt, set up exactly as docs/operating.md ("A libvirt domain") says.

A real libvirtd 9.0 (libvirtenv.py: the test's network namespace, a private mount namespace, no
libvirt-daemon-system, nothing left in /etc, /run or /var) runs one domain: the project's test guest
(tests/guest, direct kernel boot, TCG), its command channel on a second serial port, the
`<interface type='direct' trustGuestRxFilters='no'>` and `<qemu:commandline>` monitor copied from the
docs, `/run/guestnetd/qmp` made by our tmpfiles.d file with the documented override for libvirt's
QEMU user, and the documented drop-in trusting net0. guestnetd runs in libvirtd's mount namespace
(so it sees /run/guestnetd/qmp as the docs write it), on a private bus with a real polkitd.

What a user sees is checked: the guest on the bus under the domain's name, the NIC on libvirt's
macvtap (found through QEMU's fd), the guest's own `ip` changes (MAC, promisc, all-multicast,
groups) on that macvtap, `virsh reset` resyncing, and `virsh destroy` + `virsh undefine` leaving
no NIC, no recorded baseline and no error loop behind."""

import json
import re
import shutil
import socket
import tempfile
import time
from pathlib import Path

import pytest

import libvirtenv
from e2e_helpers import (GUEST_IFACE, NIC_IFACE, BusEnv, Daemon, GuestError, GuestVM, NetNS, Nicx,
                         Signals, build_dir, check_filter_signal, converge, final_check, get_all,
                         guest_dev_by_mac, guest_image, guest_path, guestnetctl, managed_paths, poll,
                         wait_guest_state)
from gnhelpers import REPO_ROOT

pytestmark = [pytest.mark.qemu,
              pytest.mark.skipif(not libvirtenv.available(),
                                 reason="libvirtd, virsh or the QEMU driver not installed (libvirt-daemon, "
                                        "libvirt-daemon-driver-qemu, libvirt-clients)")]

DOMAIN = "web1"
QMP_DIR = "/run/guestnetd/qmp"  # the default, as installed
DOCS = REPO_ROOT / "docs" / "operating.md"
HOST_PATHS = ("/run/libvirt", "/var/lib/libvirt", "/var/log/libvirt", "/var/cache/libvirt", "/run/guestnetd",
              "/etc/libvirt/qemu.conf", "/etc/libvirt/libvirtd.conf", "/etc/libvirt/qemu")


def documented_recipe():
    """From docs/operating.md: the domain XML block, the tmpfiles override and the drop-in."""
    text = DOCS.read_text()
    section = text[text.index("### A libvirt domain"):text.index("### A drop-in")]
    blocks = re.findall(r"```(\w*)\n(.*?)```", section, re.S)
    xml = next(b for lang, b in blocks if lang == "xml")
    tmpfiles = next(b for lang, b in blocks if "d /run/guestnetd/qmp" in b)
    dropin = next(b for lang, b in blocks if lang == "ini")
    assert "xmlns:qemu='http://libvirt.org/schemas/domain/qemu/1.0'" in xml
    interface = re.search(r"( *<interface type='direct'.*?</interface>\n)", xml, re.S).group(1)
    commandline = re.search(r"( *<qemu:commandline>.*?</qemu:commandline>\n)", xml, re.S).group(1)
    assert "<name>%s</name>" % DOMAIN in xml and "%s/%s.sock" % (QMP_DIR, DOMAIN) in commandline
    # guestnetd(8) shows the same elements and the same tmpfiles.d line.
    man = (REPO_ROOT / "man" / "guestnetd.8.scd").read_text()
    man = man[man.index("# LIBVIRT"):]
    squash = lambda t: re.sub(r"\s+", " ", t).strip()  # noqa: E731
    for part in (interface, commandline):
        assert squash(part) in squash(man), "guestnetd(8) differs from docs/operating.md:\n" + part
    override_line = next(line for line in tmpfiles.splitlines() if line.startswith("d /run/guestnetd/qmp"))
    assert squash(override_line) in squash(man)
    return interface, commandline, tmpfiles, dropin


def domain_xml(interface, commandline, kernel, initrd, console, cmd_sock):
    """The documented elements in a domain that boots the test guest: `eth0` (the host uplink in the
    docs) is the namespace's veth lo0; TCG, as KVM does not run Linux guests here."""
    interface = interface.replace("dev='eth0'", "dev='lo0'")
    return """<domain type='qemu' xmlns:qemu='http://libvirt.org/schemas/domain/qemu/1.0'>
  <name>%s</name>
  <memory unit='MiB'>256</memory>
  <vcpu>1</vcpu>
  <os>
    <type arch='x86_64' machine='pc'>hvm</type>
    <kernel>%s</kernel>
    <initrd>%s</initrd>
    <cmdline>console=ttyS0 quiet panic=0</cmdline>
  </os>
  <devices>
%s    <serial type='file'>
      <source path='%s'/>
      <target port='0'/>
    </serial>
    <serial type='unix'>
      <source mode='bind' path='%s'/>
      <target port='1'/>
    </serial>
    <memballoon model='none'/>
  </devices>
%s</domain>
""" % (DOMAIN, kernel, initrd, interface, console, cmd_sock, commandline)


class DomainGuest(GuestVM):
    """The test guest's command channel (GuestVM's) on a QEMU that libvirt runs: the serial port
    socket libvirt created, libvirt's own monitor for query-rx-filter, `virsh reset`."""

    def __init__(self, workdir, lv):
        super().__init__(workdir, daemon_qmp=None, test_qmp=None)
        self.lv = lv
        self.qemu = None

    def attach(self):
        """Right after `virsh start`: the guest is still booting, its GUEST-READY comes later."""
        self.qemu = self.lv.qemu_pid(DOMAIN)
        self.t_start = time.monotonic()
        self.conn = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        self._state["socks"].append(self.conn)
        self.conn.connect(self.cmd_sock)
        return self

    def alive(self):
        return self.qemu is not None and Path("/proc/%d" % self.qemu).exists()

    def _check_alive(self):
        if not self.alive():
            raise GuestError("libvirt's QEMU is gone\nqemu log:\n%s" % self.lv.qemu_log(DOMAIN)[-3000:])

    def rx_filter(self, nic="net0"):
        out = self.lv.virsh("qemu-monitor-command", DOMAIN,
                            json.dumps({"execute": "query-rx-filter", "arguments": {"name": nic}})).stdout
        return json.loads(out)["return"][0]

    def reset(self, timeout=120):
        self.ready = False
        self.buf = b""
        self.lv.virsh("reset", DOMAIN)
        self.wait_ready(timeout)

    def stop(self, timeout=10):
        self._fin()


@pytest.fixture(scope="module")
def world():
    interface, commandline, tmpfiles_override, dropin = documented_recipe()
    kernel, initrd = guest_image()
    work = Path(tempfile.mkdtemp(prefix="gnl-", dir="/tmp"))
    work.chmod(0o755)  # libvirt's QEMU (libvirt-qemu) opens the kernel and the serial log here
    w = type("World", (), {})()
    w.env = w.ns = w.lv = w.daemon = w.sig = w.vm = None
    w.host_paths_before = {p: Path(p).exists() for p in HOST_PATHS}
    try:
        # libvirt relabels (chowns) what the domain uses: our own copies, not the shared cache.
        for src in (kernel, initrd):
            shutil.copy(src, work)
            (work / Path(src).name).chmod(0o644)
        w.env = BusEnv()
        w.env.start_bus()
        w.env.start_polkitd()
        w.ns = NetNS(prefix="gnl")
        w.ns.create()
        w.ns.add_veth("lo0", "lo1")
        libvirtenv.skip_ifindexes(w.ns.name)
        shipped = (REPO_ROOT / "tmpfiles.d" / "guestnetd.conf").read_text()
        w.lv = libvirtenv.Libvirtd(work / "root", w.ns.name, tmpfiles=[("guestnetd.conf", shipped)]).start()
        w.tmpfiles_override = tmpfiles_override
        w.daemon = Daemon(w.env, config="[Daemon]\nReconcileIntervalSec=0\n")
        w.daemon.qmp_dir = Path(QMP_DIR)
        w.daemon.add_dropin("%s.conf" % DOMAIN, dropin)
        lv = w.lv
        w.daemon.argv = lambda argv=w.daemon.argv: lv.enter(argv())  # sees /run as the docs write it
        w.daemon.start()
        w.sig = Signals(w.env)
        w.xml = work / ("%s.xml" % DOMAIN)
        w.xml.write_text(domain_xml(interface, commandline, work / Path(kernel).name, work / Path(initrd).name,
                                    work / "vm" / "console.log", work / "vm" / "cmd.sock"))
        (work / "vm").mkdir()
        (work / "vm").chmod(0o755)
        w.vm = DomainGuest(work / "vm", w.lv)
        w.work = work
        yield w
    finally:
        logdir = build_dir() / "integration-logs" / "test_libvirt"
        shutil.rmtree(logdir, ignore_errors=True)
        logdir.mkdir(parents=True, exist_ok=True)
        for src, name in ((w.daemon and w.daemon.log_path, "guestnetd.log"),
                          (work / "root/var/log/libvirt/libvirtd.log", "libvirtd.log"),
                          (work / ("root/var/log/libvirt/qemu/%s.log" % DOMAIN), "qemu.log"),
                          (work / "vm/console.log", "guest-console.log")):
            if src and Path(src).exists():
                shutil.copy(src, logdir / name)
        for step in (lambda: w.vm and w.vm.stop(), lambda: w.lv and w.lv.stop(),
                     lambda: w.daemon and w.daemon.stop(), lambda: w.sig and w.sig.close(),
                     lambda: w.env and w.env.close(), lambda: w.ns and w.ns.delete()):
            try:
                step()
            except Exception as e:  # keep cleaning up
                print("libvirt cleanup: %r" % e)
        shutil.rmtree(work, ignore_errors=True)


def macvtap_of_domain(lv):
    """libvirt's own answer: the target device of the domain's only interface."""
    lines = [line.split() for line in lv.virsh("domiflist", DOMAIN).stdout.splitlines()[2:] if line.strip()]
    assert len(lines) == 1 and lines[0][1] == "direct", lines
    return lines[0][0]


def test_libvirt_domain_end_to_end(world):
    w = world
    lv, env, ns, d, vm = w.lv, w.env, w.ns, w.daemon, w.vm
    gpath = guest_path(DOMAIN)

    # The drop-in's guest waits for its socket while the domain is only defined.
    lv.virsh("define", str(w.xml))
    poll(lambda: "%s: QMP socket %s/%s.sock does not exist; waiting" % (DOMAIN, QMP_DIR, DOMAIN) in d.log(),
         30, what="the drop-in guest waiting for its socket")

    # As shipped, /run/guestnetd/qmp is root's: libvirt's QEMU (libvirt-qemu) cannot create its
    # socket, and the domain does not start, with the message the docs quote. The documented
    # override of tmpfiles.d/guestnetd.conf fixes that.
    qdir = lv.root / "run/guestnetd/qmp"
    assert (qdir.stat().st_mode & 0o777, qdir.stat().st_gid) == (0o755, 0)
    r = lv.virsh("start", DOMAIN, check=False)
    msg = "Failed to bind socket to %s/%s.sock: Permission denied" % (QMP_DIR, DOMAIN)
    assert r.returncode != 0 and msg in r.stderr, r.stdout + r.stderr
    assert msg in DOCS.read_text().replace("\n", " "), "docs/operating.md no longer quotes QEMU's error"
    lv.tmpfiles_create(("guestnetd.conf", w.tmpfiles_override))
    assert (qdir.stat().st_mode & 0o777, qdir.stat().st_gid) == (0o770, lv.gid(libvirtenv.QEMU_USER))

    # ---- start: the guest on the bus under the domain's name, its NIC on libvirt's macvtap
    lv.virsh("start", DOMAIN)
    vm.attach()
    vm.wait_ready()
    mvt = macvtap_of_domain(lv)
    assert mvt.startswith("macvtap"), mvt
    wait_guest_state(env, gpath, "connected", timeout=60)
    guest = get_all(env, gpath, GUEST_IFACE)
    assert guest["Name"] == DOMAIN and guest["QmpSocket"] == "%s/%s.sock" % (QMP_DIR, DOMAIN), guest
    nic = Nicx(DOMAIN, "net0", "macvtap", mvt)
    poll(lambda: (get_all(env, nic.path) or {}).get("HostInterface") == mvt, 60,
         what=lambda: "net0 on %s: %r" % (mvt, get_all(env, nic.path)))
    props = get_all(env, nic.path)
    assert props["HostInterfaceKind"] == "macvtap" and set(props["Trust"]) == {"mac", "multicast", "allmulti", "promisc"}, props
    nic.dev = guest_dev_by_mac(vm, props["ConfiguredMac"])
    r = guestnetctl(env, "list")
    assert r.returncode == 0 and DOMAIN in r.stdout, r.stdout + r.stderr
    converge(env, ns, vm, nic, trusted=True, timeout=60)

    # ---- the guest's own changes reach libvirt's macvtap
    mark = w.sig.mark()
    dev = nic.dev
    vm.sh("ip link set %s address 52:54:00:aa:bb:01; ip link set %s promisc on; ip link set %s allmulticast on; "
          "ip maddr add 01:00:5e:01:02:03 dev %s; ip maddr add 33:33:00:00:12:34 dev %s" % ((dev,) * 5))
    f, props, host = converge(env, ns, vm, nic, trusted=True, timeout=60)
    assert host["mac"] == "52:54:00:aa:bb:01" and host["promisc"] and host["allmulti"], host
    assert {"01:00:5e:01:02:03", "33:33:00:00:12:34"} <= host["mcast"], host
    check_filter_signal(w.sig, mark, nic, props, "applied",
                        changed=("Mac", "Promiscuous", "MulticastMode", "MulticastTable"))
    assert "trustGuestRxFilters='no'" in lv.virsh("dumpxml", DOMAIN).stdout  # libvirt stayed out of it

    # ---- virsh reset: QEMU silently resets the NIC; guestnetd resyncs, the macvtap follows
    vm.reset()
    d_log = lambda: d.log()  # noqa: E731
    poll(lambda: "guest %s: guest reset, resyncing all NICs" % DOMAIN in d_log(), 60, what="the reset resync")
    f, props, host = converge(env, ns, vm, nic, trusted=True, timeout=90)
    assert host["mac"] == props["ConfiguredMac"] and not host["promisc"], (host, props)
    final_check(vm, nic, props)

    # ---- virsh destroy, virsh undefine: nothing left in guestnetd, no error loop
    baselines = Path(d.dir) / "run" / "baselines"
    lv.virsh("destroy", DOMAIN)
    wait_guest_state(env, gpath, "disconnected", timeout=60)
    poll(lambda: len(re.findall(r"guest %s: QMP socket \S+ does not exist; waiting" % DOMAIN, d.log())) >= 2,
         30, what="the guest waiting for its socket again")
    lv.virsh("undefine", DOMAIN)
    assert not (lv.root / "run/guestnetd/qmp" / ("%s.sock" % DOMAIN)).exists()
    poll(lambda: not list(baselines.glob("*")), 30,
         what=lambda: "no recorded baseline of the gone macvtap: %s" % list(baselines.glob("*")))
    assert mvt not in ns.ip("-o", "link", "show").stdout
    assert set(managed_paths(env)) >= {gpath}  # the drop-in's guest stays, disconnected
    assert get_all(env, gpath, GUEST_IFACE)["State"] == "disconnected"

    # One more round trip through the daemon, then: after the last "waiting" line, nothing about
    # the guest (a reconnect loop would show up as connect failures / warnings).
    assert guestnetctl(env, "status", DOMAIN).returncode == 0
    w.daemon.stop()
    log = d.log().splitlines()
    last_wait = max(i for i, line in enumerate(log) if "does not exist; waiting" in line)
    after = [line for line in log[last_wait + 1:] if "guest %s" % DOMAIN in line and "detached" not in line
             and "removed" not in line]
    assert not after, "\n".join(after)
    problems = [line for line in log if line.startswith(("err:", "crit:", "alert:", "emerg:"))]
    assert not problems, "\n".join(problems)

    # libvirt's state lived in the test's root only.
    assert {p: Path(p).exists() for p in HOST_PATHS} == w.host_paths_before
