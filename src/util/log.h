/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* log.h: leveled logging to stderr or the journal (with structured fields), escaped, rate-limited. */
#pragma once

#include <errno.h>
#include <stdint.h>
#include <stdlib.h>
#include <syslog.h>

#include "cleanup.h"

extern int log_max_level;

/* Parses "err", "warning", "notice", "info", "debug" (or 0..7); returns the level or -EINVAL. */
int log_level_from_string(const char *s);

/* LogRateLimitIntervalSec=, LogRateLimitBurst=: either 0 turns the limit off. */
void log_set_ratelimit(uint64_t interval_usec, unsigned burst);

/* What a line is about, as journal fields (NULL: not set). Only in the journal; the text format
 * says the same inside the message. */
typedef struct LogFields {
        const char *guest; /* GUESTNETD_GUEST= */
        const char *nic; /* GUESTNETD_NIC= */
        const char *interface; /* INTERFACE=, the host device */
        const char *message_id; /* MESSAGE_ID=, one of message-ids.h */
} LogFields;

/* Logs when level <= log_max_level. error is an errno (sign ignored) made available to %m.
 * Returns -abs(error), so callers can `return log_error_errno(r, "...: %m");`.
 * Every non-printable byte of the message (newlines included) is written as \xNN, so no byte of a
 * peer's can start a line or forge a priority. At most a burst of lines per call site, guest and NIC
 * in an interval (log_set_ratelimit()); then one line says how many were suppressed.
 * When stderr is the journal (JOURNAL_STREAM names stderr's device and inode) the line goes out with
 * sd_journal_send(): PRIORITY=, CODE_FILE/LINE/FUNC=, ERRNO= and the fields; else as text on stderr. */
int log_internal(int level, int error, const char *file, int line, const char *func, const LogFields *fields,
        const char *format, ...) _printf_(7, 8);

#define log_full_errno(level, error, ...) \
        log_internal((level), (error), __FILE__, __LINE__, __func__, NULL, __VA_ARGS__)
#define log_full(level, ...) (void)log_full_errno((level), 0, __VA_ARGS__)
#define log_fields_errno(fields, level, error, ...) \
        log_internal((level), (error), __FILE__, __LINE__, __func__, (fields), __VA_ARGS__)

#define log_debug(...)   log_full(LOG_DEBUG, __VA_ARGS__)
#define log_info(...)    log_full(LOG_INFO, __VA_ARGS__)
#define log_notice(...)  log_full(LOG_NOTICE, __VA_ARGS__)
#define log_warning(...) log_full(LOG_WARNING, __VA_ARGS__)
#define log_error(...)   log_full(LOG_ERR, __VA_ARGS__)

#define log_debug_errno(e, ...)   log_full_errno(LOG_DEBUG, (e), __VA_ARGS__)
#define log_info_errno(e, ...)    log_full_errno(LOG_INFO, (e), __VA_ARGS__)
#define log_warning_errno(e, ...) log_full_errno(LOG_WARNING, (e), __VA_ARGS__)
#define log_error_errno(e, ...)   log_full_errno(LOG_ERR, (e), __VA_ARGS__)

#define log_oom() log_error_errno(ENOMEM, "Out of memory.")
