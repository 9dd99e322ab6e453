/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* schedslice.c: a short scheduler slice, so a woken thread of ours runs before a busy vCPU's slice ends.
 *
 * Under EEVDF a task woken on a busy CPU waits until the running task has had its slice (1.4 ms here)
 * unless its own slice is shorter. QEMU's TCG vCPU keeps a CPU busy while the guest's driver sends its
 * commands; the daemon's loop thread then read QMP events 0.2 ms later than it could. A slice is a
 * latency request, not a share: the CPU the daemon gets over time is the same. */
#include "schedslice.h"

#include <errno.h>
#include <sched.h>
#include <stdbool.h>
#include <stdint.h>
#include <sys/syscall.h>
#include <unistd.h>

/* struct sched_attr of the kernel's UAPI (SCHED_ATTR_SIZE_VER1); glibc before 2.41 has no wrapper and
 * <linux/sched/types.h> clashes with <sched.h>. */
typedef struct SchedAttr {
        uint32_t size;
        uint32_t sched_policy;
        uint64_t sched_flags;
        int32_t sched_nice;
        uint32_t sched_priority;
        uint64_t sched_runtime; /* for the fair policies: the slice (ns), since Linux 6.12 */
        uint64_t sched_deadline;
        uint64_t sched_period;
        uint32_t sched_util_min;
        uint32_t sched_util_max;
} SchedAttr;

#define SCHED_ATTR_FLAG_RESET_ON_FORK 0x01 /* SCHED_FLAG_RESET_ON_FORK */

/* What sched_slice_set() last applied, for threads that do not inherit it (reset-on-fork). Written
 * before the threads are made (pthread_create() orders it before their reads). */
static uint64_t process_slice_usec;
static bool process_slice_set;

static int sched_attr_get(SchedAttr *a) {
        *a = (SchedAttr){};
        return syscall(SYS_sched_getattr, 0, a, sizeof(*a), 0) < 0 ? -errno : 0;
}

/* The calling thread only; records nothing. */
static int thread_slice_set(uint64_t usec, uint64_t *ret_nsec) {
        SchedAttr a;
        int r;

        r = sched_attr_get(&a);
        if (r < 0)
                return r;
        if (a.sched_policy != SCHED_OTHER && a.sched_policy != SCHED_BATCH)
                return -EMEDIUMTYPE;
        /* A kernel without slices per task reports none for a fair task. */
        if (a.sched_runtime == 0)
                return -EOPNOTSUPP;
        /* Policy, nice and reset-on-fork as they are (clearing that flag needs CAP_SYS_NICE, and would
         * undo the operator's choice); utilization clamps are only changed with their flags. */
        a.size = sizeof(a);
        a.sched_flags &= SCHED_ATTR_FLAG_RESET_ON_FORK;
        a.sched_runtime = usec * 1000;
        if (syscall(SYS_sched_setattr, 0, &a, 0) < 0)
                return -errno;
        if (!ret_nsec)
                return 0;
        /* What the kernel made of it (it clamps), only when asked: every worker calls this at start. */
        r = sched_attr_get(&a);
        if (r < 0)
                return r;
        *ret_nsec = a.sched_runtime;
        return 0;
}

int sched_slice_set(uint64_t usec, uint64_t *ret_nsec) {
        int r = thread_slice_set(usec, ret_nsec);
        if (r >= 0) {
                process_slice_usec = usec;
                process_slice_set = true;
        }
        return r;
}

/* Reads only: every worker calls it at once. */
int sched_slice_apply_to_thread(void) {
        return process_slice_set ? thread_slice_set(process_slice_usec, NULL) : 0;
}
