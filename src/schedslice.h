/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* schedslice.h: the scheduler slice the daemon's threads ask for (EEVDF, Linux 6.12 and later). */
#pragma once

#include <stdint.h>

#define SCHED_SLICE_USEC_MIN     100U /* the kernel's lower clamp: 0.1 ms */
#define SCHED_SLICE_USEC_MAX     100000U /* and its upper one: 100 ms */
#define SCHED_SLICE_USEC_DEFAULT 100U

/* Asks for a slice of `usec` for the calling thread and every thread it creates later (threads inherit
 * it), keeping its policy and nice value; 0 goes back to the kernel's default. Only for the fair
 * policies (SCHED_OTHER, SCHED_BATCH): a real-time policy an operator gave us is left alone (-EPERM).
 * -EOPNOTSUPP: the kernel keeps no slice per task (before 6.12); nothing changed. The slice in effect
 * (ns, as the kernel reports it) goes to *ret_nsec when not NULL. */
int sched_slice_set(uint64_t usec, uint64_t *ret_nsec);
