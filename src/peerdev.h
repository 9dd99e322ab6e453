/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* peerdev.h: which host network devices a QEMU process really holds open (its fds, not its words). */
#pragma once

#include <net/if.h>
#include <stdbool.h>
#include <sys/types.h>

#include "hostdev.h"

/* Open fds of a process we look at when searching for a device: QEMU holds a few dozen. */
#define PEERDEV_FDS_MAX 4096

typedef struct PeerDevice {
        HostDevKind kind; /* TAP (a /dev/net/tun fd) or MACVTAP (a /dev/tapN character device) */
        char ifname[IF_NAMESIZE];
        int ifindex; /* macvtap: from its character device; tap: 0 (fdinfo names it only) */
} PeerDevice;

/* What fd of process pid is: 0 and *ret for a tap or macvtap, -ENODEV for any other file (an ordinary
 * file merely named "tap5" included), or the errno of reading /proc. A macvtap is recognised by the
 * fd's st_rdev, whose /sys/dev/char node leads to …/net/IFNAME/macvtap/tapIFINDEX; a tap by the
 * "iff:" line the tun driver writes into the fd's fdinfo. */
int peerdev_from_fd(pid_t pid, int fd, PeerDevice *ret);

/* Whether process pid holds ifname open (a tap fd or a macvtap character device): 1 and *ret if so, 0
 * if not, negative errno if its fds cannot be read. Looks at PEERDEV_FDS_MAX fds at most. */
int peerdev_find(pid_t pid, const char *ifname, PeerDevice *ret);

/* Parses a /sys/dev/char link target "…/net/IFNAME/macvtap/tapIFINDEX". Pure, for tests. */
int peerdev_parse_macvtap_sysfs(const char *target, char ifname[static IF_NAMESIZE], int *ret_ifindex);
