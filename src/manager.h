/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* manager.h: the guest registry and guest discovery (drop-ins, the watched QMP directory). */
#pragma once

#include <stddef.h>
#include <stdint.h>
#include <systemd/sd-event.h>

#include "bus-backlog.h"
#include "config.h"
#include "hostclaim.h"
#include "hostdev.h"
#include "hostsync.h"
#include "strmap.h"
#include "worker.h"

typedef struct Guest Guest;
typedef struct Nic Nic;
typedef enum GuestSource GuestSource;

typedef struct sd_bus sd_bus;

typedef struct Manager {
        sd_event *event;
        sd_bus *bus; /* NULL when not connected */
        DaemonConfig config;
        char *guests_dir;
        WorkerPool *workers;
        HostContext *host; /* the daemon's own network namespace (its identity) */
        HostNamespace *host_ns; /* the same, for jobs: sockets lent to one job at a time */
        HostClaims *claims; /* which NIC drives which host device */

        Guest *guests; /* list, attach order */
        StrMap guests_by_name; /* keys are the guests' own names */
        size_t n_guests;

        sd_event_source *qmp_dir_watch;
        sd_event_source *reconcile_timer; /* armed only while some NIC is trusted */
        HostStateDir *baselines; /* RuntimeDirectory=/baselines */
        /* NICs whose job waits for room in the pool (jobqueue.c): a connect burst of thousands of NICs
         * would otherwise hold a SyncJob each at once. */
        Nic *parked_head, *parked_tail;
        /* Finished SyncJobs kept for the next (nic.c): one is 7 KiB, and allocating it per change made
         * malloc consolidate its small free chunks each time. Loop thread only. */
        WorkerJob *spare_jobs;
        unsigned n_spare_jobs;
        bool shutting_down; /* guests keep running without us: nothing is reverted */
        uint64_t clock_override_usec; /* tests: a controllable CLOCK_MONOTONIC for rate limits; 0: real */
        uint64_t n_queries_deferred; /* by MaxQueriesPerSecond= (metrics) */
        BusBacklog backlog; /* signals held while the bus lags (bus-backlog.c) */
} Manager;

/* Takes over config (the caller's copy is reset). */
int manager_new(sd_event *event, DaemonConfig *config, const char *guests_dir, Manager **ret);
/* Detaches every guest, cancels pending work, frees. Accepts NULL. */
Manager *manager_free(Manager *m);
DEFINE_POINTER_CLEANUP_FUNC(Manager, manager_free);

/* Loads the drop-ins, starts watching the QMP directory, attaches what is there. */
int manager_start(Manager *m);

Guest *manager_find_guest(Manager *m, const char *name);
/* CLOCK_MONOTONIC in µs, as the rate limits see it. */
uint64_t manager_now(const Manager *m);
/* Whether path is a socket of the watched QMP directory (its appearance is seen through inotify). */
bool manager_watches_socket(Manager *m, const char *path);
/* Creates and connects a guest. -EEXIST if a guest of that name is attached. cfg may be NULL. */
int manager_attach_guest(Manager *m, const char *name, const char *qmp_socket, GuestSource source,
        const GuestConfig *cfg, Guest **ret);
/* Detaches a guest and (unless the daemon is shutting down) reverts our changes on its devices. */
void manager_detach_guest(Manager *m, Guest *g);
/* Arms the reconcile timer when a NIC is trusted, disarms it when none is: no wakeups for nothing.
 * The scan of every NIC is for trust changes; a sync of a trusted NIC just arms it. */
void manager_reconcile_update(Manager *m);
void manager_reconcile_arm(Manager *m);
