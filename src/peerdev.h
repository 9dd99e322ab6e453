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

/* What a full look at a fd of a process found, to recognise the same open file with one stat. */
typedef struct PeerDeviceCache {
        pid_t pid;
        int fd;
        dev_t dev, rdev; /* the node's file system and its device number */
        ino_t ino; /* the node itself: the same open file, not merely the same device number */
        PeerDevice device; /* kind HOSTDEV_KIND_UNKNOWN: nothing remembered */
} PeerDeviceCache;

/* The fd table of a QEMU process, /proc/PID/fd opened once per connection: its fds are then looked at
 * relative to it, one path component per stat instead of four (a trusted change makes one), and a PID
 * reused after QEMU exits never leads to another process's fds (lookups in a dead process's table
 * fail). Shared by the loop thread and the jobs: references are atomic. */
typedef struct PeerFdTable PeerFdTable;
int peer_fd_table_open(pid_t pid, PeerFdTable **ret);
PeerFdTable *peer_fd_table_ref(PeerFdTable *t);
PeerFdTable *peer_fd_table_unref(PeerFdTable *t);

/* peerdev_from_fd() for a fd looked at before: while pid's fd is still the same character device
 * node (one stat through /proc: same st_dev, st_ino, st_rdev), the macvtap found then is returned
 * without reading /sys again; anything else is looked at in full and remembered in *cache. The stat
 * is never skipped: the fd is checked to be that device on every call. A macvtap renamed since is
 * still reported under its old name: forget the cache when the name leads nowhere. Taps are never
 * remembered (their name is read from fdinfo, which follows renames). Returns 1 when the device came
 * from the cache, 0 when it was looked at, or peerdev_from_fd()'s errors. The stat goes through table
 * when there is one (pid's), else through /proc/PID/fd/N. */
int peerdev_from_fd_cached(
        const PeerFdTable *table, pid_t pid, int fd, PeerDeviceCache *cache, PeerDevice *ret);

/* Whether process pid holds ifname open (a tap fd or a macvtap character device): 1 and *ret if so, 0
 * if not, negative errno if its fds cannot be read. Looks at PEERDEV_FDS_MAX fds at most. */
int peerdev_find(pid_t pid, const char *ifname, PeerDevice *ret);

/* Parses a /sys/dev/char link target "…/net/IFNAME/macvtap/tapIFINDEX". Pure, for tests. */
int peerdev_parse_macvtap_sysfs(const char *target, char ifname[static IF_NAMESIZE], int *ret_ifindex);
