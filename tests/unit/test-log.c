/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* test-log.c: escaping of peer bytes, the log rate limit, and what a log line looks like on stderr. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "escape.h"
#include "log-ratelimit.h"
#include "log.h"
#include "tests.h"

static const char *esc(const char *s) {
        static char buf[ESCAPED_SIZE(256)];
        return escape_nonprintable(s, buf, sizeof(buf));
}

TEST(escape_controls) {
        ASSERT_STR_EQ(esc("net0"), "net0");
        ASSERT_STR_EQ(esc("a\nb"), "a\\x0ab");
        ASSERT_STR_EQ(esc("x\n<0>forged"), "x\\x0a<0>forged");
        ASSERT_STR_EQ(esc("\x1b[2J\x1b]0;pwned\x07"), "\\x1b[2J\\x1b]0;pwned\\x07");
        ASSERT_STR_EQ(esc("\t\r\x7f"), "\\x09\\x0d\\x7f");
}

TEST(escape_utf8) {
        ASSERT_STR_EQ(esc("gäst-ß-日本"), "gäst-ß-日本"); /* valid UTF-8 stays */
        ASSERT_STR_EQ(esc("\xc2\x9b"
                          "2J"),
                "\\xc2\\x9b2J"); /* C1 CSI */
        ASSERT_STR_EQ(esc("a\xff"
                          "b"),
                "a\\xffb"); /* invalid byte */
        ASSERT_STR_EQ(esc("\xc0\xaf"), "\\xc0\\xaf"); /* overlong '/' */
        ASSERT_STR_EQ(esc("\xed\xa0\x80"), "\\xed\\xa0\\x80"); /* surrogate */
        ASSERT_STR_EQ(esc("\xe6\x97"), "\\xe6\\x97"); /* truncated */
        ASSERT_STR_EQ(esc("\xe6"
                          "\xe6\x97\xa5"),
                "\\xe6日"); /* a bad lead byte does not eat the next */
}

TEST(escape_truncates_whole) {
        char buf[6];
        ASSERT_STR_EQ(escape_nonprintable("ab\ncd", buf, sizeof(buf)), "ab");
        ASSERT_STR_EQ(escape_nonprintable("日本", buf, sizeof(buf)), "日");
        ASSERT_STR_EQ(escape_nonprintable("abcdefgh", buf, sizeof(buf)), "abcde");
}

/* A text cut at a byte count inside a character loses the whole character (D-Bus refuses invalid UTF-8
 * as a string: a LastError cut so would make the NIC's properties unreadable). */
TEST(utf8_trim_drops_a_cut_character_only) {
        char cut3[] = "driven by guest \xe6\x97\xa5\xe6\x9c"; /* 日 whole, 本 missing its last byte */
        ASSERT_STR_EQ(utf8_trim_incomplete(cut3), "driven by guest \xe6\x97\xa5");
        char cut4[] = "nic \xf0\x9f\x98"; /* 😀 without its last byte */
        ASSERT_STR_EQ(utf8_trim_incomplete(cut4), "nic ");
        char lead[] = "x\xc3";
        ASSERT_STR_EQ(utf8_trim_incomplete(lead), "x");
        char whole[] = "caf\xc3\xa9";
        ASSERT_STR_EQ(utf8_trim_incomplete(whole), "caf\xc3\xa9");
        char ascii[] = "mvt0: No such device";
        ASSERT_STR_EQ(utf8_trim_incomplete(ascii), "mvt0: No such device");
        char empty[] = "";
        ASSERT_STR_EQ(utf8_trim_incomplete(empty), "");
        ASSERT_TRUE(utf8_trim_incomplete(NULL) == NULL);
}

TEST(ratelimit_burst_then_count) {
        static LogRatelimit rl = { .interval_usec = LOG_RATELIMIT_INTERVAL_USEC,
                .burst = LOG_RATELIMIT_BURST };
        uint64_t k = log_ratelimit_key("nic.c", 10, "vm1", "net0");
        const char *file = NULL;
        unsigned suppressed, passed = 0;
        int line = 0;

        for (unsigned i = 0; i < 5000; i++)
                passed += log_ratelimit_test(&rl, k, "nic.c", 10, 1000 + i, &suppressed, &file, &line);
        ASSERT_INT_EQ(passed, LOG_RATELIMIT_BURST);
        /* Another NIC and another call site have budgets of their own. */
        ASSERT_TRUE(log_ratelimit_test(&rl, log_ratelimit_key("nic.c", 10, "vm1", "net1"), "nic.c", 10, 2000,
                &suppressed, &file, &line));
        ASSERT_TRUE(log_ratelimit_key("nic.c", 11, "vm1", "net0") != k);
        ASSERT_TRUE(log_ratelimit_key("nic.c", 10, "vm1n", "et0") != k);

        /* The next interval lets a line through and reports what was dropped. */
        ASSERT_TRUE(log_ratelimit_test(
                &rl, k, "nic.c", 10, 1000 + LOG_RATELIMIT_INTERVAL_USEC, &suppressed, &file, &line));
        ASSERT_INT_EQ(suppressed, 5000 - LOG_RATELIMIT_BURST);
        ASSERT_STR_EQ(file, "nic.c");
        ASSERT_INT_EQ(line, 10);
        ASSERT_TRUE(log_ratelimit_test(
                &rl, k, "nic.c", 10, 2000 + LOG_RATELIMIT_INTERVAL_USEC, &suppressed, &file, &line));
        ASSERT_INT_EQ(suppressed, 0);
}

/* Found in review: a monitor that makes up new NIC ids gave each a budget of its own (1,400 lines a
 * second from one guest). The guest has a budget too, over all its call sites and NICs. Through
 * log_internal(), stderr counted. */
TEST(ratelimit_guest_budget_over_made_up_nics) {
        char path[] = "/tmp/test-log-XXXXXX";
        int fd = mkstemp(path), saved = dup(STDERR_FILENO);
        ASSERT_TRUE(fd >= 0 && saved >= 0);
        unlink(path);
        log_set_ratelimit(LOG_RATELIMIT_INTERVAL_USEC, 10);
        fflush(stderr);
        ASSERT_TRUE(dup2(fd, STDERR_FILENO) >= 0);
        for (unsigned i = 0; i < 500; i++) {
                char nic[16];
                snprintf(nic, sizeof(nic), "n%u", i);
                for (unsigned k = 0; k < 3; k++)
                        log_internal(LOG_ERR, 0, "guest.c", 100 + k, "f",
                                &(LogFields){ .guest = "hostile", .nic = nic }, "nic %s line %u", nic, k);
        }
        log_internal(LOG_ERR, 0, "guest.c", 100, "f", &(LogFields){ .guest = "other", .nic = "net0" },
                "another guest is heard");
        fflush(stderr);
        ASSERT_TRUE(dup2(saved, STDERR_FILENO) >= 0);
        log_set_ratelimit(LOG_RATELIMIT_INTERVAL_USEC, LOG_RATELIMIT_BURST);

        char buf[65536];
        ssize_t n = pread(fd, buf, sizeof(buf) - 1, 0);
        ASSERT_TRUE(n > 0);
        buf[n] = '\0';
        unsigned hostile = 0, other = 0;
        for (char *p = buf; (p = strstr(p, "nic n")); p++)
                hostile++;
        other = strstr(buf, "another guest is heard") != NULL;
        close(fd);
        close(saved);
        printf("# 1,500 lines about 500 made-up NICs of one guest: %u written (burst 10, guest %u bursts)\n",
                hostile, LOG_RATELIMIT_GUEST_BURSTS);
        ASSERT_INT_EQ(hostile, 10 * LOG_RATELIMIT_GUEST_BURSTS);
        ASSERT_INT_EQ(other, 1);
}

TEST(ratelimit_off) {
        static LogRatelimit rl = { .interval_usec = 0, .burst = LOG_RATELIMIT_BURST };
        const char *file;
        unsigned suppressed;
        int line;

        for (unsigned i = 0; i < 10 * LOG_RATELIMIT_BURST; i++)
                ASSERT_TRUE(log_ratelimit_test(&rl, 1, "a.c", 1, i, &suppressed, &file, &line));
}

/* What log_info() writes to stderr (text mode: JOURNAL_STREAM unset). */
static char *capture_stderr(const char *peer_bytes) {
        static char out[4096];
        FILE *f = tmpfile();
        int saved = dup(STDERR_FILENO);
        size_t n;

        if (!f || saved < 0)
                return NULL;
        fflush(stderr);
        dup2(fileno(f), STDERR_FILENO);
        log_info("guest %s: connected", peer_bytes);
        fflush(stderr);
        dup2(saved, STDERR_FILENO);
        close(saved);
        rewind(f);
        n = fread(out, 1, sizeof(out) - 1, f);
        out[n] = '\0';
        fclose(f);
        return out;
}

TEST(log_line_is_one_line) {
        unsetenv("JOURNAL_STREAM");
        log_max_level = LOG_INFO;
        const char *out = capture_stderr("vm1\n<0>forged: \x1b[2J");
        ASSERT_STR_EQ(out, "info: guest vm1\\x0a<0>forged: \\x1b[2J: connected\n");
}
