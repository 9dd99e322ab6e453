/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* log.c: text on stderr, or native journal entries with fields when stderr is the journal. */
#include "log.h"

#include <pthread.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdio.h>
#include <string.h>
#include <strings.h>
#include <sys/stat.h>
#include <sys/uio.h>
/* Our CODE_FILE/LINE/FUNC are the caller's, not log.c's. */
#define SD_JOURNAL_SUPPRESS_LOCATION
#include <systemd/sd-journal.h>
#include <time.h>

#include "escape.h"
#include "log-ratelimit.h"
#include "time-util.h"

#define LOG_MESSAGE_MAX 2048

int log_max_level = LOG_INFO;

static const char *const level_names[] = {
        [LOG_EMERG] = "emerg",
        [LOG_ALERT] = "alert",
        [LOG_CRIT] = "crit",
        [LOG_ERR] = "err",
        [LOG_WARNING] = "warning",
        [LOG_NOTICE] = "notice",
        [LOG_INFO] = "info",
        [LOG_DEBUG] = "debug",
};

int log_level_from_string(const char *s) {
        if (!s)
                return -EINVAL;
        for (size_t i = 0; i < ELEMENTSOF(level_names); i++)
                if (strcasecmp(s, level_names[i]) == 0)
                        return (int)i;
        if (strcasecmp(s, "error") == 0)
                return LOG_ERR;
        if (s[0] >= '0' && s[0] <= '7' && s[1] == '\0')
                return s[0] - '0';
        return -EINVAL;
}

/* As sd-daemon(3) says: JOURNAL_STREAM is inherited by children whose stderr went elsewhere, so it
 * counts only when it names the very stream stderr is. */
static bool journal_stream;
static pthread_once_t journal_once = PTHREAD_ONCE_INIT;

static void detect_journal_stream(void) {
        const char *e = getenv("JOURNAL_STREAM");
        unsigned long long dev, ino;
        struct stat st;

        journal_stream = e && sscanf(e, "%llu:%llu", &dev, &ino) == 2 && fstat(STDERR_FILENO, &st) == 0 &&
                (unsigned long long)st.st_dev == dev && (unsigned long long)st.st_ino == ino;
}

static bool stderr_is_journal(void) {
        (void)pthread_once(&journal_once, detect_journal_stream);
        return journal_stream;
}

static pthread_mutex_t ratelimit_lock = PTHREAD_MUTEX_INITIALIZER;
static LogRatelimit ratelimit = { .interval_usec = LOG_RATELIMIT_INTERVAL_USEC,
        .burst = LOG_RATELIMIT_BURST };

void log_set_ratelimit(uint64_t interval_usec, unsigned burst) {
        pthread_mutex_lock(&ratelimit_lock);
        ratelimit = (LogRatelimit){ .interval_usec = interval_usec, .burst = burst };
        pthread_mutex_unlock(&ratelimit_lock);
}

/* One "FIELD=value" iovec; the value escaped like the message. */
static void add_field(
        struct iovec *iov, size_t *n, char *buf, size_t size, const char *name, const char *value) {
        char escaped[ESCAPED_SIZE(256)];

        if (!value)
                return;
        snprintf(buf, size, "%s=%s", name, escape_nonprintable(value, escaped, sizeof(escaped)));
        iov[(*n)++] = (struct iovec){ .iov_base = buf, .iov_len = strlen(buf) };
}

static int journal_send(int level, int error, const char *file, int line, const char *func,
        const LogFields *fields, const char *message) {
        char msg[ESCAPED_SIZE(LOG_MESSAGE_MAX) + 16], prio[16], code_file[300], code_line[32],
                code_func[300], err[32], ident[64], guest[1100], nic[1100], iface[1100], mid[64];
        struct iovec iov[11];
        size_t n = 0;

        snprintf(msg, sizeof(msg), "MESSAGE=%s", message);
        iov[n++] = (struct iovec){ .iov_base = msg, .iov_len = strlen(msg) };
        snprintf(prio, sizeof(prio), "PRIORITY=%d", level);
        iov[n++] = (struct iovec){ .iov_base = prio, .iov_len = strlen(prio) };
        add_field(iov, &n, ident, sizeof(ident), "SYSLOG_IDENTIFIER", program_invocation_short_name);
        add_field(iov, &n, code_file, sizeof(code_file), "CODE_FILE", file);
        snprintf(code_line, sizeof(code_line), "CODE_LINE=%d", line);
        iov[n++] = (struct iovec){ .iov_base = code_line, .iov_len = strlen(code_line) };
        add_field(iov, &n, code_func, sizeof(code_func), "CODE_FUNC", func);
        if (error != 0) {
                snprintf(err, sizeof(err), "ERRNO=%d", error);
                iov[n++] = (struct iovec){ .iov_base = err, .iov_len = strlen(err) };
        }
        if (fields) {
                add_field(iov, &n, guest, sizeof(guest), "GUESTNETD_GUEST", fields->guest);
                add_field(iov, &n, nic, sizeof(nic), "GUESTNETD_NIC", fields->nic);
                add_field(iov, &n, iface, sizeof(iface), "INTERFACE", fields->interface);
                add_field(iov, &n, mid, sizeof(mid), "MESSAGE_ID", fields->message_id);
        }
        return sd_journal_sendv(iov, (int)n);
}

static void log_write(int level, int error, const char *file, int line, const char *func,
        const LogFields *fields, const char *message) {
        /* One fprintf per line: stdio locks the stream, so threads never interleave within a line. */
        if (stderr_is_journal()) {
                if (journal_send(level, error, file, line, func, fields, message) >= 0)
                        return;
                fprintf(stderr, "<%d>%s\n", level, message); /* journald's stream still understands this */
        } else if (log_max_level >= LOG_DEBUG)
                fprintf(stderr, "%s: %s (%s:%d)\n", level_names[level & 7], message, file, line);
        else
                fprintf(stderr, "%s: %s\n", level_names[level & 7], message);
}

static void report_suppressed(unsigned suppressed, const char *file, int line) {
        if (suppressed == 0)
                return;
        char m[300];
        snprintf(m, sizeof(m), "Suppressed %u messages from %s:%d", suppressed, file, line);
        /* No fields: the suppressed lines may be another key's that shares the bucket. */
        log_write(LOG_WARNING, 0, __FILE__, __LINE__, __func__, NULL, m);
}

static bool log_ratelimit(int level, const char *file, int line, const LogFields *fields) {
        uint64_t key =
                log_ratelimit_key(file, line, fields ? fields->guest : NULL, fields ? fields->nic : NULL);
        const char *suppressed_file = NULL;
        unsigned suppressed;
        int suppressed_line = 0;
        bool pass;
        uint64_t now = now_usec(CLOCK_MONOTONIC);

        unsigned guest_suppressed = 0;
        const char *guest_suppressed_file = NULL;
        int guest_suppressed_line = 0;

        pthread_mutex_lock(&ratelimit_lock);
        pass = log_ratelimit_test(
                &ratelimit, key, file, line, now, &suppressed, &suppressed_file, &suppressed_line);
        /* Debug lines are the operator's choice of volume: only their call sites' budgets apply. */
        if (pass && fields && fields->guest && level < LOG_DEBUG)
                pass = log_ratelimit_test_guest(&ratelimit, fields->guest, file, line, now,
                        &guest_suppressed, &guest_suppressed_file, &guest_suppressed_line);
        pthread_mutex_unlock(&ratelimit_lock);

        report_suppressed(suppressed, suppressed_file, suppressed_line);
        report_suppressed(guest_suppressed, guest_suppressed_file, guest_suppressed_line);
        return pass;
}

int log_internal(int level, int error, const char *file, int line, const char *func, const LogFields *fields,
        const char *format, ...) {
        char message[LOG_MESSAGE_MAX], escaped[ESCAPED_SIZE(LOG_MESSAGE_MAX)];
        int saved_errno = errno;
        va_list ap;

        error = error < 0 ? -error : error;
        if (level > log_max_level || !log_ratelimit(level, file, line, fields)) {
                errno = saved_errno;
                return -error;
        }

        errno = error; /* so that %m prints the right error */
        va_start(ap, format);
        (void)vsnprintf(message, sizeof(message), format, ap);
        va_end(ap);

        log_write(level, error, file, line, func, fields,
                escape_nonprintable(message, escaped, sizeof(escaped)));
        errno = saved_errno;
        return -error;
}
