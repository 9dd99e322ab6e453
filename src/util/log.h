/* log.h: leveled logging to stderr (journal-aware), thread-safe, errno-returning helpers. */
#pragma once

#include <errno.h>
#include <stdlib.h>
#include <syslog.h>

#include "cleanup.h"

extern int log_max_level;

/* Parses "err", "warning", "notice", "info", "debug" (or 0..7); returns the level or -EINVAL. */
int log_level_from_string(const char *s);

/* Logs when level <= log_max_level. error is an errno (sign ignored) made available to %m.
 * Returns -abs(error), so callers can `return log_error_errno(r, "...: %m");`. */
int log_internal(int level, int error, const char *file, int line, const char *format, ...) _printf_(5, 6);

#define log_full_errno(level, error, ...) log_internal((level), (error), __FILE__, __LINE__, __VA_ARGS__)
#define log_full(level, ...)              (void)log_full_errno((level), 0, __VA_ARGS__)

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
