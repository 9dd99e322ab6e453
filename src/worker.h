/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* worker.h: thread pool for blocking work; results return to the loop thread via a queue + eventfd. */
#pragma once

#include <stdbool.h>
#include <systemd/sd-event.h>

#include "cleanup.h"

typedef struct WorkerPool WorkerPool;
typedef struct WorkerJob WorkerJob;

/* Embed in a job struct. run() executes on a worker thread and must not touch loop-owned state;
 * complete() executes on the loop thread, exactly once per submitted job, with error 0 after run(),
 * or -ECANCELED if the pool shut down before the job ran; complete() owns and frees the job.
 *
 * Ordering: jobs start in submission order. Serializing jobs of one NIC is the submitter's business:
 * a NIC has at most one job outstanding (see nic.c), so its jobs can neither overlap nor reorder. */
struct WorkerJob {
        void (*run)(WorkerJob *job);
        void (*complete)(WorkerJob *job, int error);
        bool run_at_shutdown; /* still queued at shutdown: run it (on the freeing thread), don't cancel */
        WorkerJob *next;
};

/* n_threads 0 = number of online CPUs. */
int worker_pool_new(sd_event *event, unsigned n_threads, WorkerPool **ret);
/* Queued jobs are completed with -ECANCELED (or run first if run_at_shutdown), running ones are waited
 * for and completed normally, threads joined, the eventfd closed. Accepts NULL. */
WorkerPool *worker_pool_free(WorkerPool *p);
DEFINE_POINTER_CLEANUP_FUNC(WorkerPool, worker_pool_free);

int worker_pool_submit(WorkerPool *p, WorkerJob *job);
unsigned worker_pool_threads(const WorkerPool *p);
/* Jobs submitted and not yet completed (queued, running or awaiting completion). */
unsigned worker_pool_outstanding(const WorkerPool *p);
