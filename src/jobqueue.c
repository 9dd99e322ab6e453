/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* jobqueue.c: the FIFO of NICs whose sync job waits for room in the worker pool. */
#include "jobqueue.h"

#include "manager.h"
#include "nic.h"
#include "syncjob.h"

static bool job_queue_has_room(Manager *m) {
        return m->shutting_down || worker_pool_outstanding(m->workers) < JOBS_IN_FLIGHT_MAX;
}

bool job_queue_submit(Manager *m, Nic *n, int mode, json_object *info, unsigned caps) {
        /* First come, first served: with others waiting, wait behind them. */
        if (!m->parked_head && job_queue_has_room(m)) {
                nic_start_job(n, mode, info, caps);
                return true;
        }
        n->parked_mode = mode;
        n->parked_info = info;
        n->parked_caps = caps;
        n->parked_next = NULL;
        nic_ref(n);
        if (m->parked_tail)
                m->parked_tail->parked_next = n;
        else
                m->parked_head = n;
        m->parked_tail = n;
        return false;
}

void job_queue_admit(Manager *m) {
        while (m->parked_head && job_queue_has_room(m)) {
                Nic *n = m->parked_head;
                m->parked_head = n->parked_next;
                if (!m->parked_head)
                        m->parked_tail = NULL;
                n->parked_next = NULL;

                if (n->parked_mode == SYNC_JOB_REVERT || (!m->shutting_down && !n->removed))
                        nic_start_job(n, n->parked_mode, TAKE_PTR(n->parked_info), n->parked_caps);
                else
                        nic_drop_parked_job(n);
                nic_unref(n);
        }
}
