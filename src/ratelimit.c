/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* ratelimit.c: the token bucket behind MaxQueriesPerSecond= and the relayed events' limit. */
#include "ratelimit.h"

#include <math.h>

static void rate_limit_refill(RateLimit *rl, unsigned rate, unsigned burst, uint64_t now) {
        if (burst < 1)
                burst = 1;
        if (rl->tokens < 0)
                rl->tokens = burst;
        else if (now > rl->usec)
                rl->tokens = fmin(burst, rl->tokens + (double)(now - rl->usec) * rate / 1e6);
        if (now > rl->usec)
                rl->usec = now;
}

uint64_t rate_limit_take(RateLimit *rl, unsigned rate, unsigned burst, uint64_t now) {
        if (rate == 0)
                return 0;
        rate_limit_refill(rl, rate, burst, now);

        if (rl->tokens >= 1.0) {
                rl->tokens -= 1.0;
                return 0;
        }
        uint64_t delay = (uint64_t)((1.0 - rl->tokens) * 1e6 / rate) + 1;
        rl->tokens = 0; /* the deferred action spends the token that accrues meanwhile */
        rl->usec = now + delay;
        return delay;
}

bool rate_limit_try(RateLimit *rl, unsigned rate, unsigned burst, uint64_t now) {
        if (rate == 0)
                return true;
        rate_limit_refill(rl, rate, burst, now);
        if (rl->tokens < 1.0)
                return false;
        rl->tokens -= 1.0;
        return true;
}
