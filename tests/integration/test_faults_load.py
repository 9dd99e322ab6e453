# SPDX-License-Identifier: LGPL-2.1-or-later
"""Load faults (issue 7, part 3): a guest flooding 10,000 filter changes per second, 1,000 guest
attach/detach cycles through the watched QMP directory, and 1,000 QEMU reconnects. Asserted: the
final state is exact, and open fds and memory (VmRSS) do not grow beyond a small bound. Printed,
never asserted: CPU use (utime+stime / wall) and durations.

Under a sanitizer build (ASan's quarantine, TSan's shadow memory) VmRSS says nothing about leaks:
the memory bounds are then printed only; the fd bounds always hold. Leaks are valgrind's and
LeakSanitizer's job (test_memcheck.py, scripts/sanitize).

Run as a script it is the attach/detach driver (a child in the test's namespace, so the fake QEMU
peers live there like QEMU would): ``test_faults_load.py cycles QMPDIR LOGFILE N CHECKPOINT``."""

import os
import re
import subprocess
import sys
import threading
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

from gnhelpers import expected_host, guest_dropin, sanitized  # noqa: E402

M0 = "52:54:00:12:34:56"
M1 = "52:54:00:12:34:57"
CLK_TCK = os.sysconf("SC_CLK_TCK")


def proc_stat(pid):
    """{"rss": KiB, "fds": open fds, "cpu": seconds of utime+stime} of a process."""
    rss = 0
    with open("/proc/%d/status" % pid) as f:
        for line in f:
            if line.startswith("VmRSS:"):
                rss = int(line.split()[1])
    with open("/proc/%d/stat" % pid) as f:
        fields = f.read().rsplit(")", 1)[1].split()
    cpu = (int(fields[11]) + int(fields[12])) / CLK_TCK
    return {"rss": rss, "fds": len(os.listdir("/proc/%d/fd" % pid)), "cpu": cpu, "t": time.monotonic()}


def assert_memory(d, before, after, bound_mib, what):
    growth = (after["rss"] - before["rss"]) / 1024
    print("%s: VmRSS %d -> %d KiB (%+.1f MiB), fds %d -> %d" % (what, before["rss"], after["rss"], growth,
                                                              before["fds"], after["fds"]))
    if not sanitized(d.pid):
        assert growth < bound_mib, "%s: VmRSS grew by %.1f MiB (bound %d MiB)" % (what, growth, bound_mib)


def test_flood_of_10000_changes_per_second(netns, fakes, daemons):
    """Every change is an event (another monitor re-arms QEMU after each): 10,000 a second for 5 s.
    The rate limit defers queries, so the daemon's work is bounded; the last state lands exactly,
    and the other guest is served in the middle of it."""
    netns.add_macvtap("mvt0", "lo0")
    netns.add_macvtap("mvt1", "lo0")
    vm1 = fakes("vm1", nics=[{"id": "net0", "mac": M0}])
    vm2 = fakes("vm2", nics=[{"id": "net0", "mac": M1}])
    d = daemons(guests={"vm1": guest_dropin("vm1", vm1.path, "all", {"net0": {"HostInterface": "mvt0"}}),
                        "vm2": guest_dropin("vm2", vm2.path, "all", {"net0": {"HostInterface": "mvt1"}})})
    for f, dev in ((vm1, "mvt0"), (vm2, "mvt1")):
        netns.wait_host(dev, timeout=15, **expected_host(f.get_filter("net0")))
        f.wait_armed("net0")
    before = proc_stat(d.pid)
    emitted = 0
    n = 0
    for second in range(5):
        changes = []
        for _ in range(10000):
            n += 1
            changes.append({"main_mac": "52:54:00:%02x:%02x:%02x" % (n >> 16 & 0xFF, n >> 8 & 0xFF, n & 0xFF),
                            "promiscuous": n % 3 == 0, "vlan": "normal", "vlan_table": [0, n % 4096],
                            "multicast_table": ["01:00:5e:00:%02x:%02x" % (n >> 8 & 0xFF, n & 0xFF)]})
        t0 = time.monotonic()
        emitted += vm1.set_filter_burst("net0", changes, rearm_each=True)
        left = 1.0 - (time.monotonic() - t0)
        if second == 2:  # the other guest, mid-flood
            vm2.wait_armed("net0")
            assert vm2.set_filter("net0", main_mac="52:54:00:00:99:01")
            netns.wait_host("mvt1", mac="52:54:00:00:99:01", timeout=10)
        elif left > 0:
            time.sleep(left)
    during = proc_stat(d.pid)
    final = vm1.get_filter("net0")
    netns.wait_host("mvt0", timeout=20, **expected_host(final))
    vm1.wait_armed("net0", timeout=10)
    after = proc_stat(d.pid)
    wall = during["t"] - before["t"]
    print("flood: %d events in %.1f s (%.0f/s); daemon CPU %.2f s = %.2f core; %d queries answered" % (
        emitted, wall, emitted / wall, during["cpu"] - before["cpu"], (during["cpu"] - before["cpu"]) / wall,
        vm1.query_count("net0")))
    assert emitted == 50000
    assert_memory(d, before, after, 20, "flood")
    assert after["fds"] == before["fds"]
    assert d.running()


def test_1000_qemu_reconnects(netns, fakes, daemons):
    """Twenty QEMUs each drop the monitor connection 50 times (the daemon reconnects after 100 ms,
    renegotiates and resyncs every time): open fds stay the same, memory stays put."""
    peers = [fakes("r%d" % i, nics=[{"id": "net0", "mac": "52:54:00:00:%02x:01" % i, "fd": 4093}])
             for i in range(20)]
    d = daemons(guests={"r%d" % i: guest_dropin("r%d" % i, p.path) for i, p in enumerate(peers)}, log_level="info")
    rounds = 50

    def settled(p, k):
        p.wait_negotiated(k, timeout=20)
        p.wait_unnamed_queries(k, timeout=20)
        p.wait_command("query-version", count=k, timeout=20)

    for p in peers:
        settled(p, 1)
    errors = []

    def drive(p, start, stop):
        try:
            for k in range(start, stop):
                p.disconnect()
                settled(p, k + 1)
        except Exception as e:  # reported below, with the peer's counters and the daemon's lines for it
            name = os.path.basename(p.path)[:-4]
            errors.append("%s: %s\nstats: %r\ndaemon: %s" % (p.path, e, p.stats(), "\n".join(
                m.group(0) for m in d.log_lines(r".*guest %s[: ].*" % name)[-8:])))

    def run(start, stop):
        ts = [threading.Thread(target=drive, args=(p, start, stop)) for p in peers]
        for t in ts:
            t.start()
        for t in ts:
            t.join()
        assert not errors, errors

    run(1, 10)  # warm-up: allocator pools, sd-event sources, json-c caches
    before = proc_stat(d.pid)
    run(10, rounds + 1)
    after = proc_stat(d.pid)
    total = sum(p.connections_total for p in peers)
    print("reconnects: %d connections in %.1f s" % (total, after["t"] - before["t"]))
    assert total == 20 * (rounds + 1)
    assert after["fds"] == before["fds"], "open fds %d -> %d" % (before["fds"], after["fds"])
    assert_memory(d, before, after, 8, "1000 reconnects")
    assert len(d.log_lines(r"guest r\d+: disconnected")) == 20 * rounds


def test_1000_attach_detach_cycles(netns, daemons, workdir):
    """A QEMU appears in the watched QMP directory (NAME.sock), is attached, connected and queried,
    then goes (socket removed) and is detached — 1,000 times: fds and memory come back."""
    qmp = os.path.join(workdir, "qmpdir")
    os.makedirs(qmp)
    # The driver follows the log line by line (attached/detached per cycle): no log rate limit.
    d = daemons(qmp_dir=qmp, log_level="info", config="[Daemon]\nLogRateLimitBurst=0\n")
    n, checkpoint = 1000, 100
    child = subprocess.Popen(netns.exec_argv(["/usr/bin/python3", os.path.abspath(__file__), "cycles", qmp,
                                              str(d.log_path), str(n), str(checkpoint)]),
                             stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
    try:
        line = child.stdout.readline().strip()
        assert line == "checkpoint %d" % checkpoint, line
        before = proc_stat(d.pid)
        child.stdin.write("go\n")
        child.stdin.flush()
        line = child.stdout.readline().strip()
        assert line.startswith("done"), line
        after = proc_stat(d.pid)
        print("attach/detach: %s" % line)
    finally:
        if child.poll() is None:
            child.kill()
        child.wait()
    assert len(d.log_lines(r"guest c\d+: detached")) == n
    assert len(d.log_lines(r"guest c\d+: attached")) == n
    assert after["fds"] == before["fds"], "open fds %d -> %d" % (before["fds"], after["fds"])
    assert_memory(d, before, after, 8, "1000 attach/detach")


def _cycles(qmp, log, n, checkpoint):
    from fakeqmp import FakeQmp
    pos = 0
    detached = 0
    rx = re.compile(r"guest c\d+: detached")

    def count_detached():
        nonlocal pos, detached
        with open(log, "rb") as f:
            f.seek(pos)
            data = f.read()
        cut = data.rfind(b"\n") + 1
        pos += cut
        detached += len(rx.findall(data[:cut].decode(errors="replace")))
        return detached

    t0 = time.monotonic()
    for i in range(n):
        if i == checkpoint:
            print("checkpoint %d" % i, flush=True)
            sys.stdin.readline()
            t0 = time.monotonic()
        name = "c%d" % (i % 4)
        # Bound and listening under a name the daemon ignores, then renamed into place (as a socket
        # created in place would be seen before listen() and cost a 100 ms reconnect every time).
        fake = FakeQmp(os.path.join(qmp, ".%s.tmp" % name), name=name,
                       nics=[{"id": "net0", "mac": "52:54:00:00:00:%02x" % (i % 4), "fd": 4093}])
        os.rename(fake.path, os.path.join(qmp, name + ".sock"))
        fake.path = os.path.join(qmp, name + ".sock")
        try:
            fake.wait_negotiated(1, timeout=20)
            fake.wait_unnamed_queries(1, timeout=20)
            fake.wait_command("query-version", timeout=20)
        finally:
            fake.stop()  # closes and removes the socket
        end = time.monotonic() + 20
        while count_detached() < i + 1:
            if time.monotonic() > end:
                print("timeout waiting for detach %d" % (i + 1), flush=True)
                sys.exit(1)
            time.sleep(0.002)
    print("done %d cycles, %.1f s after the checkpoint" % (n, time.monotonic() - t0), flush=True)


if __name__ == "__main__":
    if len(sys.argv) == 6 and sys.argv[1] == "cycles":
        _cycles(sys.argv[2], sys.argv[3], int(sys.argv[4]), int(sys.argv[5]))
    else:
        sys.stderr.write("usage: test_faults_load.py cycles QMPDIR LOGFILE N CHECKPOINT\n")
        sys.exit(2)
