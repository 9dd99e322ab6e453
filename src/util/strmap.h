/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* strmap.h: a small open-addressing hash map from borrowed string keys to pointers. */
#pragma once

#include <stddef.h>

typedef struct StrMapEntry {
        const char *key; /* borrowed: must outlive the entry (e.g. the value's own name) */
        void *value;
} StrMapEntry;

typedef struct StrMap {
        StrMapEntry *entries;
        size_t n_entries, n_buckets; /* n_buckets is 0 or a power of two */
} StrMap;

/* -EEXIST if the key is present, -ENOMEM. */
int strmap_put(StrMap *m, const char *key, void *value);
void *strmap_get(const StrMap *m, const char *key);
/* Returns the removed value or NULL. */
void *strmap_remove(StrMap *m, const char *key);
void strmap_done(StrMap *m);
