/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* syncjob.h: one unit of blocking work for one NIC, run on a worker: parse + diff + apply, or revert. */
#pragma once

#include <json-c/json.h>
#include <net/if.h>
#include <stdbool.h>
#include <stdint.h>
#include <sys/types.h>

#include "hostclaim.h"
#include "hostdev.h"
#include "hostsync.h"
#include "peerdev.h"
#include "rxfilter.h"
#include "worker.h"

typedef enum SyncJobMode {
        SYNC_JOB_FILTER, /* a query-rx-filter reply: validate, diff, apply */
        SYNC_JOB_RECONCILE, /* the last known filter again: repair what changed behind our back */
        SYNC_JOB_REVERT, /* undo our changes for some capabilities */
} SyncJobMode;

typedef enum SyncOutcome {
        SYNC_OBSERVED, /* published, host not touched (untrusted, tap, unknown device) */
        SYNC_APPLIED, /* the host device matches what trust allows */
        SYNC_PARTIAL, /* some attributes failed */
        SYNC_FAILED,
        _SYNC_OUTCOME_MAX,
} SyncOutcome;

const char *sync_outcome_to_string(SyncOutcome o);

/* When a change went through the daemon (CLOCK_REALTIME µs, as QEMU stamps its events; 0: not
 * known): the benchmarks split the time from a guest's event to the host into QEMU's answer and ours.
 * The debug line also says when the loop thread took the result ("done", before the signals). */
typedef struct SyncTiming {
        uint64_t event; /* the NIC_RX_FILTER_CHANGED the query answers (0: asked for without one) */
        uint64_t query; /* query-rx-filter sent */
        uint64_t reply; /* its reply read */
        uint64_t start; /* a worker took the job */
        uint64_t parsed; /* the filter read from the reply (worker) */
        uint64_t verified; /* the device QEMU holds found, before it is read (worker) */
        uint64_t read; /* the device read (worker) */
        uint64_t apply; /* the change's first call to the host (worker) */
        uint64_t host; /* the host change done (worker), 0 if nothing was changed */
} SyncTiming;

/* Everything the worker reads is copied in here by the loop thread; everything it produces goes out
 * here. The worker never touches a Nic or Guest. */
typedef struct SyncJob {
        WorkerJob job;
        void *owner; /* the loop thread's reference (a Nic), untouched by the worker */
        SyncJobMode mode;

        /* Inputs. */
        json_object *info; /* FILTER: the RxFilterInfo, exclusively owned */
        bool have_previous;
        RxFilter previous; /* FILTER: last processed filter; RECONCILE: the filter to apply */
        unsigned trust; /* FILTER/RECONCILE: capabilities to apply; REVERT: to revert */
        VlanPolicy vlan_policy;
        UnicastPolicy unicast_policy;
        HostNamespace *netns; /* where the device is (a reference): the guest's namespace, or ours */
        HostContext *host; /* borrowed from netns while the job runs */
        HostStateDir *state_dir; /* persisted ownership, or NULL */
        char ifname[IF_NAMESIZE]; /* configured, or reported by QEMU (to verify); empty: unknown */
        bool ifname_configured; /* by the operator (drop-in, AttachGuest): needs no verification */
        int backend_fd; /* fd=N QEMU reports for its backend, -1 if none */
        PeerDeviceCache peer_cache; /* in and out: what backend_fd was found to be before */
        pid_t peer_pid; /* the QEMU at the other end of the socket (SO_PEERCRED) */
        PeerFdTable *peer_fds; /* its fd table (a reference), or NULL: through /proc/PID/fd/N */
        HostClaims *claims; /* which NIC drives which device, or NULL */
        const char *guest_name, *nic_id; /* borrowed (immutable while the job holds its NIC) */
        const char *reason; /* FILTER: what MacChanged will say */
        SyncTiming timing; /* in: event, query, reply; out: start, host */
        bool have_ownership;
        HostOwnership ownership;
        HostRecordFile record_file; /* in and out: the NIC's open record, lent to the job */
        /* Guard: the job acts only while *generation_now == generation (the guest's connection). */
        const _Atomic uint64_t *generation_now;
        uint64_t generation;

        /* Outputs. */
        char *parse_error;
        RxFilter filter;
        unsigned changed; /* RxFilterField bits vs previous */
        PeerDevice verified; /* the device QEMU holds, when not configured */
        bool verified_cached; /* verified came from peer_cache (the fd is the same open node) */
        bool have_link;
        HostLinkState link;
        bool ownership_changed;
        int persist_error; /* saving or removing the record failed (negative errno), 0 if not */
        SyncOutcome outcome;
        bool stale;
        char error[256]; /* first failure, for LastError */
        HostApplyResult apply;
        unsigned attempted; /* bit i: host_attributes[i] was changed or tried (metrics) */
} SyncJob;

void sync_job_run(WorkerJob *job);
