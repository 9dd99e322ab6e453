/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* metrics.h: counters kept only for Manager.GetMetrics(): bumped where things happen, read on request. */
#pragma once

#include <stdint.h>

#include "hostdev.h"

#define HOST_ATTRIBUTES_ALL (HOST_ATTRIBUTES_MACVTAP + 1)

typedef struct NicMetrics {
        /* Per host_attributes[] entry: changes made on the host device, and failures. */
        uint64_t host_applied[HOST_ATTRIBUTES_ALL];
        uint64_t host_failed[HOST_ATTRIBUTES_ALL];
} NicMetrics;

/* Counts one sync or revert job: attempted has bit i set for each host_attributes[i] the job
 * changed (or tried to); result says which failed. */
void nic_metrics_count_job(NicMetrics *m, unsigned attempted, const HostApplyResult *result);
