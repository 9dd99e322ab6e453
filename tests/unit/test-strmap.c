/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* test-strmap.c: the guest registry's hash map: put, get, remove with backward shift, growth. */
#include <stdio.h>

#include "strmap.h"
#include "tests.h"

TEST(put_get_remove_many) {
        static char keys[5000][16];
        StrMap m = {};

        for (int i = 0; i < 5000; i++) {
                snprintf(keys[i], sizeof(keys[i]), "guest-%d", i);
                ASSERT_OK(strmap_put(&m, keys[i], keys[i]));
        }
        ASSERT_INT_EQ(m.n_entries, 5000);
        ASSERT_ERROR(strmap_put(&m, "guest-17", NULL), EEXIST);
        for (int i = 0; i < 5000; i++)
                ASSERT_TRUE(strmap_get(&m, keys[i]) == keys[i]);
        ASSERT_TRUE(strmap_get(&m, "guest-5000") == NULL);

        /* Remove every other one: the rest must stay reachable (backward shift, no tombstones). */
        for (int i = 0; i < 5000; i += 2)
                ASSERT_TRUE(strmap_remove(&m, keys[i]) == keys[i]);
        ASSERT_TRUE(strmap_remove(&m, keys[0]) == NULL);
        for (int i = 0; i < 5000; i++)
                ASSERT_TRUE(strmap_get(&m, keys[i]) == (i % 2 ? keys[i] : NULL));
        ASSERT_INT_EQ(m.n_entries, 2500);
        strmap_done(&m);
        ASSERT_TRUE(strmap_get(&m, "guest-1") == NULL);
}
