/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* hostdev.c: host I/O on one device: its state (link + multicast list) and applying a change. */
#include "hostdev.h"

#include <errno.h>
#include <string.h>

const HostAttribute host_attributes[HOST_ATTRIBUTES_MACVTAP + 1] = {
        { "mac", offsetof(HostApplyResult, mac), TRUST_MAC, 0 },
        { "promisc", offsetof(HostApplyResult, promisc), TRUST_PROMISC, IFF_PROMISC },
        { "allmulti", offsetof(HostApplyResult, allmulti), TRUST_ALLMULTI, IFF_ALLMULTI },
        { "multicast", offsetof(HostApplyResult, multicast), TRUST_MULTICAST, IFF_MULTICAST },
        { "fdb", offsetof(HostApplyResult, fdb), TRUST_MAC, 0 },
};

unsigned host_change_attributes(const HostChange *c) {
        unsigned mask = 0;

        for (unsigned i = 0; i < HOST_ATTRIBUTES_MACVTAP; i++) {
                const HostAttribute *a = &host_attributes[i];
                if ((c->flags_mask & a->flag) ||
                        (a->offset == offsetof(HostApplyResult, mac) && c->set_mac) ||
                        (a->offset == offsetof(HostApplyResult, multicast) && (c->n_add || c->n_del)))
                        mask |= 1u << i;
        }
        return mask;
}

int hostdev_read_full(HostContext *c, const char *ifname, bool with_multicast, HostLinkState *ret) {
        HostLink l;
        int r;

        r = hostlink_read(c, ifname, &l);
        if (r < 0)
                return r;
        ret->ifindex = l.ifindex;
        memcpy(ret->ifname, l.ifname, sizeof(ret->ifname));
        ret->kind = l.kind;
        ret->mac = l.mac;
        ret->flags = l.flags;
        ret->have_multicast = false;
        ret->n_multicast = 0;
        if (!with_multicast)
                return 0;
        r = hostmcast_read(c, l.ifindex, ret->multicast_table, &ret->n_multicast);
        if (r < 0)
                return r;
        ret->have_multicast = true;
        return 0;
}

/* Every entry is tried, deletions first to make room; which ones failed goes into res, the first
 * error is returned. */
static int apply_multicast_list(
        HostContext *c, int ifindex, const HostChange *change, HostApplyResult *res) {
        char ifname[IF_NAMESIZE];
        int r, first = 0;

        if (change->n_add == 0 && change->n_del == 0)
                return 0;

        /* The ioctls address the device by name: the name it has now, not the one we were told. */
        r = hostlink_ifname(c, ifindex, ifname);
        if (r < 0) {
                res->add_failed = change->n_add ? UINT64_MAX : 0;
                memset(res->del_failed, 0xff, sizeof(res->del_failed));
                return r;
        }

        for (size_t i = 0; i < change->n_del && i < HOSTDEV_MULTICAST_MAX; i++) {
                r = hostmcast_del(c, ifname, &change->del[i]);
                /* ENOENT: no global entry left, which is what deleting it was for. */
                if (r < 0 && r != -ENOENT) {
                        res->del_failed[i / 64] |= UINT64_C(1) << (i % 64);
                        if (first == 0)
                                first = r;
                }
        }
        for (size_t i = 0; i < change->n_add && i < RXFILTER_TABLE_MAX; i++) {
                r = hostmcast_add(c, ifname, &change->add[i]);
                if (r < 0) {
                        res->add_failed |= UINT64_C(1) << i;
                        if (first == 0)
                                first = r;
                }
        }
        return first;
}

int hostdev_apply(
        HostContext *c, const HostLinkState *current, const HostChange *change, HostApplyResult *ret) {
        HostApplyResult res = {};
        unsigned mask;
        int r;

        if (!c || !current || !change || !ret)
                return -EINVAL;

        if (change->set_mac)
                res.mac = hostlink_set(c, current->ifindex, 0, 0, &change->mac);

        /* One request for all flag bits, so they share its outcome. */
        mask = change->flags_mask & HOSTDEV_FLAGS_OURS;
        if (mask != 0) {
                r = hostlink_set(c, current->ifindex, change->flags, mask, NULL);
                if (mask & IFF_PROMISC)
                        res.promisc = r;
                if (mask & IFF_ALLMULTI)
                        res.allmulti = r;
                if (mask & IFF_MULTICAST)
                        res.multicast = res.multicast_flag = r;
        }

        r = apply_multicast_list(c, current->ifindex, change, &res);
        if (res.multicast == 0)
                res.multicast = r;

        *ret = res;
        return res.mac ?: res.promisc ?: res.allmulti ?: res.multicast;
}
