# SPDX-License-Identifier: LGPL-2.1-or-later
"""Against a real QEMU 7.2 (Debian's qemu-system-x86_64, TCG, paused with -S, no guest): two
virtio-net NICs on taps in the test's namespace. Proves greeting, capabilities, NIC discovery with
host interfaces, and parsing of real query-rx-filter replies (4096-entry vlan-table and all).
Also checks that the fake peer answers like this QEMU, so the fake-based tests mean something."""

import os
import re
import shutil
import signal
import subprocess
import time

import pytest

from fakeqmp import FakeQmp
from gnhelpers import T, guest_dropin, poll
from qmpclient import QmpClient

QEMU = shutil.which("qemu-system-x86_64")
pytestmark = [pytest.mark.qemu,
              pytest.mark.skipif(QEMU is None, reason="qemu-system-x86_64 not installed (qemu-system-x86)")]

UUID = "2b7c1b0e-3c5a-4f7e-9a61-0d6f2e8b4c11"
NICS = [{"id": "net0", "mac": "52:54:00:12:34:56", "ifname": "tap0"},
        {"id": "net1", "mac": "52:54:00:12:34:57", "ifname": "tap1"}]


class Qemu:
    """One qemu-system-x86_64 we start in the namespace; stopped by its PID only."""

    def __init__(self, netns, workdir, name="vmq", sock=None, nics=NICS):
        self.netns = netns
        self.name = name
        self.sock = sock or os.path.join(workdir, "%s.qmp" % name)
        self.test_sock = os.path.join(workdir, "%s-test.qmp" % name)
        self.log_path = os.path.join(workdir, "%s-qemu.log" % name)
        self.nics = nics
        self.proc = None

    def argv(self):
        a = [QEMU, "-S", "-accel", "tcg", "-nodefaults", "-display", "none", "-machine", "q35",
             "-name", self.name, "-uuid", UUID,
             "-qmp", "unix:%s,server=on,wait=off" % self.sock,
             "-qmp", "unix:%s,server=on,wait=off" % self.test_sock]
        for i, n in enumerate(self.nics):
            a += ["-netdev", "tap,id=hostnet%d,ifname=%s,script=no,downscript=no" % (i, n["ifname"]),
                  "-device", "virtio-net-pci,netdev=hostnet%d,id=%s,mac=%s" % (i, n["id"], n["mac"])]
        return self.netns.exec_argv(a)

    def start(self):
        for p in (self.sock, self.test_sock):
            if os.path.exists(p):
                os.unlink(p)
        self._log = open(self.log_path, "ab")
        self.proc = subprocess.Popen(self.argv(), stdin=subprocess.DEVNULL, stdout=self._log, stderr=self._log)
        self.pid = self.proc.pid

        def up():
            if self.proc.poll() is not None:
                raise AssertionError("qemu exited with %s: %s" % (self.proc.returncode, self.log()))
            return os.path.exists(self.sock) and os.path.exists(self.test_sock)
        poll(up, 20, what="QEMU's QMP sockets")
        return self

    def log(self):
        with open(self.log_path, errors="replace") as f:
            return f.read()

    def stop(self):
        if self.proc and self.proc.poll() is None:
            os.kill(self.pid, signal.SIGTERM)
            try:
                self.proc.wait(T(10))
            except subprocess.TimeoutExpired:
                os.kill(self.pid, signal.SIGKILL)
                self.proc.wait()
        if self.proc:
            self._log.close()


@pytest.fixture
def qemus(request, netns, workdir):
    started = []

    def start(**kw):
        q = Qemu(netns, workdir, **kw)
        started.append(q)
        return q.start()

    yield start
    for q in reversed(started):
        q.stop()


@pytest.fixture
def taps(netns):
    for n in NICS:
        netns.add_tap(n["ifname"])
    return [n["ifname"] for n in NICS]


def test_daemon_with_real_qemu(netns, taps, qemus, daemons):
    q = qemus()
    before = {t: netns.host_state(t) for t in taps}
    d = daemons(guests={"vmq": guest_dropin("vmq", q.sock, "all")})
    m = d.wait_log(r"guest vmq: connected to QEMU (7\.2\.\d+)", timeout=15)[0]
    with QmpClient(q.test_sock) as c:
        v = c.cmd("query-version")["return"]["qemu"]
    assert m.group(1) == "%d.%d.%d" % (v["major"], v["minor"], v["micro"])
    for n in NICS:
        d.wait_log(r"guest vmq nic %s: host interface %s \(tap\)" % (n["id"], n["ifname"]), timeout=15)
    for n in NICS:
        line = d.wait_log(r"guest vmq nic %s: filter changed \[(.*)\]; host (\w+)" % n["id"], timeout=15)[0]
        fields = line.group(1)
        assert "Mac" in fields and "Promiscuous" in fields, line.group(0)
        assert line.group(2) in ("applied", "observed", "unchanged", "partial", "failed")
    assert not d.log_lines(r"guest vmq: disconnected")
    # a tap's own MAC and flags are not the guest's: untouched even with Trust=all
    for t in taps:
        assert netns.host_state(t) == before[t]
    assert d.stop() == 0, d.log_tail()


def test_real_qemu_in_watched_qmp_dir(netns, taps, qemus, daemons, workdir):
    qmp = os.path.join(workdir, "qmpdir")
    os.makedirs(qmp)
    d = daemons(qmp_dir=qmp)
    q = qemus(name="vmd", sock=os.path.join(qmp, "vmd.sock"))
    d.wait_log(r"guest vmd: attached \(QMP socket %s\)" % re.escape(q.sock), timeout=15)
    d.wait_log(r"guest vmd: connected to QEMU 7\.2\.\d+", timeout=15)
    for n in NICS:
        d.wait_log(r"guest vmd nic %s: host interface %s \(tap\)" % (n["id"], n["ifname"]), timeout=15)
        d.wait_log(r"guest vmd nic %s: filter changed \[.*\]; host \w+" % n["id"], timeout=15)
    q.stop()  # QEMU removes its listening socket when it exits
    if os.path.exists(q.sock):
        os.unlink(q.sock)
    d.wait_log(r"guest vmd: detached", timeout=15)


def test_real_qemu_restart_reconnects(netns, taps, qemus, daemons):
    q = qemus()
    d = daemons(guests={"vmq": guest_dropin("vmq", q.sock)})
    d.wait_log(r"guest vmq: connected to QEMU 7\.2\.\d+", timeout=15)
    d.wait_log(r"guest vmq nic net1: filter changed", timeout=15)
    q.stop()
    d.wait_log(r"guest vmq: disconnected: .+; reconnecting in \d+ ms", timeout=15)
    q2 = qemus()
    assert q2.sock == q.sock
    d.wait_log(r"guest vmq: connected to QEMU 7\.2\.\d+", count=2, timeout=30)
    # the reconnect's full query is processed again (same filter: "unchanged")
    d.wait_log(r"guest vmq nic net1: filter (changed|unchanged)", count=2, timeout=15)


# ------------------------------------------------------------------------------ fake vs real
def _shape(v):
    """Type structure of a JSON value (lists: element types)."""
    if isinstance(v, dict):
        return {k: _shape(x) for k, x in v.items()}
    if isinstance(v, list):
        return ["list", sorted({repr(_shape(x)) for x in v})]
    return type(v).__name__


def _transcript(path):
    out = {}
    with QmpClient(path, negotiate=False) as c:
        g = c.greeting
        out["greeting"] = _shape(g)
        out["capabilities"] = g["QMP"]["capabilities"]
        out["early"] = c.cmd("query-name", id=7)
        out["caps"] = c.cmd("qmp_capabilities", id="x")
        out["caps-again"] = c.cmd("qmp_capabilities", id="y")["error"]["class"]
        out["name"] = c.cmd("query-name")["return"]
        out["uuid"] = _shape(c.cmd("query-uuid")["return"])
        out["version"] = _shape(c.cmd("query-version")["return"])
        all_ = c.cmd("query-rx-filter")["return"]
        out["rx-all-names"] = [x["name"] for x in all_]
        out["rx-all"] = all_
        out["rx-net1"] = c.cmd("query-rx-filter", {"name": "net1"})["return"]
        out["rx-bad"] = c.cmd("query-rx-filter", {"name": "nope"})["error"]
        out["rx-netdev"] = c.cmd("query-rx-filter", {"name": "hostnet0"})["error"]
        out["qom-netdev"] = c.cmd("qom-get", {"path": "/machine/peripheral/net1", "property": "netdev"})["return"]
        out["qom-mac"] = c.cmd("qom-get", {"path": "/machine/peripheral/net0", "property": "mac"})["return"]
        out["qom-nodev"] = c.cmd("qom-get", {"path": "/machine/peripheral/nx", "property": "mac"})["error"]["class"]
        out["info-network"] = c.cmd("human-monitor-command", {"command-line": "info network"})["return"]
        out["unknown"] = c.cmd("no-such-command")["error"]
    return out


def test_fake_peer_answers_like_real_qemu(netns, taps, qemus, workdir):
    q = qemus(name="vm1")
    real = _transcript(q.test_sock)
    fake = FakeQmp(os.path.join(workdir, "fake.qmp"), name="vm1", uuid=UUID, nics=NICS)
    try:
        mine = _transcript(fake.path)
    finally:
        fake.stop()
    assert set(real) == set(mine)
    for k in real:
        assert mine[k] == real[k], "%s: fake %r != qemu %r" % (k, mine[k], real[k])
