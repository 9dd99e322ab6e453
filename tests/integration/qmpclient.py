# SPDX-License-Identifier: LGPL-2.1-or-later
"""qmpclient: a tiny blocking QMP client used to check the fake peer (and compare it with QEMU)."""

import json
import socket
import time


class QmpClient:
    def __init__(self, path, timeout=5.0, negotiate=True):
        self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        self.sock.settimeout(timeout)
        end = time.monotonic() + timeout
        while True:
            try:
                self.sock.connect(path)
                break
            except (FileNotFoundError, ConnectionRefusedError):
                if time.monotonic() > end:
                    raise
                time.sleep(0.02)
        self.buf = b""
        self.events = []
        self._id = 0
        self.greeting = self.recv()
        if negotiate:
            r = self.cmd("qmp_capabilities")
            assert r == {"return": {}, "id": r["id"]}, r

    def close(self):
        self.sock.close()

    def __enter__(self):
        return self

    def __exit__(self, *a):
        self.close()

    def recv_raw_line(self):
        while b"\n" not in self.buf:
            d = self.sock.recv(65536)
            if not d:
                raise EOFError("QMP peer closed the connection")
            self.buf += d
        line, self.buf = self.buf.split(b"\n", 1)
        return line + b"\n"

    def recv(self):
        while True:
            line = self.recv_raw_line().strip()
            if line:
                return json.loads(line)

    def send(self, obj):
        self.sock.sendall(obj if isinstance(obj, bytes) else json.dumps(obj).encode() + b"\n")

    def cmd(self, execute, arguments=None, id=None):
        """Sends a command and returns its reply (events seen meanwhile go to self.events)."""
        self._id += 1
        mid = id if id is not None else "c%d" % self._id
        msg = {"execute": execute, "id": mid}
        if arguments is not None:
            msg["arguments"] = arguments
        self.send(msg)
        while True:
            r = self.recv()
            if "event" in r:
                self.events.append(r)
                continue
            return r

    def wait_event(self, name, timeout=5.0):
        for i, e in enumerate(self.events):
            if e["event"] == name:
                return self.events.pop(i)
        end = time.monotonic() + timeout
        while time.monotonic() < end:
            self.sock.settimeout(max(0.01, end - time.monotonic()))
            try:
                r = self.recv()
            except socket.timeout:
                break
            if r.get("event") == name:
                return r
            self.events.append(r)
        raise TimeoutError("no %s event within %.1fs" % (name, timeout))

    def no_event(self, name, wait=0.2):
        """True if no `name` event arrives within `wait` seconds (used only to test the fake)."""
        try:
            self.wait_event(name, wait)
            return False
        except TimeoutError:
            return True
