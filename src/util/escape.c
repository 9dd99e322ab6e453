/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* escape.c: non-printable bytes as \xNN, for logs and terminals. */
#include "escape.h"

#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

size_t utf8_sequence(const char *s, unsigned *ret_cp) {
        const unsigned char *p = (const unsigned char *)s;
        unsigned cp, min;
        size_t n;

        if (p[0] < 0x80) {
                *ret_cp = p[0];
                return 1;
        }
        if ((p[0] & 0xE0) == 0xC0)
                n = 2, cp = p[0] & 0x1F, min = 0x80;
        else if ((p[0] & 0xF0) == 0xE0)
                n = 3, cp = p[0] & 0x0F, min = 0x800;
        else if ((p[0] & 0xF8) == 0xF0)
                n = 4, cp = p[0] & 0x07, min = 0x10000;
        else
                return 0;
        for (size_t i = 1; i < n; i++) {
                if ((p[i] & 0xC0) != 0x80) /* also stops at the NUL */
                        return 0;
                cp = cp << 6 | (p[i] & 0x3F);
        }
        if (cp < min || cp > 0x10FFFF || (cp >= 0xD800 && cp <= 0xDFFF))
                return 0;
        *ret_cp = cp;
        return n;
}

static bool is_control(unsigned cp) {
        return cp < 0x20 || (cp >= 0x7F && cp <= 0x9F);
}

char *escape_nonprintable(const char *s, char *buf, size_t size) {
        size_t o = 0;

        if (size == 0)
                return buf;
        while (*s) {
                unsigned cp;
                size_t n = utf8_sequence(s, &cp);

                if (n == 0 || is_control(cp)) {
                        /* One byte at a time: an invalid sequence's next byte may start a valid one. */
                        if (o + 4 >= size)
                                break;
                        snprintf(buf + o, size - o, "\\x%02x", (unsigned char)*s);
                        o += 4;
                        s++;
                        continue;
                }
                if (o + n >= size)
                        break;
                memcpy(buf + o, s, n);
                o += n;
                s += n;
        }
        buf[o] = '\0';
        return buf;
}

char *escape_nonprintable_dup(const char *s) {
        size_t size = ESCAPED_SIZE(strlen(s));
        char *buf = malloc(size);

        return buf ? escape_nonprintable(s, buf, size) : NULL;
}

char *utf8_trim_incomplete(char *s) {
        unsigned cp;

        if (!s)
                return NULL;
        size_t n = strlen(s);
        /* The last sequence starts at most 3 bytes before the end, at its first non-continuation byte. */
        for (size_t back = 1; back <= 4 && back <= n; back++) {
                unsigned char ch = (unsigned char)s[n - back];
                if ((ch & 0xC0) == 0x80)
                        continue;
                if (ch >= 0x80 && utf8_sequence(s + n - back, &cp) != back)
                        s[n - back] = '\0';
                break;
        }
        return s;
}

bool has_control_chars(const char *s) {
        for (; *s != '\0'; s++)
                if ((unsigned char)*s < ' ' || *s == 0x7f)
                        return true;
        return false;
}
