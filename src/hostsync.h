/* hostsync.h: what guestnetd owns on a host device: its baseline, the changes we made, revert, persistence.
 */
#pragma once

#include <stdbool.h>
#include <stddef.h>

#include "hostdev.h"

/* The device as first seen, and which of its state we changed since. We only ever undo what we did:
 * a flag is cleared by us only if we set it, a multicast entry deleted only if we added it, so an
 * administrator's own settings survive and promiscuity/allmulti counts stay balanced. */
typedef struct HostOwnership {
        bool valid;
        int ifindex;
        char ifname[IF_NAMESIZE];
        /* Baseline. */
        EtherAddr baseline_mac;
        unsigned baseline_flags; /* IFF_PROMISC | IFF_ALLMULTI | IFF_MULTICAST bits */
        /* Ours. */
        bool mac_set;
        unsigned flags_set; /* bits we turned on (and have not turned off since) */
        size_t n_added;
        EtherAddr added[RXFILTER_TABLE_MAX]; /* multicast entries we added, sorted */
} HostOwnership;

/* Records `current` as the baseline of a device nothing was changed on yet. */
void host_ownership_init(HostOwnership *o, const HostLinkState *current);

/* The change that brings the device towards `desired` for the trusted capabilities, never undoing what
 * we did not do. Pure. */
void hostsync_plan(const HostLinkState *current, const HostFilter *desired, unsigned trust,
        const HostOwnership *o, HostChange *ret);
/* The change that undoes our changes for the capabilities in `caps` (baseline MAC back, our flags
 * cleared, our multicast entries deleted). Pure. */
void hostsync_plan_revert(
        const HostLinkState *current, const HostOwnership *o, unsigned caps, HostChange *ret);
/* Updates o with what an apply achieved (only attributes whose result is 0). */
void hostsync_record(HostOwnership *o, const HostChange *change, const HostApplyResult *result);
/* True when nothing of ours remains on the device. */
bool host_ownership_is_clean(const HostOwnership *o);

/* Persistence across daemon restarts, so a restart never takes guest-made state for the baseline.
 * Files live in dir as "<netns inode>-<ifindex>.json". load: -ENOENT when there is none. */
int host_ownership_load(const char *dir, unsigned long netns, int ifindex, HostOwnership *ret);
int host_ownership_save(const char *dir, unsigned long netns, const HostOwnership *o);
int host_ownership_remove(const char *dir, unsigned long netns, int ifindex);
