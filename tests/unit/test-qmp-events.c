/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* test-qmp-events.c: the event table is sorted (bsearch depends on it) and names the events we handle. */
#include <string.h>

#include "guest.h"
#include "tests.h"

TEST(event_table_sorted_and_unique) {
        size_t n;
        const QmpEventHandler *t = qmp_event_table(&n);

        ASSERT_TRUE(n > 0);
        for (size_t i = 1; i < n; i++)
                if (strcmp(t[i - 1].name, t[i].name) >= 0)
                        TEST_FAIL("event table not sorted: \"%s\" before \"%s\"", t[i - 1].name, t[i].name);
}

TEST(event_table_has_every_handled_event) {
        static const char *const expected[] = {
                "DEVICE_DELETED",
                "DEVICE_UNPLUG_GUEST_ERROR",
                "FAILOVER_NEGOTIATED",
                "NETDEV_STREAM_CONNECTED",
                "NETDEV_STREAM_DISCONNECTED",
                "NIC_RX_FILTER_CHANGED",
                "RESET",
                "UNPLUG_PRIMARY",
        };
        size_t n;
        const QmpEventHandler *t = qmp_event_table(&n);

        for (size_t k = 0; k < sizeof(expected) / sizeof(expected[0]); k++) {
                bool found = false;
                for (size_t i = 0; i < n; i++)
                        if (strcmp(t[i].name, expected[k]) == 0 && t[i].func)
                                found = true;
                if (!found)
                        TEST_FAIL("event %s has no handler", expected[k]);
        }
}

TEST(unknown_event_is_ignored) {
        /* Dispatching an unknown name must not crash or reach any handler (no guest is needed). */
        qmp_event_dispatch(NULL, "SOMETHING_ELSE", NULL, 0);
        qmp_event_dispatch(NULL, "", NULL, 0);
        qmp_event_dispatch(NULL, "ZZZZ", NULL, 0);
}
