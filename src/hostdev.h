/* hostdev.h: pure host I/O on one network namespace: read and apply link state (libnl), multicast (ioctl).
 */
#pragma once

#include <net/if.h>
#include <pthread.h>
#include <stdbool.h>
#include <stddef.h>

#include "ether.h"
#include "rxfilter.h"

#define HOSTDEV_MULTICAST_MAX 256 /* global entries we read back; more is refused as -E2BIG */

typedef enum HostDevKind {
        HOSTDEV_KIND_UNKNOWN,
        HOSTDEV_KIND_MACVTAP,
        HOSTDEV_KIND_TAP,
        _HOSTDEV_KIND_MAX,
} HostDevKind;

const char *hostdev_kind_to_string(HostDevKind k);

/* Sockets for one network namespace, opened once and shared by the worker threads: calls serialize
 * on the mutex (netlink requests are short; the namespace is per guest). */
typedef struct HostContext {
        pthread_mutex_t lock;
        struct nl_sock *nl; /* NETLINK_ROUTE */
        int ioctl_fd; /* AF_UNIX datagram socket: SIOCADDMULTI/SIOCDELMULTI */
        char *dev_mcast_path; /* "/proc/self/net/dev_mcast" or "/proc/PID/net/dev_mcast" */
        unsigned long netns_id; /* inode of the network namespace the sockets live in */
} HostContext;

/* Opens the sockets in the calling thread's current network namespace. */
int host_context_new(const char *dev_mcast_path, HostContext **ret);
HostContext *host_context_free(HostContext *c);

/* What the host device looks like now. */
typedef struct HostLinkState {
        int ifindex;
        char ifname[IF_NAMESIZE];
        HostDevKind kind;
        EtherAddr mac;
        unsigned flags; /* IFF_* as the kernel reports them */
        size_t n_multicast; /* global (user-added) entries only */
        EtherAddr multicast_table[HOSTDEV_MULTICAST_MAX]; /* sorted, unique */
} HostLinkState;

/* Reads link by name. -ENODEV if it does not exist. */
int hostdev_read(HostContext *c, const char *ifname, HostLinkState *ret);

/* What to change, derived from the difference of desired vs current: only set bits are touched. */
typedef struct HostChange {
        bool set_mac;
        EtherAddr mac;
        unsigned flags_mask; /* IFF_PROMISC / IFF_ALLMULTI / IFF_MULTICAST bits to change */
        unsigned flags; /* their new values */
        size_t n_add, n_del;
        EtherAddr add[RXFILTER_TABLE_MAX];
        EtherAddr del[HOSTDEV_MULTICAST_MAX];
} HostChange;

/* Per-attribute outcome of an apply: 0 on success, negative errno on failure. */
typedef struct HostApplyResult {
        int mac, promisc, allmulti, multicast;
} HostApplyResult;

/* Computes the change that turns `current` into `desired`, limited to `trust` (Trust bits).
 * A desired MAC that is multicast, broadcast or zero is never planned. Pure. */
void hostdev_plan(const HostLinkState *current, const HostFilter *desired, unsigned trust, HostChange *ret);
static inline bool host_change_is_empty(const HostChange *c) {
        return !c->set_mac && !c->flags_mask && c->n_add == 0 && c->n_del == 0;
}

/* Applies a change to the link: MAC and flags with one RTM_SETLINK each (flags with ifi_change =
 * mask, so only our bits move), multicast with SIOCADDMULTI/SIOCDELMULTI. Every attribute is tried
 * even if an earlier one fails. Returns 0 if all succeeded, else the first error (details in ret). */
int hostdev_apply(
        HostContext *c, const HostLinkState *current, const HostChange *change, HostApplyResult *ret);
