/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* hostlink.h: link attributes over rtnetlink: one device's kind, MAC and flags, read and set. */
#pragma once

#include <net/if.h>

#include "ether.h"
#include "hostns.h"

typedef enum HostDevKind {
        HOSTDEV_KIND_UNKNOWN,
        HOSTDEV_KIND_MACVTAP,
        HOSTDEV_KIND_TAP,
        _HOSTDEV_KIND_MAX,
} HostDevKind;

const char *hostdev_kind_to_string(HostDevKind k);

typedef struct HostLink {
        int ifindex;
        char ifname[IF_NAMESIZE];
        HostDevKind kind;
        EtherAddr mac;
        unsigned flags; /* IFF_* as the kernel reports them */
} HostLink;

/* One RTM_GETLINK by name (the kernel looks it up in a hash: the cost does not grow with the number
 * of devices). -ENODEV if it does not exist, -EINVAL for an impossible name. */
int hostlink_read(HostContext *c, const char *ifname, HostLink *ret);
/* One RTM_SETLINK: the flag bits in mask to the values in flags (ifi_change = mask, so no other bit
 * moves), and the MAC if mac is non-NULL. Waits for the kernel's answer: its errno, verbatim. */
int hostlink_set(HostContext *c, int ifindex, unsigned flags, unsigned mask, const EtherAddr *mac);
/* The interface name of ifindex now (SIOCGIFNAME). */
int hostlink_ifname(HostContext *c, int ifindex, char ret[static IF_NAMESIZE]);
