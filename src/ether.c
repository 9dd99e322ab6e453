/* ether.c: Ethernet address parsing and formatting. */
#include "ether.h"

#include <errno.h>
#include <stdio.h>

static int hex_value(char c) {
        if (c >= '0' && c <= '9')
                return c - '0';
        if (c >= 'a' && c <= 'f')
                return c - 'a' + 10;
        if (c >= 'A' && c <= 'F')
                return c - 'A' + 10;
        return -1;
}

int ether_addr_parse(const char *s, EtherAddr *ret) {
        EtherAddr a;

        if (!s)
                return -EINVAL;
        for (size_t i = 0; i < 6; i++) {
                int hi = hex_value(s[3 * i]), lo = hi < 0 ? -1 : hex_value(s[3 * i + 1]);
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
        snprintf(buf, ETHER_ADDR_STRLEN, "%02x:%02x:%02x:%02x:%02x:%02x", a->bytes[0], a->bytes[1],
                a->bytes[2], a->bytes[3], a->bytes[4], a->bytes[5]);
        return buf;
}
