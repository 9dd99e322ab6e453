# SPDX-License-Identifier: LGPL-2.1-or-later
"""The bus stops reading us (issue 14: `throughput-observe-*` peaked at 66 MiB when dbus-daemon fell
behind). sd-bus queues every message the bus has not read, so a guest that changes its filter as fast
as its QEMU can send events, and a QEMU that floods relayed events, would grow the daemon for as long
as the bus lags. Played for real: busenv's own dbus-daemon is stopped (SIGSTOP) while a fake QEMU
changes eight NICs' filters back to back and sends NETDEV_STREAM_CONNECTED events without pause.

Shown: the daemon answers every event meanwhile (its queries go to QEMU, not to the bus), its memory
stays within a bound that the unheld queue exceeds many times over (printed: the change sets and
events it would have queued), its log says when it starts holding and how much it merged and dropped;
once dbus-daemon runs again, an unprivileged subscriber gets, for every NIC, a last RxFilterChanged
that carries the NIC's final filter and names every field that changed, and the properties equal it.
"""

import os
import signal
import time

from busenv import NIC_IFACE, Subscriber, bare_bus_env, nic_path
from e2e_helpers import diff, get_all, props_from_filter
from gnhelpers import guest_dropin, poll, sanitized
from hostsync_helpers import start_bus_daemon

assert bare_bus_env  # fixture, used by name

N_NICS = 8
FLOOD_S = 6.0
N_EVENTS = 20000
RSS_BOUND_MIB = 8


def status_kib(pid, key):
    with open("/proc/%d/status" % pid) as f:
        for line in f:
            if line.startswith(key + ":"):
                return int(line.split()[1])
    raise KeyError(key)


def change(n, i):
    return {"main_mac": "52:54:00:%02x:%02x:%02x" % (n, i >> 8 & 0xFF, i & 0xFF), "promiscuous": i % 2 == 0,
            "multicast_table": ["01:00:5e:%02x:%02x:%02x" % (n, i >> 8 & 0xFF, (i + k) & 0xFF) for k in range(8)]}


def test_a_stalled_bus_holds_nic_signals_within_a_bound(fakes, daemons, bare_bus_env):
    env = bare_bus_env
    nics = ["net%d" % i for i in range(N_NICS)]
    fake = fakes("vm1", nics=[{"id": nic, "mac": "52:54:00:00:10:%02x" % i} for i, nic in enumerate(nics)])
    d = start_bus_daemon(daemons, env, log_level="info",
                         config="[Daemon]\nMaxQueriesPerSecond=0\nReconcileIntervalSec=0\n",
                         guests={"vm1": guest_dropin("vm1", fake.path, "none")})
    for nic in nics:
        fake.wait_armed(nic, timeout=15)
        poll(lambda: (get_all(env, nic_path("vm1", nic)) or {}).get("Mac") == fake.get_filter(nic)["main-mac"],
             15, what="%s published" % nic)
    sub = Subscriber(env)
    bus_pid = env.bus.pid
    queries0 = sum(fake.query_count(nic) for nic in nics)
    rss0, hwm0 = status_kib(d.pid, "VmRSS"), status_kib(d.pid, "VmHWM")
    rss_max = rss0
    os.kill(bus_pid, signal.SIGSTOP)
    try:
        # The events first: they fill the socket (sd-bus asks the kernel for 8 MiB of send buffer), then
        # sd-bus's own queue, so that the changes that follow all meet a bus that lags.
        for k in range(N_EVENTS):
            fake.emit_event("NETDEV_STREAM_CONNECTED", {"netdev-id": "st%d" % k, "addr": {"type": "unix",
                                                                                           "path": "/x" * 50}})
        d.wait_log(r"The bus is not reading our messages \(\d+ queued\)", timeout=30)
        end, i = time.monotonic() + FLOOD_S, 0
        while time.monotonic() < end:
            for n, nic in enumerate(nics):
                fake.set_filter_burst(nic, [change(n, i)], rearm_each=True)
            i += 1
            rss_max = max(rss_max, status_kib(d.pid, "VmRSS"))
        for nic in nics:  # every event answered: the daemon kept working with the bus stopped
            fake.wait_armed(nic, timeout=30)
        time.sleep(0.5)  # the last replies become change sets
        rss_max = max(rss_max, status_kib(d.pid, "VmRSS"))
        sets = sum(fake.query_count(nic) for nic in nics) - queries0
        grew = (rss_max - rss0) / 1024
        print("bus stopped: %d change sets (%d filter changes) and %d NetEvents while it lagged; VmRSS %d -> max "
              "%d KiB (%+.1f MiB), VmHWM %d -> %d KiB" % (sets, i * N_NICS, N_EVENTS, rss0, rss_max, grew, hwm0,
                                                         status_kib(d.pid, "VmHWM")))
        # Unheld, each change set queues two signals with the whole filter, each NetEvent one: many
        # times the bound (asserted so that the bound means something).
        assert sets >= 2000, "only %d change sets: the flood did not flood" % sets
        if not sanitized(d.pid):
            assert grew < RSS_BOUND_MIB, "VmRSS grew by %.1f MiB while the bus was stopped" % grew
    finally:
        os.kill(bus_pid, signal.SIGCONT)

    caught_up = d.wait_log(r"The bus has caught up: (\d+) NIC signal sets were merged, (\d+) NetEvent signals "
                           r"dropped", timeout=30)
    merged, dropped = int(caught_up[0].group(1)), int(caught_up[0].group(2))
    assert merged >= sets and dropped > 0, caught_up[0].group(0)
    try:
        for n, nic in enumerate(nics):
            final, path = fake.get_filter(nic), nic_path("vm1", nic)
            want = props_from_filter(final)

            def last_rx_filter_changed():
                sub.drain(0.2)
                rx = [s for s in sub.seen if s["path"] == path and s["member"] == "RxFilterChanged"]
                return rx[-1] if rx and not diff(rx[-1]["args"][0], want) else None
            rx = poll(last_rx_filter_changed, 30, what="%s: a last RxFilterChanged with the final filter" % nic)
            assert {"Mac", "Promiscuous", "MulticastTable"} <= set(rx["args"][1]), rx["args"][1]
            assert diff(get_all(env, path), want) == {}
            macs = [s["args"] for s in sub.seen if s["path"] == path and s["member"] == "MacChanged"]
            assert macs and macs[-1][1] == final["main-mac"].lower(), macs[-3:]
    finally:
        sub.close()
    assert d.running()
