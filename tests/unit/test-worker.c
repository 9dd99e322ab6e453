/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* test-worker.c: the pool runs jobs in parallel off the loop thread, completes them on it, cancels on free.
 */
#include <pthread.h>
#include <stdatomic.h>
#include <time.h>

#include "tests.h"
#include "worker.h"

typedef struct TestJob {
        WorkerJob job;
        pthread_t loop_thread;
        atomic_int *ran_on_loop;
        pthread_barrier_t *barrier; /* when set, run() waits for a partner job */
        atomic_int *running, *max_running;
        int *completed, *cancelled, *wrong_thread;
        int order, *next_order, *out_of_order;
} TestJob;

static void test_job_run(WorkerJob *job) {
        TestJob *j = (TestJob *)job;
        if (pthread_equal(pthread_self(), j->loop_thread))
                atomic_fetch_add(j->ran_on_loop, 1);
        int now = atomic_fetch_add(j->running, 1) + 1;
        int max = atomic_load(j->max_running);
        while (now > max && !atomic_compare_exchange_weak(j->max_running, &max, now))
                ;
        if (j->barrier)
                pthread_barrier_wait(j->barrier);
        atomic_fetch_sub(j->running, 1);
}

static void test_job_complete(WorkerJob *job, int error) {
        TestJob *j = (TestJob *)job;
        if (!pthread_equal(pthread_self(), j->loop_thread))
                (*j->wrong_thread)++;
        if (error == -ECANCELED)
                (*j->cancelled)++;
        else
                (*j->completed)++;
        if (j->next_order) {
                if (j->order != *j->next_order)
                        (*j->out_of_order)++;
                (*j->next_order)++;
        }
        free(j);
}

typedef struct Counters {
        atomic_int running, max_running, ran_on_loop;
        int completed, cancelled, wrong_thread, next_order, out_of_order;
} Counters;

static TestJob *new_job(Counters *k, pthread_barrier_t *barrier) {
        TestJob *j = calloc(1, sizeof(TestJob));
        j->job.run = test_job_run;
        j->job.complete = test_job_complete;
        j->loop_thread = pthread_self();
        j->barrier = barrier;
        j->running = &k->running;
        j->ran_on_loop = &k->ran_on_loop;
        j->max_running = &k->max_running;
        j->completed = &k->completed;
        j->cancelled = &k->cancelled;
        j->wrong_thread = &k->wrong_thread;
        j->out_of_order = &k->out_of_order;
        return j;
}

static void run_until(sd_event *e, int *counter, int target) {
        for (int i = 0; i < 500 && *counter < target; i++)
                (void)sd_event_run(e, 10 * 1000);
}

TEST(jobs_run_in_parallel_and_complete_on_loop_thread) {
        sd_event *e;
        WorkerPool *p;
        Counters k = { 0 };
        pthread_barrier_t barrier;

        ASSERT_OK(sd_event_new(&e));
        ASSERT_OK(worker_pool_new(e, 2, &p));
        ASSERT_INT_EQ(worker_pool_threads(p), 2);
        /* Two jobs that can only finish together: they prove two threads run at once. */
        pthread_barrier_init(&barrier, NULL, 2);
        ASSERT_OK(worker_pool_submit(p, &new_job(&k, &barrier)->job));
        ASSERT_OK(worker_pool_submit(p, &new_job(&k, &barrier)->job));
        ASSERT_INT_EQ(worker_pool_outstanding(p), 2);
        run_until(e, &k.completed, 2);
        ASSERT_INT_EQ(k.completed, 2);
        ASSERT_INT_EQ(atomic_load(&k.max_running), 2);
        ASSERT_INT_EQ(k.wrong_thread, 0);
        ASSERT_INT_EQ(worker_pool_outstanding(p), 0);
        worker_pool_free(p);
        pthread_barrier_destroy(&barrier);
        sd_event_unref(e);
}

TEST(run_is_off_the_loop_thread) {
        sd_event *e;
        WorkerPool *p;
        Counters k = { 0 };

        ASSERT_OK(sd_event_new(&e));
        ASSERT_OK(worker_pool_new(e, 1, &p));
        for (int i = 0; i < 10; i++)
                ASSERT_OK(worker_pool_submit(p, &new_job(&k, NULL)->job));
        run_until(e, &k.completed, 10);
        ASSERT_INT_EQ(k.completed, 10);
        ASSERT_INT_EQ(atomic_load(&k.ran_on_loop), 0);
        ASSERT_INT_EQ(k.wrong_thread, 0);
        worker_pool_free(p);
        sd_event_unref(e);
}

TEST(single_thread_completes_in_submission_order) {
        sd_event *e;
        WorkerPool *p;
        Counters k = { 0 };

        ASSERT_OK(sd_event_new(&e));
        ASSERT_OK(worker_pool_new(e, 1, &p));
        for (int i = 0; i < 1000; i++) {
                TestJob *j = new_job(&k, NULL);
                j->order = i;
                j->next_order = &k.next_order;
                ASSERT_OK(worker_pool_submit(p, &j->job));
        }
        run_until(e, &k.completed, 1000);
        ASSERT_INT_EQ(k.completed, 1000);
        ASSERT_INT_EQ(k.out_of_order, 0);
        ASSERT_INT_EQ(atomic_load(&k.max_running), 1);
        worker_pool_free(p);
        sd_event_unref(e);
}

static void slow_run(WorkerJob *job) {
        struct timespec ts = { .tv_nsec = 20 * 1000 * 1000 };
        nanosleep(&ts, NULL);
        test_job_run(job);
}

TEST(free_cancels_queued_and_finishes_running) {
        sd_event *e;
        WorkerPool *p;
        Counters k = { 0 };

        ASSERT_OK(sd_event_new(&e));
        ASSERT_OK(worker_pool_new(e, 1, &p));
        for (int i = 0; i < 20; i++) {
                TestJob *j = new_job(&k, NULL);
                j->job.run = slow_run;
                ASSERT_OK(worker_pool_submit(p, &j->job));
        }
        /* Let the first one start, then shut down: every job is accounted for exactly once. */
        struct timespec ts = { .tv_nsec = 5 * 1000 * 1000 };
        nanosleep(&ts, NULL);
        worker_pool_free(p);
        ASSERT_INT_EQ(k.completed + k.cancelled, 20);
        ASSERT_TRUE(k.completed >= 1);
        ASSERT_TRUE(k.cancelled >= 1);
        ASSERT_INT_EQ(k.wrong_thread, 0);
        sd_event_unref(e);
}

TEST(many_jobs_many_threads) {
        sd_event *e;
        WorkerPool *p;
        Counters k = { 0 };

        ASSERT_OK(sd_event_new(&e));
        ASSERT_OK(worker_pool_new(e, 0, &p));
        ASSERT_TRUE(worker_pool_threads(p) >= 1);
        for (int i = 0; i < 20000; i++)
                ASSERT_OK(worker_pool_submit(p, &new_job(&k, NULL)->job));
        run_until(e, &k.completed, 20000);
        ASSERT_INT_EQ(k.completed, 20000);
        ASSERT_INT_EQ(k.wrong_thread, 0);
        worker_pool_free(p);
        sd_event_unref(e);
}
