/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* hostdev.c: host device I/O: link state over rtnetlink (libnl), multicast list over ioctl. */
#include "hostdev.h"

#include <errno.h>
#include <fcntl.h>
#include <linux/if_arp.h>
#include <linux/neighbour.h>
#include <linux/rtnetlink.h>
#include <netlink/errno.h>
#include <netlink/handlers.h>
#include <netlink/msg.h>
#include <netlink/netlink.h>
#include <netlink/route/link.h>
#include <netlink/route/link/bridge.h>
#include <netlink/route/neighbour.h>
#include <netlink/socket.h>
#include <sched.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/socket.h>
#include <sys/stat.h>

#include "cleanup.h"

#ifndef SO_NETNS_COOKIE
#define SO_NETNS_COOKIE 71 /* Linux 5.14 */
#endif

static const char *const hostdev_kind_table[_HOSTDEV_KIND_MAX] = {
        [HOSTDEV_KIND_UNKNOWN] = "unknown",
        [HOSTDEV_KIND_MACVTAP] = "macvtap",
        [HOSTDEV_KIND_TAP] = "tap",
};

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

const char *hostdev_kind_to_string(HostDevKind k) {
        if ((unsigned)k >= _HOSTDEV_KIND_MAX)
                return NULL;
        return hostdev_kind_table[k];
}

DEFINE_POINTER_CLEANUP_FUNC(struct rtnl_link, rtnl_link_put);
DEFINE_POINTER_CLEANUP_FUNC(struct nl_msg, nlmsg_free);
DEFINE_POINTER_CLEANUP_FUNC(struct nl_cb, nl_cb_put);

static void mutex_unlockp(pthread_mutex_t **m) {
        if (*m)
                (void)pthread_mutex_unlock(*m);
}
#define _cleanup_mutex_unlock_ _cleanup_(mutex_unlockp)

static pthread_mutex_t *mutex_lock(pthread_mutex_t *m) {
        (void)pthread_mutex_lock(m);
        return m;
}

/* libnl folds kernel errnos into its own NLE_* codes (nl_syserr2nlerr) and offers no inverse. Kernel
 * errors are taken verbatim from the NLMSG_ERROR (see nl_request_ack); this covers libnl's own. */
static int errno_from_nl(int nlerr) {
        switch (abs(nlerr)) {
        case NLE_SUCCESS:
                return 0;
        case NLE_INTR:
                return -EINTR;
        case NLE_BAD_SOCK:
                return -EBADF;
        case NLE_AGAIN:
        case NLE_DUMP_INTR:
                return -EAGAIN;
        case NLE_NOMEM:
        case NLE_MSG_OVERFLOW:
                return -ENOMEM;
        case NLE_EXIST:
                return -EEXIST;
        case NLE_INVAL:
        case NLE_OBJ_MISMATCH:
                return -EINVAL;
        case NLE_RANGE:
                return -ERANGE;
        case NLE_MSGSIZE:
        case NLE_MSG_TRUNC:
        case NLE_ATTRSIZE:
                return -EMSGSIZE;
        case NLE_OPNOTSUPP:
        case NLE_SRCRT_NOSUPPORT:
        case NLE_MSGTYPE_NOSUPPORT:
                return -EOPNOTSUPP;
        case NLE_AF_NOSUPPORT:
        case NLE_AF_MISMATCH:
                return -EAFNOSUPPORT;
        case NLE_OBJ_NOTFOUND:
        case NLE_NOCACHE:
                return -ENOENT;
        case NLE_NOATTR:
        case NLE_MISSING_ATTR:
        case NLE_SEQ_MISMATCH:
        case NLE_MSG_TOOSHORT:
        case NLE_PARSE_ERR:
                return -EBADMSG;
        case NLE_NOADDR:
                return -EADDRNOTAVAIL;
        case NLE_BUSY:
                return -EBUSY;
        case NLE_PROTO_MISMATCH:
                return -EPROTONOSUPPORT;
        case NLE_NOACCESS:
                return -EACCES;
        case NLE_PERM:
        case NLE_IMMUTABLE:
                return -EPERM;
        case NLE_NODEV:
                return -ENODEV;
        default:
                return -EIO;
        }
}

HostContext *host_context_free(HostContext *c) {
        if (!c)
                return NULL;
        nl_socket_free(c->nl);
        safe_close(c->ioctl_fd);
        safe_close(c->dev_mcast_fd);
        free(c->dev_mcast_path);
        (void)pthread_mutex_destroy(&c->lock);
        free(c);
        return NULL;
}

int host_context_new(const char *dev_mcast_path, HostContext **ret) {
        _cleanup_(host_context_freep) HostContext *c = NULL;
        int r;

        if (!ret)
                return -EINVAL;

        c = calloc(1, sizeof(*c));
        if (!c)
                return -ENOMEM;
        c->ioctl_fd = -EBADF;
        c->dev_mcast_fd = -EBADF;
        r = pthread_mutex_init(&c->lock, NULL);
        if (r != 0) {
                free(TAKE_PTR(c));
                return -r;
        }

        c->dev_mcast_path = strdup(dev_mcast_path ?: "/proc/self/net/dev_mcast");
        if (!c->dev_mcast_path)
                return -ENOMEM;

        c->nl = nl_socket_alloc();
        if (!c->nl)
                return -ENOMEM;
        r = nl_connect(c->nl, NETLINK_ROUTE); /* libnl >= 3.2.26 opens it with SOCK_CLOEXEC */
        if (r < 0)
                return errno_from_nl(r);

        /* Any socket reaches dev_ioctl(); AF_UNIX keeps the unit's address families to UNIX+NETLINK. */
        c->ioctl_fd = socket(AF_UNIX, SOCK_DGRAM | SOCK_CLOEXEC, 0);
        if (c->ioctl_fd < 0)
                return -errno;

        /* The namespace the sockets were opened in names the persisted baselines of its devices. */
        struct stat st;
        if (stat("/proc/thread-self/ns/net", &st) < 0)
                return -errno;
        c->netns_id = (unsigned long)st.st_ino;
        socklen_t len = sizeof(c->netns_cookie);
        if (getsockopt(c->ioctl_fd, SOL_SOCKET, SO_NETNS_COOKIE, &c->netns_cookie, &len) < 0)
                return -errno;

        *ret = TAKE_PTR(c);
        return 0;
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

static int ether_addr_from_hex(const char *s, EtherAddr *ret) {
        EtherAddr a;

        if (strlen(s) != 2 * sizeof(a.bytes))
                return -EINVAL;
        for (size_t i = 0; i < sizeof(a.bytes); i++) {
                int hi = hex_nibble(s[2 * i]), lo = hex_nibble(s[2 * i + 1]);
                if (hi < 0 || lo < 0)
                        return -EINVAL;
                a.bytes[i] = (uint8_t)(hi << 4 | lo);
        }
        *ret = a;
        return 0;
}

/* Sorts and folds duplicates in place; returns the new count. */
static size_t ether_addr_set_normalize(EtherAddr *a, size_t n) {
        size_t k = 0;

        if (n == 0)
                return 0;
        qsort(a, n, sizeof(EtherAddr), ether_addr_compare);
        for (size_t i = 1; i < n; i++)
                if (!ether_addr_equal(&a[i], &a[k]))
                        a[++k] = a[i];
        return k + 1;
}

/* Rows are "ifindex ifname users global hexaddr" (net/core/dev_addr_lists.c). Only global rows are
 * ours to manage: they are what SIOCADDMULTI creates; the kernel's own (IPv6, IGMP) have global 0. */
/* dev_mcast from a path, or from an fd kept open since it was opened in another namespace (a /proc/net
 * file stays bound to the namespace it was opened in). The fd's offset is shared: hold the lock. */
static FILE *open_dev_mcast(const char *path, int fd) {
        if (fd < 0)
                return fopen(path, "re");
        if (lseek(fd, 0, SEEK_SET) < 0)
                return NULL;
        int copy = fcntl(fd, F_DUPFD_CLOEXEC, 3);
        if (copy < 0)
                return NULL;
        FILE *f = fdopen(copy, "re");
        if (!f)
                safe_close(copy);
        return f;
}

static int read_global_multicast(const char *path, int fd, int ifindex, EtherAddr *table, size_t *ret_n) {
        _cleanup_fclose_ FILE *f = NULL;
        char line[256];
        size_t n = 0;

        f = open_dev_mcast(path, fd);
        if (!f)
                return -errno;

        while (fgets(line, sizeof(line), f)) {
                char name[IF_NAMESIZE + 1], hex[64];
                int idx, users, global;
                EtherAddr a;

                if (sscanf(line, "%d %16s %d %d %63s", &idx, name, &users, &global, hex) != 5)
                        return -EBADMSG;
                if (idx != ifindex || global == 0)
                        continue;
                if (ether_addr_from_hex(hex, &a) < 0)
                        continue; /* not an Ethernet-sized address: not ours */
                if (n >= HOSTDEV_MULTICAST_MAX)
                        return -E2BIG;
                table[n++] = a;
        }
        if (ferror(f))
                return -EIO;

        *ret_n = ether_addr_set_normalize(table, n);
        return 0;
}

int hostdev_read(HostContext *c, const char *ifname, HostLinkState *ret) {
        return hostdev_read_full(c, ifname, true, ret);
}

int hostdev_read_full(HostContext *c, const char *ifname, bool with_multicast, HostLinkState *ret) {
        _cleanup_(rtnl_link_putp) struct rtnl_link *link = NULL;
        HostLinkState s = { .kind = HOSTDEV_KIND_UNKNOWN };
        struct nl_addr *addr;
        size_t len;
        int r;

        if (!c || !ifname || !ret)
                return -EINVAL;
        len = strlen(ifname);
        if (len == 0 || len >= IF_NAMESIZE)
                return -EINVAL;

        (void)pthread_mutex_lock(&c->lock);
        r = rtnl_link_get_kernel(c->nl, 0, ifname, &link);
        (void)pthread_mutex_unlock(&c->lock);
        if (r < 0)
                return errno_from_nl(r);

        s.ifindex = rtnl_link_get_ifindex(link);
        snprintf(s.ifname, sizeof(s.ifname), "%s", rtnl_link_get_name(link) ?: ifname);
        s.flags = rtnl_link_get_flags(link);
        s.kind = kind_from_link(link);
        addr = rtnl_link_get_addr(link);
        if (addr && nl_addr_get_len(addr) == sizeof(s.mac.bytes))
                memcpy(s.mac.bytes, nl_addr_get_binary_addr(addr), sizeof(s.mac.bytes));

        /* dev_mcast lists every device of the namespace: parse it only when the list matters. A path is
         * opened afresh; a kept fd shares its offset between threads and needs the lock. */
        if (with_multicast) {
                if (c->dev_mcast_fd >= 0)
                        pthread_mutex_lock(&c->lock);
                r = read_global_multicast(
                        c->dev_mcast_path, c->dev_mcast_fd, s.ifindex, s.multicast_table, &s.n_multicast);
                if (c->dev_mcast_fd >= 0)
                        pthread_mutex_unlock(&c->lock);
                if (r < 0)
                        return r;
        }

        *ret = s;
        return 0;
}

static void plan_flag(unsigned flag, bool want, unsigned current_flags, HostChange *change) {
        if (want == !!(current_flags & flag))
                return;
        change->flags_mask |= flag;
        if (want)
                change->flags |= flag;
}

static void plan_multicast_list(const HostLinkState *current, const HostFilter *desired, HostChange *ret) {
        EtherAddr want[RXFILTER_TABLE_MAX], have[HOSTDEV_MULTICAST_MAX];
        size_t n_want = 0, n_have, i = 0, j = 0;

        /* Guest-controlled: only group addresses belong in a multicast list. */
        for (size_t k = 0; k < desired->n_multicast && k < RXFILTER_TABLE_MAX; k++)
                if (ether_addr_is_multicast(&desired->multicast_table[k]))
                        want[n_want++] = desired->multicast_table[k];
        n_want = ether_addr_set_normalize(want, n_want);

        n_have = current->n_multicast < HOSTDEV_MULTICAST_MAX ? current->n_multicast : HOSTDEV_MULTICAST_MAX;
        memcpy(have, current->multicast_table, n_have * sizeof(EtherAddr));
        n_have = ether_addr_set_normalize(have, n_have);

        while (i < n_want || j < n_have) {
                int d = i >= n_want ? 1 : j >= n_have ? -1 : ether_addr_compare(&want[i], &have[j]);

                if (d < 0)
                        ret->add[ret->n_add++] = want[i++];
                else if (d > 0)
                        ret->del[ret->n_del++] = have[j++];
                else
                        i++, j++;
        }
}

void hostdev_plan(const HostLinkState *current, const HostFilter *desired, unsigned trust, HostChange *ret) {
        *ret = (HostChange){};

        /* A tap's MAC and flags are the host side's, not the guest's: never change them. */
        if (current->kind == HOSTDEV_KIND_TAP)
                return;

        if ((trust & TRUST_MAC) && !ether_addr_equal(&desired->mac, &current->mac) &&
                ether_addr_is_valid_unicast(&desired->mac)) {
                ret->set_mac = true;
                ret->mac = desired->mac;
        }
        if (trust & TRUST_PROMISC)
                plan_flag(IFF_PROMISC, desired->promisc, current->flags, ret);
        if (trust & TRUST_ALLMULTI)
                plan_flag(IFF_ALLMULTI, desired->allmulti, current->flags, ret);
        if (trust & TRUST_MULTICAST) {
                plan_flag(IFF_MULTICAST, desired->multicast, current->flags, ret);
                if (desired->multicast_list_valid)
                        plan_multicast_list(current, desired, ret);
        }
}

static int nl_error_handler(struct sockaddr_nl *who, struct nlmsgerr *e, void *arg) {
        *(int *)arg = e->error; /* the kernel's own negative errno */
        return NL_STOP;
}

static int nl_ack_handler(struct nl_msg *msg, void *arg) {
        return NL_STOP;
}

/* nl_send_auto() + nl_wait_for_ack(), except that a kernel error comes back as the kernel's errno:
 * libnl's mapping is lossy (EOVERFLOW, ENOSPC, ... all become NLE_FAILURE). */
static int nl_request_ack(struct nl_sock *sk, struct nl_msg *msg) {
        _cleanup_(nl_cb_putp) struct nl_cb *cb = NULL;
        struct nl_cb *sk_cb;
        int r, kernel_error = 0;

        r = nl_send_auto(sk, msg);
        if (r < 0)
                return errno_from_nl(r);

        sk_cb = nl_socket_get_cb(sk);
        cb = nl_cb_clone(sk_cb);
        nl_cb_put(sk_cb);
        if (!cb)
                return -ENOMEM;
        nl_cb_set(cb, NL_CB_ACK, NL_CB_CUSTOM, nl_ack_handler, NULL);
        nl_cb_err(cb, NL_CB_CUSTOM, nl_error_handler, &kernel_error);

        r = nl_recvmsgs(sk, cb);
        if (kernel_error < 0)
                return kernel_error;
        if (r < 0)
                return errno_from_nl(r);
        return 0;
}

static int setlink(struct nl_sock *sk, int ifindex, unsigned flags, unsigned change, const EtherAddr *mac) {
        _cleanup_(nlmsg_freep) struct nl_msg *msg = NULL;
        struct ifinfomsg ifi = {
                .ifi_family = AF_UNSPEC,
                .ifi_index = ifindex,
                .ifi_flags = flags,
                .ifi_change = change,
        };

        msg = nlmsg_alloc_simple(RTM_SETLINK, NLM_F_REQUEST | NLM_F_ACK);
        if (!msg)
                return -ENOMEM;
        if (nlmsg_append(msg, &ifi, sizeof(ifi), NLMSG_ALIGNTO) < 0)
                return -ENOMEM;
        if (mac && nla_put(msg, IFLA_ADDRESS, sizeof(mac->bytes), mac->bytes) < 0)
                return -ENOMEM;

        return nl_request_ack(sk, msg);
}

/* The name, looked up by index now: the multicast ioctls address the device by name. */
static int ifname_from_index(int fd, int ifindex, char ret[static IF_NAMESIZE]) {
        struct ifreq ifr = { .ifr_ifindex = ifindex };

        if (ioctl(fd, SIOCGIFNAME, &ifr) < 0)
                return -errno;
        memcpy(ret, ifr.ifr_name, IF_NAMESIZE);
        ret[IF_NAMESIZE - 1] = '\0';
        return 0;
}

int hostdev_ifname_from_index(HostContext *c, int ifindex, char ret[static IF_NAMESIZE]) {
        return ifname_from_index(c->ioctl_fd, ifindex, ret);
}

/* ---- other network namespaces --------------------------------------------------------------------- */

int host_context_new_in_netns(int netns_fd, HostContext **ret) {
        _cleanup_close_ int self = open("/proc/thread-self/ns/net", O_RDONLY | O_CLOEXEC);
        _cleanup_(host_context_freep) HostContext *c = NULL;
        int r;

        if (self < 0)
                return -errno;
        if (setns(netns_fd, CLONE_NEWNET) < 0)
                return -errno;

        r = host_context_new("/proc/thread-self/net/dev_mcast", &c);
        if (r >= 0) {
                c->dev_mcast_fd = open("/proc/thread-self/net/dev_mcast", O_RDONLY | O_CLOEXEC);
                if (c->dev_mcast_fd < 0)
                        r = -errno;
        }

        /* A worker left in a guest's namespace would act on the wrong devices forever: never continue. */
        if (setns(self, CLONE_NEWNET) < 0)
                abort();
        if (r < 0)
                return r;
        *ret = TAKE_PTR(c);
        return 0;
}

int host_namespace_new(int netns_fd, HostNamespace **ret) {
        HostNamespace *ns = calloc(1, sizeof(HostNamespace));
        if (!ns) {
                safe_close(netns_fd);
                return -ENOMEM;
        }
        ns->n_ref = 1;
        ns->netns_fd = netns_fd >= 0 ? netns_fd : -EBADF;
        ns->error = netns_fd < 0 ? netns_fd : 0;
        pthread_mutex_init(&ns->lock, NULL);
        *ret = ns;
        return 0;
}

HostNamespace *host_namespace_ref(HostNamespace *ns) {
        if (ns)
                ns->n_ref++;
        return ns;
}

HostNamespace *host_namespace_unref(HostNamespace *ns) {
        if (!ns || --ns->n_ref > 0)
                return NULL;
        host_context_free(ns->context);
        safe_close(ns->netns_fd);
        pthread_mutex_destroy(&ns->lock);
        free(ns);
        return NULL;
}

int host_namespace_get_context(HostNamespace *ns, HostContext **ret) {
        int r = 0;

        pthread_mutex_lock(&ns->lock);
        if (!ns->context && ns->error == 0) {
                r = host_context_new_in_netns(ns->netns_fd, &ns->context);
                if (r < 0)
                        ns->error = r;
        }
        r = ns->context ? 0 : ns->error;
        *ret = ns->context;
        pthread_mutex_unlock(&ns->lock);
        return r;
}

static int multicast_ioctl(int fd, const char *ifname, unsigned long request, const EtherAddr *a) {
        struct ifreq ifr = {};

        memcpy(ifr.ifr_name, ifname, IF_NAMESIZE);
        ifr.ifr_hwaddr.sa_family = AF_UNSPEC;
        memcpy(ifr.ifr_hwaddr.sa_data, a->bytes, sizeof(a->bytes));
        if (ioctl(fd, request, &ifr) < 0)
                return -errno;
        return 0;
}

/* Every entry is tried; the first error is kept. Deletions go first to make room. */
/* Each entry on its own: which ones failed goes into res, the first error is returned. */
static int apply_multicast_list(int fd, int ifindex, const HostChange *change, HostApplyResult *res) {
        char ifname[IF_NAMESIZE];
        int r, first = 0;

        if (change->n_add == 0 && change->n_del == 0)
                return 0;

        r = ifname_from_index(fd, ifindex, ifname);
        if (r < 0) {
                res->add_failed = change->n_add ? UINT64_MAX : 0;
                memset(res->del_failed, 0xff, sizeof(res->del_failed));
                return r;
        }

        for (size_t i = 0; i < change->n_del && i < HOSTDEV_MULTICAST_MAX; i++) {
                r = multicast_ioctl(fd, ifname, SIOCDELMULTI, &change->del[i]);
                /* ENOENT: no global entry left, which is what deleting it was for. */
                if (r < 0 && r != -ENOENT) {
                        res->del_failed[i / 64] |= UINT64_C(1) << (i % 64);
                        if (first == 0)
                                first = r;
                }
        }
        for (size_t i = 0; i < change->n_add && i < RXFILTER_TABLE_MAX; i++) {
                r = multicast_ioctl(fd, ifname, SIOCADDMULTI, &change->add[i]);
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
        _cleanup_mutex_unlock_ pthread_mutex_t *lock = NULL;
        HostApplyResult res = {};
        unsigned mask;
        int r;

        if (!c || !current || !change || !ret)
                return -EINVAL;

        lock = mutex_lock(&c->lock);

        if (change->set_mac)
                res.mac = setlink(c->nl, current->ifindex, 0, 0, &change->mac);

        /* One request for all flag bits, so they share its outcome. */
        mask = change->flags_mask & HOSTDEV_FLAGS_OURS;
        if (mask != 0) {
                r = setlink(c->nl, current->ifindex, change->flags & mask, mask, NULL);
                if (mask & IFF_PROMISC)
                        res.promisc = r;
                if (mask & IFF_ALLMULTI)
                        res.allmulti = r;
                if (mask & IFF_MULTICAST)
                        res.multicast = res.multicast_flag = r;
        }

        r = apply_multicast_list(c->ioctl_fd, current->ifindex, change, &res);
        if (res.multicast == 0)
                res.multicast = r;

        *ret = res;
        return res.mac ?: res.promisc ?: res.allmulti ?: res.multicast;
}

/* ---- bridge FDB for taps ------------------------------------------------------------------------- */

int hostdev_bridge_port_is_static(HostContext *c, int ifindex) {
        struct nl_cache *cache = NULL;
        int r;

        pthread_mutex_lock(&c->lock);
        r = rtnl_link_alloc_cache(c->nl, AF_BRIDGE, &cache);
        pthread_mutex_unlock(&c->lock);
        if (r < 0)
                return errno_from_nl(r);

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

int hostdev_fdb_move(HostContext *c, int ifindex, const EtherAddr *old_mac, const EtherAddr *new_mac) {
        struct rtnl_neigh *old_entry = fdb_entry(ifindex, old_mac), *new_entry = fdb_entry(ifindex, new_mac);
        int r;

        if (!old_entry || !new_entry) {
                r = -ENOMEM;
                goto finish;
        }
        rtnl_neigh_set_state(new_entry, NUD_NOARP); /* "static", as `bridge fdb add ... static` */

        pthread_mutex_lock(&c->lock);
        r = rtnl_neigh_delete(c->nl, old_entry, 0);
        if (r == 0)
                r = rtnl_neigh_add(c->nl, new_entry, NLM_F_CREATE | NLM_F_REPLACE);
        pthread_mutex_unlock(&c->lock);
        if (r == -NLE_OBJ_NOTFOUND || r == -NLE_NOADDR)
                r = 1; /* no entry for the old MAC: nothing of the operator's to move */
        else if (r < 0)
                r = errno_from_nl(r);
finish:
        rtnl_neigh_put(old_entry);
        rtnl_neigh_put(new_entry);
        return r;
}
