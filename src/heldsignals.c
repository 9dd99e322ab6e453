/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* heldsignals.c: the merge rules of a NIC's held signals (heldsignals.h). */
#include "heldsignals.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "escape.h"

static void held_failures_clear(HeldSignals *h) {
        for (size_t i = 0; i < h->n_failures; i++)
                free(h->failures[i].error);
        h->n_failures = 0;
}

static bool held_has_property(const HeldSignals *h, const char *name) {
        for (size_t i = 0; i < h->n_properties; i++)
                if (strcmp(h->properties[i], name) == 0)
                        return true;
        return false;
}

int held_signals_add_properties(HeldSignals *h, const char *const *names) {
        size_t n_new = 0;

        for (size_t i = 0; names && names[i]; i++)
                if (!held_has_property(h, names[i]))
                        n_new++;
        if (h->n_properties + n_new > HELD_PROPERTIES_MAX)
                return -E2BIG;
        for (size_t i = 0; names && names[i]; i++)
                if (!held_has_property(h, names[i]))
                        h->properties[h->n_properties++] = names[i];
        return 0;
}

void held_signals_add_filter(HeldSignals *h, unsigned fields, bool rx_filter_changed, const char *outcome) {
        h->filter_fields |= fields;
        if (rx_filter_changed) {
                h->rx_filter_changed = true;
                h->outcome = outcome;
        }
        held_failures_clear(h);
}

void held_signals_add_mac(HeldSignals *h, const char *old_mac, const char *reason) {
        if (!h->mac_changed)
                snprintf(h->old_mac, sizeof(h->old_mac), "%s", old_mac ? old_mac : "");
        if (!h->mac_changed || h->old_mac[0])
                h->mac_reason = reason;
        h->mac_changed = true;
}

int held_signals_add_failure(HeldSignals *h, const char *attribute, const char *error) {
        HeldFailure *f = NULL;

        for (size_t i = 0; i < h->n_failures && !f; i++)
                if (strcmp(h->failures[i].attribute, attribute) == 0)
                        f = &h->failures[i];
        if (!f && h->n_failures >= HELD_FAILURES_MAX)
                return -E2BIG;
        char *text = utf8_trim_incomplete(strndup(error ? error : "", HELD_ERROR_MAX - 1));
        if (!text)
                return -ENOMEM;
        if (!f) {
                f = &h->failures[h->n_failures++];
                *f = (HeldFailure){ .attribute = attribute };
        }
        free(f->error);
        f->error = text;
        return 0;
}

bool held_signals_mac_changed(const HeldSignals *h, const char *mac_now) {
        return h->mac_changed && strcmp(h->old_mac, mac_now ? mac_now : "") != 0;
}

bool held_signals_remove(HeldSignals *h) {
        if (h->added)
                return false;
        held_failures_clear(h);
        *h = (HeldSignals){ .removed = true };
        return true;
}

void held_signals_clear(HeldSignals *h) {
        held_failures_clear(h);
        *h = (HeldSignals){};
}

HeldSignals *held_signals_free(HeldSignals *h) {
        if (h) {
                held_failures_clear(h);
                free(h);
        }
        return NULL;
}
