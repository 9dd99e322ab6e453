/* log.c: stderr logging with syslog priority prefixes when stderr is the journal. */
#include "log.h"

#include <stdarg.h>
#include <stdbool.h>
#include <stdio.h>
#include <string.h>
#include <strings.h>

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

/* Under systemd stderr goes to the journal, which understands "<N>" priority prefixes. */
static bool stderr_is_journal(void) {
        static int cached = -1;
        if (cached < 0)
                cached = getenv("JOURNAL_STREAM") != NULL;
        return cached;
}

int log_internal(int level, int error, const char *file, int line, const char *format, ...) {
        int saved_errno = errno;
        error = error < 0 ? -error : error;

        if (level > log_max_level) {
                errno = saved_errno;
                return -error;
        }

        char message[2048];
        va_list ap;
        errno = error; /* so that %m prints the right error */
        va_start(ap, format);
        (void)vsnprintf(message, sizeof(message), format, ap);
        va_end(ap);

        /* One fprintf per line: stdio locks the stream, so threads never interleave within a line. */
        if (stderr_is_journal())
                fprintf(stderr, "<%d>%s\n", level, message);
        else if (log_max_level >= LOG_DEBUG)
                fprintf(stderr, "%s: %s (%s:%d)\n", level_names[level & 7], message, file, line);
        else
                fprintf(stderr, "%s: %s\n", level_names[level & 7], message);

        errno = saved_errno;
        return -error;
}
