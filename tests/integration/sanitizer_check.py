# SPDX-License-Identifier: LGPL-2.1-or-later
"""sanitizer_check: a pytest plugin that fails a test when a sanitizer (ASan, LSan, UBSan, TSan)
reported anything in a process it started — the daemon from conftest's ``daemons``, busenv's
``Daemon``, one D-Bus activated by dbus-daemon, guestnetctl — also when the harness did not look
at that process's exit status or log (busenv's Daemon.stop() only kills; a daemon stopped by the
test itself is not checked; a leak report at exit does not make a test fail by itself).

Load it with ``-p sanitizer_check`` (tests/integration on sys.path, e.g. ``python3 -m pytest -p
sanitizer_check tests/integration`` from the repository root with ``PYTHONPATH=tests/integration``).
scripts/sanitize does.

How it finds reports, without touching conftest.py or busenv.py:
1. At start it appends ``log_path=DIR/report`` to ASAN_OPTIONS, UBSAN_OPTIONS, TSAN_OPTIONS and
   LSAN_OPTIONS (DIR: $GUESTNETD_SANITIZER_LOG_DIR or a fresh temp dir). Every process started
   later inherits the environment (the harness copies os.environ), and the sanitizer runtimes then
   write each report to DIR/report.PID instead of stderr — wherever that stderr went.
2. After each test's teardown (so module-scoped daemons stopped after the module's last test are
   attributed to that test) it collects the new report files; any file with a report turns the
   teardown into an error that shows the report. It also scans the daemon logs conftest kept for
   that test (BUILD/integration-logs/TEST/*.log) for report headers, in case a process ran with its
   own *SAN_OPTIONS.

Reports that appear between tests (session fixtures) are attributed to the next test; those at
the very end are printed and make pytest exit non-zero (pytest_sessionfinish).
"""

import os
import re
import tempfile
from pathlib import Path

import pytest

REPORT_RX = re.compile(
    r"(ERROR: AddressSanitizer|ERROR: LeakSanitizer|WARNING: ThreadSanitizer|ThreadSanitizer: reported|"
    r"runtime error: |ERROR: UndefinedBehaviorSanitizer|AddressSanitizer:DEADLYSIGNAL|"
    r"SUMMARY: (AddressSanitizer|UndefinedBehaviorSanitizer|ThreadSanitizer|LeakSanitizer))")
_OPTION_VARS = ("ASAN_OPTIONS", "UBSAN_OPTIONS", "TSAN_OPTIONS", "LSAN_OPTIONS")

_state = {"dir": None, "seen": set(), "leftover": []}


def _log_dir():
    return _state["dir"]


def pytest_configure(config):
    d = os.environ.get("GUESTNETD_SANITIZER_LOG_DIR")
    if not d:
        d = tempfile.mkdtemp(prefix="gn-san-", dir="/tmp")
    os.makedirs(d, exist_ok=True)
    os.chmod(d, 0o1777)  # daemons run as other uids in test_privilege.py write here too
    _state["dir"] = Path(d)
    prefix = str(Path(d) / "report")
    for var in _OPTION_VARS:
        opts = [o for o in os.environ.get(var, "").split(":") if o and not o.startswith("log_path=")]
        opts.append("log_path=" + prefix)
        os.environ[var] = ":".join(opts)
    # Anything already there (a reused directory) is not this run's.
    _state["seen"] = {p.name for p in Path(d).iterdir()}
    config.addinivalue_line("markers", "sanitizer_check: loaded")


def _new_reports():
    d = _log_dir()
    if d is None or not d.exists():
        return []
    out = []
    for p in sorted(d.iterdir()):
        if p.name in _state["seen"]:
            continue
        _state["seen"].add(p.name)
        try:
            text = p.read_text(errors="replace")
        except OSError as e:
            text = "(unreadable: %s)" % e
        if text.strip():
            out.append((p, text))
    return out


def _log_reports(item):
    """Report headers in the daemon logs conftest kept for this test."""
    build = Path(os.environ.get("GUESTNETD_BUILD_DIR", Path(__file__).resolve().parents[2] / "build"))
    logdir = build / "integration-logs" / re.sub(r"[^A-Za-z0-9_.-]+", "_", item.name)
    out = []
    if logdir.is_dir():
        for p in sorted(logdir.glob("*.log")):
            try:
                text = p.read_text(errors="replace")
            except OSError:
                continue
            if REPORT_RX.search(text):
                lines = text.splitlines()
                first = next(i for i, line in enumerate(lines) if REPORT_RX.search(line))
                out.append((p, "\n".join(lines[max(0, first - 5):first + 60])))
    return out


def _format(reports, limit=12000):
    parts = []
    for p, text in reports:
        parts.append("==== %s\n%s" % (p, text[:limit] + ("\n[... %d more bytes]" % (len(text) - limit)
                                                              if len(text) > limit else "")))
    return "\n".join(parts)


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item, call):
    outcome = yield
    rep = outcome.get_result()
    if call.when != "teardown":
        return
    reports = _new_reports() + _log_reports(item)
    if not reports:
        return
    text = "sanitizer report(s) from processes of this test:\n" + _format(reports)
    rep.outcome = "failed"
    rep.longrepr = text
    rep.sections.append(("sanitizer reports", text))


def pytest_sessionfinish(session, exitstatus):
    reports = _new_reports()
    if reports:
        text = _format(reports)
        print("\nsanitizer_check: report(s) after the last test:\n" + text)
        session.exitstatus = 1
