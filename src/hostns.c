/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* hostns.c: network namespaces and their sockets, lent to one job at a time. */
#include "hostns.h"

#include <errno.h>
#include <fcntl.h>
#include <netlink/netlink.h>
#include <netlink/socket.h>
#include <sched.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>

#include "nlerror.h"

#ifndef SO_NETNS_COOKIE
#define SO_NETNS_COOKIE 71 /* Linux 5.14 */
#endif

HostContext *host_context_free(HostContext *c) {
        if (!c)
                return NULL;
        nl_socket_free(c->nl);
        safe_close(c->rtnl_fd);
        free(c->rtnl_buf);
        safe_close(c->ioctl_fd);
        safe_close(c->dev_mcast_fd);
        free(c->dev_mcast_path);
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
        c->rtnl_fd = -EBADF;
        c->dev_mcast_fd = -EBADF;

        c->dev_mcast_path = strdup(dev_mcast_path ?: "/proc/self/net/dev_mcast");
        if (!c->dev_mcast_path)
                return -ENOMEM;

        c->nl = nl_socket_alloc();
        if (!c->nl)
                return -ENOMEM;
        r = nl_connect(c->nl, NETLINK_ROUTE); /* libnl >= 3.2.26 opens it with SOCK_CLOEXEC */
        if (r < 0)
                return nl_errno(r);

        c->rtnl_fd = socket(AF_NETLINK, SOCK_RAW | SOCK_CLOEXEC, NETLINK_ROUTE);
        if (c->rtnl_fd < 0)
                return -errno;
        c->rtnl_buf = malloc(HOST_RTNL_BUF_SIZE);
        if (!c->rtnl_buf)
                return -ENOMEM;

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
                /* A /proc/net file stays bound to the namespace it was opened in. */
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

static int namespace_new(int netns_fd, int error, HostNamespace **ret) {
        HostNamespace *ns = calloc(1, sizeof(HostNamespace));
        if (!ns) {
                safe_close(netns_fd);
                return -ENOMEM;
        }
        ns->n_ref = 1;
        ns->netns_fd = netns_fd;
        ns->error = error;
        pthread_mutex_init(&ns->lock, NULL);
        *ret = ns;
        return 0;
}

int host_namespace_new(int netns_fd, HostNamespace **ret) {
        return netns_fd >= 0 ? namespace_new(netns_fd, 0, ret) : namespace_new(-EBADF, netns_fd, ret);
}

int host_namespace_new_self(HostNamespace **ret) {
        return namespace_new(-EBADF, 0, ret);
}

HostNamespace *host_namespace_ref(HostNamespace *ns) {
        if (ns)
                ns->n_ref++;
        return ns;
}

HostNamespace *host_namespace_unref(HostNamespace *ns) {
        if (!ns || --ns->n_ref > 0)
                return NULL;
        while (ns->idle) {
                HostContext *c = ns->idle;
                ns->idle = c->next;
                host_context_free(c);
        }
        safe_close(ns->netns_fd);
        pthread_mutex_destroy(&ns->lock);
        free(ns);
        return NULL;
}

int host_namespace_acquire(HostNamespace *ns, HostContext **ret) {
        HostContext *c;
        int r;

        pthread_mutex_lock(&ns->lock);
        c = ns->idle;
        if (c)
                ns->idle = c->next;
        r = ns->error;
        pthread_mutex_unlock(&ns->lock);
        if (c) {
                c->next = NULL;
                *ret = c;
                return 0;
        }
        if (r < 0)
                return r;

        /* Opened outside the lock: entering a namespace must not hold up the jobs that run in it. */
        r = ns->netns_fd >= 0 ? host_context_new_in_netns(ns->netns_fd, &c) : host_context_new(NULL, &c);
        pthread_mutex_lock(&ns->lock);
        if (r < 0 && ns->n_contexts == 0)
                ns->error = r; /* it never opened: it never will (a transient failure later is not kept) */
        else if (r >= 0)
                ns->n_contexts++;
        pthread_mutex_unlock(&ns->lock);
        if (r < 0)
                return r;
        *ret = c;
        return 0;
}

int host_namespace_prefill(HostNamespace *ns, unsigned n) {
        if (ns->netns_fd >= 0)
                return -EINVAL; /* another namespace is entered by a worker, not here */
        while (ns->n_contexts < n) {
                HostContext *c;
                int r = host_context_new(NULL, &c);
                if (r < 0)
                        return r;
                ns->n_contexts++;
                host_namespace_release(ns, c);
        }
        return 0;
}

void host_namespace_release(HostNamespace *ns, HostContext *c) {
        if (!c)
                return;
        pthread_mutex_lock(&ns->lock);
        c->next = ns->idle;
        ns->idle = c;
        pthread_mutex_unlock(&ns->lock);
}
