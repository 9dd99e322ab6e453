/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* hostlink.c: link attributes over rtnetlink (libnl): read one device, set its MAC and flags. */
#include "hostlink.h"

#include <errno.h>
#include <linux/if_arp.h>
#include <linux/rtnetlink.h>
#include <netlink/route/link.h>
#include <stdio.h>
#include <string.h>
#include <sys/ioctl.h>

#include "nlerror.h"

DEFINE_POINTER_CLEANUP_FUNC(struct rtnl_link, rtnl_link_put);

static const char *const hostdev_kind_table[_HOSTDEV_KIND_MAX] = {
        [HOSTDEV_KIND_UNKNOWN] = "unknown",
        [HOSTDEV_KIND_MACVTAP] = "macvtap",
        [HOSTDEV_KIND_TAP] = "tap",
};

const char *hostdev_kind_to_string(HostDevKind k) {
        if ((unsigned)k >= _HOSTDEV_KIND_MAX)
                return NULL;
        return hostdev_kind_table[k];
}

static HostDevKind kind_from_link(struct rtnl_link *link) {
        const char *type = rtnl_link_get_type(link);

        if (!type)
                return HOSTDEV_KIND_UNKNOWN;
        if (strcmp(type, "macvtap") == 0)
                return HOSTDEV_KIND_MACVTAP;
        /* tun and tap share the kind "tun"; only a tap carries Ethernet frames. */
        if (strcmp(type, "tun") == 0 && rtnl_link_get_arptype(link) == ARPHRD_ETHER)
                return HOSTDEV_KIND_TAP;
        return HOSTDEV_KIND_UNKNOWN;
}

int hostlink_read(HostContext *c, const char *ifname, HostLink *ret) {
        _cleanup_(rtnl_link_putp) struct rtnl_link *link = NULL;
        HostLink l = { .kind = HOSTDEV_KIND_UNKNOWN };
        struct nl_addr *addr;
        size_t len;
        int r;

        if (!c || !ifname || !ret)
                return -EINVAL;
        len = strlen(ifname);
        if (len == 0 || len >= IF_NAMESIZE)
                return -EINVAL;

        r = rtnl_link_get_kernel(c->nl, 0, ifname, &link);
        if (r < 0)
                return nl_errno(r);

        l.ifindex = rtnl_link_get_ifindex(link);
        snprintf(l.ifname, sizeof(l.ifname), "%s", rtnl_link_get_name(link) ?: ifname);
        l.flags = rtnl_link_get_flags(link);
        l.kind = kind_from_link(link);
        addr = rtnl_link_get_addr(link);
        if (addr && nl_addr_get_len(addr) == sizeof(l.mac.bytes))
                memcpy(l.mac.bytes, nl_addr_get_binary_addr(addr), sizeof(l.mac.bytes));
        *ret = l;
        return 0;
}

int hostlink_set(HostContext *c, int ifindex, unsigned flags, unsigned mask, const EtherAddr *mac) {
        _cleanup_(nlmsg_freep) struct nl_msg *msg = NULL;
        struct ifinfomsg ifi = {
                .ifi_family = AF_UNSPEC,
                .ifi_index = ifindex,
                .ifi_flags = flags & mask,
                .ifi_change = mask,
        };

        msg = nlmsg_alloc_simple(RTM_SETLINK, NLM_F_REQUEST | NLM_F_ACK);
        if (!msg)
                return -ENOMEM;
        if (nlmsg_append(msg, &ifi, sizeof(ifi), NLMSG_ALIGNTO) < 0)
                return -ENOMEM;
        if (mac && nla_put(msg, IFLA_ADDRESS, sizeof(mac->bytes), mac->bytes) < 0)
                return -ENOMEM;

        return nl_request_ack(c->nl, msg);
}

int hostlink_ifname(HostContext *c, int ifindex, char ret[static IF_NAMESIZE]) {
        struct ifreq ifr = { .ifr_ifindex = ifindex };

        if (ioctl(c->ioctl_fd, SIOCGIFNAME, &ifr) < 0)
                return -errno;
        memcpy(ret, ifr.ifr_name, IF_NAMESIZE);
        ret[IF_NAMESIZE - 1] = '\0';
        return 0;
}
