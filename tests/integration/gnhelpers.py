# SPDX-License-Identifier: LGPL-2.1-or-later
"""Helpers for guestnetd's integration tests: network namespaces, host device state, the daemon
process (notify socket, log), polling with timeouts. Fixtures that use them live in conftest.py."""

import json
import os
import re
import secrets
import signal
import socket
import subprocess
import threading
import time
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parents[2]
TIMEOUT_SCALE = float(os.environ.get("GUESTNETD_TEST_TIMEOUT_SCALE", "1"))


def T(seconds):
    """A timeout, scaled by GUESTNETD_TEST_TIMEOUT_SCALE (slow machines, valgrind)."""
    return seconds * TIMEOUT_SCALE


def build_dir():
    return Path(os.environ.get("GUESTNETD_BUILD_DIR", REPO_ROOT / "build")).resolve()


def daemon_binary():
    return build_dir() / "src" / "guestnetd"


def poll(pred, timeout=5.0, interval=0.02, what=None):
    """Calls pred() until it returns something true; returns that. On timeout raises AssertionError
    with `what` (a string or a callable giving one) and pred's last value."""
    end = time.monotonic() + T(timeout)
    last = None
    while True:
        last = pred()
        if last:
            return last
        if time.monotonic() >= end:
            desc = what() if callable(what) else (what or getattr(pred, "__name__", "condition"))
            raise AssertionError("timed out after %.1fs waiting for %s (last: %r)" % (T(timeout), desc, last))
        time.sleep(interval)


def run(cmd, check=True, timeout=30, **kw):
    r = subprocess.run(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, timeout=timeout, **kw)
    if check and r.returncode != 0:
        raise RuntimeError("%s failed (%d): %s%s" % (" ".join(map(str, cmd)), r.returncode, r.stdout, r.stderr))
    return r


# --------------------------------------------------------------------------- network namespaces
class NetNS:
    """A network namespace this test created (unique name) and everything in it. delete() removes
    only this namespace; the links inside go with it."""

    def __init__(self, prefix="gnt"):
        self.name = "%s-%d-%s" % (prefix, os.getpid(), secrets.token_hex(3))
        self.created = False

    def create(self):
        run(["ip", "netns", "add", self.name])
        self.created = True
        self.ip("link", "set", "lo", "up")
        return self

    def delete(self):
        if self.created:
            run(["ip", "netns", "delete", self.name], check=False)
            self.created = False

    def ip(self, *args, check=True):
        return run(["ip", "-n", self.name] + [str(a) for a in args], check=check)

    def exec(self, *args, check=True, timeout=30):
        return run(["ip", "netns", "exec", self.name] + [str(a) for a in args], check=check, timeout=timeout)

    def exec_argv(self, argv):
        return ["ip", "netns", "exec", self.name] + [str(a) for a in argv]

    def ns_inode(self):
        return "net:[%d]" % os.stat("/run/netns/%s" % self.name).st_ino

    # ---- devices
    def add_veth(self, a="lo0", b="lo1"):
        self.ip("link", "add", a, "type", "veth", "peer", "name", b)
        self.ip("link", "set", a, "up")
        self.ip("link", "set", b, "up")

    def add_macvtap(self, name, parent="lo0", mode="bridge", mac=None, up=True, index=None):
        args = ["link", "add", "link", parent, "name", name]
        if index:
            args += ["index", index]
        if mac:
            args += ["address", mac]
        self.ip(*(args + ["type", "macvtap", "mode", mode]))
        if up:
            self.ip("link", "set", name, "up")

    def chardev(self, dev):
        """A macvtap's character device number (major, minor), from the namespace's sysfs."""
        r = self.exec("sh", "-c", "cat /sys/class/net/%s/macvtap/tap*/dev" % dev)
        major, minor = (int(x) for x in r.stdout.strip().split(":"))
        return major, minor

    def add_tap(self, name, up=False):
        self.ip("tuntap", "add", name, "mode", "tap")
        if up:
            self.ip("link", "set", name, "up")

    # ---- state
    def link(self, dev):
        return json.loads(self.ip("-d", "-j", "link", "show", dev).stdout)[0]

    def mac(self, dev):
        return self.link(dev)["address"]

    def flags(self, dev):
        return set(self.link(dev)["flags"])

    def dev_mcast(self):
        """Rows of the namespace's /proc/net/dev_mcast: (ifindex, ifname, users, global, addr)."""
        out = self.exec("cat", "/proc/net/dev_mcast").stdout
        rows = []
        for line in out.splitlines():
            f = line.split()
            if len(f) != 5:
                continue
            h = f[4].lower()
            addr = ":".join(h[i:i + 2] for i in range(0, 12, 2))
            rows.append((int(f[0]), f[1], int(f[2]), int(f[3]), addr))
        return rows

    def mcast_global(self, dev):
        """The device's user-added ("global") multicast entries, as a set of lower-case MACs."""
        return {r[4] for r in self.dev_mcast() if r[1] == dev and r[3] != 0}

    def host_state(self, dev):
        flags = self.flags(dev)
        return {
            "mac": self.mac(dev),
            "promisc": "PROMISC" in flags,
            "allmulti": "ALLMULTI" in flags,
            "multicast": "MULTICAST" in flags,
            "mcast": self.mcast_global(dev),
        }

    def wait_host(self, dev, timeout=5.0, **want):
        """Polls until every given attribute of host_state(dev) equals the wanted value (mcast as a
        set). Returns the state; raises AssertionError naming the attributes that differ."""
        if "mcast" in want:
            want["mcast"] = {m.lower() for m in want["mcast"]}
        if "mac" in want:
            want["mac"] = want["mac"].lower()
        state = {}

        def ok():
            state.clear()
            state.update(self.host_state(dev))
            return all(state[k] == v for k, v in want.items())

        def what():
            diff = {k: (state.get(k), v) for k, v in want.items() if state.get(k) != v}
            return "%s in %s to match (have, want): %r" % (dev, self.name, diff)

        poll(ok, timeout, what=what)
        return dict(state)


def expected_host(f, vlan_policy="improved"):
    """The macvtap state the daemon should produce for a query-rx-filter reply (dict with dashes),
    per rxfilter.md's libvirt-compatible mapping and docs/host-sync.md: VlanPolicy=improved,
    UnicastPolicy=ignore, overflow meaning all-multicast."""
    vids = [v for v in f.get("vlan-table", [])]
    if vlan_policy == "improved":
        vlan_promisc = f["vlan"] == "normal" and any(v != 0 for v in vids)
    elif vlan_policy == "libvirt":
        vlan_promisc = len(vids) > 0
    else:
        vlan_promisc = False
    mode = f["multicast"]
    if mode == "all":
        allmulti, multicast = True, True
    elif mode == "normal":
        allmulti, multicast = bool(f["multicast-overflow"]), True
    else:
        allmulti, multicast = False, False
    st = {"mac": f["main-mac"], "promisc": bool(f["promiscuous"]) or vlan_promisc, "allmulti": allmulti}
    if not f["multicast-overflow"]:
        # On overflow QEMU reports an empty table and the daemon keeps the entries it programmed
        # (docs/host-sync.md) while ALLMULTI covers the rest: the list is then unspecified.
        st["mcast"] = set(f.get("multicast-table", []))
    if mode != "all":
        st["multicast"] = multicast
    return st


# --------------------------------------------------------------------------- the daemon
class Daemon:
    """One guestnetd process started by a test: `ip netns exec NS BUILD/src/guestnetd ...` with a
    NOTIFY_SOCKET of ours, stderr to a log file. Stopped/killed only by its own PID."""

    _serial = 0

    def __init__(self, workdir, netns=None, config=None, guests=None, qmp_dir=None, guests_dir=None,
                 workers=4, log_level="debug", extra_args=(), env=None, label=None, binary=None,
                 config_path=None):
        Daemon._serial += 1
        self.label = label or "guestnetd-%d" % Daemon._serial
        self.dir = Path(workdir) / self.label
        self.dir.mkdir(parents=True, exist_ok=True)
        self.netns = netns
        self.binary = Path(binary or daemon_binary())
        self.config_path = Path(config_path) if config_path else self.dir / "guestnetd.conf"
        self.runtime_dir = self.dir / "run"
        if config_path is None:
            text = config if config is not None else "[Daemon]\n"
            if "RuntimeDirectory=" not in text:
                # Baselines are persisted under RuntimeDirectory= (default /run/guestnetd) keyed by
                # namespace inode + ifindex, both reused by later tests: keep them private. Appended
                # as a second [Daemon] section so line numbers of the test's text stay as written.
                if text and not text.endswith("\n"):
                    text += "\n"
                text += "\n[Daemon]\nRuntimeDirectory=%s\n" % self.runtime_dir
            self.config_path.write_text(text)
        self.guests_dir = Path(guests_dir) if guests_dir else self.dir / "guests.d"
        self.guests_dir.mkdir(parents=True, exist_ok=True)
        for name, text in (guests or {}).items():
            (self.guests_dir / ("%s.conf" % name)).write_text(text)
        self.qmp_dir = Path(qmp_dir) if qmp_dir else self.dir / "qmp"
        self.qmp_dir.mkdir(parents=True, exist_ok=True)
        self.workers = workers
        self.log_level = log_level
        self.extra_args = list(extra_args)
        self.env = dict(env or {})
        self.log_path = self.dir / "stderr.log"
        self.out_path = self.dir / "stdout.log"
        self.notify_path = self.dir / "notify.sock"
        self.notifications = []
        self._notify_cond = threading.Condition()
        self.proc = None
        self.pid = None
        self.returncode = None
        self.stopped_by_test = False  # stop()/wait_exit() called: an exit is expected

    def argv(self):
        argv = [str(self.binary), "--config=%s" % self.config_path, "--guests-dir=%s" % self.guests_dir,
                "--qmp-dir=%s" % self.qmp_dir]
        if self.workers is not None:
            argv.append("--workers=%d" % self.workers)
        if self.log_level:
            argv.append("--log-level=%s" % self.log_level)
        argv += self.extra_args
        return self.netns.exec_argv(argv) if self.netns else argv

    def start(self, wait_ready=True, timeout=10.0):
        if not self.binary.exists():
            raise AssertionError("daemon binary %s does not exist: build first (meson/ninja)" % self.binary)
        self._notify = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
        self._notify.bind(str(self.notify_path))
        self._notify.settimeout(0.1)
        self._notify_stop = False
        self._notify_thread = threading.Thread(target=self._read_notify, daemon=True)
        self._notify_thread.start()
        env = dict(os.environ)
        for k in ("NOTIFY_SOCKET", "WATCHDOG_USEC", "WATCHDOG_PID", "LISTEN_FDS", "LISTEN_PID", "INVOCATION_ID"):
            env.pop(k, None)
        env["NOTIFY_SOCKET"] = str(self.notify_path)
        # Never the host's system bus: a bus address that leads nowhere (the daemon then runs
        # without publishing). Tests that want a bus pass their own DBUS_SYSTEM_BUS_ADDRESS.
        env["DBUS_SYSTEM_BUS_ADDRESS"] = "unix:path=%s" % (self.dir / "no-system-bus")
        env.update(self.env)
        self._log = open(self.log_path, "wb")
        self._out = open(self.out_path, "wb")
        self.proc = subprocess.Popen(self.argv(), stdin=subprocess.DEVNULL, stdout=self._out, stderr=self._log,
                                     env=env)
        self.pid = self.proc.pid  # `ip netns exec` execs the daemon: same PID
        if wait_ready:
            self.wait_ready(timeout)
        return self

    def _read_notify(self):
        while not self._notify_stop:
            try:
                data = self._notify.recv(4096)
            except socket.timeout:
                continue
            except OSError:
                return
            with self._notify_cond:
                self.notifications.extend(data.decode(errors="replace").split("\n"))
                self._notify_cond.notify_all()

    def wait_notify(self, item, timeout=10.0):
        """Waits for a notify assignment (e.g. "READY=1"); fails early if the daemon exits."""
        end = time.monotonic() + T(timeout)
        with self._notify_cond:
            while item not in self.notifications:
                if self.proc.poll() is not None:
                    raise AssertionError("guestnetd exited with %s before %s; log:\n%s" %
                                         (self.proc.returncode, item, self.log_tail()))
                left = end - time.monotonic()
                if left <= 0:
                    raise AssertionError("guestnetd sent no %s within %.1fs (got %r); log:\n%s" %
                                         (item, T(timeout), self.notifications, self.log_tail()))
                self._notify_cond.wait(min(left, 0.05))

    def wait_ready(self, timeout=10.0):
        self.wait_notify("READY=1", timeout)

    def log(self):
        try:
            return self.log_path.read_text(errors="replace")
        except FileNotFoundError:
            return ""

    def log_tail(self, n=80):
        return "\n".join(self.log().splitlines()[-n:])

    def log_lines(self, pattern):
        rx = re.compile(pattern)
        return [m for m in (rx.search(line) for line in self.log().splitlines()) if m]

    def wait_log(self, pattern, timeout=5.0, count=1):
        """Waits until at least `count` log lines match the regex; returns the list of matches."""
        def found():
            ms = self.log_lines(pattern)
            if len(ms) >= count:
                return ms
            if self.proc.poll() is not None:
                raise AssertionError("guestnetd exited (%s) while waiting for %r; log:\n%s" %
                                     (self.proc.returncode, pattern, self.log_tail()))
            return None
        return poll(found, timeout, interval=0.02,
                    what=lambda: "%d log line(s) matching %r; log:\n%s" % (count, pattern, self.log_tail()))

    def running(self):
        return self.proc is not None and self.proc.poll() is None

    def send_signal(self, sig):
        if self.running():
            os.kill(self.pid, sig)

    def stop(self, sig=signal.SIGTERM, timeout=10.0):
        """Sends sig to our PID and waits; SIGKILL after timeout. Returns the exit status."""
        self.stopped_by_test = True
        if self.proc is None:
            return None
        if self.proc.poll() is None:
            os.kill(self.pid, sig)
            try:
                self.proc.wait(T(timeout))
            except subprocess.TimeoutExpired:
                os.kill(self.pid, signal.SIGKILL)
                self.proc.wait()
        self.returncode = self.proc.returncode
        self._cleanup()
        return self.returncode

    def wait_exit(self, timeout=10.0):
        self.stopped_by_test = True
        try:
            self.returncode = self.proc.wait(T(timeout))
        except subprocess.TimeoutExpired:
            raise AssertionError("guestnetd did not exit within %.1fs; log:\n%s" % (T(timeout), self.log_tail()))
        self._cleanup()
        return self.returncode

    def _cleanup(self):
        self._notify_stop = True
        for f in ("_log", "_out", "_notify"):
            h = getattr(self, f, None)
            if h is not None:
                try:
                    h.close()
                except OSError:
                    pass
                setattr(self, f, None)


def guest_dropin(name, qmp_socket, trust=None, nics=None):
    """A guests.d drop-in. nics: {"net0": {"HostInterface": "mvt0", "Trust": "all"}, ...}."""
    s = "[Guest]\nName=%s\nQmpSocket=%s\n" % (name, qmp_socket)
    if trust is not None:
        s += "Trust=%s\n" % trust
    for nic, keys in (nics or {}).items():
        s += "\n[Nic %s]\n" % nic
        for k, v in keys.items():
            s += "%s=%s\n" % (k, v)
    return s


def sanitized(pid):
    """Whether the process runs under ASan, TSan or valgrind: their allocators hold freed memory back,
    so its VmRSS says nothing about ours."""
    with open("/proc/%d/maps" % pid) as f:
        maps = f.read()
    return any(lib in maps for lib in ("libasan", "libtsan", "libclang_rt.asan", "libclang_rt.tsan")) or \
        "vgpreload" in maps
