/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* fuzz-baseline.c: the parsers of what the daemon reads back from disk and from sysfs: ownership
 * records (host_ownership_parse()), /sys/dev/char link targets (peerdev_parse_macvtap_sysfs()) and
 * namespace paths from callers (netns_path_invalid_reason()). Accepted input must hold their promises. */
#include <assert.h>
#include <net/if.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "ether.h"
#include "hostsync.h"
#include "netns.h"
#include "peerdev.h"

static void check_record(const HostOwnership *o) {
        size_t len = strnlen(o->ifname, sizeof(o->ifname));
        assert(len > 0 && len < IF_NAMESIZE);
        assert(o->ifindex > 0);
        assert(o->n_added <= RXFILTER_TABLE_MAX);
        for (size_t i = 1; i < o->n_added; i++)
                assert(ether_addr_compare(&o->added[i - 1], &o->added[i]) < 0);
        assert((o->baseline_flags & ~(unsigned)HOSTDEV_FLAGS_OURS) == 0);
        assert((o->flags_set & ~(unsigned)HOSTDEV_FLAGS_OURS) == 0);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
        HostOwnership o;
        if (host_ownership_parse((const char *)data, size, &o) == 0)
                check_record(&o);

        char *s = malloc(size + 1); /* not strndup: the input need not hold a NUL */
        if (!s)
                return 0;
        memcpy(s, data, size);
        s[size] = '\0';
        char ifname[IF_NAMESIZE];
        int ifindex;
        if (peerdev_parse_macvtap_sysfs(s, ifname, &ifindex) == 0) {
                size_t len = strnlen(ifname, sizeof(ifname));
                assert(len > 0 && len < IF_NAMESIZE && !strchr(ifname, '/'));
                assert(ifindex > 0);
                assert(strstr(s, ifname));
        }
        if (!netns_path_invalid_reason(s))
                assert(s[0] == '/' && strlen(s) <= NETNS_PATH_MAX);
        free(s);
        return 0;
}
