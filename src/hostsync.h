/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* hostsync.h: what guestnetd owns on a host device: its baseline, the changes we made, revert, persistence.
 */
#pragma once

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

#include "cleanup.h"
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
        /* The device's other user entries (an administrator's) when its list was last read: a guest
         * joining one of them gets nothing added, so leaving never deletes it. Not persisted: read
         * again when the record is loaded. */
        bool multicast_known;
        size_t n_foreign;
        EtherAddr foreign[HOSTDEV_MULTICAST_MAX]; /* sorted */
} HostOwnership;

/* Records `current` as the baseline of a device nothing was changed on yet. */
void host_ownership_init(HostOwnership *o, const HostLinkState *current);
/* After a read of the device's multicast list (current->have_multicast): our entries someone else
 * deleted are no longer ours, the other entries are the administrator's. */
void host_ownership_note_multicast(HostOwnership *o, const HostLinkState *current);

/* The change that brings the device towards `desired` for the trusted capabilities, never undoing what
 * we did not do. A desired MAC that is multicast, broadcast or zero is never planned; a tap's MAC and
 * flags are never planned. The multicast list is planned against the device's list when it was read
 * (current->have_multicast), else against the record (ours + the administrator's): a guest's change
 * then costs only its own entries, whatever else is on the host. Pure. */
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
 * Only records with something of ours are kept (a clean device's state is its baseline; a clean record
 * that a NIC kept open is read as none and removed). Files live
 * in the state directory as "<netns cookie>-<ifindex>.json": the cookie is never reused while the
 * host runs, the ifindex is checked together with the name. The directory must be ours and writable
 * by nobody else (checked on every use); files are created with O_EXCL|O_NOFOLLOW in it and renamed
 * into place, so a planted link is never followed. A record written again is rewritten in place
 * through the fd kept from its creation (HostRecordFile) while its name still leads there.
 * load: 0 and *ret; -ENOENT when there is none; -ESTALE when the record is of another device that
 * had this ifindex (name differs: the record is removed); -EBADMSG when it is corrupt: it is then
 * moved aside to "….json.corrupt" and -EBADMSG returned for as long as that file exists, because
 * what is ours on the device is unknown until an operator looks. */
typedef struct HostStateDir HostStateDir;
/* No I/O yet: the directory is created and opened on first use, and again if it is removed. Safe to
 * use from several threads. */
int host_state_dir_new(const char *path, HostStateDir **ret);
HostStateDir *host_state_dir_free(HostStateDir *d);
DEFINE_POINTER_CLEANUP_FUNC(HostStateDir, host_state_dir_free);
const char *host_state_dir_path(const HostStateDir *d);

int host_ownership_load(
        HostStateDir *d, uint64_t netns, int ifindex, const char *ifname, HostOwnership *ret);

/* A device's record file kept open between saves (a trusted change rewrites it every time): the
 * first save creates it whole, later ones write it in place with one pwrite() at offset 0 of less
 * than a page, which a crash of the daemon cannot tear (the directory is on tmpfs, /run: a power loss
 * takes the devices with it), padded with spaces over what a longer record left. Only while the
 * record's name still leads to that file: one removed, set aside or replaced behind our back is
 * created again. Loads exclude writes (a read may see a write half done). Owned with the ownership it
 * records: the NIC's, lent to its job. */
typedef struct HostRecordFile {
        int fd; /* -EBADF: none open */
        uint64_t netns;
        int ifindex;
        dev_t dev; /* the file it is: the record's name must still lead to it */
        ino_t ino;
} HostRecordFile;
#define HOST_RECORD_FILE_NULL ((HostRecordFile){ .fd = -EBADF })
void host_record_file_close(HostRecordFile *f);
/* f may be NULL: the record is then created whole every time and nothing stays open. */
int host_ownership_save(HostStateDir *d, uint64_t netns, const HostOwnership *o, HostRecordFile *f);
/* Parses a record's text (strict JSON, every field present and in range; trailing white space is the
 * padding of an in-place write). Pure, for the fuzzer too. */
#define HOST_OWNERSHIP_RECORD_MAX (16 * 1024)
int host_ownership_parse(const char *text, size_t size, HostOwnership *ret);
/* Removes the record (and closes f when it is this record's). */
int host_ownership_remove(HostStateDir *d, uint64_t netns, int ifindex, HostRecordFile *f);
