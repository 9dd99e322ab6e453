/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* test-schedslice.c: the slice asked for is the one the kernel schedules with, for the thread and the
 * threads it makes, and nothing else about the thread's scheduling changes. */
#include <errno.h>
#include <pthread.h>
#include <sched.h>
#include <stdio.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/wait.h>
#include <unistd.h>

#include "schedslice.h"
#include "tests.h"

/* The slice the scheduler uses for the calling thread, as /proc says (ns), 0 if it says none. */
static unsigned long long proc_slice_nsec(void) {
        char line[256];
        unsigned long long v = 0;
        FILE *f = fopen("/proc/thread-self/sched", "re");

        if (!f)
                return 0;
        while (fgets(line, sizeof(line), f))
                if (strncmp(line, "se.slice", 8) == 0 && sscanf(strchr(line, ':') + 1, "%llu", &v) == 1)
                        break;
        fclose(f);
        return v;
}

static void *report_slice(void *ret) {
        *(unsigned long long *)ret = proc_slice_nsec();
        return NULL;
}

TEST(slice_is_what_the_kernel_schedules_with_and_new_threads_inherit_it) {
        unsigned long long base = proc_slice_nsec(), in_thread = 0;
        uint64_t nsec = 0;
        pthread_t t;

        int r = sched_slice_set(300, &nsec);
        if (r == -EOPNOTSUPP)
                TEST_SKIP("this kernel keeps no slice per task (before Linux 6.12)");
        ASSERT_INT_EQ(r, 0);
        ASSERT_INT_EQ(nsec, 300000);
        ASSERT_INT_EQ(proc_slice_nsec(), 300000);
        ASSERT_INT_EQ(pthread_create(&t, NULL, report_slice, &in_thread), 0);
        ASSERT_INT_EQ(pthread_join(t, NULL), 0);
        ASSERT_INT_EQ(in_thread, 300000);

        /* 0: the kernel's default again. */
        ASSERT_INT_EQ(sched_slice_set(0, &nsec), 0);
        ASSERT_INT_EQ(proc_slice_nsec(), base);
        ASSERT_TRUE(base != 300000);
}

/* Runs fn in a child (nice and policy changes are not undone in the test process); its exit code is
 * 0 on success, 77 for a skip, else the failing step. */
static int in_child(int (*fn)(void)) {
        int status;
        pid_t pid = fork();
        if (pid == 0)
                _exit(fn());
        if (pid < 0 || waitpid(pid, &status, 0) != pid || !WIFEXITED(status))
                return -1;
        return WEXITSTATUS(status);
}

static int nice_and_batch_policy_kept(void) {
        uint64_t nsec;
        struct sched_param param = {};

        if (setpriority(PRIO_PROCESS, 0, 7) < 0 || sched_setscheduler(0, SCHED_BATCH, &param) < 0)
                return 10;
        int r = sched_slice_set(500, &nsec);
        if (r == -EOPNOTSUPP)
                return 77;
        if (r < 0 || nsec != 500000)
                return 11;
        if (getpriority(PRIO_PROCESS, 0) != 7)
                return 12;
        if (sched_getscheduler(0) != SCHED_BATCH)
                return 13;
        return proc_slice_nsec() == 500000 ? 0 : 14;
}

TEST(nice_and_policy_stay_as_the_operator_set_them) {
        int r = in_child(nice_and_batch_policy_kept);
        if (r == 77)
                TEST_SKIP("this kernel keeps no slice per task (before Linux 6.12)");
        ASSERT_INT_EQ(r, 0);
}

static int realtime_left_alone(void) {
        struct sched_param param = { .sched_priority = 1 };

        if (sched_setscheduler(0, SCHED_FIFO, &param) < 0)
                return errno == EPERM ? 77 : 20;
        if (sched_slice_set(200, NULL) != -EPERM)
                return 21;
        return sched_getscheduler(0) == SCHED_FIFO ? 0 : 22;
}

TEST(a_realtime_policy_is_left_alone) {
        int r = in_child(realtime_left_alone);
        if (r == 77)
                TEST_SKIP("no privilege to set SCHED_FIFO");
        ASSERT_INT_EQ(r, 0);
}
