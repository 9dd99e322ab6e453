/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* hostmcast.c: the multicast list of one device: dev_mcast for reading, ioctls for changing. */
#include "hostmcast.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <string.h>
#include <sys/ioctl.h>
#include <unistd.h>

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

/* dev_mcast from a path, or from an fd kept open since it was opened in another namespace. The
 * context is the calling job's alone, so is the fd's offset. */
static FILE *open_dev_mcast(const HostContext *c) {
        if (c->dev_mcast_fd < 0)
                return fopen(c->dev_mcast_path, "re");
        if (lseek(c->dev_mcast_fd, 0, SEEK_SET) < 0)
                return NULL;
        int copy = fcntl(c->dev_mcast_fd, F_DUPFD_CLOEXEC, 3);
        if (copy < 0)
                return NULL;
        FILE *f = fdopen(copy, "re");
        if (!f)
                safe_close(copy);
        return f;
}

/* Rows are "ifindex ifname users global hexaddr" (net/core/dev_addr_lists.c). Only global rows are
 * ours to manage: they are what SIOCADDMULTI creates; the kernel's own (IPv6, IGMP) have global 0. */
int hostmcast_read(
        HostContext *c, int ifindex, EtherAddr table[static HOSTDEV_MULTICAST_MAX], size_t *ret_n) {
        _cleanup_fclose_ FILE *f = NULL;
        char line[256];
        size_t n = 0;

        f = open_dev_mcast(c);
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

static int multicast_ioctl(HostContext *c, const char *ifname, unsigned long request, const EtherAddr *a) {
        struct ifreq ifr = {};

        memcpy(ifr.ifr_name, ifname, IF_NAMESIZE);
        ifr.ifr_hwaddr.sa_family = AF_UNSPEC;
        memcpy(ifr.ifr_hwaddr.sa_data, a->bytes, sizeof(a->bytes));
        if (ioctl(c->ioctl_fd, request, &ifr) < 0)
                return -errno;
        return 0;
}

int hostmcast_add(HostContext *c, const char *ifname, const EtherAddr *a) {
        return multicast_ioctl(c, ifname, SIOCADDMULTI, a);
}

int hostmcast_del(HostContext *c, const char *ifname, const EtherAddr *a) {
        return multicast_ioctl(c, ifname, SIOCDELMULTI, a);
}
