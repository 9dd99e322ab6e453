/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* ratelimit.h: a token bucket that defers, never drops: how long the next action must wait. */
#pragma once

#include <stdbool.h>
#include <stdint.h>

typedef struct RateLimit {
        double tokens; /* < 0: not used yet, the bucket starts full */
        uint64_t usec; /* when tokens was last brought up to date */
} RateLimit;

#define RATE_LIMIT_INIT ((RateLimit){ .tokens = -1 })

/* Takes a token for an action at `now` (µs, CLOCK_MONOTONIC). The bucket refills at `rate` per second
 * and holds `burst` tokens. Returns 0 when the action may run now, else the delay after which it may:
 * the token that accrues meanwhile is spent on it. rate 0 means unlimited. */
uint64_t rate_limit_take(RateLimit *rl, unsigned rate, unsigned burst, uint64_t now);
/* For what is dropped, not deferred: takes a token if there is one now (true), else takes nothing and
 * reserves nothing (false). */
bool rate_limit_try(RateLimit *rl, unsigned rate, unsigned burst, uint64_t now);
