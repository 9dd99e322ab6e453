/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* hostdev.h: pure host I/O on one network namespace: read and apply link state (libnl), multicast (ioctl).
 */
#pragma once

#include <net/if.h>
#include <pthread.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "cleanup.h"
#include "ether.h"
#include "rxfilter.h"

#define HOSTDEV_MULTICAST_MAX 256 /* global entries we read back; more is refused as -E2BIG */
/* The link flags guestnetd may change; every other bit is left alone. */
#define HOSTDEV_FLAGS_OURS (IFF_PROMISC | IFF_ALLMULTI | IFF_MULTICAST)

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
        int dev_mcast_fd; /* >= 0: opened inside another namespace, re-read under the lock */
        unsigned long netns_id; /* inode of the network namespace the sockets live in */
        uint64_t netns_cookie; /* SO_NETNS_COOKIE: unlike the inode, never reused while the host runs */
} HostContext;

/* Opens the sockets in the calling thread's current network namespace. */
int host_context_new(const char *dev_mcast_path, HostContext **ret);
/* Opens the sockets (and dev_mcast) inside the namespace netns_fd refers to, then returns the calling
 * thread to its own namespace. setns() changes only the calling thread: call this on a worker. */
int host_context_new_in_netns(int netns_fd, HostContext **ret);
HostContext *host_context_free(HostContext *c);
DEFINE_POINTER_CLEANUP_FUNC(HostContext, host_context_free);

/* 1 if ifindex is a bridge port with learning off (its FDB entries are static: they must follow the
 * guest's MAC), 0 if not a bridge port or learning is on. */
int hostdev_bridge_port_is_static(HostContext *c, int ifindex);
/* Moves the port's static FDB entry from old_mac to new_mac (libnl neighbour API, AF_BRIDGE). 0 when
 * moved, 1 when the port has no entry for old_mac (nothing to move), negative errno on failure. */
int hostdev_fdb_move(HostContext *c, int ifindex, const EtherAddr *old_mac, const EtherAddr *new_mac);

/* Interface name for an ifindex in the context's namespace. */
int hostdev_ifname_from_index(HostContext *c, int ifindex, char ret[static IF_NAMESIZE]);

/* A guest's namespace: the context is opened lazily by the first job that needs it (setns is a
 * system call for the workers) and shared by the guest's jobs. Reference-counted by the loop thread. */
typedef struct HostNamespace {
        unsigned n_ref;
        int netns_fd;
        pthread_mutex_t lock;
        HostContext *context; /* NULL until opened */
        int error; /* sticky failure to open it, e.g. -EPERM without CAP_SYS_ADMIN */
} HostNamespace;

/* Takes ownership of netns_fd. A negative netns_fd is the errno of a namespace that could not be
 * opened: every job in it fails with that error (fail closed: never fall back to our namespace). */
int host_namespace_new(int netns_fd, HostNamespace **ret);
HostNamespace *host_namespace_ref(HostNamespace *ns);
HostNamespace *host_namespace_unref(HostNamespace *ns);
DEFINE_POINTER_CLEANUP_FUNC(HostNamespace, host_namespace_unref);
/* Worker side: the namespace's context, opening it on first use. */
int host_namespace_get_context(HostNamespace *ns, HostContext **ret);

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
/* The same, skipping the multicast list (n_multicast 0) unless with_multicast. */
int hostdev_read_full(HostContext *c, const char *ifname, bool with_multicast, HostLinkState *ret);

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

/* Computes the change that turns `current` into `desired`, limited to `trust` (Trust bits).
 * A desired MAC that is multicast, broadcast or zero is never planned. Pure. */
void hostdev_plan(const HostLinkState *current, const HostFilter *desired, unsigned trust, HostChange *ret);
/* Bit i set for each host_attributes[i] (macvtap ones) the change touches. */
unsigned host_change_attributes(const HostChange *c);
static inline bool host_change_is_empty(const HostChange *c) {
        return !c->set_mac && !c->flags_mask && c->n_add == 0 && c->n_del == 0;
}

/* Applies a change to the link: MAC and flags with one RTM_SETLINK each (flags with ifi_change =
 * mask, so only our bits move), multicast with SIOCADDMULTI/SIOCDELMULTI. Every attribute is tried
 * even if an earlier one fails. Returns 0 if all succeeded, else the first error (details in ret). */
int hostdev_apply(
        HostContext *c, const HostLinkState *current, const HostChange *change, HostApplyResult *ret);
