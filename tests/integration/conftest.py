# SPDX-License-Identifier: LGPL-2.1-or-later
"""pytest fixtures for guestnetd's integration tests.

Every fixture cleans up after itself, also when the test fails: daemons and fake peers are killed
by their own PID, namespaces are deleted by the unique name we gave them, temp dirs are removed.
Logs of every daemon are kept under BUILD/integration-logs/TEST/ and a failing test's report shows
the tail of each daemon log and each fake peer's counters.
"""

import os
import re
import shutil
import sys
import tempfile
from pathlib import Path

import pytest

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

from fakeqmp import FakeQmpProcess  # noqa: E402
from gnhelpers import Daemon, NetNS, build_dir, daemon_binary  # noqa: E402


def pytest_configure(config):
    config.addinivalue_line("markers", "qemu: needs a real qemu-system-x86_64")


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item, call):
    outcome = yield
    rep = outcome.get_result()
    if rep.when == "call" and rep.failed:
        for d in getattr(item, "_gn_daemons", []):
            rep.sections.append(("guestnetd log (%s, %s)" % (d.label, d.log_path), d.log_tail(120)))
        for f in getattr(item, "_gn_fakes", []):
            try:
                rep.sections.append(("fake QMP peer %s" % f.path, repr(f.stats())))
            except Exception as e:  # the peer may be gone
                rep.sections.append(("fake QMP peer %s" % f.path, "stats unavailable: %r" % e))


def _require_root():
    if os.geteuid() != 0:
        pytest.skip("needs root (network namespaces)")


@pytest.fixture
def workdir(request):
    """A short private temp dir (unix socket paths are limited to 108 bytes)."""
    base = tempfile.gettempdir()
    if len(base) > 40:
        base = "/tmp"
    d = tempfile.mkdtemp(prefix="gn-", dir=base)
    yield d
    shutil.rmtree(d, ignore_errors=True)


@pytest.fixture
def netns(request):
    """A fresh network namespace with a veth pair lo0/lo1 (up), deleted afterwards."""
    _require_root()
    ns = NetNS()
    request.addfinalizer(ns.delete)
    ns.create()
    ns.add_veth("lo0", "lo1")
    return ns


@pytest.fixture
def fakes(request, netns, workdir):
    """Factory: fakes(name, nics=[...], path=None) starts a fake QEMU monitor as a child process in
    the test's namespace (like a real QEMU would be) and returns its proxy."""
    started = []
    request.node._gn_fakes = started
    sockdir = os.path.join(workdir, "sockets")
    os.makedirs(sockdir, exist_ok=True)

    def start(name="vm1", nics=None, path=None, **kw):
        p = path or os.path.join(sockdir, "%s.qmp" % name)
        f = FakeQmpProcess(p, netns=netns.name, control_dir=sockdir, name=name, nics=nics, **kw)
        started.append(f)
        return f

    yield start
    for f in reversed(started):
        f.stop()


@pytest.fixture
def daemons(request, netns, workdir, fakes):
    """Factory: daemons(**Daemon kwargs) starts guestnetd in the namespace (waiting for READY=1
    unless wait_ready=False). Teardown: SIGTERM by PID, SIGKILL after 10 s; logs are kept."""
    started = []
    request.node._gn_daemons = started

    def start(wait_ready=True, **kw):
        kw.setdefault("netns", netns)
        d = Daemon(workdir, **kw)
        started.append(d)
        d.start(wait_ready=wait_ready)
        return d

    yield start
    logdir = build_dir() / "integration-logs" / re.sub(r"[^A-Za-z0-9_.-]+", "_", request.node.name)
    shutil.rmtree(logdir, ignore_errors=True)  # only this run's logs
    problems = []
    for d in reversed(started):
        if d.running():
            rc = d.stop()  # every test also checks: SIGTERM ends the daemon with status 0
            if rc != 0:
                problems.append("%s: exit status %s on SIGTERM at teardown" % (d.label, rc))
        elif not d.stopped_by_test:
            d.stop()
            problems.append("%s: exited on its own during the test (status %s)" % (d.label, d.returncode))
        try:
            logdir.mkdir(parents=True, exist_ok=True)
            shutil.copy(d.log_path, logdir / ("%s.log" % d.label))
        except OSError:
            pass
    if problems:
        pytest.fail("; ".join(problems) + "\n" + "\n".join(d.log_tail(40) for d in started), pytrace=False)


@pytest.fixture
def daemon_bin():
    b = daemon_binary()
    if not b.exists():
        pytest.fail("%s does not exist: build the daemon first (scripts/test does)" % b)
    return Path(b)
