/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* ether.c: Ethernet address parsing and formatting. */
#include "ether.h"

#include <errno.h>
#include <stdlib.h>

int ether_addr_parse(const char *s, EtherAddr *ret) {
        EtherAddr a;

        if (!s)
                return -EINVAL;
        for (size_t i = 0; i < 6; i++) {
                int hi = hex_nibble(s[3 * i]), lo = hi < 0 ? -1 : hex_nibble(s[3 * i + 1]);
                if (hi < 0 || lo < 0)
                        return -EINVAL;
                if (s[3 * i + 2] != (i == 5 ? '\0' : ':'))
                        return -EINVAL;
                a.bytes[i] = (uint8_t)(hi << 4 | lo);
        }
        *ret = a;
        return 0;
}

char *ether_addr_format(const EtherAddr *a, char buf[static ETHER_ADDR_STRLEN]) {
        /* By hand: this runs for every table entry of every published change; snprintf costs 10x. */
        static const char hex[] = "0123456789abcdef";
        for (size_t i = 0; i < 6; i++) {
                buf[3 * i] = hex[a->bytes[i] >> 4];
                buf[3 * i + 1] = hex[a->bytes[i] & 0xf];
                buf[3 * i + 2] = i == 5 ? '\0' : ':';
        }
        return buf;
}

size_t ether_addr_set_normalize(EtherAddr *a, size_t n) {
        size_t k = 0;

        if (n == 0)
                return 0;
        qsort(a, n, sizeof(EtherAddr), ether_addr_compare);
        for (size_t i = 1; i < n; i++)
                if (!ether_addr_equal(&a[i], &a[k]))
                        a[++k] = a[i];
        return k + 1;
}

bool ether_addr_set_contains(const EtherAddr *set, size_t n, const EtherAddr *addr) {
        return n > 0 && bsearch(addr, set, n, sizeof(EtherAddr), ether_addr_compare) != NULL;
}
