/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* log-ratelimit.c: a fixed table of per-key budgets, reset every interval. */
#include "log-ratelimit.h"

#include <stddef.h>

static uint64_t fnv1a(uint64_t h, const void *data, size_t n) {
        const unsigned char *p = data;
        for (size_t i = 0; i < n; i++) {
                h ^= p[i];
                h *= 0x100000001b3ULL;
        }
        return h;
}

static uint64_t fnv1a_str(uint64_t h, const char *s) {
        for (; s && *s; s++) {
                h ^= (unsigned char)*s;
                h *= 0x100000001b3ULL;
        }
        return fnv1a(h, "", 1); /* so that ("ab", "c") and ("a", "bc") differ */
}

uint64_t log_ratelimit_key(const char *file, int line, const char *guest, const char *nic) {
        uint64_t h = 0xcbf29ce484222325ULL;

        h = fnv1a_str(h, file);
        h = fnv1a(h, &line, sizeof(line));
        h = fnv1a_str(h, guest);
        return fnv1a_str(h, nic);
}

static bool bucket_test(LogRatelimit *rl, uint64_t key, unsigned burst, const char *file, int line,
        uint64_t now_usec, unsigned *ret_suppressed, const char **ret_file, int *ret_line) {
        LogRatelimitBucket *b = &rl->buckets[key % LOG_RATELIMIT_BUCKETS];

        *ret_suppressed = 0;
        if (rl->interval_usec == 0 || rl->burst == 0)
                return true;
        if (!b->used || now_usec - b->begin_usec >= rl->interval_usec) {
                if (b->used && b->suppressed > 0) {
                        *ret_suppressed = b->suppressed;
                        *ret_file = b->file;
                        *ret_line = b->line;
                }
                *b = (LogRatelimitBucket){ .used = true, .begin_usec = now_usec, .n = 1 };
                return true;
        }
        if (b->n < burst) {
                b->n++;
                return true;
        }
        b->suppressed++;
        b->file = file;
        b->line = line;
        return false;
}

bool log_ratelimit_test(LogRatelimit *rl, uint64_t key, const char *file, int line, uint64_t now_usec,
        unsigned *ret_suppressed, const char **ret_file, int *ret_line) {
        return bucket_test(rl, key, rl->burst, file, line, now_usec, ret_suppressed, ret_file, ret_line);
}

bool log_ratelimit_test_guest(LogRatelimit *rl, const char *guest, const char *file, int line,
        uint64_t now_usec, unsigned *ret_suppressed, const char **ret_file, int *ret_line) {
        uint64_t key = fnv1a_str(fnv1a_str(0xcbf29ce484222325ULL, "guest"), guest);
        return bucket_test(rl, key, rl->burst * LOG_RATELIMIT_GUEST_BURSTS, file, line, now_usec,
                ret_suppressed, ret_file, ret_line);
}
