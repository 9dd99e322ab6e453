/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* trust.c: per-NIC capability trust masks and the host-sync policies, to and from strings. */
#include "trust.h"

#include <stdlib.h>
#include <string.h>

#include "cleanup.h"

/* Indexed by bit position; also the order trust_to_string() prints. */
static const char *const trust_capability_table[] = { "mac", "multicast", "allmulti", "promisc" };

static const char *const vlan_policy_table[_VLAN_POLICY_MAX] = {
        [VLAN_POLICY_IMPROVED] = "improved",
        [VLAN_POLICY_LIBVIRT] = "libvirt",
        [VLAN_POLICY_OFF] = "off",
};

static const char *const unicast_policy_table[_UNICAST_POLICY_MAX] = {
        [UNICAST_POLICY_IGNORE] = "ignore",
        [UNICAST_POLICY_PROMISC] = "promisc",
};

/* Tabs are accepted too, so a configuration value may be aligned with them. */
#define TRUST_SEPARATORS " \t,"

const char *trust_capability_to_string(unsigned bit) {
        for (size_t i = 0; i < ELEMENTSOF(trust_capability_table); i++)
                if (bit == 1u << i)
                        return trust_capability_table[i];
        return NULL;
}

static bool word_equal(const char *word, size_t len, const char *s) {
        return strlen(s) == len && memcmp(word, s, len) == 0;
}

static int trust_capability_from_word(const char *word, size_t len) {
        for (size_t i = 0; i < ELEMENTSOF(trust_capability_table); i++)
                if (word_equal(word, len, trust_capability_table[i]))
                        return 1 << i;
        return -EINVAL;
}

static int bad_word(const char *word, size_t len, char **ret_bad_word) {
        if (!ret_bad_word)
                return -EINVAL;
        if (!word) {
                *ret_bad_word = NULL;
                return -EINVAL;
        }
        *ret_bad_word = strndup(word, len);
        return *ret_bad_word ? -EINVAL : -ENOMEM;
}

/* "all" and "none" stand alone: "all mac" or "none promisc" is a mistake, not a union. On -EINVAL,
 * *ret_bad_word is the first unknown word, else the misplaced "all"/"none", or NULL when the string
 * holds no word at all. It is left untouched on success. -ENOMEM if the word cannot be copied. */
int trust_from_string(const char *s, char **ret_bad_word) {
        const char *sole = NULL;
        size_t sole_len = 0, n_words = 0;
        int mask = 0;

        if (!s)
                return bad_word(NULL, 0, ret_bad_word);

        for (const char *p = s + strspn(s, TRUST_SEPARATORS); *p; p += strspn(p, TRUST_SEPARATORS)) {
                size_t len = strcspn(p, TRUST_SEPARATORS);

                n_words++;
                if (word_equal(p, len, "all") || word_equal(p, len, "none")) {
                        if (!sole) {
                                sole = p;
                                sole_len = len;
                        }
                } else {
                        int bit = trust_capability_from_word(p, len);
                        if (bit < 0)
                                return bad_word(p, len, ret_bad_word);
                        mask |= bit;
                }
                p += len;
        }

        if (n_words == 0)
                return bad_word(NULL, 0, ret_bad_word);
        if (sole) {
                if (n_words > 1)
                        return bad_word(sole, sole_len, ret_bad_word);
                return word_equal(sole, sole_len, "all") ? TRUST_ALL : TRUST_NONE;
        }
        return mask;
}

/* Bits outside TRUST_ALL are not capabilities and are not printed. */
char *trust_to_string(unsigned trust) {
        char buf[sizeof("mac multicast allmulti promisc")], *p = buf;

        for (size_t i = 0; i < ELEMENTSOF(trust_capability_table); i++) {
                if (!(trust & (1u << i)))
                        continue;
                if (p != buf)
                        *p++ = ' ';
                p = stpcpy(p, trust_capability_table[i]);
        }
        *p = '\0';
        return strdup(p == buf ? "none" : buf);
}

static int string_table_lookup(const char *const *table, size_t n, const char *s) {
        if (!s)
                return -EINVAL;
        for (size_t i = 0; i < n; i++)
                if (table[i] && strcmp(table[i], s) == 0)
                        return (int)i;
        return -EINVAL;
}

VlanPolicy vlan_policy_from_string(const char *s) {
        return string_table_lookup(vlan_policy_table, ELEMENTSOF(vlan_policy_table), s);
}

const char *vlan_policy_to_string(VlanPolicy p) {
        if (p < 0 || p >= _VLAN_POLICY_MAX)
                return NULL;
        return vlan_policy_table[p];
}

UnicastPolicy unicast_policy_from_string(const char *s) {
        return string_table_lookup(unicast_policy_table, ELEMENTSOF(unicast_policy_table), s);
}

const char *unicast_policy_to_string(UnicastPolicy p) {
        if (p < 0 || p >= _UNICAST_POLICY_MAX)
                return NULL;
        return unicast_policy_table[p];
}
