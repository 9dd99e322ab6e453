/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* guest.h: one QEMU guest: its QMP connection, reconnects, discovery and its NICs. */
#pragma once

#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>
#include <systemd/sd-event.h>

#include "config.h"
#include "heldsignals.h"
#include "hostdev.h"
#include "log.h"
#include "message-ids.h"
#include "peerdev.h"
#include "qmp.h"
#include "ratelimit.h"
#include "strmap.h"

typedef struct Manager Manager;
typedef struct Nic Nic;

/* The guest's connection. Every change goes through guest_set_state() (guest.c), which logs it at
 * debug level and publishes State. On the bus NEGOTIATING and READY both read "connected". */
typedef enum GuestState {
        GUEST_STATE_CONNECTING, /* socket connecting, greeting and capabilities */
        GUEST_STATE_NEGOTIATING, /* monitor ready; the first full query-rx-filter is outstanding */
        GUEST_STATE_READY, /* NICs known */
        GUEST_STATE_DISCONNECTED, /* lost or not up yet: reconnecting with backoff */
        _GUEST_STATE_MAX,
} GuestState;

enum GuestSource {
        GUEST_SOURCE_CONFIG, /* guests.d drop-in */
        GUEST_SOURCE_DIRECTORY, /* NAME.sock in the watched QMP directory */
        GUEST_SOURCE_BUS, /* Manager.AttachGuest */
};
typedef enum GuestSource GuestSource;

#define GUEST_RECONNECT_MIN_USEC (100 * 1000ULL)
#define GUEST_RECONNECT_MAX_USEC (10 * 1000000ULL)
/* A full query that failed or timed out is retried with backoff between these. */
#define GUEST_FULL_QUERY_RETRY_MIN_USEC (100 * 1000ULL)
#define GUEST_FULL_QUERY_RETRY_MAX_USEC (10 * 1000000ULL)

typedef struct Guest {
        unsigned n_ref;
        Manager *manager; /* NULL once detached */
        struct Guest *prev, *next;

        char *name;
        char *qmp_socket;
        GuestSource source;
        GuestConfig *config; /* own copy of the drop-in's NIC settings, or NULL */

        QmpClient *qmp;
        GuestState state;
        HeldSignals *held; /* property changes held while the bus lags (bus-backlog.c), or NULL */
        /* Bumped on every disconnect; jobs carry the value they started with and drop their result if
         * it moved. Atomic because workers read it. */
        _Atomic uint64_t generation;

        char *uuid, *qemu_name, *qemu_version;
        HostNamespace *netns; /* where its host devices live; NULL: the daemon's own namespace */
        PeerFdTable *peer_fds; /* the connected QEMU's fd table, or NULL (jobs go through the PID) */

        Nic **nics; /* discovery order */
        size_t n_nics;
        StrMap nics_by_id, nics_by_qom_path; /* keys are the NICs' own strings */
        unsigned n_nics_working; /* NICs (removed ones too) not IDLE: a revert may still need netns */

        sd_event_source *reconnect_timer;
        uint64_t backoff_usec;

        /* The full query-rx-filter: at most one outstanding; what is asked meanwhile (RESET floods,
         * Resync storms, unknown-NIC events) folds into one follow-up with the strongest reason. */
        bool full_query_in_flight;
        const char *full_query_pending; /* reason of the follow-up, NULL: none */
        sd_event_source *full_query_timer; /* retry backoff or rate limit */
        bool full_query_token_held; /* the timer is the rate limit's: its token is spent, send when it fires
                                     */
        uint64_t full_query_backoff_usec;
        RateLimit full_query_limit;
        RateLimit net_event_limit; /* relayed events (NetEvent): dropped past it */
        uint64_t n_net_events_relayed, n_net_events_dropped;
        bool net_events_dropping; /* said once per run of drops */
        uint64_t net_events_last_drop_usec; /* a run of drops ends a second after its last one */
        uint64_t query_timeout_usec; /* for the full query; 0: QMP_TIMEOUT_DEFAULT (tests shorten it) */
        bool full_query_capped_logged;
        uint64_t n_connects; /* connections established (metrics) */
        bool waiting_for_socket; /* no polling: the QMP directory watch calls guest_socket_appeared() */
} Guest;

/* Lines about a guest: GUESTNETD_GUEST= in the journal, and MESSAGE_ID= for the _id variant. */
#define log_guest_full(g, id, level, error, fmt, ...)                                                      \
        log_fields_errno((&(const LogFields){ .guest = (g)->name, .message_id = (id) }), (level), (error), \
                "guest %s: " fmt, (g)->name, ##__VA_ARGS__)
#define log_guest(g, level, fmt, ...)              (void)log_guest_full(g, NULL, level, 0, fmt, ##__VA_ARGS__)
#define log_guest_id(g, id, level, fmt, ...)       (void)log_guest_full(g, id, level, 0, fmt, ##__VA_ARGS__)
#define log_guest_errno(g, level, error, fmt, ...) log_guest_full(g, NULL, level, error, fmt, ##__VA_ARGS__)

int guest_new(Manager *m, const char *name, const char *qmp_socket, GuestSource source,
        const GuestConfig *cfg, Guest **ret);
Guest *guest_ref(Guest *g);
Guest *guest_unref(Guest *g);
DEFINE_POINTER_CLEANUP_FUNC(Guest, guest_unref);

/* Starts connecting (and reconnecting with backoff). */
int guest_start(Guest *g);
/* Closes the connection, drops the NICs and timers: the guest is detached. revert: undo our host
 * changes on its devices (not at daemon shutdown: the guest keeps running without us). */
void guest_stop(Guest *g, bool revert);
/* The guest's socket appeared in the watched QMP directory: connect now if we were waiting for it. */
void guest_socket_appeared(Guest *g);

Nic *guest_find_nic(Guest *g, const char *id);
Nic *guest_find_nic_by_qom_path(Guest *g, const char *qom_path);
/* Drops a NIC (unplugged, gone); revert: undo our changes on its host device. */
void guest_remove_nic(Guest *g, Nic *n, bool revert);
/* Keeps the QOM path index current when discovery finds a NIC's real path. */
int guest_set_nic_qom_path(Guest *g, Nic *n, const char *qom_path);

/* A query-rx-filter without a name: finds every NIC, re-arms their events and syncs them; reason
 * ("guest", "resync", "reset") is what MacChanged will say. Coalesced (one outstanding, one follow-up),
 * rate-limited like a NIC's queries, retried with backoff when it fails. -ENOTCONN unless connected. */
int guest_query_all_nics(Guest *g, const char *reason);
/* Connected: the monitor is ready and the guest attached (NEGOTIATING or READY). */
bool guest_is_connected(const Guest *g);
/* A NIC of g went idle: a stopped guest releases its namespace once no NIC works any more. */
void guest_nic_idle(Guest *g);
/* Trust mask for a NIC of this guest: the NIC's Trust=, else the guest's, else DefaultTrust=. */
unsigned guest_nic_trust(Guest *g, const char *nic_id);

/* Dispatches a QMP event through the sorted table in qmp-events.c. */
void qmp_event_dispatch(Guest *g, const char *event, json_object *data, uint64_t timestamp_usec);

typedef void (*qmp_event_func_t)(Guest *g, const char *event, json_object *data, uint64_t timestamp_usec);
typedef struct QmpEventHandler {
        const char *name;
        qmp_event_func_t func;
} QmpEventHandler;
/* The table, exposed so a test can check it is sorted (bsearch depends on it). */
const QmpEventHandler *qmp_event_table(size_t *ret_n);

const char *guest_state_to_string(GuestState s);
/* The State property: connecting, connected, disconnected. */
const char *guest_state_to_bus_string(GuestState s);
