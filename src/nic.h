/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* nic.h: one guest NIC: its filter, host interface, and the query → worker → apply pipeline. */
#pragma once

#include <json-c/json.h>
#include <stdbool.h>
#include <stdint.h>

#include "guest.h"
#include "heldsignals.h"
#include "hostdev.h"
#include "hostsync.h"
#include "metrics.h"
#include "peerdev.h"
#include "ratelimit.h"
#include "rxfilter.h"
#include "syncjob.h"

typedef enum NicSyncState {
        NIC_SYNC_OBSERVING, /* no trust (or a tap): published, never applied */
        NIC_SYNC_PENDING, /* first query or sync not done yet */
        NIC_SYNC_IN_SYNC,
        NIC_SYNC_FAILED,
        NIC_SYNC_UNSUPPORTED, /* not virtio-net: QEMU can't report its filter */
        _NIC_SYNC_MAX,
} NicSyncState;

/* What the NIC is doing now: at most one piece of work at a time, so one NIC's work never overlaps or
 * reorders. Every change goes through nic_set_state() (nic.c), which logs it at debug level. */
typedef enum NicState {
        NIC_STATE_IDLE, /* nothing outstanding */
        NIC_STATE_DEFERRED, /* a query waits for the rate limit (defer_timer) */
        NIC_STATE_QUERYING, /* query-rx-filter sent, its reply awaited */
        NIC_STATE_DISCOVERING, /* discovery.c's chain runs, holding the reply in discovery_reply */
        NIC_STATE_PARKED, /* a job waits for room in the pool (jobqueue.c) */
        NIC_STATE_SYNCING, /* a filter or reconcile job runs on a worker */
        NIC_STATE_REVERTING, /* a revert job runs on a worker */
        _NIC_STATE_MAX,
} NicState;

typedef struct Nic {
        unsigned n_ref;
        Guest *guest; /* strong reference; the guest drops its NICs explicitly */
        Manager *manager; /* outlives every NIC: jobs complete before the manager goes */
        bool removed;
        bool published; /* announced on the bus, once discovery knows its QOM path */

        char *id;
        char *bus_path; /* its D-Bus object path, encoded on first use (bus-nic.c) */
        char *query_arguments; /* query-rx-filter's arguments as JSON, made on first use */
        char *qom_path;
        char *netdev; /* QEMU backend id from qom-get, "hostnet0" */
        char *host_interface; /* configured or discovered, NULL if unknown */
        bool host_interface_configured;
        HostDevKind host_kind;
        bool host_announced; /* logged since the last discovery */
        char *configured_mac;

        /* The state machine (loop thread only): the state, and what was asked meanwhile. */
        NicState state;
        NicState state_log_from; /* a transition whose debug line is still owed (nic.c), if ... */
        const char *state_log_why; /* ... this is set */
        bool want_query; /* refresh: query again once the current work is done */
        unsigned want_revert; /* capabilities to revert before anything else */
        uint64_t discovered_generation; /* the connection discovery last completed for, 0: never */
        uint64_t query_generation; /* the connection the outstanding query or discovery belongs to */
        json_object *discovery_reply; /* filter reply held while discovery runs */
        struct Nic *parked_next; /* in the manager's FIFO of jobs waiting for room (jobqueue.c) */
        json_object *parked_info;
        int parked_mode; /* SyncJobMode of the parked job */
        unsigned parked_caps;
        int backend_fd; /* fd=N of an fd-passed backend, -1 if none */
        PeerDeviceCache peer_cache; /* what backend_fd was verified to be (kept by the jobs) */
        HostRecordFile record_file; /* the device's ownership record, open (lent to each job) */
        SyncTiming timing; /* of the query in flight: event, query, reply (debug log) */
        uint64_t last_event_usec; /* the last NIC_RX_FILTER_CHANGED read (CLOCK_REALTIME) */
        sd_event_source *defer_timer; /* rate limit: the deferred query */
        RateLimit query_limit;

        int trust_override; /* SetTrust() at run time, -1 when not set */
        const char *next_reason; /* MacChanged reason for the next processed filter */
        bool seen; /* scratch: listed in the full reply being processed (guest.c) */

        RxFilter *filter; /* last processed filter, NULL before the first */
        HostOwnership *ownership; /* baseline and our changes on the host device, NULL until seen */
        NicSyncState sync_state;
        char *last_error;
        uint64_t changes, last_change_usec;
        uint64_t n_events, n_queries, n_jobs;
        NicMetrics metrics;

        /* Signals held while the bus lags, merged (bus-backlog.c), NULL when none; queued in the
         * manager's list of NICs to flush. */
        HeldSignals *held;
        struct Nic *held_next;
        bool held_queued;
} Nic;

/* A query can be deferred this many times in a row at most (the bucket's size): a burst of this many
 * events passes at once, a flood is paced at MaxQueriesPerSecond=. A Linux guest running a script of
 * `ip` commands fires about 40. */
#define NIC_QUERY_BURST 64

/* Lines about a NIC: GUESTNETD_GUEST=, GUESTNETD_NIC=, INTERFACE= (its host device, when known) in
 * the journal, and MESSAGE_ID= for the _id variant. */
#define log_nic_id(n, mid, level, fmt, ...)                                    \
        (void)log_fields_errno((&(const LogFields){ .guest = (n)->guest->name, \
                                       .nic = (n)->id,                         \
                                       .interface = (n)->host_interface,       \
                                       .message_id = (mid) }),                 \
                (level), 0, "guest %s nic %s: " fmt, (n)->guest->name, (n)->id, ##__VA_ARGS__)
#define log_nic(n, level, fmt, ...) log_nic_id(n, NULL, level, fmt, ##__VA_ARGS__)

int nic_new(Guest *g, const char *id, Nic **ret);
Nic *nic_ref(Nic *n);
Nic *nic_unref(Nic *n);
DEFINE_POINTER_CLEANUP_FUNC(Nic, nic_unref);

/* NIC_RX_FILTER_CHANGED: mark dirty and schedule a query (or fold into the outstanding one). */
void nic_filter_changed(Nic *n);
/* Queries and syncs again (Resync(), trust granted); reason as for MacChanged. */
void nic_resync(Nic *n, const char *reason);
/* A full query's element for this NIC: takes ownership of info; discovers the host interface when
 * needed, then syncs. reason: "resync" or "reset" ("initial" is used for a NIC seen the first time). */
void nic_process_full_reply(Nic *n, json_object *info, const char *reason);
/* Effective trust: SetTrust(), else the NIC's Trust=, the guest's Trust=, DefaultTrust=. */
unsigned nic_trust(const Nic *n);
/* Run-time trust (Nic.SetTrust): publishes it; grants sync and revocations revert, at once. */
void nic_set_trust(Nic *n, unsigned trust);
/* Undoes our host changes for the capabilities in caps (runs even after the NIC is removed). */
void nic_revert(Nic *n, unsigned caps);
/* Re-applies the last filter to a trusted macvtap, repairing changes made behind our back. Returns
 * false when there is nothing to do or work is already outstanding. */
bool nic_reconcile(Nic *n);
/* Finds the NIC's QOM path, backend and host interface (discovery.c), then calls nic_discovery_done(). */
void nic_discover(Nic *n);
void nic_discovery_done(Nic *n);
/* Drops pending work when the NIC goes (the object may live on while references remain). */
void nic_detach(Nic *n);
/* Whether its guest is connected and it is still the guest's: only then is work started for it. */
bool nic_is_live(const Nic *n);

/* For jobqueue.c: start a job now, resp. give up a parked one (the daemon is stopping). */
void nic_start_job(Nic *n, int mode, json_object *info, unsigned caps);
void nic_drop_parked_job(Nic *n);

const char *nic_sync_state_to_string(NicSyncState s);
const char *nic_state_to_string(NicState s);
