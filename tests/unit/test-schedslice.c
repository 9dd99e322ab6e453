/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* test-schedslice.c: the slice asked for is the one the kernel schedules with, for the thread and the
 * threads it makes, and nothing else about the thread's scheduling changes. The kernel is asked with
 * raw system calls here, never through the code under test. */
#include <errno.h>
#include <linux/filter.h>
#include <linux/seccomp.h>
#include <pthread.h>
#include <sched.h>
#include <stddef.h>
#include <stdio.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/resource.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

#include "cleanup.h"
#include "schedslice.h"
#include "tests.h"

typedef struct RawSchedAttr {
        uint32_t size, policy;
        uint64_t flags;
        int32_t nice;
        uint32_t priority;
        uint64_t runtime, deadline, period;
        uint32_t util_min, util_max;
} RawSchedAttr;

#define RAW_RESET_ON_FORK 0x01

static RawSchedAttr raw_get(void) {
        RawSchedAttr a = {};
        if (syscall(SYS_sched_getattr, 0, &a, sizeof(a), 0) < 0)
                a.policy = UINT32_MAX;
        return a;
}

static int raw_set(RawSchedAttr a) {
        a.size = sizeof(a);
        return syscall(SYS_sched_setattr, 0, &a, 0) < 0 ? -errno : 0;
}

/* Linux 6.12 and later report a fair task's slice, never 0. */
static bool kernel_keeps_slices(void) {
        RawSchedAttr a = raw_get();
        return a.policy == SCHED_OTHER && a.runtime != 0;
}

#define SKIP_WITHOUT_SLICES()                                                           \
        do {                                                                            \
                if (!kernel_keeps_slices())                                             \
                        TEST_SKIP("this kernel keeps no slice per task (before 6.12)"); \
        } while (0)

/* /proc's view, when this kernel prints one (6.14 and later): 0 if not. */
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

/* The test process's own slice comes back whatever an assertion does. */
static void restore_slice(RawSchedAttr *saved) {
        (void)raw_set(*saved);
}

static void *report_slice(void *ret) {
        *(uint64_t *)ret = raw_get().runtime;
        return NULL;
}

static void *apply_then_report_slice(void *ret) {
        (void)sched_slice_apply_to_thread();
        *(uint64_t *)ret = raw_get().runtime;
        return NULL;
}

TEST(slice_is_what_the_kernel_schedules_with_and_new_threads_inherit_it) {
        SKIP_WITHOUT_SLICES();
        _cleanup_(restore_slice) RawSchedAttr saved = raw_get();
        uint64_t nsec = 0, in_thread = 0;
        pthread_t t;

        ASSERT_INT_EQ(sched_slice_set(300, &nsec), 0);
        ASSERT_INT_EQ(nsec, 300000);
        ASSERT_INT_EQ(raw_get().runtime, 300000);
        unsigned long long proc = proc_slice_nsec();
        ASSERT_TRUE(proc == 0 || proc == 300000);
        ASSERT_INT_EQ(pthread_create(&t, NULL, report_slice, &in_thread), 0);
        ASSERT_INT_EQ(pthread_join(t, NULL), 0);
        ASSERT_INT_EQ(in_thread, 300000);
}

/* 0 is what the kernel does with a slice of 0 itself: its default. */
static int zero_is_the_kernels_default(void) {
        RawSchedAttr a = raw_get();
        a.runtime = 0;
        a.flags = 0;
        if (raw_set(a) < 0)
                return 30;
        uint64_t kernel_default = raw_get().runtime;
        if (sched_slice_set(400, NULL) < 0 || raw_get().runtime != 400000)
                return 31;
        if (sched_slice_set(0, NULL) < 0)
                return 32;
        return raw_get().runtime == kernel_default && kernel_default != 400000 ? 0 : 33;
}

/* Runs fn in a child (scheduling changes are not undone in the test process); its exit code is 0 on
 * success, 77 for a skip, else the failing step. */
static int in_child(int (*fn)(void)) {
        int status;
        pid_t pid = fork();
        if (pid == 0)
                _exit(fn());
        if (pid < 0 || waitpid(pid, &status, 0) != pid || !WIFEXITED(status))
                return -1;
        return WEXITSTATUS(status);
}

TEST(zero_goes_back_to_the_kernels_default) {
        SKIP_WITHOUT_SLICES();
        ASSERT_INT_EQ(in_child(zero_is_the_kernels_default), 0);
}

static int nice_and_batch_policy_kept(void) {
        uint64_t nsec;
        struct sched_param param = {};

        if (setpriority(PRIO_PROCESS, 0, 7) < 0 || sched_setscheduler(0, SCHED_BATCH, &param) < 0)
                return 10;
        if (sched_slice_set(500, &nsec) < 0 || nsec != 500000)
                return 11;
        if (getpriority(PRIO_PROCESS, 0) != 7)
                return 12;
        if (sched_getscheduler(0) != SCHED_BATCH)
                return 13;
        return raw_get().runtime == 500000 ? 0 : 14;
}

TEST(nice_and_policy_stay_as_the_operator_set_them) {
        SKIP_WITHOUT_SLICES();
        ASSERT_INT_EQ(in_child(nice_and_batch_policy_kept), 0);
}

/* systemd's CPUSchedulingResetOnFork=yes: the flag stays (clearing it needs CAP_SYS_NICE), new threads
 * do not inherit the slice, and sched_slice_apply_to_thread() gives it to them. */
static int reset_on_fork_kept_and_threads_ask_again(void) {
        RawSchedAttr a = raw_get();
        uint64_t inherited = 0, applied = 0;
        pthread_t t;

        a.flags = RAW_RESET_ON_FORK;
        if (raw_set(a) < 0)
                return 40;
        if (sched_slice_set(600, NULL) < 0)
                return 41;
        a = raw_get();
        if (!(a.flags & RAW_RESET_ON_FORK) || a.runtime != 600000)
                return 42;
        if (pthread_create(&t, NULL, report_slice, &inherited) != 0 || pthread_join(t, NULL) != 0)
                return 43;
        if (inherited == 600000)
                return 44; /* then this test no longer shows why workers ask again */
        if (pthread_create(&t, NULL, apply_then_report_slice, &applied) != 0 || pthread_join(t, NULL) != 0)
                return 45;
        return applied == 600000 ? 0 : 46;
}

TEST(reset_on_fork_is_kept_and_new_threads_ask_for_the_slice) {
        SKIP_WITHOUT_SLICES();
        ASSERT_INT_EQ(in_child(reset_on_fork_kept_and_threads_ask_again), 0);
}

static int policy_left_alone(int policy, int priority) {
        struct sched_param param = { .sched_priority = priority };

        if (sched_setscheduler(0, policy, &param) < 0)
                return errno == EPERM ? 77 : 20;
        if (sched_slice_set(200, NULL) != -EMEDIUMTYPE)
                return 21;
        return sched_getscheduler(0) == policy ? 0 : 22;
}

static int fifo_left_alone(void) {
        return policy_left_alone(SCHED_FIFO, 1);
}

static int idle_left_alone(void) {
        return policy_left_alone(SCHED_IDLE, 0);
}

TEST(realtime_and_idle_policies_are_left_alone) {
        ASSERT_INT_EQ(in_child(idle_left_alone), 0);
        int r = in_child(fifo_left_alone);
        if (r == 77)
                TEST_SKIP("no privilege to set SCHED_FIFO");
        ASSERT_INT_EQ(r, 0);
}

/* A unit whose SystemCallFilter= lacks sched_setattr: refused with EPERM, said as such. */
static int refused_by_a_filter(void) {
        struct sock_filter filter[] = {
                BPF_STMT(BPF_LD | BPF_W | BPF_ABS, offsetof(struct seccomp_data, nr)),
                BPF_JUMP(BPF_JMP | BPF_JEQ | BPF_K, SYS_sched_setattr, 0, 1),
                BPF_STMT(BPF_RET | BPF_K, SECCOMP_RET_ERRNO | EPERM),
                BPF_STMT(BPF_RET | BPF_K, SECCOMP_RET_ALLOW),
        };
        struct sock_fprog prog = { .len = sizeof(filter) / sizeof(filter[0]), .filter = filter };
        RawSchedAttr before = raw_get();

        if (prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) < 0 ||
                prctl(PR_SET_SECCOMP, SECCOMP_MODE_FILTER, &prog) < 0)
                return 50;
        if (sched_slice_set(200, NULL) != -EPERM)
                return 51;
        return raw_get().runtime == before.runtime ? 0 : 52;
}

TEST(a_system_call_filter_is_reported_as_eperm) {
        SKIP_WITHOUT_SLICES();
        ASSERT_INT_EQ(in_child(refused_by_a_filter), 0);
}
