/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* hostfdb.c: the bridge FDB of a tap (libnl neighbour API, AF_BRIDGE). */
#include "hostfdb.h"

#include <errno.h>
#include <linux/neighbour.h>
#include <netlink/errno.h>
#include <netlink/route/link.h>
#include <netlink/route/link/bridge.h>
#include <netlink/route/neighbour.h>
#include <sys/socket.h>

#include "nlerror.h"

int hostfdb_port_is_static(HostContext *c, int ifindex) {
        struct nl_cache *cache = NULL;
        int r;

        /* Only a tap's first sync of a new MAC gets here, never a macvtap's change. */
        r = rtnl_link_alloc_cache(c->nl, AF_BRIDGE, &cache);
        if (r < 0)
                return nl_errno(r);

        struct rtnl_link *link = rtnl_link_get(cache, ifindex);
        r = link && rtnl_link_get_master(link) > 0 &&
                !(rtnl_link_bridge_get_flags(link) & RTNL_BRIDGE_LEARNING);
        rtnl_link_put(link);
        nl_cache_free(cache);
        return r;
}

static struct rtnl_neigh *fdb_entry(int ifindex, const EtherAddr *mac) {
        struct rtnl_neigh *n = rtnl_neigh_alloc();
        struct nl_addr *a = nl_addr_build(AF_LLC, mac->bytes, sizeof(mac->bytes));

        if (!n || !a) {
                rtnl_neigh_put(n);
                nl_addr_put(a);
                return NULL;
        }
        rtnl_neigh_set_family(n, AF_BRIDGE);
        rtnl_neigh_set_ifindex(n, ifindex);
        rtnl_neigh_set_lladdr(n, a);
        rtnl_neigh_set_flags(n, NTF_MASTER); /* the bridge's FDB, not the port's own */
        nl_addr_put(a);
        return n;
}

int hostfdb_move(HostContext *c, int ifindex, const EtherAddr *old_mac, const EtherAddr *new_mac) {
        struct rtnl_neigh *old_entry = fdb_entry(ifindex, old_mac), *new_entry = fdb_entry(ifindex, new_mac);
        int r;

        if (!old_entry || !new_entry) {
                r = -ENOMEM;
                goto finish;
        }
        rtnl_neigh_set_state(new_entry, NUD_NOARP); /* "static", as `bridge fdb add ... static` */

        r = rtnl_neigh_delete(c->nl, old_entry, 0);
        if (r == 0)
                r = rtnl_neigh_add(c->nl, new_entry, NLM_F_CREATE | NLM_F_REPLACE);
        if (r == -NLE_OBJ_NOTFOUND || r == -NLE_NOADDR)
                r = 1; /* no entry for the old MAC: nothing of the operator's to move */
        else if (r < 0)
                r = nl_errno(r);
finish:
        rtnl_neigh_put(old_entry);
        rtnl_neigh_put(new_entry);
        return r;
}
