/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* ether.h: Ethernet addresses: parse, format, classify, order. */
#pragma once

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#define ETHER_ADDR_STRLEN 18 /* "52:54:00:12:34:56" + NUL */

typedef struct EtherAddr {
        uint8_t bytes[6];
} EtherAddr;

/* One hex digit's value, or -1. */
static inline int hex_nibble(char c) {
        if (c >= '0' && c <= '9')
                return c - '0';
        if (c >= 'a' && c <= 'f')
                return c - 'a' + 10;
        if (c >= 'A' && c <= 'F')
                return c - 'A' + 10;
        return -1;
}

/* Accepts exactly "xx:xx:xx:xx:xx:xx" (hex, either case). Returns 0 or -EINVAL. */
int ether_addr_parse(const char *s, EtherAddr *ret);
/* Writes lower-case "xx:xx:..." into buf (ETHER_ADDR_STRLEN bytes) and returns buf. */
char *ether_addr_format(const EtherAddr *a, char buf[static ETHER_ADDR_STRLEN]);

static inline bool ether_addr_is_multicast(const EtherAddr *a) {
        return a->bytes[0] & 0x01; /* includes broadcast */
}
static inline bool ether_addr_is_zero(const EtherAddr *a) {
        static const EtherAddr zero = { { 0 } };
        return memcmp(a, &zero, sizeof(zero)) == 0;
}
static inline bool ether_addr_equal(const EtherAddr *a, const EtherAddr *b) {
        return memcmp(a, b, sizeof(*a)) == 0;
}
static inline int ether_addr_compare(const void *a, const void *b) {
        return memcmp(a, b, sizeof(EtherAddr));
}
/* Sorts a set of addresses and folds duplicates in place; returns the new count. */
size_t ether_addr_set_normalize(EtherAddr *a, size_t n);
/* Whether a (sorted, as normalized) set holds addr. */
bool ether_addr_set_contains(const EtherAddr *set, size_t n, const EtherAddr *addr);

/* A link address must be a unicast, non-zero address. */
static inline bool ether_addr_is_valid_unicast(const EtherAddr *a) {
        return !ether_addr_is_multicast(a) && !ether_addr_is_zero(a);
}
