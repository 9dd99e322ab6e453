/* nic.h: one guest NIC: its filter, host interface, and the query → worker → apply pipeline. */
#pragma once

#include <json-c/json.h>
#include <stdbool.h>
#include <stdint.h>

#include "guest.h"
#include "hostdev.h"
#include "hostsync.h"
#include "metrics.h"
#include "rxfilter.h"

typedef enum NicSyncState {
        NIC_SYNC_OBSERVING, /* no trust (or a tap): published, never applied */
        NIC_SYNC_PENDING, /* first query or sync not done yet */
        NIC_SYNC_IN_SYNC,
        NIC_SYNC_FAILED,
        NIC_SYNC_UNSUPPORTED, /* not virtio-net: QEMU can't report its filter */
        _NIC_SYNC_MAX,
} NicSyncState;

typedef struct Nic {
        unsigned n_ref;
        Guest *guest; /* strong reference; the guest drops its NICs explicitly */
        Manager *manager; /* outlives every NIC: jobs complete before the manager goes */
        bool removed;
        bool published; /* announced on the bus, once discovery knows its QOM path */

        char *id;
        char *qom_path;
        char *netdev; /* QEMU backend id from qom-get, "hostnet0" */
        char *host_interface; /* configured or discovered, NULL if unknown */
        bool host_interface_configured;
        HostDevKind host_kind;
        bool host_announced; /* logged since the last discovery */
        char *configured_mac;

        /* Pipeline state (loop thread only). busy: a query, a discovery or a job is outstanding, so
         * new events only set rerun; that is how one NIC's work never overlaps or reorders. */
        bool busy, rerun;
        bool query_in_flight; /* the outstanding work is a query-rx-filter */
        unsigned pending_revert; /* capabilities to revert before anything else */
        json_object *discovery_reply; /* filter reply held while discovery runs */
        struct Nic *parked_next; /* in the manager's FIFO of jobs waiting for room */
        json_object *parked_info;
        int parked_mode; /* SyncJobMode of the parked job */
        unsigned parked_caps;
        int backend_fd; /* fd=N of an fd-passed backend, -1 if none */
        sd_event_source *defer_timer; /* rate limit: the deferred query */
        double tokens;
        uint64_t tokens_usec;

        int trust_override; /* SetTrust() at run time, -1 when not set */
        const char *next_reason; /* MacChanged reason for the next processed filter */

        RxFilter *filter; /* last processed filter, NULL before the first */
        HostOwnership *ownership; /* baseline and our changes on the host device, NULL until seen */
        NicSyncState sync_state;
        char *last_error;
        uint64_t changes, last_change_usec;
        uint64_t n_events, n_queries, n_jobs;
        NicMetrics metrics;
} Nic;

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
/* Submits parked jobs while the pool has room; all of them (reverts run, the rest are dropped) when
 * the daemon is stopping. */
void manager_submit_parked_jobs(Manager *m);
/* Drops pending work when the NIC goes (the object may live on while references remain). */
void nic_detach(Nic *n);

const char *nic_sync_state_to_string(NicSyncState s);
