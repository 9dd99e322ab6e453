/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* test-heldsignals.c: what a NIC holds while the bus lags is a merge of bounded size. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "heldsignals.h"
#include "tests.h"

TEST(filter_sets_merge_their_fields_and_keep_the_newest_outcome) {
        HeldSignals h = {};

        held_signals_add_filter(&h, 1u << 0, true, "applied");
        held_signals_add_filter(&h, 1u << 3, true, "failed");
        held_signals_add_filter(&h, 1u << 5, false, "observed"); /* not announced: fields only */
        ASSERT_INT_EQ(h.filter_fields, (1u << 0) | (1u << 3) | (1u << 5));
        ASSERT_TRUE(h.rx_filter_changed);
        ASSERT_STR_EQ(h.outcome, "failed");

        HeldSignals quiet = {};
        held_signals_add_filter(&quiet, 0, false, "observed");
        ASSERT_FALSE(quiet.rx_filter_changed);
        ASSERT_TRUE(quiet.outcome == NULL);
}

TEST(property_names_are_held_once_each_and_bounded) {
        HeldSignals h = {};
        const char *const a[] = { "SyncState", "LastError", NULL };
        const char *const b[] = { "LastError", "Trust", NULL };

        ASSERT_OK(held_signals_add_properties(&h, a));
        ASSERT_OK(held_signals_add_properties(&h, b));
        ASSERT_OK(held_signals_add_properties(&h, a)); /* again: nothing new */
        ASSERT_INT_EQ(h.n_properties, (size_t)3);
        ASSERT_STR_EQ(h.properties[0], "SyncState");
        ASSERT_STR_EQ(h.properties[1], "LastError");
        ASSERT_STR_EQ(h.properties[2], "Trust");

        /* Fill it: distinct names up to the bound are taken, one more set is refused whole. */
        static char names[HELD_PROPERTIES_MAX][8];
        for (size_t i = h.n_properties; i < HELD_PROPERTIES_MAX; i++) {
                snprintf(names[i], sizeof(names[i]), "P%zu", i);
                const char *const one[] = { names[i], NULL };
                ASSERT_OK(held_signals_add_properties(&h, one));
        }
        ASSERT_INT_EQ(h.n_properties, (size_t)HELD_PROPERTIES_MAX);
        const char *const more[] = { "Trust", "Extra", NULL };
        ASSERT_ERROR(held_signals_add_properties(&h, more), E2BIG);
        ASSERT_INT_EQ(h.n_properties, (size_t)HELD_PROPERTIES_MAX);
        ASSERT_OK(held_signals_add_properties(&h, a)); /* known names still fit */
}

TEST(the_mac_change_runs_from_the_first_old_mac_to_the_mac_now) {
        HeldSignals h = {};

        ASSERT_FALSE(held_signals_mac_changed(&h, "52:54:00:00:00:01"));
        held_signals_add_mac(&h, "52:54:00:00:00:01", "guest");
        held_signals_add_mac(&h, "52:54:00:00:00:02", "resync");
        ASSERT_STR_EQ(h.old_mac, "52:54:00:00:00:01");
        ASSERT_STR_EQ(h.mac_reason, "resync");
        ASSERT_TRUE(held_signals_mac_changed(&h, "52:54:00:00:00:03"));
        /* Back where it began: nothing to say. */
        ASSERT_FALSE(held_signals_mac_changed(&h, "52:54:00:00:00:01"));

        HeldSignals first = {}; /* the first filter: no MAC before; it stays "initial" */
        held_signals_add_mac(&first, "", "initial");
        held_signals_add_mac(&first, "52:54:00:00:00:01", "guest");
        ASSERT_STR_EQ(first.old_mac, "");
        ASSERT_STR_EQ(first.mac_reason, "initial");
        ASSERT_TRUE(held_signals_mac_changed(&first, "52:54:00:00:00:02"));
}

TEST(a_newer_change_set_forgets_older_failures) {
        HeldSignals h = {};

        held_signals_add_filter(&h, 1u << 0, true, "failed");
        ASSERT_OK(held_signals_add_failure(&h, "mac", "mvt0: Operation not permitted"));
        held_signals_add_filter(&h, 1u << 0, true, "applied"); /* the next set succeeded */
        ASSERT_INT_EQ(h.n_failures, (size_t)0);
        ASSERT_STR_EQ(h.outcome, "applied");
        ASSERT_OK(held_signals_add_failure(&h, "promisc", "mvt0: No such device"));
        ASSERT_INT_EQ(h.n_failures, (size_t)1);
        held_signals_clear(&h);
        ASSERT_INT_EQ(h.n_failures, (size_t)0);
}

TEST(an_object_that_came_and_went_unseen_says_nothing) {
        HeldSignals unseen = { .added = true };
        held_signals_add_filter(&unseen, 1u << 2, true, "observed");
        ASSERT_FALSE(held_signals_remove(&unseen)); /* drop it: nobody saw it appear */

        HeldSignals seen = {};
        held_signals_add_filter(&seen, 1u << 2, true, "observed");
        held_signals_add_mac(&seen, "52:54:00:00:00:01", "guest");
        ASSERT_OK(held_signals_add_failure(&seen, "mac", "e"));
        ASSERT_TRUE(held_signals_remove(&seen)); /* only its InterfacesRemoved is owed */
        ASSERT_TRUE(seen.removed);
        ASSERT_FALSE(seen.rx_filter_changed || seen.mac_changed || seen.added);
        ASSERT_INT_EQ(seen.filter_fields, 0u);
        ASSERT_INT_EQ(seen.n_failures, (size_t)0);
}

TEST(failures_keep_the_newest_error_per_attribute_and_are_bounded) {
        HeldSignals h = {};
        char long_error[1000];

        ASSERT_OK(held_signals_add_failure(&h, "mac", "mvt0: Operation not permitted"));
        ASSERT_OK(held_signals_add_failure(&h, "promisc", "mvt0: No such device"));
        ASSERT_OK(held_signals_add_failure(&h, "mac", "mvt0: Device or resource busy"));
        ASSERT_INT_EQ(h.n_failures, (size_t)2);
        ASSERT_STR_EQ(h.failures[0].attribute, "mac");
        ASSERT_STR_EQ(h.failures[0].error, "mvt0: Device or resource busy");

        memset(long_error, 'x', sizeof(long_error) - 1);
        long_error[sizeof(long_error) - 1] = '\0';
        ASSERT_OK(held_signals_add_failure(&h, "multicast", long_error));
        ASSERT_INT_EQ(strlen(h.failures[2].error), (size_t)HELD_ERROR_MAX - 1);

        static char attrs[HELD_FAILURES_MAX][8];
        for (size_t i = h.n_failures; i < HELD_FAILURES_MAX; i++) {
                snprintf(attrs[i], sizeof(attrs[i]), "a%zu", i);
                ASSERT_OK(held_signals_add_failure(&h, attrs[i], "e"));
        }
        ASSERT_ERROR(held_signals_add_failure(&h, "fdb", "e"), E2BIG);
        ASSERT_OK(held_signals_add_failure(&h, "mac", "newest")); /* a held attribute is still updated */
        ASSERT_STR_EQ(h.failures[0].error, "newest");
        held_signals_clear(&h); /* frees every text (the ASan run finds a leak otherwise) */
}

/* Every NIC of the host may hold a set at once (4,000 on the benchmark's host): a set that carried its
 * failures' texts inline (2.7 KiB) cost 10.8 MiB of heap the moment the bus lagged. The texts are
 * allocated only while a failure is held; one from calloc() is freed with them. */
TEST(a_held_set_is_small_and_frees_its_failures) {
        ASSERT_TRUE(sizeof(HeldSignals) <= 512);

        HeldSignals *h = calloc(1, sizeof(HeldSignals));
        ASSERT_TRUE(h != NULL);
        ASSERT_OK(held_signals_add_failure(h, "mac", "mvt0: Operation not permitted"));
        ASSERT_OK(held_signals_add_failure(h, "promisc", "mvt0: No such device"));
        ASSERT_TRUE(held_signals_free(h) == NULL);

        HeldSignals gone = {};
        ASSERT_OK(held_signals_add_failure(&gone, "mac", "e"));
        ASSERT_TRUE(held_signals_remove(&gone)); /* frees the text it no longer says */
        ASSERT_INT_EQ(gone.n_failures, (size_t)0);
        ASSERT_TRUE(held_signals_free(NULL) == NULL);
}
