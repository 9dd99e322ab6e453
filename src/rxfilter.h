/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* rxfilter.h: pure: parse and validate a query-rx-filter reply, diff filters, derive host state. */
#pragma once

#include <json-c/json.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "ether.h"
#include "trust.h"

#define RXFILTER_TABLE_MAX 64 /* QEMU's shared MAC table (MAC_TABLE_ENTRIES) */
#define RXFILTER_VLAN_MAX  4096 /* VIDs 0..4095 */
#define RXFILTER_NAME_MAX  128 /* longest NIC id we accept, NUL excluded */
/* What json-c may take for one NIC's query-rx-filter reply (jsoncost.h's estimate): QEMU's largest, 4,096
 * VLANs and 64 table entries, is estimated at 358 KiB (json-c takes 303 KiB). */
#define RXFILTER_REPLY_COST_MAX (512u * 1024)

typedef enum RxMode {
        RX_MODE_NORMAL,
        RX_MODE_NONE,
        RX_MODE_ALL,
        _RX_MODE_MAX,
        _RX_MODE_INVALID = -EINVAL,
} RxMode;

const char *rx_mode_to_string(RxMode m);
RxMode rx_mode_from_string(const char *s);

/* One NIC's RX filter as QEMU reports it, normalized: tables are sorted sets. Plain data, no
 * pointers, so it can be copied by value between threads. */
typedef struct RxFilter {
        char name[RXFILTER_NAME_MAX + 1];
        EtherAddr main_mac;
        bool promiscuous;
        bool broadcast_allowed; /* reported inverted by QEMU: kept, never acted on */
        RxMode unicast, multicast, vlan;
        bool unicast_overflow, multicast_overflow;
        size_t n_unicast, n_multicast;
        EtherAddr unicast_table[RXFILTER_TABLE_MAX]; /* sorted, unique */
        EtherAddr multicast_table[RXFILTER_TABLE_MAX]; /* sorted, unique */
        size_t n_vlans; /* bits set in vlan_bitmap */
        uint64_t vlan_bitmap[RXFILTER_VLAN_MAX / 64];
} RxFilter;

static inline bool rxfilter_has_vlan(const RxFilter *f, unsigned vid) {
        return vid < RXFILTER_VLAN_MAX && (f->vlan_bitmap[vid / 64] >> (vid % 64)) & 1;
}

/* Validates one RxFilterInfo object: all 12 fields present with the right types, MACs well formed,
 * tables within RXFILTER_TABLE_MAX (together), VIDs in range. Duplicates are folded (sets).
 * Returns 0, or -EBADMSG with *ret_error (if non-NULL) set to a malloc'd sentence naming the field
 * and what was wrong. A multicast/zero main-mac is *valid* here (it is what the guest said); the
 * host sync refuses to install it. */
int rxfilter_from_json(json_object *info, RxFilter *ret, char **ret_error);

/* Which fields differ. Bits name the D-Bus properties of the same name. */
typedef enum RxFilterField {
        RXFILTER_FIELD_MAC = 1 << 0,
        RXFILTER_FIELD_PROMISCUOUS = 1 << 1,
        RXFILTER_FIELD_UNICAST_MODE = 1 << 2,
        RXFILTER_FIELD_MULTICAST_MODE = 1 << 3,
        RXFILTER_FIELD_VLAN_MODE = 1 << 4,
        RXFILTER_FIELD_UNICAST_TABLE = 1 << 5,
        RXFILTER_FIELD_MULTICAST_TABLE = 1 << 6,
        RXFILTER_FIELD_VLAN_TABLE = 1 << 7,
        RXFILTER_FIELD_UNICAST_OVERFLOW = 1 << 8,
        RXFILTER_FIELD_MULTICAST_OVERFLOW = 1 << 9,
        _RXFILTER_FIELD_ALL = (1 << 10) - 1,
} RxFilterField;

/* D-Bus property name of one field bit ("Mac", "Promiscuous", "UnicastMode", ..., "VlanTable"). */
const char *rxfilter_field_to_string(RxFilterField field);
/* Bit mask of the fields that differ between a and b (broadcast_allowed and name are not fields).
 * The VLAN table compares equal when both are in vlan mode "all". */
unsigned rxfilter_diff(const RxFilter *a, const RxFilter *b);

/* Host device state derived from a filter: what a fully trusted host device should look like. */
typedef struct HostFilter {
        EtherAddr mac;
        bool promisc, allmulti, multicast;
        bool multicast_list_valid; /* false on overflow: keep the programmed entries until it clears */
        size_t n_multicast;
        EtherAddr multicast_table[RXFILTER_TABLE_MAX]; /* sorted, unique */
} HostFilter;

/* libvirt's mapping (rxfilter.md), refined by the policies:
 *  promisc   = promiscuous || VLAN demand (per vlan policy) || unicast demand (per unicast policy)
 *  multicast mode all → allmulti+multicast; normal → multicast, allmulti = overflow; none → neither.
 *  The multicast list is the table; on overflow QEMU empties it, so the list is marked invalid and
 *  the host keeps what it has while allmulti covers the rest. */
void rxfilter_to_host(
        const RxFilter *f, VlanPolicy vlan_policy, UnicastPolicy unicast_policy, HostFilter *ret);
