/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* worker.c: a fixed pool of threads taking jobs from one FIFO; a completion FIFO drained by sd-event. */
#include "worker.h"

#include <malloc.h>
#include <pthread.h>
#include <signal.h>
#include <stdbool.h>
#include <stdint.h>
#include <string.h>
#include <sys/eventfd.h>

#include "log.h"
#include "schedslice.h"

#define WORKER_TRIM_AFTER 256 /* jobs outstanding at once that make an idle pool trim the heap */
/* At most one trim a second: under steady load the pool empties many times a second, and every trim
 * returns pages with madvise(), a TLB shootdown on every CPU (3.5 % of the daemon's CPU with 256
 * busy trusted NICs). */
#define WORKER_TRIM_INTERVAL_USEC (1000 * 1000)

typedef struct JobQueue {
        WorkerJob *head, *tail;
} JobQueue;

struct WorkerPool {
        pthread_mutex_t lock;
        pthread_cond_t wakeup;
        JobQueue queued; /* waiting for a thread */
        JobQueue completed; /* run, waiting for the loop thread */
        bool stopping;

        pthread_t *threads;
        unsigned n_threads;
        unsigned outstanding; /* loop thread only */
        unsigned peak_outstanding; /* since the pool was last idle */
        uint64_t last_trim_usec; /* CLOCK_MONOTONIC */

        int completion_fd; /* eventfd: written when `completed` becomes non-empty */
        sd_event_source *completion_source;
};

static void queue_push(JobQueue *q, WorkerJob *job) {
        job->next = NULL;
        if (q->tail)
                q->tail->next = job;
        else
                q->head = job;
        q->tail = job;
}

static WorkerJob *queue_pop(JobQueue *q) {
        WorkerJob *job = q->head;
        if (job) {
                q->head = job->next;
                if (!q->head)
                        q->tail = NULL;
                job->next = NULL;
        }
        return job;
}

static void *worker_main(void *userdata) {
        WorkerPool *p = userdata;

        /* Inherited from the loop thread, unless the operator set reset-on-fork: then asked for again. */
        (void)sched_slice_apply_to_thread();
        pthread_mutex_lock(&p->lock);
        for (;;) {
                while (!p->queued.head && !p->stopping)
                        pthread_cond_wait(&p->wakeup, &p->lock);
                if (p->stopping)
                        break;

                WorkerJob *job = queue_pop(&p->queued);
                pthread_mutex_unlock(&p->lock);

                job->run(job);

                pthread_mutex_lock(&p->lock);
                bool was_empty = !p->completed.head;
                queue_push(&p->completed, job);
                if (was_empty) {
                        /* One eventfd write per batch: the loop drains everything queued so far. Written
                         * without the lock (the loop takes it to drain): if the loop drained this job
                         * before the write, the write only costs it a wakeup that finds nothing. */
                        pthread_mutex_unlock(&p->lock);
                        uint64_t one = 1;
                        (void)!write(p->completion_fd, &one, sizeof(one));
                        pthread_mutex_lock(&p->lock);
                }
        }
        pthread_mutex_unlock(&p->lock);
        return NULL;
}

static void drain_completions(WorkerPool *p) {
        uint64_t counter;
        (void)!read(p->completion_fd, &counter, sizeof(counter));

        pthread_mutex_lock(&p->lock);
        JobQueue done = p->completed;
        p->completed = (JobQueue){ 0 };
        pthread_mutex_unlock(&p->lock);

        for (WorkerJob *job; (job = queue_pop(&done));) {
                p->outstanding--;
                job->complete(job, 0);
        }

        /* After a burst (every NIC of a thousand guests syncing at connect), the heap keeps the pages
         * the jobs used; hand them back once the pool is idle again. */
        uint64_t now;
        if (p->outstanding == 0 && p->peak_outstanding >= WORKER_TRIM_AFTER &&
                sd_event_now(sd_event_source_get_event(p->completion_source), CLOCK_MONOTONIC, &now) >= 0 &&
                now - p->last_trim_usec >= WORKER_TRIM_INTERVAL_USEC) {
                p->peak_outstanding = 0;
                p->last_trim_usec = now;
                (void)malloc_trim(0);
        }
}

static int on_completion(sd_event_source *s, int fd, uint32_t revents, void *userdata) {
        drain_completions(userdata);
        return 0;
}

int worker_pool_new(sd_event *event, unsigned n_threads, WorkerPool **ret) {
        _cleanup_(worker_pool_freep) WorkerPool *p = NULL;
        int r;

        if (n_threads == 0) {
                long n = sysconf(_SC_NPROCESSORS_ONLN);
                n_threads = n > 0 ? (unsigned)n : 1;
        }

        p = calloc(1, sizeof(WorkerPool));
        if (!p)
                return -ENOMEM;
        pthread_mutex_init(&p->lock, NULL);
        pthread_cond_init(&p->wakeup, NULL);
        p->completion_fd = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
        if (p->completion_fd < 0)
                return -errno;
        r = sd_event_add_io(event, &p->completion_source, p->completion_fd, EPOLLIN, on_completion, p);
        if (r < 0)
                return r;

        p->threads = calloc(n_threads, sizeof(pthread_t));
        if (!p->threads)
                return -ENOMEM;

        /* Workers never handle signals: the loop thread owns them through sd-event. */
        sigset_t all, saved;
        sigfillset(&all);
        pthread_sigmask(SIG_BLOCK, &all, &saved);
        for (; p->n_threads < n_threads; p->n_threads++) {
                r = -pthread_create(&p->threads[p->n_threads], NULL, worker_main, p);
                if (r < 0)
                        break;
                /* What `top -H` and /proc/PID/task/TID/comm show for a worker. */
                (void)pthread_setname_np(p->threads[p->n_threads], "gnd-worker");
        }
        pthread_sigmask(SIG_SETMASK, &saved, NULL);
        if (r < 0)
                return r;

        *ret = TAKE_PTR(p);
        return 0;
}

WorkerPool *worker_pool_free(WorkerPool *p) {
        if (!p)
                return NULL;

        pthread_mutex_lock(&p->lock);
        p->stopping = true;
        JobQueue cancelled = p->queued;
        p->queued = (JobQueue){ 0 };
        pthread_cond_broadcast(&p->wakeup);
        pthread_mutex_unlock(&p->lock);

        for (unsigned i = 0; i < p->n_threads; i++)
                pthread_join(p->threads[i], NULL);
        free(p->threads);

        for (WorkerJob *job; (job = queue_pop(&cancelled));) {
                p->outstanding--;
                if (job->run_at_shutdown) {
                        job->run(job);
                        job->complete(job, 0);
                } else
                        job->complete(job, -ECANCELED);
        }
        if (p->completion_fd >= 0)
                drain_completions(p);

        sd_event_source_disable_unref(p->completion_source);
        safe_close(p->completion_fd);
        pthread_cond_destroy(&p->wakeup);
        pthread_mutex_destroy(&p->lock);
        free(p);
        return NULL;
}

int worker_pool_submit(WorkerPool *p, WorkerJob *job) {
        pthread_mutex_lock(&p->lock);
        if (p->stopping) {
                pthread_mutex_unlock(&p->lock);
                return -ESHUTDOWN;
        }
        queue_push(&p->queued, job);
        pthread_mutex_unlock(&p->lock);
        /* After the unlock: a woken worker does not wait for the lock we hold. */
        pthread_cond_signal(&p->wakeup);
        if (++p->outstanding > p->peak_outstanding)
                p->peak_outstanding = p->outstanding;
        return 0;
}

unsigned worker_pool_threads(const WorkerPool *p) {
        return p->n_threads;
}

unsigned worker_pool_outstanding(const WorkerPool *p) {
        return p->outstanding;
}
