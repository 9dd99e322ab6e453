/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* metrics.c: the counting side of the metrics; bus-metrics.c reads them. */
#include "metrics.h"

void nic_metrics_count_job(NicMetrics *m, unsigned attempted, const HostApplyResult *result) {
        for (unsigned i = 0; i < HOST_ATTRIBUTES_ALL; i++) {
                if (host_apply_result_get(result, &host_attributes[i]) < 0)
                        m->host_failed[i]++;
                else if (attempted & (1u << i))
                        m->host_applied[i]++;
        }
}
