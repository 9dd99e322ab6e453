/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* strmap.c: linear probing with backward-shift deletion (no tombstones), FNV-1a hashing. */
#include "strmap.h"

#include <errno.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

static size_t hash_string(const char *s) {
        uint64_t h = 14695981039346656037ULL;
        for (; *s; s++)
                h = (h ^ (unsigned char)*s) * 1099511628211ULL;
        return (size_t)h;
}

static size_t find_slot(const StrMap *m, const char *key) {
        size_t mask = m->n_buckets - 1, i = hash_string(key) & mask;
        while (m->entries[i].key && strcmp(m->entries[i].key, key) != 0)
                i = (i + 1) & mask;
        return i;
}

static int grow(StrMap *m) {
        size_t n = m->n_buckets ? m->n_buckets * 2 : 16;
        StrMapEntry *old = m->entries;
        size_t old_n = m->n_buckets;

        m->entries = calloc(n, sizeof(StrMapEntry));
        if (!m->entries) {
                m->entries = old;
                return -ENOMEM;
        }
        m->n_buckets = n;
        for (size_t i = 0; i < old_n; i++)
                if (old[i].key)
                        m->entries[find_slot(m, old[i].key)] = old[i];
        free(old);
        return 0;
}

int strmap_put(StrMap *m, const char *key, void *value) {
        /* Keep the load under 1/2: probes stay short. */
        if ((m->n_entries + 1) * 2 > m->n_buckets) {
                int r = grow(m);
                if (r < 0)
                        return r;
        }
        size_t i = find_slot(m, key);
        if (m->entries[i].key)
                return -EEXIST;
        m->entries[i] = (StrMapEntry){ .key = key, .value = value };
        m->n_entries++;
        return 0;
}

void *strmap_get(const StrMap *m, const char *key) {
        if (m->n_buckets == 0)
                return NULL;
        size_t i = find_slot(m, key);
        return m->entries[i].key ? m->entries[i].value : NULL;
}

void *strmap_remove(StrMap *m, const char *key) {
        if (m->n_buckets == 0)
                return NULL;
        size_t mask = m->n_buckets - 1, i = find_slot(m, key);
        if (!m->entries[i].key)
                return NULL;
        void *value = m->entries[i].value;

        /* Shift back every following entry that would no longer be reachable across the hole. */
        for (size_t j = (i + 1) & mask; m->entries[j].key; j = (j + 1) & mask) {
                size_t home = hash_string(m->entries[j].key) & mask;
                bool between = i <= j ? (home > i && home <= j) : (home > i || home <= j);
                if (between)
                        continue;
                m->entries[i] = m->entries[j];
                i = j;
        }
        m->entries[i] = (StrMapEntry){};
        m->n_entries--;
        return value;
}

void strmap_done(StrMap *m) {
        free(m->entries);
        *m = (StrMap){};
}
