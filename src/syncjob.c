/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* syncjob.c: the worker side of a NIC sync: every blocking call happens here. */
#include "syncjob.h"

#include <inttypes.h>
#include <limits.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stdio.h>
#include <string.h>

#include "cleanup.h"
#include "peerdev.h"
#include "time-util.h"

static const char *const sync_outcome_names[_SYNC_OUTCOME_MAX] = {
        [SYNC_OBSERVED] = "observed",
        [SYNC_APPLIED] = "applied",
        [SYNC_PARTIAL] = "partial",
        [SYNC_FAILED] = "failed",
};

const char *sync_outcome_to_string(SyncOutcome o) {
        return o >= 0 && o < _SYNC_OUTCOME_MAX ? sync_outcome_names[o] : NULL;
}

/* The job failed; the first failure's words are what LastError says. */
_printf_(2, 0) static void job_failv(SyncJob *j, const char *fmt, va_list ap) {
        j->outcome = SYNC_FAILED;
        if (!j->error[0])
                vsnprintf(j->error, sizeof(j->error), fmt, ap);
}

_printf_(2, 3) static void job_fail(SyncJob *j, const char *fmt, ...) {
        va_list ap;

        va_start(ap, fmt);
        job_failv(j, fmt, ap);
        va_end(ap);
}

/* The device's ownership record: the one we hold, else the persisted one (daemon restart), else the
 * device's current state becomes its baseline (nothing of ours is on it: a clean record is not kept).
 * False when the record is corrupt: what is ours is unknown, so nothing is changed. */
static bool job_ensure_ownership(SyncJob *j) {
        if (j->have_ownership && j->ownership.ifindex == j->link.ifindex &&
                strcmp(j->ownership.ifname, j->link.ifname) == 0)
                return true;

        int r = j->state_dir ? host_ownership_load(j->state_dir, j->host->netns_cookie, j->link.ifindex,
                                       j->link.ifname, &j->ownership)
                             : -ENOENT;
        if (r == -EBADMSG) {
                job_fail(j,
                        "baseline record of %s is corrupt (kept as %" PRIu64 "-%d.json.corrupt in %s); not "
                        "changing the device until it is removed",
                        j->ifname, j->host->netns_cookie, j->link.ifindex,
                        host_state_dir_path(j->state_dir));
                return false;
        }
        if (r < 0 && r != -ENOENT && r != -ESTALE) {
                job_fail(j, "baseline record of %s cannot be read: %s", j->ifname, strerror(-r));
                return false;
        }
        if (r < 0)
                host_ownership_init(&j->ownership, &j->link);
        j->have_ownership = true;
        j->ownership_changed = true;
        return true;
}

/* A record that cannot be written means a restart could take guest-made state for the baseline: say
 * so (LastError) although the device itself is in sync. A record with nothing of ours left goes, unless
 * the NIC holds it open: a guest that toggles a flag rewrites it in place (a clean record reads as none
 * after a restart) instead of creating and removing a file per change; a revert lets go of it. */
static void job_persist(SyncJob *j) {
        int r;

        if (!j->state_dir)
                return;
        if (host_ownership_is_clean(&j->ownership) && (j->mode == SYNC_JOB_REVERT || j->record_file.fd < 0))
                r = host_ownership_remove(
                        j->state_dir, j->host->netns_cookie, j->ownership.ifindex, &j->record_file);
        else
                r = host_ownership_save(j->state_dir, j->host->netns_cookie, &j->ownership, &j->record_file);
        if (r < 0)
                j->persist_error = r;
}

/* A device that could not be verified is not acted on. For a trusted NIC that is a failure to sync,
 * said in LastError; an untrusted one just observes, its device unknown. */
_printf_(2, 3) static bool job_refuse_device(SyncJob *j, const char *fmt, ...) {
        va_list ap;

        if (j->trust != TRUST_NONE) {
                va_start(ap, fmt); /* the arguments may point into j->ifname: format first */
                job_failv(j, fmt, ap);
                va_end(ap);
        }
        j->ifname[0] = '\0';
        return false;
}

/* The device the job may act on: the one the operator configured, or one the QEMU at the other end of
 * the socket demonstrably holds open, never a name or fd number its monitor merely reports. A revert
 * acts on the device its ownership record names: verified when we changed it, and QEMU may be gone.
 * Fills j->ifname (and j->verified); false when there is no device to act on. */
static bool job_resolve_device(SyncJob *j) {
        int r;

        if (j->ifname_configured)
                return j->ifname[0] != '\0';
        if (j->mode == SYNC_JOB_REVERT) {
                if (!j->have_ownership || !j->ownership.ifname[0])
                        return false; /* nothing of ours on any device */
                memcpy(j->ifname, j->ownership.ifname, sizeof(j->ifname));
                j->verified = (PeerDevice){ .kind = HOSTDEV_KIND_MACVTAP, .ifindex = j->ownership.ifindex };
                memcpy(j->verified.ifname, j->ownership.ifname, sizeof(j->verified.ifname));
                return true;
        }
        if (!j->ifname[0] && j->backend_fd < 0)
                return false; /* nothing known: observe only */
        if (j->peer_pid <= 0)
                return job_refuse_device(
                        j, "host interface: the QEMU process is unknown, its devices cannot be verified");
        if (j->backend_fd >= 0) {
                r = peerdev_from_fd_cached(
                        j->peer_fds, j->peer_pid, j->backend_fd, &j->peer_cache, &j->verified);
                j->verified_cached = r > 0;
                if (r < 0)
                        return job_refuse_device(j,
                                "host interface: fd %d of QEMU (pid %d) is not a tap or macvtap: %s",
                                j->backend_fd, (int)j->peer_pid,
                                r == -ENODEV ? "refusing it" : strerror(-r));
                if (j->ifname[0] && strcmp(j->ifname, j->verified.ifname) != 0)
                        return job_refuse_device(j, "host interface: QEMU reports %s but its fd %d is %s",
                                j->ifname, j->backend_fd, j->verified.ifname);
        } else {
                r = peerdev_find(j->peer_pid, j->ifname, &j->verified);
                if (r <= 0)
                        return job_refuse_device(j,
                                "host interface %s: QEMU (pid %d) does not hold it open%s%s", j->ifname,
                                (int)j->peer_pid, r < 0 ? ": " : ", refusing it", r < 0 ? strerror(-r) : "");
        }
        memcpy(j->ifname, j->verified.ifname, sizeof(j->ifname));
        return true;
}

/* The link read in the job's namespace must be the device QEMU holds: same kind, and for a macvtap the
 * ifindex its character device names (another namespace may have a device of the same name). */
static bool job_link_is_verified(const SyncJob *j) {
        return j->ifname_configured ||
                (j->link.kind == j->verified.kind &&
                        (j->verified.kind != HOSTDEV_KIND_MACVTAP ||
                                j->link.ifindex == j->verified.ifindex));
}

/* Resolves the device and reads it. A device remembered from an earlier job whose name now leads
 * nowhere or elsewhere (renamed since) is looked at again in full, once. -ENXIO: no device to act on
 * (refused or unknown, said in the job). */
static int job_read_device(SyncJob *j) {
        char reported[IF_NAMESIZE];
        int r;

        memcpy(reported, j->ifname, sizeof(reported));
        for (unsigned attempt = 0;; attempt++) {
                if (!job_resolve_device(j))
                        return -ENXIO;
                j->timing.verified = now_usec(CLOCK_REALTIME);
                r = hostdev_read_full(j->host, j->ifname, false, &j->link);
                j->timing.read = now_usec(CLOCK_REALTIME);
                if (!j->verified_cached || attempt > 0 || (r < 0 && r != -ENODEV) ||
                        (r >= 0 && job_link_is_verified(j)))
                        return r;
                j->peer_cache = (PeerDeviceCache){};
                memcpy(j->ifname, reported, sizeof(j->ifname));
        }
}

/* No device is driven by two NICs: the first NIC that syncs it holds it until it goes. */
static bool job_claim_device(SyncJob *j) {
        char holder[HOST_CLAIM_LABEL_MAX];

        if (!j->claims)
                return true;
        int r = host_claims_take(j->claims, j->host->netns_cookie, j->link.ifindex, j->owner, j->guest_name,
                j->nic_id, holder);
        if (r == -EBUSY) {
                job_fail(j, "host interface %s is already driven by %s", j->ifname, holder);
                return false;
        }
        if (r < 0) {
                job_fail(j, "host interface %s: %s", j->ifname, strerror(-r));
                return false;
        }
        return true;
}

static void job_apply(SyncJob *j, const HostChange *change) {
        j->apply = (HostApplyResult){};
        if (host_change_is_empty(change))
                return;

        HostOwnership before = j->ownership;
        j->attempted |= host_change_attributes(change);
        j->timing.apply = now_usec(CLOCK_REALTIME);
        (void)hostdev_apply(j->host, &j->link, change, &j->apply);
        j->timing.host = now_usec(CLOCK_REALTIME);
        hostsync_record(&j->ownership, change, &j->apply);
        if (memcmp(&before, &j->ownership, sizeof(before)) == 0)
                return;
        j->ownership_changed = true;
        /* Persist only what changed: this is the one file write on the trusted path. */
        job_persist(j);
}

static void record_attribute(SyncJob *j, const char *attribute, int r, unsigned *n_ok, unsigned *n_failed) {
        if (r == 0) {
                (*n_ok)++;
                return;
        }
        (*n_failed)++;
        if (!j->error[0])
                snprintf(j->error, sizeof(j->error), "%s: %s", attribute, strerror(-r));
}

static void job_summarize(SyncJob *j) {
        unsigned n_ok = 0, n_failed = 0;

        for (size_t i = 0; i < HOST_ATTRIBUTES_MACVTAP; i++)
                record_attribute(j, host_attributes[i].name,
                        host_apply_result_get(&j->apply, &host_attributes[i]), &n_ok, &n_failed);
        j->outcome = n_failed == 0 ? SYNC_APPLIED : n_ok == 0 ? SYNC_FAILED : SYNC_PARTIAL;
}

static bool job_is_stale(SyncJob *j) {
        /* The guest disconnected or was detached while we worked: never act for a connection that is
         * gone (a revert is not tied to a connection and always runs). */
        if (j->mode != SYNC_JOB_REVERT && atomic_load(j->generation_now) != j->generation)
                j->stale = true;
        return j->stale;
}

/* A tap's own MAC is the host side's and never changes; but when the tap is a bridge port with learning
 * off, the operator's static FDB entry for the guest's MAC must follow it. */
static void job_sync_tap(SyncJob *j) {
        if (!(j->trust & TRUST_MAC) || !j->have_previous || !(j->changed & RXFILTER_FIELD_MAC) ||
                !ether_addr_is_valid_unicast(&j->filter.main_mac))
                return;
        int r = hostfdb_port_is_static(j->host, j->link.ifindex);
        if (r <= 0) {
                if (r < 0)
                        job_fail(j, "fdb: %s", strerror(-r));
                return;
        }
        r = hostfdb_move(j->host, j->link.ifindex, &j->previous.main_mac, &j->filter.main_mac);
        j->attempted |= 1u << HOST_ATTRIBUTES_MACVTAP; /* fdb */
        if (r < 0) {
                j->apply.fdb = r;
                job_fail(j, "fdb: %s", strerror(-r));
        } else if (r == 0)
                j->outcome = SYNC_APPLIED;
}

static void job_sync(SyncJob *j) {
        HostFilter desired;
        HostChange change;

        if (j->trust == TRUST_NONE)
                return;

        rxfilter_to_host(&j->filter, j->vlan_policy, j->unicast_policy, &desired);
        hostsync_plan(&j->link, &desired, j->trust, &j->ownership, &change);
        if (job_is_stale(j))
                return;

        job_apply(j, &change);
        if ((j->trust & TRUST_MAC) && !ether_addr_is_valid_unicast(&desired.mac)) {
                char mac[ETHER_ADDR_STRLEN];
                j->apply.mac = -EADDRNOTAVAIL;
                snprintf(j->error, sizeof(j->error), "mac: refused guest MAC %s: not a unicast address",
                        ether_addr_format(&desired.mac, mac));
        }
        job_summarize(j);
}

static void job_revert(SyncJob *j) {
        HostChange change;

        hostsync_plan_revert(&j->link, &j->ownership, j->trust, &change);
        job_apply(j, &change);
        /* Nothing of ours left, and maybe nothing was undone (the guest had undone it): a record the NIC
         * kept open goes all the same. */
        if (j->record_file.fd >= 0 && host_ownership_is_clean(&j->ownership))
                job_persist(j);
        job_summarize(j);
        /* Everything reverted (the guest stopped, trust went): the NIC drives the device no longer, so
         * another may take it (a restore or migration onto the same device under another name). */
        if (j->claims && j->trust == TRUST_ALL && host_ownership_is_clean(&j->ownership))
                host_claims_release(j->claims, j->owner);
}

/* The device's multicast list is read (all of dev_mcast: every device of the namespace) only when the
 * record does not know it yet, and by reconcile jobs, whose purpose is to find what changed behind our
 * back; a guest's change is planned against the record and costs only its own entries. */
static bool job_read_multicast(SyncJob *j) {
        if (!(j->trust & TRUST_MULTICAST) || j->mode == SYNC_JOB_REVERT ||
                (j->mode != SYNC_JOB_RECONCILE && j->ownership.multicast_known))
                return true;
        int r = hostmcast_read(j->host, j->link.ifindex, j->link.multicast_table, &j->link.n_multicast);
        if (r < 0) {
                job_fail(j, "host interface %s: multicast list: %s", j->ifname, strerror(-r));
                j->apply.multicast = r;
                return false;
        }
        j->link.have_multicast = true;
        host_ownership_note_multicast(&j->ownership, &j->link);
        j->ownership_changed = true;
        return true;
}

static void job_run_on_host(SyncJob *j) {
        int r;

        r = job_read_device(j);
        if (r == -ENXIO)
                return;
        if (r < 0) {
                /* A device that is gone has nothing of ours left on it: forget its record (its ifindex may
                 * be given to another device), and a revert is done. A renamed one keeps it. */
                char name_now[IF_NAMESIZE];
                if (r == -ENODEV && j->have_ownership &&
                        hostlink_ifname(j->host, j->ownership.ifindex, name_now) < 0) {
                        if (j->state_dir)
                                (void)host_ownership_remove(j->state_dir, j->host->netns_cookie,
                                        j->ownership.ifindex, &j->record_file);
                        j->have_ownership = false;
                        j->ownership_changed = true;
                }
                if (j->mode == SYNC_JOB_REVERT && r == -ENODEV)
                        return;
                job_fail(j, "host interface %s: %s", j->ifname, strerror(-r));
                /* Every attribute we were to keep in sync failed with it: say so per attribute. */
                if (j->mode != SYNC_JOB_REVERT)
                        for (size_t i = 0; i < HOST_ATTRIBUTES_MACVTAP; i++)
                                *host_apply_result_field(&j->apply, &host_attributes[i]) =
                                        j->trust & host_attributes[i].trust ? r : 0;
                return;
        }
        if (!job_link_is_verified(j)) {
                job_fail(j,
                        "host interface %s: the device in the guest's namespace is not the one QEMU holds",
                        j->ifname);
                return;
        }
        j->have_link = true;
        if (j->link.kind == HOSTDEV_KIND_TAP && j->mode == SYNC_JOB_FILTER && j->trust != TRUST_NONE) {
                job_sync_tap(j);
                return;
        }
        if (j->link.kind != HOSTDEV_KIND_MACVTAP)
                return;
        if (j->trust != TRUST_NONE && !job_claim_device(j))
                return;

        if (!job_ensure_ownership(j) || !job_read_multicast(j))
                return;
        if (j->mode == SYNC_JOB_REVERT)
                job_revert(j);
        else
                job_sync(j);
        if (j->persist_error < 0 && !j->error[0]) {
                if (j->outcome == SYNC_APPLIED)
                        j->outcome = SYNC_PARTIAL;
                snprintf(j->error, sizeof(j->error), "baseline record of %s cannot be saved in %s: %s",
                        j->ifname, host_state_dir_path(j->state_dir), strerror(-j->persist_error));
        }
}

void sync_job_run(WorkerJob *job) {
        SyncJob *j = (SyncJob *)job;
        int r;

        j->outcome = SYNC_OBSERVED;
        j->timing.start = now_usec(CLOCK_REALTIME);

        if (j->mode == SYNC_JOB_FILTER) {
                r = rxfilter_from_json(j->info, &j->filter, &j->parse_error);
                if (r < 0) {
                        json_object_put(TAKE_PTR(j->info));
                        return;
                }
                j->changed =
                        j->have_previous ? rxfilter_diff(&j->previous, &j->filter) : _RXFILTER_FIELD_ALL;
                j->timing.parsed = now_usec(CLOCK_REALTIME);
        } else
                j->filter = j->previous;

        /* Sockets of our own for the whole job: no other NIC's job waits for them, nor we for theirs. */
        r = host_namespace_acquire(j->netns, &j->host);
        if (r < 0)
                job_fail(j, "cannot enter the guest's network namespace: %s", strerror(-r));
        else {
                job_run_on_host(j);
                host_namespace_release(j->netns, TAKE_PTR(j->host));
        }
        /* The reply's JSON goes once the host is changed: freeing it first delayed the change. */
        json_object_put(TAKE_PTR(j->info));
}
