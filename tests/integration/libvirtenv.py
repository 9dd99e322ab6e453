# SPDX-License-Identifier: LGPL-2.1-or-later
"""A real libvirtd (Debian's libvirt-daemon + libvirt-daemon-driver-qemu, no libvirt-daemon-system)
for one test, leaving nothing on the host.

It runs in the test's network namespace (so libvirt's macvtaps are created on the namespace's veth)
and in a private mount namespace where directories of ROOT are bind-mounted over the system ones:

    ROOT/etc/libvirt  -> /etc/libvirt   libvirtd.conf, qemu.conf, and the domains libvirt defines
    ROOT/etc/passwd, ROOT/etc/group     copies of the host's, plus what libvirt-daemon-system adds
                                        on Debian: user libvirt-qemu (primary group kvm) and group
                                        libvirt-qemu, QEMU's default user and group
    ROOT/run          -> /run           /run/libvirt, and /run/guestnetd/qmp as systemd-tmpfiles
                                        creates it from tmpfiles.d/guestnetd.conf at boot
    ROOT/var          -> /var           /var/lib/libvirt, /var/log/libvirt (QEMU's log), /var/cache

Plain bind mounts (no overlay): a QMP socket QEMU binds in /run/guestnetd/qmp is the same inode as
ROOT/run/guestnetd/qmp/NAME.sock outside. Processes that must see the private paths as the docs
write them (virsh, guestnetd) enter the mount namespace with `nsenter -t PID -m`.

libvirtd and the QEMUs it started are stopped by their PIDs (libvirt's NAME.pid files); the
namespaces vanish with their last process."""

import grp
import os
import pwd
import random
import shutil
import signal
import subprocess
import time
from pathlib import Path

from busenv import kill_pid, wait_until

LIBVIRTD = shutil.which("libvirtd") or "/usr/sbin/libvirtd"
VIRSH = shutil.which("virsh") or "/usr/bin/virsh"
# What libvirt-daemon-system's postinst creates on Debian (uid/gid values of a typical install).
QEMU_USER, QEMU_UID, KVM_GID, QEMU_GID = "libvirt-qemu", 64055, 64056, 64055

# Without systemd, logind, machined, virtlogd and an AppArmor-enabled kernel: the QEMU driver must
# not ask for them. Everything else (user, group, dynamic ownership, namespaces) is libvirt's default.
QEMU_CONF = """\
security_driver = "none"
stdio_handler = "file"
cgroup_controllers = [ ]
"""
LIBVIRTD_CONF = """\
listen_tls = 0
listen_tcp = 0
log_outputs = "3:file:/var/log/libvirt/libvirtd.log"
"""


def skip_ifindexes(netns, pairs=None):
    """Moves the namespace's next ifindex on by 2*pairs (random, 20..60 pairs) with throwaway veths.

    libvirt opens a macvtap through /dev/tapIFINDEX, and devtmpfs is shared by every namespace while
    ifindexes are per namespace: a macvtap of another namespace with the same ifindex (every fresh
    namespace's first macvtap is index 4 or so) owns that node, and QEMU then gets a severed link.
    An unusual ifindex keeps libvirt's macvtap clear of other tests running at the same time."""
    n = pairs or random.randint(20, 60)
    cmds = ["link add gnlpad%d type veth peer name gnlpad%dp" % (i, i) for i in range(n)]
    cmds += ["link del gnlpad%d" % i for i in range(n)]
    subprocess.run(["ip", "-n", netns, "-batch", "-"], input="\n".join(cmds) + "\n", text=True, check=True,
                   capture_output=True)


def available():
    return os.path.exists(LIBVIRTD) and os.path.exists(VIRSH) and \
        os.path.exists("/usr/lib/x86_64-linux-gnu/libvirt/connection-driver/libvirt_driver_qemu.so")


class Libvirtd:
    def __init__(self, root, netns, tmpfiles=()):
        """root: an empty directory of the test. tmpfiles: (name, text) of tmpfiles.d files the
        package ships (ROOT/usr/lib/tmpfiles.d), created as at boot."""
        self.root = Path(root)
        self.netns = netns
        self.proc = None
        self.qemu_pids = {}
        r = self.root
        for d in ("etc/libvirt", "etc/tmpfiles.d", "usr/lib/tmpfiles.d", "run", "var/lib/libvirt",
                  "var/cache/libvirt", "var/log/libvirt", "var/tmp"):
            (r / d).mkdir(parents=True, exist_ok=True)
        os.symlink("/run", r / "var/run")
        (r / "etc/libvirt/libvirtd.conf").write_text(LIBVIRTD_CONF)
        (r / "etc/libvirt/qemu.conf").write_text(QEMU_CONF)
        shutil.copy("/etc/passwd", r / "etc/passwd")
        shutil.copy("/etc/group", r / "etc/group")
        try:
            pwd.getpwnam(QEMU_USER)
        except KeyError:
            for gid in (KVM_GID, QEMU_GID):
                try:
                    raise AssertionError("gid %d is taken (%s): pick others" % (gid, grp.getgrgid(gid).gr_name))
                except KeyError:
                    pass
            with open(r / "etc/passwd", "a") as f:
                f.write("%s:x:%d:%d:Libvirt Qemu:/var/lib/libvirt:/usr/sbin/nologin\n" % (QEMU_USER, QEMU_UID, KVM_GID))
            with open(r / "etc/group", "a") as f:
                if not any(g.gr_name == "kvm" for g in grp.getgrall()):
                    f.write("kvm:x:%d:\n" % KVM_GID)
                f.write("%s:x:%d:%s\n" % (QEMU_USER, QEMU_GID, QEMU_USER))
        for name, text in tmpfiles:
            (r / "usr/lib/tmpfiles.d" / name).write_text(text)
        if tmpfiles:
            self.tmpfiles_create()

    def tmpfiles_create(self, override=None):
        """What `systemd-tmpfiles --create` does at boot (with this root's users and groups);
        override: (name, text) of an administrator's /etc/tmpfiles.d file, written first."""
        if override:
            (self.root / "etc/tmpfiles.d" / override[0]).write_text(override[1])
        res = subprocess.run(["systemd-tmpfiles", "--create", "--root=%s" % self.root], capture_output=True,
                             text=True)
        assert res.returncode == 0, "systemd-tmpfiles: " + res.stderr

    def gid(self, group):
        """A group's gid as libvirtd and systemd-tmpfiles --root see it (this root's /etc/group)."""
        for line in (self.root / "etc/group").read_text().splitlines():
            f = line.split(":")
            if f[0] == group:
                return int(f[2])
        raise KeyError(group)

    def log(self, name="libvirtd.log"):
        try:
            return (self.root / "var/log/libvirt" / name).read_text(errors="replace")
        except FileNotFoundError:
            return ""

    def qemu_log(self, domain):
        return self.log("qemu/%s.log" % domain)

    def start(self, timeout=60):
        r = self.root
        mounts = " && ".join("mount --bind %s %s" % (r / src, dst) for src, dst in (
            ("run", "/run"), ("var", "/var"), ("etc/libvirt", "/etc/libvirt"),
            ("etc/passwd", "/etc/passwd"), ("etc/group", "/etc/group")))
        # ip netns exec, unshare and sh all exec: the PID is libvirtd's. A D-Bus address that leads
        # nowhere: libvirtd must not talk to the host's bus (firewalld, machined).
        argv = ["ip", "netns", "exec", self.netns, "unshare", "--mount", "--propagation", "private", "sh", "-c",
                mounts + " && exec env DBUS_SYSTEM_BUS_ADDRESS=unix:path=/nonexistent %s" % LIBVIRTD]
        with open(r / "libvirtd.out", "ab") as out:
            self.proc = subprocess.Popen(argv, stdin=subprocess.DEVNULL, stdout=out, stderr=subprocess.STDOUT,
                                         start_new_session=True)

        def up():
            if self.proc.poll() is not None:
                raise AssertionError("libvirtd exited with %s:\n%s\n%s" % (
                    self.proc.returncode, (r / "libvirtd.out").read_text(), self.log()[-3000:]))
            return self.virsh("version", check=False).returncode == 0
        wait_until(up, timeout=timeout, interval=0.2, what="libvirtd to answer virsh")
        return self

    def enter(self, argv):
        """argv run in libvirtd's mount namespace (not its network namespace)."""
        return ["nsenter", "-t", str(self.proc.pid), "-m", "--"] + list(argv)

    def virsh(self, *args, check=True, timeout=120):
        res = subprocess.run(self.enter([VIRSH, "-c", "qemu:///system", *args]), capture_output=True,
                             text=True, timeout=timeout, stdin=subprocess.DEVNULL)
        if check and res.returncode != 0:
            raise AssertionError("virsh %s failed (%d): %s%s\nlibvirtd.log:\n%s" % (
                " ".join(args), res.returncode, res.stdout, res.stderr, self.log()[-3000:]))
        return res

    def qemu_pid(self, domain):
        """The running domain's QEMU PID (libvirt's pid file), remembered for stop()."""
        pid = int((self.root / "run/libvirt/qemu" / ("%s.pid" % domain)).read_text().strip())
        self.qemu_pids[domain] = pid
        return pid

    def stop(self):
        """libvirtd, then any QEMU it left running, by PID."""
        if self.proc is not None:
            kill_pid(self.proc, timeout=30)
        for pid in self.qemu_pids.values():
            try:
                if Path("/proc/%d/exe" % pid).resolve().name.startswith("qemu-system"):
                    os.kill(pid, signal.SIGKILL)
            except (FileNotFoundError, ProcessLookupError, PermissionError):
                continue
            end = time.monotonic() + 10
            while Path("/proc/%d" % pid).exists() and time.monotonic() < end:
                time.sleep(0.05)
