# SPDX-License-Identifier: LGPL-2.1-or-later
"""The daemon as a process: command line, configuration errors, sd_notify, signals, and guests
found in the watched QMP directory."""

import ctypes
import os
import platform
import re
import shutil
import signal
import socket
import subprocess
from pathlib import Path

import pytest

from gnhelpers import REPO_ROOT, Daemon, T, daemon_binary, expected_host, guest_dropin, poll

M0 = "52:54:00:12:34:56"


def test_version(daemon_bin):
    r = subprocess.run([str(daemon_bin), "--version"], stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                       text=True, timeout=10)
    assert r.returncode == 0, r.stderr
    assert r.stdout.strip().splitlines()[0] == "guestnetd 0.1.0"


def test_help(daemon_bin):
    r = subprocess.run([str(daemon_bin), "--help"], stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                       text=True, timeout=10)
    assert r.returncode == 0, r.stderr
    for opt in ("--config", "--guests-dir", "--qmp-dir", "--workers", "--log-level", "--version", "--help"):
        assert opt in r.stdout, opt


def test_unknown_option_fails(daemon_bin):
    r = subprocess.run([str(daemon_bin), "--no-such-option"], stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                       text=True, timeout=10)
    assert r.returncode != 0
    assert r.stderr.strip()


@pytest.mark.parametrize("line,key", [
    ("Workers=banana", "Workers"),
    ("DefaultTrust=everything", "DefaultTrust"),
    ("VlanPolicy=sometimes", "VlanPolicy"),
    ("UnicastPolicy=maybe", "UnicastPolicy"),
    ("EmitSignals=perhaps", "EmitSignals"),
    ("ReconcileIntervalSec=soon", "ReconcileIntervalSec"),
    ("MaxQueriesPerSecond=-3", "MaxQueriesPerSecond"),
    ("CPUSchedulingSliceUSec=50", "CPUSchedulingSliceUSec"),
])
def test_bad_main_config_refuses_to_start(netns, workdir, line, key):
    d = Daemon(workdir, netns=netns, config="# guestnetd test\n[Daemon]\n%s\n" % line)
    d.start(wait_ready=False)
    try:
        rc = d.wait_exit(10)
    finally:
        d.stop()
    assert rc == 1, d.log()
    log = d.log()
    assert "%s:3:" % d.config_path in log, log
    assert key in log, log
    assert "READY=1" not in d.notifications


def test_syntax_error_in_main_config(netns, workdir):
    d = Daemon(workdir, netns=netns, config="[Daemon]\nWorkers=2\nthis line is not ini\n")
    d.start(wait_ready=False)
    try:
        rc = d.wait_exit(10)
    finally:
        d.stop()
    assert rc == 1, d.log()
    assert "%s:3:" % d.config_path in d.log()


def test_shipped_example_config_uncommented_is_accepted(daemons, workdir):
    """conf/guestnetd.conf (installed as SYSCONFDIR/guestnetd/guestnetd.conf) with every key
    uncommented at its documented default: the daemon accepts every line (no warning naming the
    file). The two directories point into the test's own."""
    text = (REPO_ROOT / "conf" / "guestnetd.conf").read_text()
    text = re.sub(r"^#([A-Za-z]+=)", r"\1", text, flags=re.M)
    text = text.replace("RuntimeDirectory=/run/guestnetd", "RuntimeDirectory=%s/run" % workdir)
    text = text.replace("QmpDirectory=/run/guestnetd/qmp", "QmpDirectory=%s/qmp" % workdir)
    assert "RuntimeDirectory=%s/run" % workdir in text and "QmpDirectory=%s/qmp" % workdir in text
    d = daemons(config=text)
    assert not [l for l in d.log().splitlines() if str(d.config_path) in l], d.log()
    assert d.running()


def test_unknown_key_warns_and_starts(daemons):
    d = daemons(config="[Daemon]\nWorkers=2\nFrobnicate=yes\n")
    lines = [l for l in d.log().splitlines() if "%s:3:" % d.config_path in l]
    assert lines and "Frobnicate" in lines[0], d.log()


def test_bad_dropin_skips_only_that_guest(netns, fakes, daemons):
    good = fakes("vm1", nics=[{"id": "net0", "mac": M0}])
    bad = fakes("vm2", nics=[{"id": "net0", "mac": M0}])
    d = daemons(guests={
        "vm1": guest_dropin("vm1", good.path),
        "vm2": "[Guest]\nName=vm2\nQmpSocket=%s\nTrust=sometimes\n" % bad.path,
    })
    d.wait_log(r"guest vm1: connected to QEMU 7\.2\.0")
    assert d.log_lines(r"vm2\.conf:4:"), d.log()
    assert not d.log_lines(r"guest vm2: (attached|connected)")
    assert bad.connections_total == 0
    assert d.running()


def test_missing_qmp_socket_retries_until_qemu_appears(netns, fakes, daemons, workdir):
    """A QEMU that is not up yet is retried with backoff; READY=1 does not wait for it."""
    path = os.path.join(workdir, "late.qmp")
    d = daemons(guests={"vm1": guest_dropin("vm1", path)})
    d.wait_log(r"guest vm1: (disconnected|connect failed): .+; reconnecting in \d+ ms")
    fake = fakes("vm1", nics=[{"id": "net0", "mac": M0}], path=path)
    d.wait_log(r"guest vm1: connected to QEMU 7\.2\.0", timeout=30)
    fake.wait_unnamed_queries(1)


@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGINT])
def test_signal_exits_zero_and_closes_connections(netns, fakes, daemons, sig):
    netns.add_macvtap("mvt0", "lo0")
    fake = fakes("vm1", nics=[{"id": "net0", "mac": M0}])
    d = daemons(guests={"vm1": guest_dropin("vm1", fake.path, "all", {"net0": {"HostInterface": "mvt0"}})})
    d.wait_log(r"guest vm1 nic net0: filter changed")
    fake.wait_negotiated(1)
    assert d.stop(sig, timeout=10) == 0, d.log_tail()
    fake.wait_disconnected()


def test_sigterm_with_work_in_flight_exits_zero(netns, fakes, daemons):
    """A pending query (peer holding the answer) must not keep the daemon from ending cleanly."""
    netns.add_macvtap("mvt0", "lo0")
    fake = fakes("vm1", nics=[{"id": "net0", "mac": M0}])
    d = daemons(guests={"vm1": guest_dropin("vm1", fake.path, "all", {"net0": {"HostInterface": "mvt0"}})})
    d.wait_log(r"guest vm1 nic net0: filter changed")
    fake.wait_armed("net0")
    fake.hold("net0")
    fake.set_filter("net0", promiscuous=False)
    fake.wait_held("net0")
    assert d.stop(signal.SIGTERM, timeout=10) == 0, d.log_tail()


def test_open_files_limit_is_raised_to_the_hard_limit(daemons):
    """Every guest's monitor and every trusted NIC's record is an open fd: the daemon takes the whole hard
    limit at start (systemd starts services with a soft limit of 1,024)."""
    import resource
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    resource.setrlimit(resource.RLIMIT_NOFILE, (256, hard))
    try:
        d = daemons()
    finally:
        resource.setrlimit(resource.RLIMIT_NOFILE, (soft, hard))
    limits = open("/proc/%d/limits" % d.pid).read()
    line = next(l for l in limits.splitlines() if l.startswith("Max open files"))
    assert line.split()[3:5] == [str(hard), str(hard)], line


class _SchedAttr(ctypes.Structure):
    _fields_ = [("size", ctypes.c_uint32), ("policy", ctypes.c_uint32), ("flags", ctypes.c_uint64),
                ("nice", ctypes.c_int32), ("priority", ctypes.c_uint32), ("runtime", ctypes.c_uint64),
                ("deadline", ctypes.c_uint64), ("period", ctypes.c_uint64), ("util_min", ctypes.c_uint32),
                ("util_max", ctypes.c_uint32)]


SYS_SCHED_GETATTR = {"x86_64": 315, "aarch64": 275}.get(platform.machine())
SCHED_IDLE, RESET_ON_FORK = 5, 0x01


def _sched_getattr(tid=0):
    """The kernel's own view of a task's scheduling (sched_getattr(2)); runtime is a fair task's slice
    (ns) on Linux 6.12 and later, 0 before."""
    a = _SchedAttr()
    libc = ctypes.CDLL(None, use_errno=True)
    if libc.syscall(SYS_SCHED_GETATTR, tid, ctypes.byref(a), ctypes.sizeof(a), 0) != 0:
        raise OSError(ctypes.get_errno(), "sched_getattr(%d)" % tid)
    return a


def _require_slices():
    """Decided from the kernel, not from the daemon: a daemon that wrongly reports no support fails."""
    if SYS_SCHED_GETATTR is None:
        pytest.skip("sched_getattr's number is not known for %s" % platform.machine())
    if _sched_getattr().runtime == 0:
        pytest.skip("this kernel keeps no slice per task (Linux 6.12 and later do)")


def _daemon_threads(pid):
    """The loop thread and the workers (a sanitizer's own threads are neither): tid -> sched_attr."""
    out = {}
    for tid in os.listdir("/proc/%d/task" % pid):
        if int(tid) == pid or open("/proc/%d/task/%s/comm" % (pid, tid)).read().strip() == "gnd-worker":
            out[int(tid)] = _sched_getattr(int(tid))
    return out


@pytest.mark.parametrize("value,expect_us", [(None, 100), ("2000", 2000), ("0", None)])
def test_every_thread_runs_with_the_configured_scheduler_slice(daemons, value, expect_us):
    """CPUSchedulingSliceUSec= (default 100 µs) is the slice of the loop thread and of every worker; 0
    leaves the slice the daemon was started with (here the test's own)."""
    _require_slices()
    ours = _sched_getattr().runtime
    assert ours not in (100000, 2000000), ours  # tells "left alone" apart from "set"
    config = "[Daemon]\nWorkers=3\n" + ("CPUSchedulingSliceUSec=%s\n" % value if value is not None else "")
    d = daemons(config=config, workers=None)
    threads = _daemon_threads(d.pid)
    assert len(threads) == 4, threads  # the loop thread and three workers
    expect = expect_us * 1000 if expect_us is not None else ours
    assert {a.runtime for a in threads.values()} == {expect}, d.log_tail()
    assert "CPUSchedulingSliceUSec" not in d.log(), d.log_tail()  # nothing to report


def _wrapper(workdir, name, text):
    path = Path(workdir) / name
    path.write_text(text)
    path.chmod(0o755)
    return path


def test_reset_on_fork_is_kept_and_every_thread_gets_the_slice(daemons, workdir):
    """systemd's CPUSchedulingResetOnFork=yes: the flag stays on the loop thread, and the workers, which
    do not inherit the slice then, ask for it themselves."""
    _require_slices()
    chrt = shutil.which("chrt") or pytest.fail("chrt (util-linux) is missing")
    binary = _wrapper(workdir, "reset-on-fork", '#!/bin/sh\nexec %s -R -o 0 %s "$@"\n' % (chrt, daemon_binary()))
    d = daemons(config="[Daemon]\nWorkers=3\n", workers=None, binary=binary)
    threads = _daemon_threads(d.pid)
    assert len(threads) == 4, threads
    assert {a.runtime for a in threads.values()} == {100000}, d.log_tail()
    assert threads[d.pid].flags & RESET_ON_FORK, d.log_tail()  # the kernel clears it in the children


def test_an_idle_policy_is_left_alone_and_said(daemons, workdir):
    """Started as SCHED_IDLE (`chrt -i 0`): left so, said once at info level, and the daemon runs."""
    _require_slices()
    chrt = shutil.which("chrt") or pytest.fail("chrt (util-linux) is missing")
    binary = _wrapper(workdir, "idle", '#!/bin/sh\nexec %s -i 0 %s "$@"\n' % (chrt, daemon_binary()))
    d = daemons(config="[Daemon]\nWorkers=2\n", workers=None, binary=binary)
    assert "is not SCHED_OTHER or SCHED_BATCH, left as it is" in d.log(), d.log_tail()
    assert {a.policy for a in _daemon_threads(d.pid).values()} == {SCHED_IDLE}


SECCOMP_WRAPPER = r"""#!/usr/bin/python3
# Execs the daemon with sched_setattr() refused (EPERM), as a SystemCallFilter= without it would.
import ctypes, os, struct, sys
libc = ctypes.CDLL(None, use_errno=True)
nr = %d
code = [(0x20, 0, 0, 0), (0x15, 0, 1, nr), (0x06, 0, 0, 0x00050000 | 1), (0x06, 0, 0, 0x7fff0000)]
filt = ctypes.create_string_buffer(b"".join(struct.pack("HBBI", *c) for c in code))
class Prog(ctypes.Structure):
    _fields_ = [("len", ctypes.c_ushort), ("filter", ctypes.c_void_p)]
prog = Prog(len(code), ctypes.addressof(filt))
if libc.prctl(38, 1, 0, 0, 0) != 0 or libc.prctl(22, 2, ctypes.byref(prog), 0, 0) != 0:
    sys.exit("seccomp: errno %%d" %% ctypes.get_errno())
os.execv(%r, [%r] + sys.argv[1:])
"""


def test_a_refused_sched_setattr_is_reported_and_the_daemon_runs(daemons, workdir):
    """A seccomp filter that refuses sched_setattr() (a unit without it in SystemCallFilter=): a warning
    that names the cause, the kernel's default slice, and the daemon starts and works."""
    _require_slices()
    nr = {"x86_64": 314, "aarch64": 274}[platform.machine()]
    binary = _wrapper(workdir, "no-sched-setattr", SECCOMP_WRAPPER % (nr, str(daemon_binary()), str(daemon_binary())))
    ours = _sched_getattr().runtime
    d = daemons(config="[Daemon]\nWorkers=2\n", workers=None, binary=binary)
    assert "cannot be set: sched_setattr() refused (a system call filter" in d.log(), d.log_tail()
    assert {a.runtime for a in _daemon_threads(d.pid).values()} == {ours}


def test_watchdog_pings(daemons):
    d = daemons(env={"WATCHDOG_USEC": "400000"})
    d.wait_notify("WATCHDOG=1", timeout=5)


def test_ready_after_initial_guests_attached(netns, fakes, daemons, workdir):
    qmp = os.path.join(workdir, "qmpdir")
    os.makedirs(qmp)
    fakes("vm0", nics=[{"id": "net0", "mac": M0}], path=os.path.join(qmp, "vm0.sock"))
    d = daemons(qmp_dir=qmp)
    # READY=1 came after the initial attach: the line is there already
    assert d.log_lines(r"guest vm0: attached \(QMP socket %s\)" % os.path.join(qmp, "vm0.sock")), d.log()


def test_qmp_dir_socket_appears_and_disappears(netns, fakes, daemons, workdir):
    qmp = os.path.join(workdir, "qmpdir")
    os.makedirs(qmp)
    d = daemons(qmp_dir=qmp)
    path = os.path.join(qmp, "vm3.sock")
    fake = fakes("vm3", nics=[{"id": "net0", "mac": M0, "ifname": "tap0"}], path=path)
    d.wait_log(r"guest vm3: attached \(QMP socket %s\)" % path)
    d.wait_log(r"guest vm3: connected to QEMU 7\.2\.0")
    fake.wait_unnamed_queries(1)
    # a file that is not NAME.sock is ignored
    with open(os.path.join(qmp, "notes.txt"), "w") as f:
        f.write("x")
    fake.stop()  # closes the connection and removes the socket
    d.wait_log(r"guest vm3: detached")
    assert not d.log_lines(r"guest notes")
    # and it comes back
    fake2 = fakes("vm3", nics=[{"id": "net0", "mac": M0}], path=path)
    d.wait_log(r"guest vm3: attached", count=2)
    fake2.wait_negotiated(1)


INOTIFY_MAX_QUEUED = "/proc/sys/fs/inotify/max_queued_events"


def test_inotify_overflow_rescans_the_qmp_dir(netns, daemons, workdir):
    """Defect 8 of issue 12: when the kernel drops the watched directory's events (IN_Q_OVERFLOW),
    the daemon must rescan it, attaching the sockets created and detaching the guests whose
    sockets vanished meanwhile. An inotify queue's limit is fixed when the instance is made, so
    the daemon starts with a small one (the sysctl is put back at once), is stopped, and finds
    more events than that waiting when it continues: first junk ones, so the socket events are
    the ones lost."""
    qmp = os.path.join(workdir, "qmpdir")
    os.makedirs(qmp)
    socks = []

    def listen(name):
        s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        s.bind(os.path.join(qmp, "%s.sock" % name))
        s.listen(8)  # accepted by the kernel, never greeted: a QEMU that is busy
        socks.append(s)

    limit = 16
    try:
        for i in range(4):
            listen("vmold%d" % i)
        with open(INOTIFY_MAX_QUEUED) as f:
            saved = f.read()
        try:
            with open(INOTIFY_MAX_QUEUED, "w") as f:
                f.write(str(limit))
            d = daemons(qmp_dir=qmp)
        finally:
            with open(INOTIFY_MAX_QUEUED, "w") as f:
                f.write(saved)
        for i in range(4):
            d.wait_log(r"guest vmold%d: attached" % i)

        os.kill(d.pid, signal.SIGSTOP)
        try:
            for i in range(limit):  # fills the queue with events the daemon ignores
                junk = os.path.join(qmp, "junk%d.txt" % i)
                open(junk, "w").close()
                os.unlink(junk)
            for i in range(4):
                os.unlink(os.path.join(qmp, "vmold%d.sock" % i))
            for i in range(20):
                listen("vmnew%d" % i)
        finally:
            os.kill(d.pid, signal.SIGCONT)

        d.wait_log(r"inotify queue overflow on %s, rescanning" % re.escape(qmp))
        for i in range(20):
            d.wait_log(r"guest vmnew%d: attached \(QMP socket %s\)" % (i, re.escape(os.path.join(qmp, "vmnew%d.sock" % i))))
        for i in range(4):
            d.wait_log(r"guest vmold%d: detached" % i)
        assert not d.log_lines(r"guest junk"), d.log()
    finally:
        for s in socks:
            s.close()


def test_dropin_socket_in_qmp_dir_waits_for_it_without_polling(netns, fakes, daemons, workdir):
    """A drop-in (for its NIC settings) naming a socket of the watched directory, as for a libvirt
    domain: while the socket does not exist the guest waits for it (one line, no retry loop), and
    connects when QEMU creates it, also again after QEMU went away. The directory's own discovery
    does not announce a second guest for it."""
    qmp = os.path.join(workdir, "qmpdir")
    os.makedirs(qmp)
    path = os.path.join(qmp, "vm4.sock")
    d = daemons(qmp_dir=qmp, guests={"vm4": guest_dropin("vm4", path)})
    d.wait_log(r"guest vm4: QMP socket %s does not exist; waiting for it to appear" % path)
    for round in (1, 2):
        fake = fakes("vm4", nics=[{"id": "net0", "mac": M0}], path=path)
        d.wait_log(r"guest vm4: connected to QEMU 7\.2\.0", count=round, timeout=30)
        fake.wait_negotiated(1)
        fake.stop()  # QEMU exits: connection closed, socket removed
        d.wait_log(r"guest vm4: QMP socket .* does not exist; waiting for it to appear", count=round + 1,
                   timeout=30)
    # Only the first attempt of each cycle and the reconnect after the loss were tried.
    assert len(d.log_lines(r"guest vm4: connect failed")) <= 2, d.log()
    assert not d.log_lines(r"guest vm4: ignoring"), d.log()
    assert len(d.log_lines(r"guest vm4: attached")) == 1, d.log()


def test_qmp_dir_guest_discovers_host_interface_and_applies_default_trust(netns, fakes, daemons, workdir):
    """No drop-in: the host interface comes from qom-get netdev + `info network` ifname=, the trust
    from DefaultTrust=."""
    netns.add_macvtap("mvt0", "lo0")
    netns.add_tap("tap1")
    qmp = os.path.join(workdir, "qmpdir")
    os.makedirs(qmp)
    d = daemons(qmp_dir=qmp, config="[Daemon]\nDefaultTrust=all\n")
    fake = fakes("vm4", nics=[{"id": "net0", "mac": M0, "ifname": "mvt0"},
                              {"id": "net1", "mac": "52:54:00:12:34:57", "ifname": "tap1"},
                              {"id": "net2", "mac": "52:54:00:12:34:58"}],  # fd-passed, not ours
                 path=os.path.join(qmp, "vm4.sock"))
    d.wait_log(r"guest vm4 nic net0: host interface mvt0 \(macvtap\)")
    d.wait_log(r"guest vm4 nic net1: host interface tap1 \(tap\)")
    d.wait_log(r"guest vm4 nic net2: host interface (unknown|\S+ \(unknown\))")
    netns.wait_host("mvt0", **expected_host(fake.get_filter("net0")))
    tap_before = netns.host_state("tap1")
    fake.wait_armed("net0")
    fake.wait_armed("net1")
    fake.set_filter("net0", main_mac="52:54:00:00:00:e0", promiscuous=False)
    fake.set_filter("net1", main_mac="52:54:00:00:00:e1", promiscuous=False)
    netns.wait_host("mvt0", mac="52:54:00:00:00:e0", promisc=False)
    fake.wait_armed("net1")
    d.wait_log(r"guest vm4 nic net1: filter changed \[.*\]; host ", count=2)
    assert netns.host_state("tap1") == tap_before  # a tap's own MAC and flags are never the guest's


def test_fd_passed_backends_are_resolved(netns, fakes, daemons, workdir):
    """libvirt passes taps and macvtaps to QEMU as fds (`info network` says fd=N): the daemon finds
    them through the QEMU process, /proc/PID/fd -> /dev/tapIFINDEX for a macvtap, fdinfo "iff:" for
    a tap. Here the fake peer (in the namespace, like QEMU) really holds both fds."""
    index = 20000 + (os.getpid() * 7 + int.from_bytes(os.urandom(2), "big")) % 40000
    netns.add_macvtap("mvt0", "lo0", index=index)
    netns.add_tap("tap0")
    node = "/dev/tap%d" % index  # devtmpfs names the node by ifindex (a rare index: no collision)
    want = os.makedev(*netns.chardev("mvt0"))
    try:
        poll(lambda: os.path.exists(node) and os.stat(node).st_rdev == want, 3, what=node)
    except AssertionError:
        pytest.skip("no devtmpfs node %s for the macvtap" % node)
    qmp = os.path.join(workdir, "qmpdir")
    os.makedirs(qmp)
    d = daemons(qmp_dir=qmp, config="[Daemon]\nDefaultTrust=all\n")
    fake = fakes("vm5", nics=[{"id": "net0", "mac": M0, "open_path": node},
                              {"id": "net1", "mac": "52:54:00:12:34:57", "attach_tap": "tap0"}],
                 path=os.path.join(qmp, "vm5.sock"))
    d.wait_log(r"guest vm5 nic net0: host interface mvt0 \(macvtap\)")
    d.wait_log(r"guest vm5 nic net1: host interface tap0 \(tap\)")
    netns.wait_host("mvt0", **expected_host(fake.get_filter("net0")))
    fake.wait_armed("net0")
    fake.set_filter("net0", main_mac="52:54:00:00:00:f0", promiscuous=False)
    netns.wait_host("mvt0", mac="52:54:00:00:00:f0", promisc=False)
