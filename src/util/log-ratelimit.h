/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* log-ratelimit.h: at most a burst of log lines per call site and object in an interval, then a count. */
#pragma once

#include <stdbool.h>
#include <stdint.h>

/* Defaults of LogRateLimitIntervalSec= and LogRateLimitBurst= (guestnetd.conf(5)). */
#define LOG_RATELIMIT_INTERVAL_USEC (10 * 1000000ULL)
#define LOG_RATELIMIT_BURST         200
#define LOG_RATELIMIT_BUCKETS       1024
/* A guest's lines over all call sites and NICs, per interval, in bursts: one whose monitor makes up new NIC
 * ids (each with a budget of its own) cannot log without end. */
#define LOG_RATELIMIT_GUEST_BURSTS 2

/* Keys hash into a fixed table: memory stays the same whatever a peer sends; keys that collide
 * share one budget (an interval later the table is fresh again). */
typedef struct LogRatelimitBucket {
        bool used;
        uint64_t begin_usec;
        unsigned n; /* lines let through in this interval */
        unsigned suppressed;
        const char *file; /* the call site whose lines were suppressed (static strings) */
        int line;
} LogRatelimitBucket;

typedef struct LogRatelimit {
        uint64_t interval_usec; /* 0: no limit */
        unsigned burst; /* 0: no limit */
        LogRatelimitBucket buckets[LOG_RATELIMIT_BUCKETS];
} LogRatelimit;

/* A key for one call site and the guest and NIC a line is about (either may be NULL). */
uint64_t log_ratelimit_key(const char *file, int line, const char *guest, const char *nic);

/* Whether a line with this key may be written at now_usec (CLOCK_MONOTONIC). When a new interval
 * begins and lines of the last one were dropped, *ret_suppressed says how many and *ret_file,
 * *ret_line where they came from, to be reported before this line; else *ret_suppressed is 0. */
bool log_ratelimit_test(LogRatelimit *rl, uint64_t key, const char *file, int line, uint64_t now_usec,
        unsigned *ret_suppressed, const char **ret_file, int *ret_line);

/* The same for the guest's own budget (LOG_RATELIMIT_GUEST_BURSTS bursts an interval), for a line that
 * passed its call site's: both must let it through. */
bool log_ratelimit_test_guest(LogRatelimit *rl, const char *guest, const char *file, int line,
        uint64_t now_usec, unsigned *ret_suppressed, const char **ret_file, int *ret_line);
