/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* hostlink.c: link attributes over rtnetlink: read one device, set its MAC and flags. */
#include "hostlink.h"

#include <errno.h>
#include <linux/if_arp.h>
#include <linux/rtnetlink.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/socket.h>

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

/* One request on the context's own rtnetlink socket, without a library: the trusted path makes two per
 * change, and libnl's cache-less read allocates an object, its addresses and a callback set each time.
 * The answer is read into the context's buffer; *ret_reply (if asked) points into it. Returns the
 * kernel's errno verbatim. */
static int rtnl_request(HostContext *c, struct nlmsghdr *req, struct nlmsghdr **ret_reply) {
        req->nlmsg_seq = ++c->rtnl_seq;
        if (send(c->rtnl_fd, req, req->nlmsg_len, 0) < 0)
                return -errno;

        for (;;) {
                ssize_t n = recv(c->rtnl_fd, c->rtnl_buf, HOST_RTNL_BUF_SIZE, MSG_TRUNC);
                if (n < 0) {
                        if (errno == EINTR)
                                continue;
                        return -errno;
                }
                if ((size_t)n > HOST_RTNL_BUF_SIZE)
                        return -EMSGSIZE;
                size_t len = (size_t)n;
                for (struct nlmsghdr *h = c->rtnl_buf; NLMSG_OK(h, len); h = NLMSG_NEXT(h, len)) {
                        if (h->nlmsg_seq != req->nlmsg_seq)
                                continue; /* an answer to an earlier request that gave up */
                        if (h->nlmsg_type == NLMSG_ERROR) {
                                const struct nlmsgerr *e = NLMSG_DATA(h);
                                if (h->nlmsg_len < NLMSG_LENGTH(sizeof(*e)))
                                        return -EBADMSG;
                                return e->error > 0 ? -EBADMSG : e->error; /* 0: the ACK */
                        }
                        if (!ret_reply)
                                return -EBADMSG;
                        *ret_reply = h;
                        return 0;
                }
        }
}

/* IFLA_INFO_KIND inside IFLA_LINKINFO, or NULL. */
static const char *link_info_kind(const struct rtattr *linkinfo) {
        size_t len = RTA_PAYLOAD(linkinfo);

        for (const struct rtattr *a = RTA_DATA(linkinfo); RTA_OK(a, len); a = RTA_NEXT(a, len))
                if (a->rta_type == IFLA_INFO_KIND && RTA_PAYLOAD(a) > 0 &&
                        memchr(RTA_DATA(a), '\0', RTA_PAYLOAD(a)))
                        return RTA_DATA(a);
        return NULL;
}

static HostDevKind link_kind(const char *type, unsigned short arptype) {
        if (!type)
                return HOSTDEV_KIND_UNKNOWN;
        if (strcmp(type, "macvtap") == 0)
                return HOSTDEV_KIND_MACVTAP;
        /* tun and tap share the kind "tun"; only a tap carries Ethernet frames. */
        if (strcmp(type, "tun") == 0 && arptype == ARPHRD_ETHER)
                return HOSTDEV_KIND_TAP;
        return HOSTDEV_KIND_UNKNOWN;
}

int hostlink_read(HostContext *c, const char *ifname, HostLink *ret) {
        struct {
                struct nlmsghdr h;
                struct ifinfomsg ifi;
                char attrs[RTA_SPACE(IF_NAMESIZE) + RTA_SPACE(sizeof(uint32_t))];
        } req = {
                .h.nlmsg_type = RTM_GETLINK,
                .h.nlmsg_flags = NLM_F_REQUEST,
                .ifi.ifi_family = AF_UNSPEC,
        };
        HostLink l = { .kind = HOSTDEV_KIND_UNKNOWN };
        struct nlmsghdr *reply;
        const char *type = NULL;
        size_t len, name_len;
        int r;

        if (!c || !ifname || !ret)
                return -EINVAL;
        name_len = strlen(ifname);
        if (name_len == 0 || name_len >= IF_NAMESIZE)
                return -EINVAL;

        struct rtattr *a = (struct rtattr *)req.attrs;
        a->rta_type = IFLA_IFNAME;
        a->rta_len = RTA_LENGTH(name_len + 1);
        memcpy(RTA_DATA(a), ifname, name_len + 1);
        /* Without the statistics (per-CPU counters summed for the link and IPv6): the costliest part of
         * the kernel's answer, and nothing we read. */
        struct rtattr *mask = (struct rtattr *)(req.attrs + RTA_ALIGN(a->rta_len));
        mask->rta_type = IFLA_EXT_MASK;
        mask->rta_len = RTA_LENGTH(sizeof(uint32_t));
        *(uint32_t *)RTA_DATA(mask) = RTEXT_FILTER_SKIP_STATS;
        req.h.nlmsg_len = NLMSG_LENGTH(sizeof(req.ifi)) + RTA_ALIGN(a->rta_len) + mask->rta_len;

        r = rtnl_request(c, &req.h, &reply);
        if (r < 0)
                return r;
        if (reply->nlmsg_type != RTM_NEWLINK || reply->nlmsg_len < NLMSG_LENGTH(sizeof(struct ifinfomsg)))
                return -EBADMSG;

        const struct ifinfomsg *ifi = NLMSG_DATA(reply);
        l.ifindex = ifi->ifi_index;
        l.flags = ifi->ifi_flags;
        memcpy(l.ifname, ifname, name_len + 1);
        len = IFLA_PAYLOAD(reply);
        for (const struct rtattr *at = IFLA_RTA(ifi); RTA_OK(at, len); at = RTA_NEXT(at, len)) {
                size_t n = RTA_PAYLOAD(at);
                if (at->rta_type == IFLA_IFNAME && n > 0 && n <= IF_NAMESIZE &&
                        memchr(RTA_DATA(at), '\0', n))
                        memcpy(l.ifname, RTA_DATA(at), n);
                else if (at->rta_type == IFLA_ADDRESS && n == sizeof(l.mac.bytes))
                        memcpy(l.mac.bytes, RTA_DATA(at), n);
                else if (at->rta_type == IFLA_LINKINFO)
                        type = link_info_kind(at);
        }
        l.kind = link_kind(type, ifi->ifi_type);
        *ret = l;
        return 0;
}

int hostlink_set(HostContext *c, int ifindex, unsigned flags, unsigned mask, const EtherAddr *mac) {
        struct {
                struct nlmsghdr h;
                struct ifinfomsg ifi;
                char attrs[RTA_SPACE(sizeof(mac->bytes))];
        } req = {
                .h.nlmsg_type = RTM_SETLINK,
                .h.nlmsg_flags = NLM_F_REQUEST | NLM_F_ACK,
                .h.nlmsg_len = NLMSG_LENGTH(sizeof(struct ifinfomsg)),
                .ifi = {
                        .ifi_family = AF_UNSPEC,
                        .ifi_index = ifindex,
                        .ifi_flags = flags & mask,
                        .ifi_change = mask,
                },
        };

        if (mac) {
                struct rtattr *a = (struct rtattr *)req.attrs;
                a->rta_type = IFLA_ADDRESS;
                a->rta_len = RTA_LENGTH(sizeof(mac->bytes));
                memcpy(RTA_DATA(a), mac->bytes, sizeof(mac->bytes));
                req.h.nlmsg_len += RTA_SPACE(sizeof(mac->bytes));
        }
        return rtnl_request(c, &req.h, NULL);
}

int hostlink_ifname(HostContext *c, int ifindex, char ret[static IF_NAMESIZE]) {
        struct ifreq ifr = { .ifr_ifindex = ifindex };

        if (ioctl(c->ioctl_fd, SIOCGIFNAME, &ifr) < 0)
                return -errno;
        memcpy(ret, ifr.ifr_name, IF_NAMESIZE);
        ret[IF_NAMESIZE - 1] = '\0';
        return 0;
}
