# SPDX-License-Identifier: LGPL-2.1-or-later
"""busenv: a private system bus that enforces our policy file, a real polkitd loading our actions and
test rules, unprivileged callers, and the daemon under test (docs: testing.md).

Every process started here is recorded by PID and only those PIDs are killed, in finalizers, even
when a test fails. Fixtures are defined here (not in conftest.py) and imported by the test modules.

Run as a script it is the unprivileged bus client used by the tests (setpriv drops to nobody first):
    busenv.py subscribe ADDRESS          print every signal from io.guestnetd.GuestNet1 as a JSON line
    busenv.py read ADDRESS               Get and GetAll every property of every object, as JSON
    busenv.py call ADDRESS JSON          one method call with Gio (which reports D-Bus error names and
                                         sets allow-interactive-authorization on request), as JSON
"""

import contextlib
import grp
import json
import os
import pwd
import queue
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

BUS_NAME = "io.guestnetd.GuestNet1"
ROOT_PATH = "/io/guestnetd/GuestNet1"
MANAGER_IFACE = BUS_NAME + ".Manager"
GUEST_IFACE = BUS_NAME + ".Guest"
NIC_IFACE = BUS_NAME + ".Nic"
POLKIT_NAME = "org.freedesktop.PolicyKit1"

REPO = Path(__file__).resolve().parents[2]
PYTHON = "/usr/bin/python3"  # Debian's, with python3-dbus; not whatever python is first on PATH
POLKITD = "/usr/lib/polkit-1/polkitd"
STOCK_POLKIT_BUS_CONF = Path("/usr/share/dbus-1/system.d/org.freedesktop.PolicyKit1.conf")
STOCK_POLKIT_ACTIONS = Path("/usr/share/polkit-1/actions")

NOBODY_UID = pwd.getpwnam("nobody").pw_uid
NOBODY_GID = grp.getgrnam("nogroup").gr_gid


def build_dir():
    return Path(os.environ.get("GUESTNETD_BUILD_DIR", REPO / "build"))


def daemon_binary():
    return build_dir() / "src" / "guestnetd"


def path_encode(prefix, name):
    """sd_bus_path_encode(): [A-Za-z0-9] kept (not a leading digit), every other byte as _xx."""
    if not name:
        return prefix + "/_"
    out = []
    for i, b in enumerate(name.encode()):
        c = chr(b)
        if b < 0x80 and c.isalnum() and not (i == 0 and c.isdigit()):
            out.append(c)
        else:
            out.append("_%02x" % b)
    return prefix + "/" + "".join(out)


def guest_path(name):
    return path_encode(ROOT_PATH + "/guest", name)


def nic_path(guest, nic_id):
    return path_encode(guest_path(guest) + "/nic", nic_id)


def wait_until(predicate, timeout=10.0, interval=0.05, what="condition"):
    deadline = time.monotonic() + timeout
    while True:
        value = predicate()
        if value:
            return value
        if time.monotonic() >= deadline:
            raise TimeoutError(f"timed out after {timeout} s waiting for {what}")
        time.sleep(interval)


def kill_pid(proc, timeout=5.0):
    """SIGTERM one process we started (a Popen), SIGKILL if it lingers; reaps it."""
    if proc is None or proc.poll() is not None:
        return
    with contextlib.suppress(ProcessLookupError):
        os.kill(proc.pid, signal.SIGTERM)
    try:
        proc.wait(timeout)
    except subprocess.TimeoutExpired:
        with contextlib.suppress(ProcessLookupError):
            os.kill(proc.pid, signal.SIGKILL)
        proc.wait()


def as_user(argv, uid=NOBODY_UID, gid=NOBODY_GID):
    return ["setpriv", f"--reuid={uid}", f"--regid={gid}", "--clear-groups", *argv]


BUS_CONF = """<!DOCTYPE busconfig PUBLIC "-//freedesktop//DTD D-Bus Bus Configuration 1.0//EN"
 "http://www.freedesktop.org/standards/dbus/1.0/busconfig.dtd">
<busconfig>
  <type>system</type>
  <listen>unix:path={socket}</listen>
  <auth>EXTERNAL</auth>
  <servicedir>{services}</servicedir>
  <!-- The default policy of /usr/share/dbus-1/system.conf. -->
  <policy context="default">
    <allow user="*"/>
    <deny own="*"/>
    <deny send_type="method_call"/>
    <allow send_type="signal"/>
    <allow send_requested_reply="true" send_type="method_return"/>
    <allow send_requested_reply="true" send_type="error"/>
    <allow receive_type="method_call"/>
    <allow receive_type="method_return"/>
    <allow receive_type="error"/>
    <allow receive_type="signal"/>
    <allow send_destination="org.freedesktop.DBus" send_interface="org.freedesktop.DBus"/>
    <allow send_destination="org.freedesktop.DBus" send_interface="org.freedesktop.DBus.Introspectable"/>
    <allow send_destination="org.freedesktop.DBus" send_interface="org.freedesktop.DBus.Properties"/>
    <deny send_destination="org.freedesktop.DBus" send_interface="org.freedesktop.DBus"
          send_member="UpdateActivationEnvironment"/>
    <deny send_destination="org.freedesktop.DBus" send_interface="org.freedesktop.DBus.Debug.Stats"/>
    <deny send_destination="org.freedesktop.DBus" send_interface="org.freedesktop.systemd1.Activator"/>
  </policy>
  <policy user="root">
    <allow send_destination="org.freedesktop.DBus" send_interface="org.freedesktop.DBus.Monitoring"/>
  </policy>
  <includedir>{systemd}</includedir>
</busconfig>
"""


class BusEnv:
    """A private system bus in a temp dir, optionally with a real polkitd on it."""

    def __init__(self):
        self.dir = Path(tempfile.mkdtemp(prefix="gnd-bus."))
        os.chmod(self.dir, 0o755)  # other uids must reach the socket and the helper files
        self.socket = self.dir / "system_bus_socket"
        self.address = f"unix:path={self.socket}"
        self.services = self.dir / "services"
        self.system_d = self.dir / "system.d"
        self.bus = None
        self.polkitd = None
        self.procs = []  # every Popen we started, killed in close()

    # --- setup ---------------------------------------------------------------------------------
    def start_bus(self):
        self.services.mkdir()
        self.system_d.mkdir()
        shutil.copy(STOCK_POLKIT_BUS_CONF, self.system_d)
        shutil.copy(REPO / "dbus" / f"{BUS_NAME}.conf", self.system_d)
        conf = self.dir / "bus.conf"
        conf.write_text(BUS_CONF.format(socket=self.socket, services=self.services, systemd=self.system_d))
        log = open(self.dir / "dbus-daemon.log", "wb")
        # Activated services inherit this environment: sd-bus finds the bus through it.
        self.bus = self.spawn(["dbus-daemon", f"--config-file={conf}", "--nofork", "--print-address=1"],
                              stdout=subprocess.PIPE, stderr=log)
        line = self.bus.stdout.readline().decode().strip()
        if not line:
            raise RuntimeError("dbus-daemon did not start: " + self.read_log("dbus-daemon.log"))
        wait_until(self.socket.exists, what="the bus socket")
        return self

    def start_polkitd(self):
        pk = self.dir / "pk"
        actions, rules = pk / "actions", pk / "rules.d"
        if not pk.exists():
            actions.mkdir(parents=True)
            rules.mkdir()
            for f in STOCK_POLKIT_ACTIONS.glob("*.policy"):
                shutil.copy(f, actions)
            shutil.copy(REPO / "polkit" / f"{BUS_NAME}.policy", actions)
            for f in sorted((REPO / "tests" / "polkit").glob("*.rules")):
                shutil.copy(f, rules)
            subprocess.run(["chmod", "-R", "a+rX", str(pk)], check=True)  # polkitd drops to user polkitd
        log = open(self.dir / "polkitd.log", "ab")
        script = (f"mount --bind {actions} {STOCK_POLKIT_ACTIONS} && "
                  f"mount --bind {rules} /usr/share/polkit-1/rules.d && "
                  f"exec {POLKITD}")
        # unshare and sh exec in place: the PID we record is polkitd's.
        self.polkitd = self.spawn(["unshare", "-m", "--propagation", "private", "sh", "-c", script],
                                  stdout=log, stderr=subprocess.STDOUT)
        wait_until(lambda: self.polkitd.poll() is not None or self.name_has_owner(POLKIT_NAME),
                   timeout=20, what="polkitd to own " + POLKIT_NAME)
        if self.polkitd.poll() is not None:
            raise RuntimeError("polkitd exited: " + self.read_log("polkitd.log"))
        return self

    def stop_polkitd(self):
        kill_pid(self.polkitd)
        wait_until(lambda: not self.name_has_owner(POLKIT_NAME), what="polkitd to leave the bus")

    # --- helpers -------------------------------------------------------------------------------
    def env(self, **extra):
        env = dict(os.environ)
        env["DBUS_SYSTEM_BUS_ADDRESS"] = self.address
        env.pop("DBUS_SESSION_BUS_ADDRESS", None)
        env.update(extra)
        return env

    def spawn(self, argv, **kwargs):
        kwargs.setdefault("env", self.env())
        proc = subprocess.Popen(argv, **kwargs)
        self.procs.append(proc)
        return proc

    def read_log(self, name):
        p = self.dir / name
        return p.read_text(errors="replace") if p.exists() else ""

    def busctl(self, *args, uid=None, gid=None, check=False, timeout=30):
        """busctl --system ARGS on our bus, as root or (uid given) as that user via setpriv."""
        argv = ["busctl", "--system", *args]
        if uid is not None:
            argv = as_user(argv, uid, NOBODY_GID if gid is None else gid)
        res = subprocess.run(argv, env=self.env(), capture_output=True, text=True, timeout=timeout, cwd="/")
        if check and res.returncode != 0:
            raise AssertionError(f"{' '.join(args)} failed ({res.returncode}): {res.stderr}")
        return res

    def call(self, path, iface, method, sig="", *args, uid=None, gid=None, interactive=None):
        """A method call on BUS_NAME; returns the busctl result (json=short output on success)."""
        opts = ["--json=short"]
        if interactive is not None:
            opts.append(f"--allow-interactive-authorization={'yes' if interactive else 'no'}")
        return self.busctl(*opts, "call", BUS_NAME, path, iface, method, *([sig, *map(str, args)] if sig else []),
                           uid=uid, gid=gid)

    def call_data(self, *args, **kwargs):
        res = self.call(*args, **kwargs)
        if res.returncode != 0:
            raise AssertionError(f"call {args} failed: {res.stderr.strip()}")
        return json.loads(res.stdout)["data"] if res.stdout.strip() else []

    def gcall(self, path, iface, method, sig="()", args=(), uid=None, gid=None, interactive=False,
              dest=BUS_NAME):
        """A method call through `busenv.py call` (as root, or as uid via setpriv). Returns
        {"result": [...]} or {"error": D-Bus error name, "message": text}. busctl only prints the
        message, never the error name, so this is what the tests assert error names with."""
        req = json.dumps({"dest": dest, "path": path, "iface": iface, "method": method, "sig": sig,
                          "args": list(args), "interactive": interactive})
        argv = [PYTHON, "-I", str(Path(__file__).resolve()), "call", self.address, req]
        if uid is not None:
            argv = as_user(argv, uid, NOBODY_GID if gid is None else gid)
        res = subprocess.run(argv, env=self.env(), capture_output=True, text=True, timeout=60, cwd="/")
        if res.returncode != 0:
            raise AssertionError(f"busenv.py call failed: {res.stderr}")
        return json.loads(res.stdout)

    def get_property(self, path, iface, prop, uid=None):
        res = self.busctl("--json=short", "get-property", BUS_NAME, path, iface, prop, uid=uid, check=True)
        return json.loads(res.stdout)["data"]

    def dbus_call(self, method, sig="", *args):
        res = self.busctl("--json=short", "call", "org.freedesktop.DBus", "/org/freedesktop/DBus",
                          "org.freedesktop.DBus", method, *([sig, *map(str, args)] if sig else []), check=True)
        return json.loads(res.stdout)["data"]

    def name_has_owner(self, name):
        return self.dbus_call("NameHasOwner", "s", name)[0]

    def name_owner_pid(self, name):
        return self.dbus_call("GetConnectionUnixProcessID", "s", name)[0]

    def activated_pids(self):
        """Processes dbus-daemon started (activation): children of the bus we started."""
        pids = []
        if self.bus is None or self.bus.poll() is not None:
            return pids
        for d in Path("/proc").iterdir():
            if d.name.isdigit():
                with contextlib.suppress(OSError, IndexError, ValueError):
                    if int((d / "stat").read_text().rsplit(")", 1)[1].split()[1]) == self.bus.pid:
                        pids.append(int(d.name))
        return pids

    def close(self):
        for pid in self.activated_pids():
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGKILL)
        for proc in reversed(self.procs):
            kill_pid(proc)
        shutil.rmtree(self.dir, ignore_errors=True)


class Daemon:
    """guestnetd from the build tree on a BusEnv, with its own config, drop-in and QMP dirs."""

    def __init__(self, env, config="[Daemon]\nReconcileIntervalSec=0\n", args=()):
        self.env = env
        self.dir = Path(tempfile.mkdtemp(prefix="gnd-daemon.", dir=env.dir))
        os.chmod(self.dir, 0o755)
        self.config = self.dir / "guestnetd.conf"
        # Baselines go to the test's own directory, never the host's /run/guestnetd.
        if "RuntimeDirectory=" not in config:
            runtime = f"RuntimeDirectory={self.dir}/run\n"
            config = config.replace("[Daemon]\n", "[Daemon]\n" + runtime, 1) if "[Daemon]\n" in config \
                else "[Daemon]\n" + runtime + config
        self.config.write_text(config)
        self.guests_dir = self.dir / "guests.d"
        self.guests_dir.mkdir()
        self.qmp_dir = self.dir / "qmp"
        self.qmp_dir.mkdir()
        self.args = list(args)
        self.proc = None
        self.log_path = self.dir / "guestnetd.log"

    def argv(self):
        return [str(daemon_binary()), f"--config={self.config}", f"--guests-dir={self.guests_dir}",
                f"--qmp-dir={self.qmp_dir}", "--log-level=debug", *self.args]

    def add_dropin(self, filename, text):
        (self.guests_dir / filename).write_text(text)

    def start(self, timeout=15.0):
        notify_path = self.dir / "notify"
        with contextlib.suppress(FileNotFoundError):
            notify_path.unlink()
        notify = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM | socket.SOCK_CLOEXEC)
        notify.bind(str(notify_path))
        try:
            log = open(self.log_path, "ab")
            self.proc = self.env.spawn(self.argv(), env=self.env.env(NOTIFY_SOCKET=str(notify_path)),
                                       stdout=log, stderr=subprocess.STDOUT)
            deadline = time.monotonic() + timeout
            while True:
                if self.proc.poll() is not None:
                    raise RuntimeError(f"guestnetd exited with {self.proc.returncode}: {self.log()}")
                left = deadline - time.monotonic()
                if left <= 0:
                    raise TimeoutError("guestnetd sent no READY=1: " + self.log())
                notify.settimeout(min(left, 0.2))
                try:
                    msg = notify.recv(4096).decode(errors="replace")
                except socket.timeout:
                    continue
                if "READY=1" in msg.split("\n"):
                    break
        finally:
            notify.close()
        wait_until(lambda: self.env.name_has_owner(BUS_NAME), timeout=timeout, what=f"guestnetd to own {BUS_NAME}")
        return self

    def stop(self):
        kill_pid(self.proc)

    def log(self):
        return self.log_path.read_text(errors="replace") if self.log_path.exists() else ""


class Subscriber:
    """`busenv.py subscribe` running as an unprivileged user; collects its JSON lines."""

    def __init__(self, env, uid=NOBODY_UID, gid=NOBODY_GID):
        self.proc = env.spawn(as_user([PYTHON, "-I", str(Path(__file__).resolve()), "subscribe", env.address],
                                      uid, gid),
                              stdout=subprocess.PIPE, stderr=subprocess.PIPE, cwd="/")
        self.lines = queue.Queue()
        self.seen = []
        threading.Thread(target=self._pump, daemon=True).start()
        first = self.lines.get(timeout=15)
        if first != {"ready": True}:
            raise RuntimeError(f"subscriber failed: {first} {self.proc.stderr.read().decode()}")

    def _pump(self):
        for line in self.proc.stdout:
            with contextlib.suppress(ValueError):
                self.lines.put(json.loads(line))
        self.lines.put(None)

    def wait_for(self, predicate, timeout=10.0, what="signal"):
        """Returns the first signal (already seen or arriving) for which predicate is true."""
        for s in self.seen:
            if predicate(s):
                return s
        deadline = time.monotonic() + timeout
        while True:
            left = deadline - time.monotonic()
            if left <= 0:
                raise TimeoutError(f"no {what} within {timeout} s; got: {self.seen}")
            try:
                s = self.lines.get(timeout=left)
            except queue.Empty:
                continue
            if s is None:
                raise RuntimeError("subscriber exited: " + self.proc.stderr.read().decode())
            self.seen.append(s)
            if predicate(s):
                return s

    def drain(self, settle=0.5):
        time.sleep(settle)
        while True:
            try:
                s = self.lines.get_nowait()
            except queue.Empty:
                return self.seen
            if s is not None:
                self.seen.append(s)

    def close(self):
        kill_pid(self.proc)


def read_all_properties(env, uid=NOBODY_UID, gid=NOBODY_GID):
    """`busenv.py read` as an unprivileged user: {path: {iface: {"get": {...}, "getall": {...}}}}."""
    res = subprocess.run(as_user([PYTHON, "-I", str(Path(__file__).resolve()), "read", env.address], uid, gid),
                         env=env.env(), capture_output=True, text=True, timeout=60, cwd="/")
    if res.returncode != 0:
        raise AssertionError("unprivileged property read failed: " + res.stderr)
    return json.loads(res.stdout)


# --- fake guests ------------------------------------------------------------------------------------
# The daemon resolves an fd-passed backend through the QEMU peer's /proc/PID/fd; this fd number is
# not open in the test process, so the NICs' host interface stays unknown and no host device is touched.
UNRESOLVABLE_FD = 4093


def fake_guest(path, name, nic_ids=("net0",), index=0):
    """A fakeqmp.FakeQmp serving `path` (started), its NICs with distinct MACs."""
    from fakeqmp import FakeQmp
    nics = [{"id": nic, "mac": "52:54:00:%02x:%02x:%02x" % (index >> 8 & 0xff, index & 0xff, i),
             "fd": UNRESOLVABLE_FD} for i, nic in enumerate(nic_ids)]
    return FakeQmp(str(path), name=name, nics=nics)


def fake_queries(fake):
    """query-rx-filter commands the fake answered: for all NICs (no name) and per NIC."""
    return fake.unnamed_query_count() + sum(fake.query_count(n) for n in fake.nics)


# --- test users ------------------------------------------------------------------------------------
class TestUsers:
    """System users created for one run (polkit rules match gndt-allow* / gndt-deny*), removed after."""

    def __init__(self):
        self.names = []

    def add(self, prefix):
        name = f"{prefix}-{os.getpid()}"[:32]
        subprocess.run(["useradd", "--system", "--no-create-home", "--user-group",
                        "--shell", "/usr/sbin/nologin", name], check=True)
        self.names.append(name)
        pw = pwd.getpwnam(name)
        return pw.pw_uid, pw.pw_gid

    def close(self):
        for name in self.names:
            subprocess.run(["userdel", name], check=False)
            with contextlib.suppress(KeyError):
                grp.getgrnam(name)
                subprocess.run(["groupdel", name], check=False)


# --- pytest fixtures (import them into a test module to use them) ----------------------------------
try:
    import pytest
except ImportError:  # running as the unprivileged client script
    pytest = None

if pytest:
    @pytest.fixture(scope="module")
    def bus_env():
        """A private system bus with our policy and a real polkitd."""
        env = BusEnv()
        try:
            env.start_bus()
            env.start_polkitd()
            yield env
        finally:
            env.close()

    @pytest.fixture
    def bare_bus_env():
        """A private system bus without polkitd, for activation tests."""
        env = BusEnv()
        try:
            env.start_bus()
            yield env
        finally:
            env.close()

    @pytest.fixture(scope="module")
    def test_users():
        users = TestUsers()
        try:
            yield users
        finally:
            users.close()


# --- the unprivileged client --------------------------------------------------------------------
def _plain(v):
    import dbus
    if isinstance(v, dbus.Boolean):
        return bool(v)
    if isinstance(v, (dbus.Dictionary, dict)):
        return {str(k): _plain(x) for k, x in v.items()}
    if isinstance(v, (dbus.Array, dbus.Struct, list, tuple)):
        return [_plain(x) for x in v]
    if isinstance(v, (dbus.String, dbus.ObjectPath, dbus.Signature, str)):
        return str(v)
    if isinstance(v, (dbus.Double, float)):
        return float(v)
    return int(v)


def _client_subscribe(address):
    import dbus
    import dbus.mainloop.glib
    from gi.repository import GLib

    dbus.mainloop.glib.DBusGMainLoop(set_as_default=True)
    bus = dbus.bus.BusConnection(address)

    def on_signal(*args, **kw):
        print(json.dumps({"path": kw["path"], "interface": kw["interface"], "member": kw["member"],
                          "args": _plain(list(args))}), flush=True)

    bus.add_signal_receiver(on_signal, sender_keyword="sender", path_keyword="path",
                            interface_keyword="interface", member_keyword="member", bus_name=BUS_NAME)
    # The bus handles messages in order: once this answers, the AddMatch is in place.
    bus.get_name_owner("org.freedesktop.DBus")
    print(json.dumps({"ready": True}), flush=True)
    GLib.MainLoop().run()


def _client_read(address):
    import dbus
    bus = dbus.bus.BusConnection(address)
    root = bus.get_object(BUS_NAME, ROOT_PATH)
    objects = root.GetManagedObjects(dbus_interface="org.freedesktop.DBus.ObjectManager")
    paths = [ROOT_PATH] + sorted(str(p) for p in objects)
    out = {}
    for path in paths:
        obj = bus.get_object(BUS_NAME, path)
        props = dbus.Interface(obj, "org.freedesktop.DBus.Properties")
        ifaces = [MANAGER_IFACE] if path == ROOT_PATH else [str(i) for i in objects[path]
                                                            if str(i).startswith(BUS_NAME)]
        out[path] = {}
        for iface in ifaces:
            everything = props.GetAll(iface)
            out[path][iface] = {"getall": _plain(everything),
                                "get": {str(k): _plain(props.Get(iface, k)) for k in everything}}
    print(json.dumps(out))


def _client_call(address, request):
    from gi.repository import Gio, GLib

    req = json.loads(request)
    conn = Gio.DBusConnection.new_for_address_sync(
        address, Gio.DBusConnectionFlags.AUTHENTICATION_CLIENT | Gio.DBusConnectionFlags.MESSAGE_BUS_CONNECTION,
        None, None)
    flags = Gio.DBusCallFlags.ALLOW_INTERACTIVE_AUTHORIZATION if req["interactive"] else Gio.DBusCallFlags.NONE
    params = GLib.Variant(req["sig"], tuple(req["args"])) if req["sig"] != "()" else None
    try:
        reply = conn.call_sync(req["dest"], req["path"], req["iface"], req["method"], params, None, flags,
                               60000, None)
        print(json.dumps({"result": reply.unpack() if reply else []}))
    except GLib.Error as e:
        name = Gio.DBusError.get_remote_error(e)
        Gio.DBusError.strip_remote_error(e)
        print(json.dumps({"error": name, "message": e.message}))


if __name__ == "__main__":
    {"subscribe": _client_subscribe, "read": _client_read, "call": _client_call}[sys.argv[1]](*sys.argv[2:])
