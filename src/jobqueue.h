/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* jobqueue.h: admission of sync jobs: a bound on jobs in flight and the FIFO of NICs waiting for room. */
#pragma once

#include <json-c/json.h>
#include <stdbool.h>

typedef struct Manager Manager;
typedef struct Nic Nic;

/* Bounds the jobs built at once: each holds about 5 KiB plus its reply, and a thousand guests
 * connecting together would otherwise build one per NIC in one burst. Enough to keep every worker
 * busy; the rest wait in a FIFO holding only their reply. */
#define JOBS_IN_FLIGHT_MAX 256

/* Starts n's job (nic_start_job()) when there is room and nobody waits, and returns true; else parks
 * it at the end of the FIFO (taking info and a reference to n) and returns false. */
bool job_queue_submit(Manager *m, Nic *n, int mode, json_object *info, unsigned caps);
/* Starts parked jobs, first come first served, while there is room; at shutdown all of them: reverts
 * run (they undo what we did), the rest are dropped (nic_drop_parked_job()). */
void job_queue_admit(Manager *m);
