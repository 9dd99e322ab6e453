# SPDX-License-Identifier: LGPL-2.1-or-later
"""fakeqmp: a fake QEMU 7.2 QMP monitor for guestnetd's integration tests.

It behaves like the QEMU 7.2 that Debian 12 ships (see docs in ../../shared/spec/rxfilter.md and
the transcript in tests/integration/README): greeting, capabilities negotiation, ids echoed,
query-name / query-uuid / query-version / query-rx-filter / qom-get / human-monitor-command
"info network", and the NIC_RX_FILTER_CHANGED throttle (one event per query: a per-NIC "armed"
flag set at creation and by query-rx-filter, cleared by emitting the event).

Two ways to run it:

* ``FakeQmp(path, ...)``: a server thread (selectors) inside the calling process.
* ``FakeQmpProcess(path, netns=NS, ...)``: the same server in a child process started with
  ``ip netns exec NS /usr/bin/python3 fakeqmp.py serve ...``, controlled over a private unix
  socket (multiprocessing.connection). Use this one with the daemon: like a real QEMU, the peer of
  the QMP socket then lives in the test's network namespace, so a daemon that resolves the QEMU
  process (SO_PEERCRED) and works in ``/proc/PID/ns/net`` finds the test's devices, never the
  host's. Every public method of FakeQmp is callable on the proxy.

Test controls (thread-safe): set_filter(), set_filter_burst(), reset_filters(), emit_event(),
remove_nic(), hold()/release()/freeze()/thaw(), close_on_next_query(), disconnect(),
send_raw(), set_write_chunking(), counters (query_count(), unnamed_query_count(),
events_emitted(), ...), and wait helpers with timeouts.
"""

import copy
import json
import os
import selectors
import socket
import sys
import threading
import time

QEMU_VERSION = {"qemu": {"major": 7, "minor": 2, "micro": 0}, "package": ""}
RXFILTER_FIELDS = (
    "promiscuous", "name", "main-mac", "unicast", "vlan", "vlan-table", "unicast-table",
    "multicast", "multicast-overflow", "unicast-overflow", "multicast-table", "broadcast-allowed",
)
RX_STATES = ("normal", "none", "all")
ALL_VIDS = 4096


class FakeQmpError(Exception):
    pass


def _now_timestamp():
    t = time.time()
    return {"seconds": int(t), "microseconds": int((t - int(t)) * 1e6)}


def _field_key(k):
    """set_filter(main_mac=...) -> "main-mac"."""
    return k.replace("_", "-")


def _attach_tap(ifname):
    """A /dev/net/tun fd attached to the existing tap ifname (TUNSETIFF), as QEMU opens ifname=."""
    import fcntl
    import struct
    TUNSETIFF, IFF_TAP, IFF_NO_PI = 0x400454CA, 0x0002, 0x1000
    fd = os.open("/dev/net/tun", os.O_RDWR | os.O_CLOEXEC)
    try:
        fcntl.ioctl(fd, TUNSETIFF, struct.pack("16sH", ifname.encode(), IFF_TAP | IFF_NO_PI))
    except OSError:
        os.close(fd)
        raise
    return fd


def _hold_device(ifname):
    """Opens ifname as QEMU would hold it: a tap through /dev/net/tun + TUNSETIFF, a macvtap through
    its character device (a private node made from /sys/class/net/IF/macvtap/tapN/dev, since the
    host's /dev/tapN may name another namespace's device). None if ifname is not here."""
    import tempfile
    sys_dir = "/sys/class/net/%s" % ifname
    if os.path.exists(sys_dir + "/tun_flags"):
        try:
            return _attach_tap(ifname)
        except OSError:
            return None
    try:
        (tap,) = os.listdir(sys_dir + "/macvtap")
        with open("%s/macvtap/%s/dev" % (sys_dir, tap)) as f:
            major, minor = (int(x) for x in f.read().split(":"))
    except (OSError, ValueError):
        return None
    d = tempfile.mkdtemp(prefix="fakeqmp-dev-")
    node = os.path.join(d, tap)
    try:
        os.mknod(node, 0o600 | 0o020000, os.makedev(major, minor))
        return os.open(node, os.O_RDWR | os.O_CLOEXEC)
    finally:
        if os.path.exists(node):
            os.unlink(node)
        os.rmdir(d)


class FakeNic:
    def __init__(self, nic_id, mac, index=0, ifname=None, netdev=None, model="virtio-net-pci", fd=None,
                 anonymous=False, open_path=None, attach_tap=None, hold=True):
        self.id = nic_id
        self.mac = mac.lower()
        self.index = index
        self.netdev = netdev or "hostnet%d" % index
        self.ifname = ifname
        self.fd = fd
        self.owned_fd = None
        # fd-passed backends, as libvirt does it: this process really holds the fd, so the daemon
        # can resolve it through /proc/PID/fd (a macvtap's /dev/tapIFINDEX) or fdinfo ("iff:").
        if open_path:
            self.fd = self.owned_fd = os.open(open_path, os.O_RDWR | os.O_CLOEXEC)
        elif attach_tap:
            self.fd = self.owned_fd = _attach_tap(attach_tap)
        elif ifname and hold and fd is None:
            # A QEMU that reports ifname= holds that device open (guestnetd verifies it does):
            # hold it too when it is in this process's namespace. hold=False plays a QEMU that lies.
            self.owned_fd = _hold_device(ifname)
        self.model = model
        self.anonymous = anonymous  # created without id=: the event carries no name
        self.armed = True  # QEMU: set when the NIC is created
        self.filter = None
        self.queries = 0  # named query-rx-filter received for this NIC
        self.events = 0  # NIC_RX_FILTER_CHANGED emitted (to whoever listened)
        self.events_lost = 0  # ... emitted while no negotiated client was connected
        self.changes = 0  # set_filter() calls
        self.query_error = None  # fail_queries(): the desc of the GenericError named queries get
        self.reset()

    @property
    def qom_path(self):
        return "/machine/peripheral/%s" % self.id

    @property
    def query_name(self):
        return self.id

    def supports_rx_filter(self):
        return self.model.startswith("virtio-net")

    def reset(self):
        """What a device reset does to the filter (silently: no event)."""
        self.filter = {
            "promiscuous": True,
            "name": self.query_name,
            "main-mac": self.mac,
            "unicast": "normal",
            "vlan": "all",
            "vlan-table": list(range(ALL_VIDS)),
            "unicast-table": [],
            "multicast": "normal",
            "multicast-overflow": False,
            "unicast-overflow": False,
            "multicast-table": [],
            "broadcast-allowed": False,
        }

    def rx_filter_info(self):
        """The RxFilterInfo QEMU would return now: MAC tables in reverse order (QEMU prepends while
        walking its table), VLAN table from the bitmap walk, i.e. descending."""
        f = self.filter
        out = {}
        for k in list(RXFILTER_FIELDS) + [k for k in f if k not in RXFILTER_FIELDS]:
            if k not in f:  # a field removed on purpose (set_filter_raw)
                continue
            v = copy.deepcopy(f[k])
            if k in ("unicast-table", "multicast-table") and isinstance(v, list):
                v = list(reversed(v))
            elif k == "vlan-table" and isinstance(v, list):
                try:
                    v = sorted(set(v), reverse=True)
                except TypeError:  # wrong types injected on purpose
                    v = list(reversed(v))
            out[k] = v
        return out

    def event_data(self):
        path = "%s/virtio-backend" % self.qom_path
        if self.anonymous:
            return {"path": path}
        return {"name": self.id, "path": path}


class _Conn:
    serial = 0

    def __init__(self, sock):
        _Conn.serial += 1
        self.serial = _Conn.serial
        self.sock = sock
        self.rbuf = b""
        self.wbuf = bytearray()
        self.negotiated = False
        self.closed = False
        self.frozen = []  # commands queued while the peer is frozen (answered in order by thaw())
        self.next_write = 0.0


class FakeQmp:
    """A fake QEMU QMP monitor listening on a unix socket, served by a background thread."""

    def __init__(self, path, name="vm1", uuid="9f0d7a1e-5b1c-4c3e-8d2b-1a2b3c4d5e6f", nics=None,
                 version=None, greeting=None, max_clients=1, start=True):
        self.path = path
        self.vm_name = name
        self.uuid = uuid
        self.version = copy.deepcopy(version or QEMU_VERSION)
        self.greeting = greeting  # bytes to send instead of the standard greeting (raw)
        self.max_clients = max_clients
        self.nics = {}
        self._lock = threading.RLock()
        self._cond = threading.Condition(self._lock)
        self._conns = {}
        self._sel = selectors.DefaultSelector()
        self._wake_r, self._wake_w = socket.socketpair()
        self._wake_r.setblocking(False)
        self._stop = False
        self._thread = None
        self._listener = None
        self._listening = False
        # control state
        self._held = {}  # nic id -> list of (conn, msg) held queries
        self._hold = set()
        self._frozen = False
        self._close_on_query = None  # None: off; "" any NIC; else NIC id
        self._chunk = None  # (size, delay) for writes
        # records
        self.commands = []  # (conn serial, monotonic time, msg)
        self.connections_total = 0
        self.negotiations_total = 0
        self.unnamed_queries = 0
        self.closed_by_peer = 0  # connections the client closed
        self.parse_errors = 0
        for i, n in enumerate(nics if nics is not None else [{"id": "net0", "mac": "52:54:00:12:34:56"}]):
            n = dict(n)
            n.setdefault("index", i)
            nic = FakeNic(n.pop("id"), n.pop("mac"), **n)
            self.nics[nic.id] = nic
        if start:
            self.start()

    # ---------------------------------------------------------------- lifecycle
    def start(self):
        try:
            os.unlink(self.path)
        except FileNotFoundError:
            pass
        ls = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        ls.bind(self.path)
        ls.listen(8)
        ls.setblocking(False)
        self._listener = ls
        self._sel.register(self._wake_r, selectors.EVENT_READ, "wake")
        self._update_listening()
        self._thread = threading.Thread(target=self._run, name="fakeqmp:%s" % self.vm_name, daemon=True)
        self._thread.start()

    def stop(self, unlink=True):
        """Stops serving: closes every connection and the listening socket, removes the socket."""
        with self._lock:
            if self._stop:
                return
            self._stop = True
        self._wake()
        if self._thread:
            self._thread.join(10)
        with self._lock:
            for c in list(self._conns.values()):
                self._close_conn(c)
            if self._listener:
                try:
                    self._sel.unregister(self._listener)
                except (KeyError, ValueError):
                    pass
                self._listener.close()
                self._listener = None
            if unlink:
                try:
                    os.unlink(self.path)
                except FileNotFoundError:
                    pass
            for n in self.nics.values():
                if n.owned_fd is not None:
                    os.close(n.owned_fd)
                    n.owned_fd = None
            self._cond.notify_all()

    close = stop

    def __enter__(self):
        return self

    def __exit__(self, *a):
        self.stop()

    def _wake(self):
        try:
            self._wake_w.send(b"x")
        except OSError:
            pass

    def _update_listening(self):
        want = self._listener is not None and len(self._conns) < self.max_clients
        if want and not self._listening:
            self._sel.register(self._listener, selectors.EVENT_READ, "listen")
            self._listening = True
        elif not want and self._listening:
            try:
                self._sel.unregister(self._listener)
            except (KeyError, ValueError):
                pass
            self._listening = False

    # ---------------------------------------------------------------- server loop
    def _run(self):
        while True:
            with self._lock:
                if self._stop:
                    return
                timeout = None
                now = time.monotonic()
                for c in self._conns.values():
                    want = selectors.EVENT_READ
                    if c.wbuf:
                        if c.next_write > now:
                            d = c.next_write - now
                            timeout = d if timeout is None else min(timeout, d)
                        else:
                            want |= selectors.EVENT_WRITE
                    try:
                        self._sel.modify(c.sock, want, c)
                    except (KeyError, ValueError):
                        pass
            events = self._sel.select(timeout)
            with self._lock:
                if self._stop:
                    return
                for key, mask in events:
                    if key.data == "wake":
                        try:
                            while self._wake_r.recv(4096):
                                pass
                        except BlockingIOError:
                            pass
                    elif key.data == "listen":
                        self._accept()
                    else:
                        c = key.data
                        if c.closed:
                            continue
                        if mask & selectors.EVENT_READ:
                            self._read(c)
                        if not c.closed and mask & selectors.EVENT_WRITE:
                            self._flush(c)
                self._cond.notify_all()

    def _accept(self):
        try:
            s, _ = self._listener.accept()
        except (BlockingIOError, OSError):
            return
        s.setblocking(False)
        c = _Conn(s)
        self._conns[c.serial] = c
        self.connections_total += 1
        self._sel.register(s, selectors.EVENT_READ, c)
        self._update_listening()
        if self.greeting is not None:
            self._queue(c, self.greeting, raw=True)
        else:
            self._queue(c, {"QMP": {"version": self.version, "capabilities": ["oob"]}})

    def _close_conn(self, c, by_peer=False):
        if c.closed:
            return
        c.closed = True
        if by_peer:
            self.closed_by_peer += 1
        try:
            self._sel.unregister(c.sock)
        except (KeyError, ValueError):
            pass
        try:
            c.sock.close()
        except OSError:
            pass
        self._conns.pop(c.serial, None)
        for lst in self._held.values():
            lst[:] = [(cc, m) for (cc, m) in lst if cc is not c]
        self._update_listening()
        self._cond.notify_all()

    def _read(self, c):
        try:
            data = c.sock.recv(65536)
        except BlockingIOError:
            return
        except OSError:
            data = b""
        if not data:
            self._close_conn(c, by_peer=True)
            return
        c.rbuf += data
        for msg in self._split(c):
            if c.closed:
                return
            self._dispatch(c, msg)

    def _split(self, c):
        """Splits the stream into top-level JSON values like QEMU's json-streamer (brace counting
        that understands strings), so a command may span reads and a read may hold several."""
        out = []
        buf = c.rbuf
        depth = 0
        in_str = False
        esc = False
        start = None
        i = 0
        consumed = 0
        while i < len(buf):
            ch = buf[i]
            if in_str:
                if esc:
                    esc = False
                elif ch == 0x5C:  # backslash
                    esc = True
                elif ch == 0x22:
                    in_str = False
            elif ch == 0x22:
                in_str = True
                if start is None:
                    start = i
            elif ch in (0x7B, 0x5B):  # { [
                if start is None:
                    start = i
                depth += 1
            elif ch in (0x7D, 0x5D):  # } ]
                depth -= 1
                if depth <= 0:
                    text = buf[start if start is not None else i:i + 1]
                    out.append(text)
                    depth = 0
                    start = None
                    consumed = i + 1
            elif ch in b" \t\r\n" and depth == 0 and start is None:
                consumed = i + 1
            elif depth == 0 and start is None:
                start = i
            i += 1
        c.rbuf = buf[consumed:]
        return out

    def _queue(self, c, obj, raw=False):
        if c.closed:
            return
        data = obj if raw else (json.dumps(obj) + "\r\n").encode()
        c.wbuf += data
        self._wake()

    def _flush(self, c):
        while c.wbuf:
            n = len(c.wbuf)
            if self._chunk:
                n = min(n, self._chunk[0])
            try:
                sent = c.sock.send(bytes(c.wbuf[:n]))
            except BlockingIOError:
                return
            except OSError:
                self._close_conn(c, by_peer=True)
                return
            del c.wbuf[:sent]
            if self._chunk and c.wbuf:
                c.next_write = time.monotonic() + self._chunk[1]
                return

    def _reply(self, c, msg, ret=None, error=None):
        if error is not None:
            r = {}
            if "id" in msg:
                r["id"] = msg["id"]
            r["error"] = {"class": error[0], "desc": error[1]}
        else:
            r = {"return": ret}
            if "id" in msg:
                r["id"] = msg["id"]
        self._queue(c, r)

    def _dispatch(self, c, text):
        try:
            msg = json.loads(text)
        except ValueError:
            self.parse_errors += 1
            self._queue(c, {"error": {"class": "GenericError", "desc": "JSON parse error, invalid input"}})
            return
        self.commands.append((c.serial, time.monotonic(), msg))
        if not isinstance(msg, dict):
            self._queue(c, {"error": {"class": "GenericError", "desc": "QMP input must be a JSON object"}})
            return
        if "execute" not in msg and "exec-oob" not in msg:
            self._reply(c, msg, error=("GenericError", "QMP input lacks member 'execute'"))
            return
        if self._frozen or c.frozen:
            c.frozen.append(msg)
            return
        self._execute(c, msg)

    def _execute(self, c, msg):
        cmd = msg.get("execute") or msg.get("exec-oob")
        args = msg.get("arguments") or {}
        if not c.negotiated:
            if cmd == "qmp_capabilities":
                c.negotiated = True
                self.negotiations_total += 1
                self._reply(c, msg, {})
            else:
                self._reply(c, msg, error=("CommandNotFound",
                                           "Expecting capabilities negotiation with 'qmp_capabilities'"))
            return
        h = getattr(self, "_cmd_" + cmd.replace("-", "_"), None)
        if h is None:
            if cmd == "qmp_capabilities":
                self._reply(c, msg, error=("CommandNotFound",
                                           "Capabilities negotiation is already complete, command ignored"))
            else:
                self._reply(c, msg, error=("CommandNotFound", "The command %s has not been found" % cmd))
            return
        h(c, msg, args)

    # ---------------------------------------------------------------- commands
    def _cmd_query_name(self, c, msg, args):
        self._reply(c, msg, {"name": self.vm_name} if self.vm_name is not None else {})

    def _cmd_query_uuid(self, c, msg, args):
        self._reply(c, msg, {"UUID": self.uuid})

    def _cmd_query_version(self, c, msg, args):
        self._reply(c, msg, copy.deepcopy(self.version))

    def _cmd_query_status(self, c, msg, args):
        self._reply(c, msg, {"status": "prelaunch", "singlestep": False, "running": False})

    def _cmd_query_rx_filter(self, c, msg, args):
        name = args.get("name")
        if name is None:
            self.unnamed_queries += 1
            targets = [n for n in self.nics.values() if n.supports_rx_filter()]
        else:
            nic = self._nic_by_query_name(name)
            if nic is not None:
                nic.queries += 1
            targets = [nic] if nic else []
        if self._close_on_query is not None and (self._close_on_query == "" or
                                                 any(n.id == self._close_on_query for n in targets)):
            self._close_on_query = None
            self._close_conn(c)
            return
        held = [n for n in targets if n.id in self._hold]
        if held:
            self._held.setdefault(held[0].id, []).append((c, msg))
            return
        self._answer_rx_filter(c, msg)

    def _nic_by_query_name(self, name):
        for n in self.nics.values():
            if n.query_name == name:
                return n
        return None

    def _answer_rx_filter(self, c, msg):
        args = msg.get("arguments") or {}
        name = args.get("name")
        if name is None:
            out = []
            for n in self.nics.values():
                if n.supports_rx_filter():
                    n.armed = True
                    out.append(n.rx_filter_info())
            self._reply(c, msg, out)
            return
        nic = self._nic_by_query_name(name)
        if nic is None:
            if any(n.netdev == name for n in self.nics.values()):
                self._reply(c, msg, error=("GenericError", "net client(%s) isn't a NIC" % name))
            else:
                self._reply(c, msg, error=("GenericError", "invalid net client name: %s" % name))
            return
        if not nic.supports_rx_filter():
            self._reply(c, msg, error=("GenericError", "net client(%s) doesn't support rx-filter querying" % name))
            return
        if nic.query_error is not None:
            self._reply(c, msg, error=("GenericError", nic.query_error))
            return
        nic.armed = True
        self._reply(c, msg, [nic.rx_filter_info()])

    def _cmd_qom_get(self, c, msg, args):
        path = args.get("path", "")
        prop = args.get("property", "")
        for n in self.nics.values():
            if n.qom_path == path:
                if prop == "netdev":
                    self._reply(c, msg, n.netdev)
                elif prop == "mac":
                    self._reply(c, msg, n.mac)
                elif prop == "type":
                    self._reply(c, msg, n.model)
                else:
                    self._reply(c, msg, error=("GenericError", "Property '%s.%s' not found" % (n.model, prop)))
                return
        self._reply(c, msg, error=("DeviceNotFound", "Device '%s' not found" % path))

    def info_network(self):
        out = ""
        for n in self.nics.values():
            out += "%s: index=0,type=nic,model=%s,macaddr=%s\r\n" % (n.query_name, n.model, n.mac)
            if n.ifname:
                out += " \\ %s: index=0,type=tap,ifname=%s,script=no,downscript=no\r\n" % (n.netdev, n.ifname)
            else:
                out += " \\ %s: index=0,type=tap,fd=%d\r\n" % (n.netdev, n.fd if n.fd is not None else 33)
        return out

    def _cmd_human_monitor_command(self, c, msg, args):
        line = (args.get("command-line") or "").strip()
        if line == "info network":
            self._reply(c, msg, self.info_network())
        elif line == "info name":
            self._reply(c, msg, "%s\r\n" % self.vm_name)
        else:
            self._reply(c, msg, "unknown command: '%s'\r\n" % line.split(" ")[0])

    # ---------------------------------------------------------------- events
    def _emit(self, event, data=None):
        msg = {"event": event}
        if data is not None:
            msg["data"] = data
        msg["timestamp"] = _now_timestamp()
        delivered = 0
        for c in self._conns.values():
            if c.negotiated:  # QEMU sends events only once capabilities are negotiated
                self._queue(c, msg)
                delivered += 1
        return delivered

    def _changed(self, nic):
        """A guest changed nic's filter: QEMU emits the event only if armed, and disarms."""
        nic.changes += 1
        if not nic.armed:
            return False
        nic.armed = False
        nic.events += 1
        if not self._emit("NIC_RX_FILTER_CHANGED", nic.event_data()):
            nic.events_lost += 1
        self._cond.notify_all()
        return True

    # ---------------------------------------------------------------- test controls
    def _nic(self, nic):
        try:
            return self.nics[nic]
        except KeyError:
            raise FakeQmpError("no such NIC %r" % nic)

    def set_identity(self, name=None, uuid=None):
        """What query-name and query-uuid answer from now on (a hostile QEMU chooses both)."""
        with self._lock:
            if name is not None:
                self.vm_name = name
            if uuid is not None:
                self.uuid = uuid

    def set_filter(self, nic, **fields):
        """Changes nic's filter like a guest would (keys: main_mac, promiscuous, multicast_table, ...;
        tables in the guest's order). Emits NIC_RX_FILTER_CHANGED if armed. Returns whether it did."""
        with self._lock:
            n = self._nic(nic)
            for k, v in fields.items():
                key = _field_key(k)
                if key not in RXFILTER_FIELDS:
                    raise FakeQmpError("unknown RxFilterInfo field %r" % k)
                if key == "vlan" and v == "all" and "vlan_table" not in fields and "vlan-table" not in fields:
                    n.filter["vlan-table"] = list(range(ALL_VIDS))
                n.filter[key] = copy.deepcopy(v)
            return self._changed(n)

    def set_filter_raw(self, nic, info):
        """Replaces the whole RxFilterInfo (fields may be missing or of the wrong type on purpose)."""
        with self._lock:
            n = self._nic(nic)
            n.filter = copy.deepcopy(info)
            return self._changed(n)

    def rearm(self, nic):
        """What a query-rx-filter on *another* monitor does: re-arms nic's event (QEMU: every
        monitor gets every event and a query on any monitor re-arms the NIC)."""
        with self._lock:
            self._nic(nic).armed = True

    def set_filter_burst(self, nic, changes, pause=0.0, rearm_each=False):
        """Applies a list of field dicts one after the other (releasing the lock in between, so the
        server keeps answering). With rearm_each, another monitor re-arms the NIC after each change,
        so every change reaches the client as an event. Returns how many events were emitted."""
        emitted = 0
        for ch in changes:
            if rearm_each:
                self.rearm(nic)
            if self.set_filter(nic, **ch):
                emitted += 1
            if pause:
                time.sleep(pause)
            else:
                time.sleep(0)
        return emitted

    def get_filter(self, nic):
        with self._lock:
            return self._nic(nic).rx_filter_info()

    def reset_filters(self, emit_reset=True):
        """system_reset: every filter silently returns to its reset state; QEMU sends RESET."""
        with self._lock:
            for n in self.nics.values():
                n.reset()
            if emit_reset:
                self._emit("RESET", {"guest": False, "reason": "host-qmp-system-reset"})

    def add_nic(self, nic_id, mac, **kw):
        with self._lock:
            kw.setdefault("index", len(self.nics))
            self.nics[nic_id] = FakeNic(nic_id, mac, **kw)

    def remove_nic(self, nic, events=True):
        """device_del of a virtio NIC: two DEVICE_DELETED (backend path first, then the device)."""
        with self._lock:
            n = self.nics.pop(nic)
            if events:
                self._emit("DEVICE_DELETED", {"path": "%s/virtio-backend" % n.qom_path})
                self._emit("DEVICE_DELETED", {"device": n.id, "path": n.qom_path})

    def fail_queries(self, nic, desc):
        """A hostile monitor: named query-rx-filter of this NIC fails with this error text (None:
        answer again); nothing else changes, the NIC's event stays armed."""
        with self._lock:
            self._nic(nic).query_error = desc

    def emit_event(self, event, data=None):
        with self._lock:
            return self._emit(event, data)

    def armed(self, nic):
        with self._lock:
            return self._nic(nic).armed

    def query_count(self, nic):
        with self._lock:
            return self._nic(nic).queries

    def unnamed_query_count(self):
        with self._lock:
            return self.unnamed_queries

    def events_emitted(self, nic):
        with self._lock:
            return self._nic(nic).events

    def events_lost(self, nic):
        with self._lock:
            return self._nic(nic).events_lost

    def changes_made(self, nic):
        with self._lock:
            return self._nic(nic).changes

    def stats(self):
        with self._lock:
            return {
                "connections_total": self.connections_total,
                "connected": len(self._conns),
                "negotiated": sum(1 for c in self._conns.values() if c.negotiated),
                "negotiations_total": self.negotiations_total,
                "closed_by_peer": self.closed_by_peer,
                "unnamed_queries": self.unnamed_queries,
                "parse_errors": self.parse_errors,
                "nics": {n.id: {"queries": n.queries, "events": n.events, "events_lost": n.events_lost,
                                "changes": n.changes, "armed": n.armed,
                                "held": len(self._held.get(n.id, []))} for n in self.nics.values()},
            }

    def command_log(self, conn=None, execute=None):
        """Commands received: list of (connection serial, msg)."""
        with self._lock:
            return [(s, copy.deepcopy(m)) for (s, _, m) in self.commands
                    if (conn is None or s == conn) and
                    (execute is None or (isinstance(m, dict) and m.get("execute") == execute))]

    def current_connection(self):
        """Serial of the newest open connection, or None."""
        with self._lock:
            return max(self._conns) if self._conns else None

    def connection_count(self):
        with self._lock:
            return len(self._conns)

    def hold(self, nic):
        """Stops answering queries whose result includes nic (named, or without a name) until
        release(nic). The queries are counted when they arrive; they run (and re-arm) on release."""
        with self._lock:
            self._nic(nic)
            self._hold.add(nic)

    def held_count(self, nic):
        with self._lock:
            return len(self._held.get(nic, []))

    def release(self, nic, drop=False):
        """Answers (or with drop=True forgets) nic's held queries, with the state of now."""
        with self._lock:
            self._hold.discard(nic)
            pending = self._held.pop(nic, [])
            if not drop:
                for c, msg in pending:
                    if not c.closed:
                        self._answer_rx_filter(c, msg)
            self._cond.notify_all()
            return len(pending)

    def freeze(self):
        """A hung QEMU: commands are read but none is answered until thaw() (then in order)."""
        with self._lock:
            self._frozen = True

    def thaw(self):
        with self._lock:
            self._frozen = False
            for c in list(self._conns.values()):
                pending, c.frozen = c.frozen, []
                for msg in pending:
                    if not c.closed:
                        self._execute(c, msg)
            self._cond.notify_all()

    def frozen_count(self):
        with self._lock:
            return sum(len(c.frozen) for c in self._conns.values())

    def close_on_next_query(self, nic=None):
        """The next query-rx-filter (for nic, or any) closes the connection instead of a reply."""
        with self._lock:
            self._close_on_query = nic or ""

    def disconnect(self):
        """Closes every client connection now (the listener keeps accepting reconnects)."""
        with self._lock:
            for c in list(self._conns.values()):
                self._flush_blocking(c)
                self._close_conn(c)

    def _flush_blocking(self, c, timeout=1.0):
        end = time.monotonic() + timeout
        while c.wbuf and time.monotonic() < end and not c.closed:
            try:
                sent = c.sock.send(bytes(c.wbuf))
                del c.wbuf[:sent]
            except BlockingIOError:
                time.sleep(0.001)
            except OSError:
                return

    def send_raw(self, data, negotiated_only=False):
        """Writes raw bytes (garbage, a message split in pieces, several messages) to every client."""
        if isinstance(data, str):
            data = data.encode()
        with self._lock:
            n = 0
            for c in self._conns.values():
                if c.negotiated or not negotiated_only:
                    self._queue(c, data, raw=True)
                    n += 1
            return n

    def set_write_chunking(self, size=None, delay=0.005):
        """Sends everything in pieces of size bytes, delay seconds apart (None: whole writes)."""
        with self._lock:
            self._chunk = (int(size), float(delay)) if size else None

    # ---------------------------------------------------------------- waiting
    def wait_until(self, pred, timeout=5.0, what="condition"):
        """Waits until pred(self) (called under the lock) is true; raises TimeoutError."""
        end = time.monotonic() + timeout
        with self._cond:
            while True:
                r = pred(self)
                if r:
                    return r
                left = end - time.monotonic()
                if left <= 0:
                    raise TimeoutError("fakeqmp %s: timed out after %.1fs waiting for %s; %r" %
                                       (self.vm_name, timeout, what, self.stats()))
                self._cond.wait(min(left, 0.05))

    def wait_negotiated(self, count=1, timeout=5.0):
        """Waits until `count` capability negotiations happened in total (1 = first connect)."""
        return self.wait_until(lambda s: s.negotiations_total >= count and
                               any(c.negotiated for c in s._conns.values()),
                               timeout, "%d negotiation(s)" % count)

    def wait_connections(self, total, timeout=5.0):
        return self.wait_until(lambda s: s.connections_total >= total, timeout, "%d connection(s)" % total)

    def wait_disconnected(self, timeout=5.0):
        return self.wait_until(lambda s: not s._conns, timeout, "no client")

    def wait_queries(self, nic, count, timeout=5.0):
        return self.wait_until(lambda s: s.nics[nic].queries >= count, timeout,
                               "%d quer(ies) of %s" % (count, nic))

    def wait_unnamed_queries(self, count, timeout=5.0):
        return self.wait_until(lambda s: s.unnamed_queries >= count, timeout,
                               "%d unnamed quer(ies)" % count)

    def wait_held(self, nic, count=1, timeout=5.0):
        return self.wait_until(lambda s: len(s._held.get(nic, [])) >= count, timeout,
                               "%d held quer(ies) of %s" % (count, nic))

    def wait_frozen(self, count=1, timeout=5.0):
        return self.wait_until(lambda s: sum(len(c.frozen) for c in s._conns.values()) >= count, timeout,
                               "%d frozen command(s)" % count)

    def wait_armed(self, nic, timeout=5.0):
        return self.wait_until(lambda s: s.nics[nic].armed, timeout, "%s armed" % nic)

    def wait_command(self, execute, count=1, timeout=5.0, conn=None):
        def pred(s):
            n = sum(1 for (serial, _, m) in s.commands
                    if isinstance(m, dict) and m.get("execute") == execute and (conn is None or serial == conn))
            return n >= count
        return self.wait_until(pred, timeout, "%d %s command(s)" % (count, execute))


# -------------------------------------------------------------------- remote (in a network namespace)
_SERVE_METHODS = {n for n in dir(FakeQmp) if not n.startswith("_") and callable(getattr(FakeQmp, n))}
_SERVE_ATTRS = {"connections_total", "negotiations_total", "unnamed_queries", "closed_by_peer", "parse_errors",
                "path", "vm_name", "uuid", "version"}


def _serve(argv):
    """Child side: fakeqmp.py serve CONTROL_SOCKET AUTHKEY_HEX JSON_KWARGS"""
    from multiprocessing.connection import Listener
    control, authkey, kwargs = argv[0], bytes.fromhex(argv[1]), json.loads(argv[2])
    fake = FakeQmp(**kwargs)
    with Listener(control, family="AF_UNIX", authkey=authkey) as ls:
        conn = ls.accept()
        while True:
            try:
                req = conn.recv()
            except (EOFError, OSError):
                break
            method, args, kw = req
            if method == "__shutdown__":
                fake.stop()
                conn.send(("ok", None))
                break
            try:
                if method == "__getattr__":
                    if args[0] not in _SERVE_ATTRS:
                        raise AttributeError(args[0])
                    with fake._lock:
                        res = copy.deepcopy(getattr(fake, args[0]))
                elif method in _SERVE_METHODS:
                    res = getattr(fake, method)(*args, **kw)
                    if method in ("wait_until",):
                        res = bool(res)
                else:
                    raise AttributeError(method)
                conn.send(("ok", res))
            except BaseException as e:  # report every failure to the caller
                conn.send(("err", (type(e).__name__, str(e))))
    fake.stop()


class FakeQmpProcess:
    """FakeQmp in a child process (optionally inside a network namespace). Same methods, via RPC;
    wait_until() is not available remotely (pass no callables): use the specific wait_* helpers."""

    def __init__(self, path, netns=None, control_dir=None, python="/usr/bin/python3", **kwargs):
        key = self._prepare(path, control_dir, kwargs)
        self._spawn([python, os.path.abspath(__file__), "serve", self._control, key.hex(), json.dumps(self._kw)],
                    key, netns)

    def _prepare(self, path, control_dir, kwargs):
        """Sets path, the serve kwargs and the control socket; returns the RPC key."""
        import secrets
        self.path = path
        self._kw = dict(kwargs, path=path)
        d = control_dir or os.path.dirname(path)
        self._control = os.path.join(d, ".ctl-%s" % secrets.token_hex(4))
        return secrets.token_bytes(16)

    def _spawn(self, cmd, key, netns):
        """Starts the serving child (inside netns) and connects to its control socket."""
        import subprocess
        from multiprocessing.connection import Client
        if netns:
            cmd = ["ip", "netns", "exec", netns] + cmd
        self.proc = subprocess.Popen(cmd, stdin=subprocess.DEVNULL)
        self.pid = self.proc.pid  # ip netns exec execs: the peer's PID, as SO_PEERCRED reports it
        end = time.monotonic() + 10
        last = None
        while True:
            if self.proc.poll() is not None:
                raise FakeQmpError("fakeqmp child exited with %s" % self.proc.returncode)
            try:
                self._conn = Client(self._control, family="AF_UNIX", authkey=key)
                break
            except (FileNotFoundError, ConnectionRefusedError) as e:
                last = e
            if time.monotonic() > end:
                self.kill()
                raise FakeQmpError("fakeqmp child did not start: %r" % last)
            time.sleep(0.02)
        self._lock = threading.Lock()
        self._stopped = False

    def _call(self, method, *args, **kw):
        # wait_* run in the child with their own timeout; give the reply that plus a margin, so a
        # wedged child fails the test instead of hanging the suite.
        limit = float(kw.get("timeout", 5.0)) * float(os.environ.get("GUESTNETD_TEST_TIMEOUT_SCALE", "1")) + 30
        with self._lock:
            if self._stopped:
                raise FakeQmpError("fakeqmp stopped")
            self._conn.send((method, args, kw))
            if not self._conn.poll(limit):
                raise FakeQmpError("fakeqmp child (pid %d) did not answer %s within %.0fs" % (self.pid, method, limit))
            status, res = self._conn.recv()
        if status == "ok":
            return res
        name, text = res
        if name == "TimeoutError":
            raise TimeoutError(text)
        raise FakeQmpError("%s: %s" % (name, text))

    def __getattr__(self, name):
        if name.startswith("_"):
            raise AttributeError(name)
        if name in _SERVE_ATTRS:
            return self._call("__getattr__", name)
        if name in _SERVE_METHODS:
            return lambda *a, **kw: self._call(name, *a, **kw)
        raise AttributeError(name)

    def stop(self, unlink=True):
        """Stops the fake (socket removed) and waits for the child; kills it by PID if needed."""
        if not self._stopped:
            try:
                self._call("stop", unlink)
                self._call("__shutdown__")
            except (FakeQmpError, OSError, EOFError):
                pass
            self._stopped = True
            try:
                self._conn.close()
            except OSError:
                pass
        self.kill()

    close = stop

    def kill(self, timeout=5.0):
        if self.proc.poll() is None:
            try:
                self.proc.wait(timeout)
            except Exception:
                pass
        if self.proc.poll() is None:
            os.kill(self.pid, 15)
            try:
                self.proc.wait(timeout)
            except Exception:
                os.kill(self.pid, 9)
                self.proc.wait()
        try:
            os.unlink(self._control)
        except FileNotFoundError:
            pass

    def __enter__(self):
        return self

    def __exit__(self, *a):
        self.stop()


if __name__ == "__main__":
    if len(sys.argv) >= 2 and sys.argv[1] == "serve":
        _serve(sys.argv[2:])
    else:
        sys.stderr.write("usage: fakeqmp.py serve CONTROL AUTHKEY_HEX JSON_KWARGS\n")
        sys.exit(2)
