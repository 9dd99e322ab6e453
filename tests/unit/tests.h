/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* tests.h: a tiny TAP-producing unit test harness: TEST(name) { ... } and ASSERT_* macros. */
#pragma once

#include <errno.h>
#include <inttypes.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

typedef struct TestCase {
        const char *name;
        void (*func)(void);
        struct TestCase *next;
} TestCase;

extern TestCase *test_list;
extern bool test_failed;
extern const char *test_skip_reason;

#define TEST(n)                                                            \
        static void test_##n(void);                                        \
        static TestCase test_case_##n = { .name = #n, .func = test_##n };  \
        __attribute__((constructor)) static void test_register_##n(void) { \
                TestCase **p = &test_list;                                 \
                while (*p)                                                 \
                        p = &(*p)->next;                                   \
                *p = &test_case_##n;                                       \
        }                                                                  \
        static void test_##n(void)

#define TEST_FAIL(...)                                            \
        do {                                                      \
                fprintf(stdout, "# %s:%d: ", __FILE__, __LINE__); \
                fprintf(stdout, __VA_ARGS__);                     \
                fputc('\n', stdout);                              \
                test_failed = true;                               \
                return;                                           \
        } while (0)

/* Skipping is reported as "ok ... # SKIP reason" and counted as skipped, never as passed. */
#define TEST_SKIP(reason)                    \
        do {                                 \
                test_skip_reason = (reason); \
                return;                      \
        } while (0)

#define ASSERT_TRUE(e)                                         \
        do {                                                   \
                if (!(e))                                      \
                        TEST_FAIL("assertion failed: %s", #e); \
        } while (0)
#define ASSERT_FALSE(e) ASSERT_TRUE(!(e))

#define ASSERT_INT_EQ(a, b)                                                  \
        do {                                                                 \
                long long _a = (long long)(a), _b = (long long)(b);          \
                if (_a != _b)                                                \
                        TEST_FAIL("%s == %s: %lld != %lld", #a, #b, _a, _b); \
        } while (0)

#define ASSERT_OK(e)                                                        \
        do {                                                                \
                long long _r = (long long)(e);                              \
                if (_r < 0)                                                 \
                        TEST_FAIL("%s failed: %s", #e, strerror((int)-_r)); \
        } while (0)

#define ASSERT_ERROR(e, err)                                                   \
        do {                                                                   \
                long long _r = (long long)(e);                                 \
                if (_r != -(err))                                              \
                        TEST_FAIL("%s: expected -%s, got %lld", #e, #err, _r); \
        } while (0)

#define ASSERT_STR_EQ(a, b)                                                                 \
        do {                                                                                \
                const char *_a = (a), *_b = (b);                                            \
                if (!_a || !_b || strcmp(_a, _b) != 0)                                      \
                        TEST_FAIL("%s == %s: \"%s\" != \"%s\"", #a, #b, _a ? _a : "(null)", \
                                _b ? _b : "(null)");                                        \
        } while (0)

#define ASSERT_STR_CONTAINS(hay, needle)                                                               \
        do {                                                                                           \
                const char *_h = (hay), *_n = (needle);                                                \
                if (!_h || !strstr(_h, _n))                                                            \
                        TEST_FAIL("%s does not contain \"%s\": \"%s\"", #hay, _n, _h ? _h : "(null)"); \
        } while (0)
