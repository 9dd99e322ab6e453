/* syncjob.c: the worker side of a NIC sync: every blocking call happens here. */
#include "syncjob.h"

#include <limits.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stdio.h>
#include <string.h>

#include "cleanup.h"

static const char *const sync_outcome_names[_SYNC_OUTCOME_MAX] = {
        [SYNC_OBSERVED] = "observed",
        [SYNC_APPLIED] = "applied",
        [SYNC_PARTIAL] = "partial",
        [SYNC_FAILED] = "failed",
};

const char *sync_outcome_to_string(SyncOutcome o) {
        return o >= 0 && o < _SYNC_OUTCOME_MAX ? sync_outcome_names[o] : NULL;
}

/* Resolves an fd-passed backend on the host: a tap fd shows "iff:" in fdinfo, a macvtap fd is
 * /dev/tapIFINDEX. */
static int resolve_backend_fd(HostContext *host, pid_t pid, int fd, char ifname[static IF_NAMESIZE]) {
        char path[64], target[PATH_MAX];

        snprintf(path, sizeof(path), "/proc/%d/fd/%d", (int)pid, fd);
        ssize_t len = readlink(path, target, sizeof(target) - 1);
        if (len < 0)
                return -errno;
        target[len] = '\0';

        /* A macvtap's character device is named tapIFINDEX; QEMU may have been handed a node outside
         * /dev (a private one, as namespaces share /dev but not ifindexes), so match the name only. */
        const char *base = strrchr(target, '/');
        unsigned ifindex;
        char rest;
        if (sscanf(base ? base + 1 : target, "tap%u%c", &ifindex, &rest) == 1)
                return hostdev_ifname_from_index(host, (int)ifindex, ifname);

        snprintf(path, sizeof(path), "/proc/%d/fdinfo/%d", (int)pid, fd);
        _cleanup_fclose_ FILE *f = fopen(path, "re");
        if (!f)
                return -errno;
        char line[256];
        while (fgets(line, sizeof(line), f)) {
                char name[IF_NAMESIZE + 1];
                if (sscanf(line, "iff: %16s", name) == 1 && strlen(name) < IF_NAMESIZE) {
                        strcpy(ifname, name);
                        return 0;
                }
        }
        return -ENOENT;
}

_printf_(2, 3) static void job_fail(SyncJob *j, const char *fmt, ...) {
        va_list ap;

        j->outcome = SYNC_FAILED;
        if (j->error[0])
                return;
        va_start(ap, fmt);
        vsnprintf(j->error, sizeof(j->error), fmt, ap);
        va_end(ap);
}

/* The device's ownership record: the one we hold, else the persisted one (daemon restart), else the
 * device's current state becomes its baseline. */
static void job_ensure_ownership(SyncJob *j) {
        if (j->have_ownership && j->ownership.ifindex == j->link.ifindex)
                return;

        if (j->state_dir &&
                host_ownership_load(j->state_dir, j->host->netns_id, j->link.ifindex, &j->ownership) >= 0) {
                j->have_ownership = true;
                j->ownership_changed = true;
                return;
        }
        host_ownership_init(&j->ownership, &j->link);
        j->have_ownership = true;
        j->ownership_changed = true;
        if (j->state_dir)
                (void)host_ownership_save(j->state_dir, j->host->netns_id, &j->ownership);
}

static void job_apply(SyncJob *j, const HostChange *change) {
        j->apply = (HostApplyResult){};
        if (host_change_is_empty(change))
                return;

        HostOwnership before = j->ownership;
        j->attempted |= host_change_attributes(change);
        (void)hostdev_apply(j->host, &j->link, change, &j->apply);
        hostsync_record(&j->ownership, change, &j->apply);
        if (memcmp(&before, &j->ownership, sizeof(before)) == 0)
                return;
        j->ownership_changed = true;
        if (!j->state_dir)
                return;
        /* Persist only what changed: this is the one file write on the trusted path. */
        if (host_ownership_is_clean(&j->ownership) && j->mode == SYNC_JOB_REVERT)
                (void)host_ownership_remove(j->state_dir, j->host->netns_id, j->ownership.ifindex);
        else
                (void)host_ownership_save(j->state_dir, j->host->netns_id, &j->ownership);
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
        int r = hostdev_bridge_port_is_static(j->host, j->link.ifindex);
        if (r <= 0) {
                if (r < 0)
                        job_fail(j, "fdb: %s", strerror(-r));
                return;
        }
        r = hostdev_fdb_move(j->host, j->link.ifindex, &j->previous.main_mac, &j->filter.main_mac);
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
        job_summarize(j);
}

void sync_job_run(WorkerJob *job) {
        SyncJob *j = (SyncJob *)job;
        int r;

        j->outcome = SYNC_OBSERVED;

        if (j->mode == SYNC_JOB_FILTER) {
                r = rxfilter_from_json(j->info, &j->filter, &j->parse_error);
                json_object_put(j->info);
                j->info = NULL;
                if (r < 0)
                        return;
                j->changed =
                        j->have_previous ? rxfilter_diff(&j->previous, &j->filter) : _RXFILTER_FIELD_ALL;
        } else
                j->filter = j->previous;

        if (j->netns) {
                r = host_namespace_get_context(j->netns, &j->host);
                if (r < 0) {
                        job_fail(j, "cannot enter the guest's network namespace: %s", strerror(-r));
                        return;
                }
        }

        if (!j->ifname[0] && j->backend_fd >= 0 && j->peer_pid > 0)
                (void)resolve_backend_fd(j->host, j->peer_pid, j->backend_fd, j->ifname);
        if (!j->ifname[0])
                return;

        /* The multicast list is read only when it is ours to change. */
        r = hostdev_read_full(j->host, j->ifname, j->trust & TRUST_MULTICAST, &j->link);
        if (r < 0) {
                /* A device that is gone has nothing left to revert. */
                if (j->mode == SYNC_JOB_REVERT && r == -ENODEV) {
                        if (j->state_dir && j->have_ownership)
                                (void)host_ownership_remove(
                                        j->state_dir, j->host->netns_id, j->ownership.ifindex);
                        j->have_ownership = false;
                        j->ownership_changed = true;
                        return;
                }
                job_fail(j, "host interface %s: %s", j->ifname, strerror(-r));
                /* Every attribute we were to keep in sync failed with it: say so per attribute. */
                if (j->mode != SYNC_JOB_REVERT)
                        for (size_t i = 0; i < HOST_ATTRIBUTES_MACVTAP; i++)
                                *host_apply_result_field(&j->apply, &host_attributes[i]) =
                                        j->trust & host_attributes[i].trust ? r : 0;
                return;
        }
        j->have_link = true;
        if (j->link.kind == HOSTDEV_KIND_TAP && j->mode == SYNC_JOB_FILTER && j->trust != TRUST_NONE) {
                job_sync_tap(j);
                return;
        }
        if (j->link.kind != HOSTDEV_KIND_MACVTAP)
                return;

        job_ensure_ownership(j);
        if (j->mode == SYNC_JOB_REVERT)
                job_revert(j);
        else
                job_sync(j);
}
