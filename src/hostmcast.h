/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* hostmcast.h: a device's multicast list: its user-added entries, read from dev_mcast, and
 * SIOCADDMULTI/SIOCDELMULTI. */
#pragma once

#include <net/if.h>
#include <stddef.h>

#include "ether.h"
#include "hostns.h"

#define HOSTDEV_MULTICAST_MAX 256 /* global entries we read back; more is refused as -E2BIG */

/* The global (user-added) entries of ifindex, sorted and unique. dev_mcast lists every device of the
 * namespace, so this costs in proportion to the host: it is for baselines and reconciling, never for
 * a guest's change (see hostsync.h). */
int hostmcast_read(
        HostContext *c, int ifindex, EtherAddr table[static HOSTDEV_MULTICAST_MAX], size_t *ret_n);

/* Adds a user entry: idempotent in the kernel (an entry that already is a user entry stays as it is). */
int hostmcast_add(HostContext *c, const char *ifname, const EtherAddr *a);
/* Deletes a user entry: -ENOENT when there is none (the kernel's own entry of the same address, if
 * any, stays). */
int hostmcast_del(HostContext *c, const char *ifname, const EtherAddr *a);
