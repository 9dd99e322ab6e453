/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* hostns.h: network namespaces and their sockets: a HostContext is one job's sockets in one namespace,
 * a HostNamespace lends them out so that jobs of different NICs never wait for each other. */
#pragma once

#include <pthread.h>
#include <stdint.h>

#include "cleanup.h"

/* A link's answer without statistics is about 1.5 KiB; one that does not fit is refused (-EMSGSIZE). */
#define HOST_RTNL_BUF_SIZE (32 * 1024)

/* Sockets in one network namespace, used by one thread at a time (nothing in it is locked): an
 * rtnetlink socket for link requests and libnl's for the bridge FDB, a socket for the multicast
 * ioctls, dev_mcast for reconcile. */
typedef struct HostContext {
        struct nl_sock *nl; /* NETLINK_ROUTE through libnl: the bridge FDB */
        int rtnl_fd; /* NETLINK_ROUTE, raw: link reads and changes (hostlink.c) */
        uint32_t rtnl_seq;
        void *rtnl_buf; /* HOST_RTNL_BUF_SIZE: one answer at a time */
        int ioctl_fd; /* AF_UNIX datagram socket: SIOCADDMULTI/SIOCDELMULTI, SIOCGIFNAME */
        char *dev_mcast_path; /* "/proc/self/net/dev_mcast" or "/proc/PID/net/dev_mcast" */
        int dev_mcast_fd; /* >= 0: opened inside another namespace, re-read from offset 0 */
        unsigned long netns_id; /* inode of the network namespace the sockets live in */
        uint64_t netns_cookie; /* SO_NETNS_COOKIE: unlike the inode, never reused while the host runs */
        struct HostContext *next; /* in its namespace's list of idle contexts */
} HostContext;

/* Opens the sockets in the calling thread's current network namespace. */
int host_context_new(const char *dev_mcast_path, HostContext **ret);
/* Opens the sockets (and dev_mcast) inside the namespace netns_fd refers to, then returns the calling
 * thread to its own namespace. setns() changes only the calling thread: call this on a worker. */
int host_context_new_in_netns(int netns_fd, HostContext **ret);
HostContext *host_context_free(HostContext *c);
DEFINE_POINTER_CLEANUP_FUNC(HostContext, host_context_free);

/* A namespace host work happens in: a guest's, or the daemon's own. Jobs borrow a HostContext for
 * their whole run and give it back; one is opened when all are in use, so there are at most as many
 * as jobs ever ran at once in the namespace (the worker count), and no host I/O holds a lock. A NIC's
 * requests stay in order: it has one job at a time, and every request is acknowledged before the
 * next. Reference-counted by the loop thread. */
typedef struct HostNamespace {
        unsigned n_ref;
        int netns_fd; /* -EBADF: the daemon's own namespace */
        pthread_mutex_t lock; /* guards idle, n_contexts and error; never held during I/O */
        HostContext *idle;
        unsigned n_contexts; /* opened so far */
        int error; /* sticky failure to open it, e.g. -EPERM without CAP_SYS_ADMIN */
} HostNamespace;

/* Takes ownership of netns_fd. A negative netns_fd is the errno of a namespace that could not be
 * opened: every job in it fails with that error (fail closed: never fall back to our namespace). */
int host_namespace_new(int netns_fd, HostNamespace **ret);
/* The daemon's own namespace (no setns). */
int host_namespace_new_self(HostNamespace **ret);
HostNamespace *host_namespace_ref(HostNamespace *ns);
HostNamespace *host_namespace_unref(HostNamespace *ns);
DEFINE_POINTER_CLEANUP_FUNC(HostNamespace, host_namespace_unref);

/* Worker side: a context nobody else uses until it is released, opened if none is idle. */
int host_namespace_acquire(HostNamespace *ns, HostContext **ret);
void host_namespace_release(HostNamespace *ns, HostContext *c);
/* Opens the daemon's own namespace's contexts up front, one per worker: its descriptors are then
 * constant from the start instead of growing with the first busy moment. */
int host_namespace_prefill(HostNamespace *ns, unsigned n);
