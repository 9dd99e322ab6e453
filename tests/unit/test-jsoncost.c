/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* test-jsoncost.c: the estimate of json-c's memory for a message, its end, and the budget. */
#include <json-c/json.h>
#include <malloc.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "jsoncost.h"
#include "tests.h"

static char *repeat_in_array(const char *prefix, const char *item, size_t target, const char *suffix) {
        size_t n_item = strlen(item), len = strlen(prefix);
        char *s = malloc(target + strlen(suffix) + n_item + 2);
        strcpy(s, prefix);
        while (len + n_item < target) {
                memcpy(s + len, item, n_item);
                len += n_item;
        }
        if (s[len - 1] == ',')
                len--;
        strcpy(s + len, suffix);
        return s;
}

#if !defined(__SANITIZE_ADDRESS__) && !defined(__SANITIZE_THREAD__)
/* The estimate, and how many bytes the scan took: one message, which ends at its last byte. */
static size_t estimate(const char *text, size_t *ret_used) {
        JsonCost c = {};
        *ret_used = json_cost_scan(&c, text, strlen(text), SIZE_MAX);
        return c.cost;
}

/* What json-c really takes (glibc's own accounting; a sanitizer's allocator does not keep it). */
static size_t measured(const char *text, bool *ret_parsed) {
        struct mallinfo2 before = mallinfo2();
        json_object *o = json_tokener_parse(text);
        struct mallinfo2 after = mallinfo2();
        *ret_parsed = o != NULL;
        json_object_put(o);
        return after.uordblks + after.hblkhd - before.uordblks -
                before.hblkhd; /* a large table is mmapped */
}

/* The estimate is never much below what json-c takes (it bounds the daemon's memory) nor far above
 * (it must not refuse QEMU's largest real reply). */
TEST(the_estimate_follows_json_c) {
        char reply[300000];
        size_t len = (size_t)snprintf(reply, sizeof(reply),
                "{\"return\": [{\"promiscuous\": false, \"name\": \"net0\", \"main-mac\": "
                "\"52:54:00:12:34:56\", "
                "\"unicast\": \"normal\", \"vlan\": \"normal\", \"vlan-table\": [");
        for (int vid = 0; vid < 4096; vid++)
                len += (size_t)snprintf(reply + len, sizeof(reply) - len, "%s%d", vid ? ", " : "", vid);
        len += (size_t)snprintf(reply + len, sizeof(reply) - len,
                "], \"unicast-table\": [], \"multicast\": \"normal\", \"multicast-overflow\": false, "
                "\"unicast-overflow\": false, \"multicast-table\": [");
        for (int i = 0; i < 64; i++)
                len += (size_t)snprintf(
                        reply + len, sizeof(reply) - len, "%s\"01:00:5e:00:00:%02x\"", i ? ", " : "", i);
        snprintf(reply + len, sizeof(reply) - len, "], \"broadcast-allowed\": false}], \"id\": 7}");

        char *objects = repeat_in_array("[", "{},", 256 * 1024, "]");
        char *arrays = repeat_in_array("[", "[],", 256 * 1024, "]");
        char *ints = repeat_in_array("[", "1,", 256 * 1024, "]");
        char *strings = repeat_in_array("[", "\"01:00:5e:00:00:01\",", 256 * 1024, "]");
        char *members = repeat_in_array("[", "{\"a\":1,\"b\":\"x\"},", 256 * 1024, "]");
        char *exponents = repeat_in_array("[", "1e1,", 256 * 1024, "]"); /* json-c keeps their text */
        char *fractions = repeat_in_array("[", "1.25,", 256 * 1024, "]");
        char *literals = repeat_in_array("[", "true,null,", 256 * 1024, "]");
        char *keys = malloc(256 * 1024),
             *k = keys; /* one object, many keys: its table doubles as it fills */
        k += sprintf(k, "{");
        for (int i = 0; k - keys < 256 * 1024 - 32; i++)
                k += sprintf(k, "%s\"k%d\":1", i ? "," : "", i);
        strcpy(k, "}");
        const char *const shapes[] = { reply, objects, arrays, ints, strings, members, exponents, fractions,
                literals, keys };

        for (size_t i = 0; i < sizeof(shapes) / sizeof(shapes[0]); i++) {
                size_t used;
                bool parsed;
                size_t e = estimate(shapes[i], &used), m = measured(shapes[i], &parsed);
                ASSERT_TRUE(parsed);
                ASSERT_INT_EQ(used, strlen(shapes[i]));
                printf("# shape %zu: %zu bytes of text, estimate %zu, json-c %zu\n", i, strlen(shapes[i]), e,
                        m);
                ASSERT_TRUE(e * 10 >= m * 9);
                ASSERT_TRUE(e <= 3 * m + 4096);
        }
        free(keys);
        free(objects);
        free(arrays);
        free(ints);
        free(strings);
        free(members);
        free(exponents);
        free(fractions);
        free(literals);
}
#endif

TEST(a_message_ends_at_its_closing_brace_whatever_its_strings_hold) {
        const char *two = "{\"a\": \"}{\\\"}]\", \"b\": [1, {\"c\": \"\\\\\"}]}{\"event\": \"X\"}";
        JsonCost c = {};
        size_t used = json_cost_scan(&c, two, strlen(two), SIZE_MAX);
        ASSERT_INT_EQ(used, strlen(two) - strlen("{\"event\": \"X\"}"));
        ASSERT_INT_EQ(c.depth, 0u);
        ASSERT_FALSE(c.in_string);

        /* byte by byte: the same end and the same cost */
        JsonCost d = {};
        size_t at = 0;
        for (; at < strlen(two); at++)
                if (json_cost_scan(&d, two + at, 1, SIZE_MAX) == 1 && d.started && d.depth == 0)
                        break;
        ASSERT_INT_EQ(at + 1, used);
        ASSERT_INT_EQ(d.cost, c.cost);
}

/* json-c, unless strict, reads '...' as a string and skips comments: a '"' in one would make the scan
 * take the objects after it for a string's bytes (1 MiB of them then cost as text, 264 times too little). */
TEST(single_quotes_and_comments_stop_the_scan) {
        const char *const hostile[] = {
                "{\"data\": ['\"', {}, {}, '\"']}",
                "{\"data\": [/*\"*/ {}, {} /*\"*/]}",
                "{\"data\": [//\"\n{}, {}]}",
        };
        for (size_t i = 0; i < sizeof(hostile) / sizeof(hostile[0]); i++) {
                JsonCost c = {};
                size_t used = json_cost_scan(&c, hostile[i], strlen(hostile[i]), SIZE_MAX);
                ASSERT_TRUE(c.invalid);
                ASSERT_INT_EQ(used, (size_t)(strpbrk(hostile[i], "'/") - hostile[i]) + 1);
        }
        /* inside strings they are text */
        JsonCost c = {};
        const char *fine = "{\"path\": \"/machine/peripheral/net0\", \"q\": \"it's\"}";
        ASSERT_INT_EQ(json_cost_scan(&c, fine, strlen(fine), SIZE_MAX), strlen(fine));
        ASSERT_FALSE(c.invalid);
}

TEST(the_budget_stops_the_scan_where_it_is_passed) {
        char *objects = repeat_in_array("{\"return\": [", "{},", 1024 * 1024, "]}");
        JsonCost c = {};
        size_t budget = 1024 * 1024;
        size_t used = json_cost_scan(&c, objects, strlen(objects), budget);
        ASSERT_TRUE(c.cost > budget);
        ASSERT_TRUE(c.cost <= budget + JSON_COST_OBJECT);
        /* about 1 MiB / 800 objects' worth of the 1 MiB of text was looked at, not all of it */
        ASSERT_TRUE(used < 4 * budget / JSON_COST_OBJECT + 64);
        free(objects);
}
