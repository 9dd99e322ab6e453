/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* test-textbuf.c: text built without printf says what snprintf would, and cuts where it would. */
#include <inttypes.h>
#include <stdio.h>

#include "tests.h"
#include "textbuf.h"

TEST(numbers_read_as_printf_writes_them) {
        static const int64_t signed_values[] = { 0, 1, -1, 9, 10, -10, 2147483647, INT64_MAX, INT64_MIN };
        static const uint64_t unsigned_values[] = { 0, 7, 10, 1844674407370955161ULL, UINT64_MAX };
        char ours[32], printf_says[32];

        for (size_t i = 0; i < sizeof(signed_values) / sizeof(signed_values[0]); i++) {
                TextBuf t = TEXT_BUF(ours);
                text_append_i64(&t, signed_values[i]);
                snprintf(printf_says, sizeof(printf_says), "%" PRId64, signed_values[i]);
                ASSERT_STR_EQ(ours, printf_says);
                ASSERT_INT_EQ(t.len, strlen(printf_says));
        }
        for (size_t i = 0; i < sizeof(unsigned_values) / sizeof(unsigned_values[0]); i++) {
                TextBuf t = TEXT_BUF(ours);
                text_append_u64(&t, unsigned_values[i]);
                snprintf(printf_says, sizeof(printf_says), "%" PRIu64, unsigned_values[i]);
                ASSERT_STR_EQ(ours, printf_says);

                t = TEXT_BUF(ours);
                text_append_hex(&t, unsigned_values[i], 4);
                snprintf(printf_says, sizeof(printf_says), "%04" PRIx64, unsigned_values[i]);
                ASSERT_STR_EQ(ours, printf_says);
        }
}

TEST(what_does_not_fit_is_counted_not_written) {
        char buf[8];
        TextBuf t = TEXT_BUF(buf);

        text_append(&t, "1234");
        ASSERT_TRUE(text_buf_fits(&t));
        text_append_u64(&t, 567);
        ASSERT_STR_EQ(buf, "1234567"); /* exactly full: 7 characters and the NUL */
        ASSERT_TRUE(text_buf_fits(&t));
        text_append_char(&t, '8');
        ASSERT_STR_EQ(buf, "1234567");
        ASSERT_FALSE(text_buf_fits(&t));
        ASSERT_INT_EQ(t.len, 8);
        text_append(&t, "more"); /* beyond the end: still counted, never written */
        ASSERT_INT_EQ(t.len, 12);
        ASSERT_STR_EQ(buf, "1234567");

        char one[1];
        t = TEXT_BUF(one);
        text_append(&t, "x");
        ASSERT_STR_EQ(one, "");
        ASSERT_FALSE(text_buf_fits(&t));

        char hex[32];
        t = TEXT_BUF(hex);
        text_append_hex(&t, 1, 40); /* wider than a 64-bit number: 16 digits */
        ASSERT_STR_EQ(hex, "0000000000000001");

        char name[6];
        strscpy(name, sizeof(name), "macvtap12");
        ASSERT_STR_EQ(name, "macvt");
        strscpy(name, sizeof(name), "");
        ASSERT_STR_EQ(name, "");
}
