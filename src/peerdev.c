/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* peerdev.c: which host network devices a QEMU process really holds open (its fds, not its words). */
#include "peerdev.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/sysmacros.h>

#include "cleanup.h"
#include "textbuf.h"

#define TUN_MAJOR 10 /* misc device 10:200 is /dev/net/tun */
#define TUN_MINOR 200

int peerdev_parse_macvtap_sysfs(const char *target, char ifname[static IF_NAMESIZE], int *ret_ifindex) {
        /* …/devices/virtual/net/IFNAME/macvtap/tapIFINDEX (drivers/net/tap.c names the node so) */
        const char *tap = strrchr(target, '/');
        if (!tap || tap == target)
                return -EINVAL;
        const char *macvtap = tap;
        while (macvtap > target && macvtap[-1] != '/')
                macvtap--;
        if ((size_t)(tap - macvtap) != strlen("macvtap") || strncmp(macvtap, "macvtap", 7) != 0 ||
                macvtap - target < 2)
                return -EINVAL;
        const char *name_end = macvtap - 1, *name = name_end;
        while (name > target && name[-1] != '/')
                name--;
        size_t len = (size_t)(name_end - name);
        if (len == 0 || len >= IF_NAMESIZE || name - target < 5 || strncmp(name - 5, "/net/", 5) != 0)
                return -EINVAL;

        unsigned ifindex;
        char rest;
        if (sscanf(tap + 1, "tap%u%c", &ifindex, &rest) != 1 || ifindex == 0 || ifindex > INT_MAX)
                return -EINVAL;
        memcpy(ifname, name, len);
        ifname[len] = '\0';
        *ret_ifindex = (int)ifindex;
        return 0;
}

static int tap_from_fdinfo(pid_t pid, int fd, PeerDevice *ret) {
        char path[64], line[256];

        snprintf(path, sizeof(path), "/proc/%d/fdinfo/%d", (int)pid, fd);
        _cleanup_fclose_ FILE *f = fopen(path, "re");
        if (!f)
                return -errno;
        while (fgets(line, sizeof(line), f)) {
                char name[IF_NAMESIZE + 1];
                if (sscanf(line, "iff: %16s", name) == 1 && strlen(name) < IF_NAMESIZE) {
                        *ret = (PeerDevice){ .kind = HOSTDEV_KIND_TAP };
                        strcpy(ret->ifname, name);
                        return 0;
                }
        }
        return -ENODEV; /* a tun fd not attached to any device yet */
}

/* What the fd whose stat is st is. */
static int peerdev_from_stat(pid_t pid, int fd, const struct stat *st, PeerDevice *ret) {
        char link[64], target[PATH_MAX];

        if (!S_ISCHR(st->st_mode))
                return -ENODEV;
        if (major(st->st_rdev) == TUN_MAJOR && minor(st->st_rdev) == TUN_MINOR)
                return tap_from_fdinfo(pid, fd, ret);

        /* /sys/dev/char is not namespaced: it finds a macvtap in any network namespace. */
        snprintf(link, sizeof(link), "/sys/dev/char/%u:%u", major(st->st_rdev), minor(st->st_rdev));
        ssize_t len = readlink(link, target, sizeof(target) - 1);
        if (len < 0)
                return errno == ENOENT ? -ENODEV : -errno;
        target[len] = '\0';
        PeerDevice d = { .kind = HOSTDEV_KIND_MACVTAP };
        if (peerdev_parse_macvtap_sysfs(target, d.ifname, &d.ifindex) < 0)
                return -ENODEV;
        *ret = d;
        return 0;
}

struct PeerFdTable {
        atomic_uint n_ref;
        pid_t pid;
        int fd; /* /proc/PID/fd, O_PATH */
};

int peer_fd_table_open(pid_t pid, PeerFdTable **ret) {
        char path[64];

        if (pid <= 0)
                return -EINVAL;
        PeerFdTable *t = malloc(sizeof(PeerFdTable));
        if (!t)
                return -ENOMEM;
        snprintf(path, sizeof(path), "/proc/%d/fd", (int)pid);
        *t = (PeerFdTable){ .n_ref = 1, .pid = pid, .fd = open(path, O_PATH | O_DIRECTORY | O_CLOEXEC) };
        if (t->fd < 0) {
                int r = -errno;
                free(t);
                return r;
        }
        *ret = t;
        return 0;
}

PeerFdTable *peer_fd_table_ref(PeerFdTable *t) {
        if (t)
                atomic_fetch_add(&t->n_ref, 1);
        return t;
}

PeerFdTable *peer_fd_table_unref(PeerFdTable *t) {
        if (t && atomic_fetch_sub(&t->n_ref, 1) == 1) {
                safe_close(t->fd);
                free(t);
        }
        return NULL;
}

/* stat() follows the magic link to the file the process really has open: its name says nothing (QEMU
 * may hold an ordinary file called tap5), its device number does. */
static int stat_peer_fd(const PeerFdTable *table, pid_t pid, int fd, struct stat *ret) {
        char path[64];

        if (pid <= 0 || fd < 0)
                return -EINVAL;
        if (table && table->pid == pid) {
                TextBuf t = TEXT_BUF(path); /* every trusted job: without printf */
                text_append_i64(&t, fd);
                return fstatat(table->fd, path, ret, 0) < 0 ? -errno : 0;
        }
        snprintf(path, sizeof(path), "/proc/%d/fd/%d", (int)pid, fd);
        return stat(path, ret) < 0 ? -errno : 0;
}

int peerdev_from_fd(pid_t pid, int fd, PeerDevice *ret) {
        struct stat st;
        int r = stat_peer_fd(NULL, pid, fd, &st);
        return r < 0 ? r : peerdev_from_stat(pid, fd, &st, ret);
}

int peerdev_from_fd_cached(
        const PeerFdTable *table, pid_t pid, int fd, PeerDeviceCache *cache, PeerDevice *ret) {
        struct stat st;
        int r;

        r = stat_peer_fd(table, pid, fd, &st);
        if (r < 0)
                return r;
        if (cache->device.kind == HOSTDEV_KIND_MACVTAP && cache->pid == pid && cache->fd == fd &&
                S_ISCHR(st.st_mode) && cache->dev == st.st_dev && cache->ino == st.st_ino &&
                cache->rdev == st.st_rdev) {
                *ret = cache->device;
                return 1;
        }
        *cache = (PeerDeviceCache){};
        r = peerdev_from_stat(pid, fd, &st, ret);
        if (r >= 0 && ret->kind == HOSTDEV_KIND_MACVTAP)
                *cache = (PeerDeviceCache){ .pid = pid,
                        .fd = fd,
                        .dev = st.st_dev,
                        .rdev = st.st_rdev,
                        .ino = st.st_ino,
                        .device = *ret };
        return r;
}

int peerdev_find(pid_t pid, const char *ifname, PeerDevice *ret) {
        char path[64];
        struct dirent *de;
        unsigned n = 0;

        snprintf(path, sizeof(path), "/proc/%d/fd", (int)pid);
        _cleanup_(closedirp) DIR *d = opendir(path);
        if (!d)
                return -errno;
        while ((de = readdir(d)) && n < PEERDEV_FDS_MAX) {
                char *end;
                long fd = strtol(de->d_name, &end, 10);
                if (de->d_name[0] == '.' || *end != '\0' || fd < 0 || fd > INT_MAX)
                        continue;
                n++;
                PeerDevice dev;
                if (peerdev_from_fd(pid, (int)fd, &dev) == 0 && strcmp(dev.ifname, ifname) == 0) {
                        *ret = dev;
                        return 1;
                }
        }
        return 0;
}
