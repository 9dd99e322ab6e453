/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* hostdev.h: pure host I/O on one device: read its state, apply a planned change (what to change is
 * decided in hostsync.c). The pieces: hostns.h (namespaces and sockets), hostlink.h (rtnetlink link
 * attributes), hostmcast.h (multicast list), hostfdb.h (bridge FDB). */
#pragma once

#include <net/if.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "ether.h"
#include "hostfdb.h"
#include "hostlink.h"
#include "hostmcast.h"
#include "hostns.h"
#include "rxfilter.h"

/* The link flags guestnetd may change; every other bit is left alone. */
#define HOSTDEV_FLAGS_OURS (IFF_PROMISC | IFF_ALLMULTI | IFF_MULTICAST)

/* What the host device looks like now. */
typedef struct HostLinkState {
        int ifindex;
        char ifname[IF_NAMESIZE];
        HostDevKind kind;
        EtherAddr mac;
        unsigned flags; /* IFF_* as the kernel reports them */
        bool have_multicast; /* the list below was read (a whole-table read: see hostmcast.h) */
        size_t n_multicast; /* global (user-added) entries only */
        EtherAddr multicast_table[HOSTDEV_MULTICAST_MAX]; /* sorted, unique */
} HostLinkState;

/* Reads link by name, and its multicast list if with_multicast. -ENODEV if it does not exist. */
int hostdev_read_full(HostContext *c, const char *ifname, bool with_multicast, HostLinkState *ret);
static inline int hostdev_read(HostContext *c, const char *ifname, HostLinkState *ret) {
        return hostdev_read_full(c, ifname, true, ret);
}

/* What to change: only set bits are touched. */
typedef struct HostChange {
        bool set_mac;
        EtherAddr mac;
        unsigned flags_mask; /* IFF_PROMISC / IFF_ALLMULTI / IFF_MULTICAST bits to change */
        unsigned flags; /* their new values */
        size_t n_add, n_del;
        EtherAddr add[RXFILTER_TABLE_MAX];
        EtherAddr del[HOSTDEV_MULTICAST_MAX];
} HostChange;

/* Per-attribute outcome of an apply: 0 on success, negative errno on failure. multicast covers the
 * IFF_MULTICAST bit and the list; what each part achieved is kept apart, so that the ownership record
 * follows exactly what changed even when only some of it did. */
typedef struct HostApplyResult {
        int mac, promisc, allmulti, multicast, fdb;
        int multicast_flag; /* the IFF_MULTICAST bit alone */
        uint64_t add_failed; /* bit i: change->add[i] was not added */
        uint64_t del_failed[HOSTDEV_MULTICAST_MAX / 64]; /* bit i: change->del[i] is still there */
} HostApplyResult;

/* The attributes of a HostApplyResult, each with its name (as in HostSyncFailed), the capability
 * that governs it and its link flag (0 if none): the one list the sync, the ownership record and
 * the bus walk. The macvtap attributes come first; fdb (taps) is last. */
typedef struct HostAttribute {
        const char *name;
        size_t offset; /* of its int in HostApplyResult */
        unsigned trust;
        unsigned flag;
} HostAttribute;

#define HOST_ATTRIBUTES_MACVTAP 4
extern const HostAttribute host_attributes[HOST_ATTRIBUTES_MACVTAP + 1];

static inline int *host_apply_result_field(HostApplyResult *r, const HostAttribute *a) {
        return (int *)((char *)r + a->offset);
}
static inline int host_apply_result_get(const HostApplyResult *r, const HostAttribute *a) {
        return *(const int *)((const char *)r + a->offset);
}

/* Bit i set for each host_attributes[i] (macvtap ones) the change touches. */
unsigned host_change_attributes(const HostChange *c);
static inline bool host_change_is_empty(const HostChange *c) {
        return !c->set_mac && !c->flags_mask && c->n_add == 0 && c->n_del == 0;
}

/* Applies a change to the link: MAC and flags with one RTM_SETLINK each (flags with ifi_change =
 * mask, so only our bits move), multicast with SIOCADDMULTI/SIOCDELMULTI (deleting an entry that is
 * already gone succeeds: gone is what was asked). Every attribute is tried even if an earlier one
 * fails. Returns 0 if all succeeded, else the first error (details in ret). Costs what the change
 * holds, whatever else is on the host. */
int hostdev_apply(
        HostContext *c, const HostLinkState *current, const HostChange *change, HostApplyResult *ret);
