/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* heldsignals.h: what a NIC would have said on the bus while the bus was not reading us, merged into
 * one set per NIC (bus-backlog.c decides when). Its size is bounded: it grows with neither the number of
 * changes nor the guest's input. Every NIC of the host may hold one at once, so it is small (a few
 * hundred bytes); the text of a failure, the one part that can be long, is allocated only while one is
 * held. Values are not kept: the properties and the filter are read when the set goes out, so what is
 * said then is the newest state. */
#pragma once

#include <stdbool.h>
#include <stddef.h>

#include "ether.h"

/* More names than the Nic interface has properties, more attributes than a host device has. */
#define HELD_PROPERTIES_MAX 16
#define HELD_FAILURES_MAX   8
#define HELD_ERROR_MAX      300

typedef struct HeldFailure {
        const char *attribute; /* static: host_attributes[].name */
        char *error; /* owned, under HELD_ERROR_MAX bytes */
} HeldFailure;

typedef struct HeldSignals {
        unsigned filter_fields; /* RxFilterField bits changed since the last set that went out */
        const char *properties[HELD_PROPERTIES_MAX]; /* other changed properties: static names, once each */
        size_t n_properties;
        bool rx_filter_changed; /* an RxFilterChanged is owed, with the newest sync outcome */
        const char *outcome; /* static: sync_outcome_to_string() */
        bool mac_changed; /* a MacChanged is owed, from the MAC before the first one held */
        char old_mac[ETHER_ADDR_STRLEN];
        const char *mac_reason; /* the newest reason (static) */
        HeldFailure failures[HELD_FAILURES_MAX]; /* HostSyncFailed owed: the newest set's, per attribute */
        size_t n_failures;
        bool added; /* InterfacesAdded owed: the object appeared while the bus lagged */
        bool removed; /* InterfacesRemoved owed: nothing else is said any more */
} HeldSignals;

/* Property names (NULL-terminated) that changed. -E2BIG (and nothing added) past HELD_PROPERTIES_MAX
 * distinct names. */
int held_signals_add_properties(HeldSignals *h, const char *const *names);
/* A processed filter: fields is what changed; rx_filter_changed, whether it is announced. Failures held
 * so far are forgotten: every change set is followed by its own (a success must not be followed by an
 * older failure). */
void held_signals_add_filter(HeldSignals *h, unsigned fields, bool rx_filter_changed, const char *outcome);
/* The MAC changed from old_mac: the first old MAC held is kept, and the newest reason, except that a
 * NIC's first MAC ("" before) stays "initial" whatever follows. */
void held_signals_add_mac(HeldSignals *h, const char *old_mac, const char *reason);
/* A host attribute failed: the newest error replaces the one held for it. -E2BIG past
 * HELD_FAILURES_MAX attributes, -ENOMEM; longer errors are cut. */
int held_signals_add_failure(HeldSignals *h, const char *attribute, const char *error);
/* Whether the held MacChanged still says something: the MAC now differs from the one before. */
bool held_signals_mac_changed(const HeldSignals *h, const char *mac_now);
/* The object goes: an object announced while the bus lagged was never seen, and goes without a word
 * (returns false: drop the set); otherwise only its InterfacesRemoved is owed (true). */
bool held_signals_remove(HeldSignals *h);
/* Frees what the set owns and empties it. */
void held_signals_clear(HeldSignals *h);
/* Frees a set from calloc(), and what it owns. Returns NULL. */
HeldSignals *held_signals_free(HeldSignals *h);
static inline void held_signals_freep(HeldSignals **h) {
        held_signals_free(*h);
}
