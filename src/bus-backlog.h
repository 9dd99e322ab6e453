/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* bus-backlog.h: what the daemon says on the bus while the bus is not reading it. */
#pragma once

#include <stdbool.h>
#include <stdint.h>
#include <systemd/sd-event.h>

typedef struct Guest Guest;
typedef struct Manager Manager;
typedef struct Nic Nic;

/* Messages queued in sd-bus (written to no socket yet): from HIGH on the bus lags, below LOW it has
 * caught up. A NIC's held set goes out as a handful of messages (two PropertiesChanged, RxFilterChanged,
 * MacChanged, one HostSyncFailed per failed attribute, or one InterfacesAdded/Removed more). */
#define BUS_BACKLOG_HIGH 256
#define BUS_BACKLOG_LOW  64
/* How often the held sets are tried again while the bus lags. */
#define BUS_BACKLOG_RETRY_USEC 10000

typedef struct BusBacklog {
        bool active; /* the bus lags: NIC signals are held, NetEvents dropped */
        Nic *head, *tail; /* NICs with held signals, the first held first (one reference each) */
        sd_event_source *timer; /* armed while NICs are held or the bus lags */
        uint64_t n_sets, n_dropped, n_forgotten; /* in this lag: sets held, NetEvents dropped, NIC
                                                  * objects that came and went unannounced */
} BusBacklog;

/* Whether the bus lags now (loop thread; cheap: a counter of sd-bus). Says so in the log when it
 * starts and when it ends. */
bool bus_backlog_check(Manager *m);
/* n has held signals (n->held): they go out, oldest NIC first, once the bus has caught up. */
void bus_backlog_hold(Manager *m, Nic *n);
/* n's held signals are void (an object that came and went while the bus lagged): dropped. */
void bus_backlog_forget(Manager *m, Nic *n);
/* A guest holds property changes (g->held): they go out after the NICs'. */
void bus_backlog_hold_guest(Manager *m);
/* Whether anything is held: then what is said now is held too, behind it (nothing overtakes). */
bool bus_backlog_pending(const Manager *m);
/* The guest's object goes: its NICs' held signals go out now, lagging or not (their
 * InterfacesRemoved before the guest's), its own are dropped. */
void bus_backlog_flush_guest(Manager *m, Guest *g);
/* A NetEvent not sent because the bus lags. */
void bus_backlog_count_dropped(Manager *m);
/* Lets go of the held NICs (their signals are not sent) and of the timer. */
void bus_backlog_done(Manager *m);

/* bus-nic.c, bus-guest.c: send what the object holds (merged) and forget it. */
void bus_nic_flush_held(Nic *n);
void bus_guest_flush_held(Guest *g);
