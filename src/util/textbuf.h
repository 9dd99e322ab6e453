/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* textbuf.h: text built in a fixed buffer without printf, for what the trusted path writes on every
 * change (a record, a file name, a map key): snprintf() parses its format and sets up a stream per call,
 * ten times the work of the copy itself. Semantics as snprintf's: the buffer is always NUL-terminated,
 * what does not fit is counted but not written, so text_buf_fits() tells truncation. */
#pragma once

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

typedef struct TextBuf {
        char *buf;
        size_t size; /* > 0 */
        size_t len; /* what the text would be: may exceed size - 1 */
} TextBuf;

/* Over an array only: given a pointer, .size gets a void value and the build fails. */
#define TEXT_BUF(array)                                                                                    \
        ((TextBuf){ .buf = (array),                                                                        \
                .size = __builtin_choose_expr(                                                             \
                        __builtin_types_compatible_p(__typeof__(array), __typeof__(&(array)[0])), (void)0, \
                        sizeof(array)) })

static inline void text_append_mem(TextBuf *t, const char *s, size_t n) {
        if (t->len < t->size - 1) {
                size_t room = t->size - 1 - t->len;
                memcpy(t->buf + t->len, s, n < room ? n : room);
        }
        t->len += n;
        t->buf[t->len < t->size - 1 ? t->len : t->size - 1] = '\0';
}

static inline void text_append(TextBuf *t, const char *s) {
        text_append_mem(t, s, strlen(s));
}

static inline void text_append_char(TextBuf *t, char c) {
        text_append_mem(t, &c, 1);
}

static inline void text_append_u64(TextBuf *t, uint64_t v) {
        char digits[20];
        size_t n = sizeof(digits);
        do
                digits[--n] = (char)('0' + v % 10);
        while ((v /= 10) > 0);
        text_append_mem(t, digits + n, sizeof(digits) - n);
}

static inline void text_append_i64(TextBuf *t, int64_t v) {
        if (v < 0)
                text_append_char(t, '-');
        text_append_u64(t, v < 0 ? (uint64_t)0 - (uint64_t)v : (uint64_t)v);
}

/* Lower-case hex, at least min_digits wide (zero-padded; at most 16). */
static inline void text_append_hex(TextBuf *t, uint64_t v, unsigned min_digits) {
        char digits[16];
        size_t n = sizeof(digits);
        if (min_digits > sizeof(digits))
                min_digits = sizeof(digits);
        do
                digits[--n] = "0123456789abcdef"[v & 0xf];
        while ((v >>= 4) > 0 || sizeof(digits) - n < min_digits);
        text_append_mem(t, digits + n, sizeof(digits) - n);
}

static inline bool text_buf_fits(const TextBuf *t) {
        return t->len < t->size;
}

/* A NUL-terminated copy of s into dst (size > 0), cut to fit: snprintf(dst, size, "%s", s). */
static inline void strscpy(char *dst, size_t size, const char *s) {
        TextBuf t = { .buf = dst, .size = size };
        text_append(&t, s);
}
