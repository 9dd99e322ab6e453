/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* schedslice.h: the scheduler slice the daemon's threads ask for (EEVDF, Linux 6.12 and later). */
#pragma once

#include <stdint.h>

#define SCHED_SLICE_USEC_MIN     100U /* the kernel's lower clamp: 0.1 ms */
#define SCHED_SLICE_USEC_MAX     100000U /* and its upper one: 100 ms */
#define SCHED_SLICE_USEC_DEFAULT 100U

/* Asks for a slice of `usec` for the calling thread, keeping its policy, nice value and reset-on-fork
 * flag; 0 goes back to the kernel's default. Threads made later inherit it, unless reset-on-fork is
 * set: they call sched_slice_apply_to_thread(). The slice in effect (ns, as the kernel reports it)
 * goes to *ret_nsec when not NULL. Errors:
 *   -EOPNOTSUPP   the kernel keeps no slice per task (before 6.12); nothing changed
 *   -EMEDIUMTYPE  not SCHED_OTHER or SCHED_BATCH (a real-time or idle policy is left alone)
 *   -EPERM        refused: a system call filter, or a change that needs privilege */
int sched_slice_set(uint64_t usec, uint64_t *ret_nsec);

/* In a new thread: the slice the process last set with sched_slice_set(), if any. */
int sched_slice_apply_to_thread(void);
