/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* escape.h: peer bytes made safe for a log line or a terminal (C-style \xNN for what is not printable). */
#pragma once

#include <stdbool.h>
#include <stddef.h>

/* Worst case: every byte becomes "\xNN". */
#define ESCAPED_SIZE(n) ((n)*4 + 1)

/* Copies s into buf (size bytes, always NUL-terminated, truncated at a whole character) with every
 * byte that could move the cursor, end a line, start an escape sequence or a priority prefix
 * replaced by "\xNN": C0 controls (newline and tab included), DEL, the C1 controls U+0080..U+009F,
 * and each byte of an invalid or overlong UTF-8 sequence. Printable ASCII and valid UTF-8 text
 * stay as they are. Returns buf. */
char *escape_nonprintable(const char *s, char *buf, size_t size);

/* The same into a new string; NULL on OOM. */
char *escape_nonprintable_dup(const char *s);

/* Whether s has a C0 control character or DEL: refused in names and paths that reach a log, a
 * terminal or polkit's details. */
bool has_control_chars(const char *s);

/* The length of the valid UTF-8 sequence at s (1..4) or 0 when it is not one (truncated, overlong,
 * a surrogate, beyond U+10FFFF). *ret_cp gets the code point. */
size_t utf8_sequence(const char *s, unsigned *ret_cp);

/* Cuts s before a UTF-8 sequence left incomplete at its end (a text cut at a byte count, which D-Bus
 * would refuse as a string). Returns s; NULL is passed through. */
char *utf8_trim_incomplete(char *s);
