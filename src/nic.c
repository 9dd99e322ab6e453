/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* nic.c: a NIC's pipeline on the loop thread: event → query-rx-filter (async) → sync job → completion. */
#include "nic.h"

#include <inttypes.h>
#include <stddef.h>
#include <stdio.h>
#include <string.h>
#include <time.h>

#include "bus.h"
#include "escape.h"
#include "jobqueue.h"
#include "manager.h"
#include "syncjob.h"
#include "textbuf.h"
#include "time-util.h"

static const char *const sync_state_names[_NIC_SYNC_MAX] = {
        [NIC_SYNC_OBSERVING] = "observing",
        [NIC_SYNC_PENDING] = "pending",
        [NIC_SYNC_IN_SYNC] = "in-sync",
        [NIC_SYNC_FAILED] = "failed",
        [NIC_SYNC_UNSUPPORTED] = "unsupported",
};

const char *nic_sync_state_to_string(NicSyncState s) {
        return s >= 0 && s < _NIC_SYNC_MAX ? sync_state_names[s] : NULL;
}

int nic_new(Guest *g, const char *id, Nic **ret) {
        Nic *n = calloc(1, sizeof(Nic));
        if (!n)
                return -ENOMEM;
        n->n_ref = 1;
        n->backend_fd = -1;
        n->record_file = HOST_RECORD_FILE_NULL;
        n->sync_state = NIC_SYNC_PENDING;
        n->id = strdup(id);
        if (!n->id || asprintf(&n->qom_path, "/machine/peripheral/%s", id) < 0) {
                free(n->id);
                free(n);
                return -ENOMEM;
        }
        n->guest = guest_ref(g);
        n->manager = g->manager;
        n->query_limit = RATE_LIMIT_INIT;
        n->trust_override = -1;
        n->next_reason = "initial";
        *ret = n;
        return 0;
}

Nic *nic_ref(Nic *n) {
        if (n)
                n->n_ref++;
        return n;
}

Nic *nic_unref(Nic *n) {
        if (!n || --n->n_ref > 0)
                return NULL;
        nic_detach(n);
        /* A record kept open with nothing of ours left (no revert ran) goes while we still hold the
         * device: nobody else writes it until the claim is released. */
        if (n->record_file.fd >= 0 && n->ownership && host_ownership_is_clean(n->ownership) &&
                n->manager->baselines)
                (void)host_ownership_remove(n->manager->baselines, n->record_file.netns,
                        n->record_file.ifindex, &n->record_file);
        host_claims_release(n->manager->claims, n);
        guest_unref(n->guest);
        free(n->id);
        free(n->bus_path);
        free(n->query_arguments);
        free(n->qom_path);
        free(n->netdev);
        free(n->host_interface);
        free(n->configured_mac);
        free(n->filter);
        free(n->ownership);
        host_record_file_close(&n->record_file);
        free(n->last_error);
        held_signals_free(n->held);
        free(n);
        return NULL;
}

static bool streq_ptr(const char *a, const char *b) {
        return (!a && !b) || (a && b && strcmp(a, b) == 0);
}

/* Updates SyncState/LastError; returns true if either changed (the caller publishes it). */
static bool nic_update_sync_state(Nic *n, NicSyncState state, const char *error) {
        bool changed = n->sync_state != state || !streq_ptr(n->last_error, error);
        n->sync_state = state;
        if (!streq_ptr(n->last_error, error)) {
                free(n->last_error);
                /* A job's text is cut at its buffer's size, maybe inside a guest name's character. */
                n->last_error = utf8_trim_incomplete(error ? strdup(error) : NULL);
        }
        return changed;
}

static void nic_set_error(Nic *n, NicSyncState state, const char *error) {
        if (nic_update_sync_state(n, state, error))
                bus_nic_emit_changed(n, "SyncState", "LastError", NULL);
}

unsigned nic_trust(const Nic *n) {
        if (n->trust_override >= 0)
                return (unsigned)n->trust_override;
        return guest_nic_trust(n->guest, n->id);
}

static Manager *nic_manager(Nic *n) {
        return n->manager;
}

bool nic_is_live(const Nic *n) {
        return !n->removed && guest_is_connected(n->guest);
}

/* ---- the state machine ------------------------------------------------------------------------------ *
 * A NIC has at most one piece of work outstanding: its state says which (nic.h). What is asked meanwhile
 * waits as a pending request: want_revert (capabilities to undo) and want_query (query again). When the
 * work finishes, nic_kick() starts the next: reverts first, then the query. So one NIC's work never
 * overlaps or reorders, and the final state always lands. The state is set before the step that may
 * run a handler synchronously (qmp_client_send() fails a command inside when its write fails), so no
 * handler ever sees a half-made transition. */

static const char *const nic_state_names[_NIC_STATE_MAX] = {
        [NIC_STATE_IDLE] = "idle",
        [NIC_STATE_DEFERRED] = "deferred",
        [NIC_STATE_QUERYING] = "querying",
        [NIC_STATE_DISCOVERING] = "discovering",
        [NIC_STATE_PARKED] = "parked",
        [NIC_STATE_SYNCING] = "syncing",
        [NIC_STATE_REVERTING] = "reverting",
};

const char *nic_state_to_string(NicState s) {
        return s >= 0 && s < _NIC_STATE_MAX ? nic_state_names[s] : NULL;
}

static void nic_log_state(Nic *n, NicState from, NicState to, const char *why) {
        log_nic(n, LOG_DEBUG, "state %s -> %s (%s)", nic_state_to_string(from), nic_state_to_string(to),
                why);
}

/* Writes the state line a transition still owes (nic_transition() with log_later). */
static void nic_flush_state_log(Nic *n) {
        if (n->state_log_why)
                nic_log_state(n, n->state_log_from, n->state, TAKE_PTR(n->state_log_why));
}

/* The one place a NIC's state changes. Its debug line is written first, after any line still owed, or,
 * with log_later, owed until nic_flush_state_log(): for the two steps of every guest change (query
 * sent, job submitted), whose line written first would delay the query or the job by a write to the
 * log. A transition made meanwhile (a handler run inside the step) writes the owed line first. */
static void nic_transition(Nic *n, NicState state, const char *why, bool log_later) {
        if (n->state == state)
                return;
        nic_flush_state_log(n);
        if (log_later) {
                n->state_log_from = n->state;
                n->state_log_why = why;
        } else
                nic_log_state(n, n->state, state, why);
        if (n->state == NIC_STATE_IDLE)
                n->guest->n_nics_working++;
        else if (state == NIC_STATE_IDLE)
                n->guest->n_nics_working--;
        n->state = state;
}

static void nic_set_state(Nic *n, NicState state, const char *why) {
        nic_transition(n, state, why, false);
}

static void nic_start_query(Nic *n);
static void nic_submit_job(Nic *n, SyncJobMode mode, json_object *info, unsigned caps);

static void nic_kick(Nic *n) {
        if (n->state != NIC_STATE_IDLE)
                return;
        if (n->want_revert) {
                unsigned caps = n->want_revert;
                n->want_revert = 0;
                if (n->ownership && n->host_interface) {
                        nic_submit_job(n, SYNC_JOB_REVERT, NULL, caps);
                        return;
                }
        }
        if (n->want_query) {
                n->want_query = false;
                if (n->sync_state != NIC_SYNC_UNSUPPORTED && nic_is_live(n)) {
                        nic_start_query(n);
                        return;
                }
        }
        guest_nic_idle(n->guest);
}

/* The outstanding work is over: back to IDLE, then whatever was asked meanwhile. */
static void nic_work_done(Nic *n, const char *why) {
        nic_set_state(n, NIC_STATE_IDLE, why);
        nic_kick(n);
}

static void nic_request_query(Nic *n) {
        n->want_query = true;
        nic_kick(n);
}

/* A stronger reason is never overwritten by "guest": a Resync() or reset asked for is what the next
 * processed filter answers, even when a guest event comes in between. */
static void nic_set_next_reason(Nic *n, const char *reason) {
        if (!n->next_reason || strcmp(n->next_reason, "guest") == 0 || strcmp(reason, "guest") != 0)
                n->next_reason = reason;
}

void nic_filter_changed(Nic *n) {
        n->n_events++;
        n->last_event_usec = now_usec(CLOCK_REALTIME);
        nic_request_query(n);
}

void nic_resync(Nic *n, const char *reason) {
        nic_set_next_reason(n, n->filter ? reason : "initial");
        nic_request_query(n);
}

void nic_revert(Nic *n, unsigned caps) {
        if (caps == 0)
                return;
        n->want_revert |= caps;
        nic_kick(n);
}

void nic_detach(Nic *n) {
        n->removed = true;
        n->want_query = false;
        switch (n->state) {
        case NIC_STATE_DEFERRED:
                /* The deferred query will never be sent: that was our outstanding work. */
                n->defer_timer = sd_event_source_disable_unref(n->defer_timer);
                nic_set_state(n, NIC_STATE_IDLE, "removed while deferred");
                break;
        case NIC_STATE_QUERYING:
                /* Don't let a hung QEMU hold up the revert of a NIC it unplugged: forget the query. */
                nic_set_state(n, NIC_STATE_IDLE, "removed while querying");
                break;
        case NIC_STATE_DISCOVERING:
                /* Likewise: discovery.c sees the NIC is no longer DISCOVERING and stops. */
                json_object_put(TAKE_PTR(n->discovery_reply));
                nic_set_state(n, NIC_STATE_IDLE, "removed while discovering");
                break;
        default:
                break;
        }
}

void nic_set_trust(Nic *n, unsigned trust) {
        unsigned old = nic_trust(n);
        n->trust_override = (int)trust;
        if (trust == old)
                return;
        _cleanup_free_ char *s = trust_to_string(trust);
        log_nic(n, LOG_INFO, "trust set to %s", s ? s : "?");
        bus_nic_emit_changed(n, "Trust", NULL);
        /* Revoked capabilities go back to the baseline, granted ones sync: both at once, in order. */
        nic_revert(n, old & ~trust);
        if (trust & ~old)
                nic_resync(n, "resync");
        else if (trust == TRUST_NONE)
                nic_set_error(n, NIC_SYNC_OBSERVING, NULL);
        manager_reconcile_update(nic_manager(n));
}

bool nic_reconcile(Nic *n) {
        if (n->state != NIC_STATE_IDLE || n->want_query || n->want_revert || !n->filter || !nic_is_live(n) ||
                nic_trust(n) == TRUST_NONE || n->host_kind != HOSTDEV_KIND_MACVTAP)
                return false;
        nic_submit_job(n, SYNC_JOB_RECONCILE, NULL, 0);
        return true;
}

/* ---- sync jobs ----------------------------------------------------------------------------------- */

static void format_fields(unsigned changed, char *buf, size_t size) {
        size_t len = 0;
        buf[0] = '\0';
        for (unsigned bit = 1; bit & _RXFILTER_FIELD_ALL; bit <<= 1)
                if (changed & bit)
                        len += (size_t)snprintf(buf + len, len < size ? size - len : 0, "%s%s",
                                len ? " " : "", rxfilter_field_to_string(bit));
}

/* The device the job saw: publish interface and kind when they change, announce them once. */
static void nic_take_host(Nic *n, const SyncJob *j) {
        bool changed = false;

        if (j->backend_fd == n->backend_fd)
                n->peer_cache = j->peer_cache;
        n->record_file = j->record_file; /* lent to the job, maybe reopened or closed by it */

        if (j->ifname[0] && !n->host_interface) {
                n->host_interface = strdup(j->ifname);
                if (!n->host_interface)
                        log_oom();
                changed = true;
        }
        HostDevKind kind = j->have_link ? j->link.kind : HOSTDEV_KIND_UNKNOWN;
        if (kind != n->host_kind) {
                n->host_kind = kind;
                changed = true;
        }
        if (changed)
                bus_nic_emit_changed(n, "HostInterface", "HostInterfaceKind", NULL);

        if (!n->host_announced) {
                n->host_announced = true;
                if (j->have_link)
                        log_nic(n, LOG_INFO, "host interface %s (%s)", j->ifname,
                                hostdev_kind_to_string(kind));
                else if (j->ifname[0])
                        log_nic(n, LOG_INFO, "host interface %s (unavailable)", j->ifname);
                else
                        log_nic(n, LOG_INFO, "host interface unknown");
        }

        if (j->ownership_changed) {
                if (!j->have_ownership)
                        n->ownership = mfree(n->ownership);
                else if (n->ownership || (n->ownership = malloc(sizeof(HostOwnership))))
                        *n->ownership = j->ownership;
        }
}

static void nic_emit_failed_attributes(Nic *n, const SyncJob *j) {
        for (size_t i = 0; i < ELEMENTSOF(host_attributes); i++) {
                const HostAttribute *a = &host_attributes[i];
                int r = host_apply_result_get(&j->apply, a);
                if (r >= 0)
                        continue;
                char message[300];
                if (a->offset == offsetof(HostApplyResult, mac) && r == -EADDRNOTAVAIL &&
                        strstr(j->error, "refused"))
                        snprintf(message, sizeof(message), "%s", j->error);
                else
                        snprintf(message, sizeof(message), "%s: %s", j->ifname, strerror(-r));
                log_nic_id(n, MESSAGE_ID_HOST_SYNC_FAILED, LOG_WARNING, "host sync of %s failed: %s",
                        a->name, message);
                bus_nic_emit_host_sync_failed(n, a->name, message);
        }
}

static void nic_complete_revert(Nic *n, const SyncJob *j) {
        _cleanup_free_ char *caps = trust_to_string(j->trust);

        if (j->outcome == SYNC_FAILED || j->outcome == SYNC_PARTIAL) {
                log_nic(n, LOG_WARNING, "revert of %s on %s failed: %s", caps ? caps : "?", j->ifname,
                        j->error);
                nic_emit_failed_attributes(n, j);
        } else if (j->have_link)
                log_nic_id(n, MESSAGE_ID_REVERT_DONE, LOG_INFO, "reverted %s on %s to the baseline",
                        caps ? caps : "?", j->ifname);
        if (!n->removed && nic_trust(n) == TRUST_NONE)
                nic_set_error(n, j->error[0] ? NIC_SYNC_FAILED : NIC_SYNC_OBSERVING,
                        j->error[0] ? j->error : NULL);
}

static void nic_complete_filter(Nic *n, const SyncJob *j) {
        if (j->parse_error) {
                log_nic_id(n, MESSAGE_ID_MONITOR_MISBEHAVING, LOG_WARNING,
                        "invalid query-rx-filter reply: %s", j->parse_error);
                nic_set_error(n, NIC_SYNC_FAILED, j->parse_error);
                return;
        }

        NicChangeSet cs = {
                .changed = j->changed,
                .outcome = sync_outcome_to_string(j->outcome),
                .reason = j->reason,
                .processed = j->mode == SYNC_JOB_FILTER,
        };
        if (n->filter)
                ether_addr_format(&n->filter->main_mac, cs.old_mac);
        else if (!(n->filter = malloc(sizeof(RxFilter)))) {
                log_oom();
                return;
        }
        *n->filter = j->filter;
        /* Where the time of a change went, for the benchmarks (realtime µs, as QEMU's timestamps). */
        if (j->timing.host && log_max_level >= LOG_DEBUG)
                log_nic(n, LOG_DEBUG,
                        "timing: event %" PRIu64 " query %" PRIu64 " reply %" PRIu64 " start %" PRIu64
                        " parsed %" PRIu64 " verified %" PRIu64 " read %" PRIu64 " apply %" PRIu64
                        " host %" PRIu64 " done %" PRIu64,
                        j->timing.event, j->timing.query, j->timing.reply, j->timing.start, j->timing.parsed,
                        j->timing.verified, j->timing.read, j->timing.apply, j->timing.host,
                        now_usec(CLOCK_REALTIME));
        if (j->changed) {
                n->changes++;
                n->last_change_usec = now_usec(CLOCK_REALTIME);
        }

        NicSyncState state = j->outcome == SYNC_APPLIED       ? NIC_SYNC_IN_SYNC
                : j->outcome == SYNC_OBSERVED && !j->error[0] ? NIC_SYNC_OBSERVING
                                                              : NIC_SYNC_FAILED;
        cs.sync_state_changed = nic_update_sync_state(n, state, j->error[0] ? j->error : NULL);

        int level = j->outcome == SYNC_FAILED || j->outcome == SYNC_PARTIAL ? LOG_WARNING : LOG_INFO;
        if (j->changed) {
                char fields[256];
                if (log_max_level >= level) { /* the list is formatted for the log only */
                        format_fields(j->changed, fields, sizeof(fields));
                        log_nic_id(n, j->outcome == SYNC_APPLIED ? MESSAGE_ID_FILTER_APPLIED : NULL, level,
                                "filter changed [%s]; host %s%s%s", fields, cs.outcome,
                                j->error[0] ? ": " : "", j->error);
                }
        } else
                log_nic(n, j->error[0] ? level : LOG_DEBUG, "filter %s; host %s%s%s",
                        j->mode == SYNC_JOB_RECONCILE ? "reconciled" : "unchanged", cs.outcome,
                        j->error[0] ? ": " : "", j->error);

        bus_nic_publish_change_set(n, &cs);
        nic_emit_failed_attributes(n, j);
}

/* A zeroed SyncJob: a spare one if there is, else a new one. */
static SyncJob *sync_job_alloc(Manager *m) {
        WorkerJob *spare = m->spare_jobs;
        if (!spare)
                return calloc(1, sizeof(SyncJob));
        m->spare_jobs = spare->next;
        m->n_spare_jobs--;
        return memset(spare, 0, sizeof(SyncJob));
}

#define SPARE_JOBS_MAX 16 /* enough for a pool kept busy; the rest of a burst is freed */

static void sync_job_release(Manager *m, SyncJob *j) {
        if (m->n_spare_jobs >= SPARE_JOBS_MAX) {
                free(j);
                return;
        }
        j->job.next = m->spare_jobs;
        m->spare_jobs = &j->job;
        m->n_spare_jobs++;
}

static void sync_job_complete(WorkerJob *job, int error) {
        SyncJob *j = (SyncJob *)job;
        Nic *n = j->owner;

        if (error == -ECANCELED)
                /* Shutdown: nothing more will run. */
                nic_set_state(n, NIC_STATE_IDLE, "job cancelled");
        else {
                /* Host facts (interface, kind, ownership) are true whatever happened to the guest
                 * meanwhile. */
                nic_take_host(n, j);
                nic_metrics_count_job(&n->metrics, j->attempted, &j->apply);

                if (j->mode == SYNC_JOB_REVERT)
                        nic_complete_revert(n, j);
                else if (!n->removed && !j->stale && atomic_load(&n->guest->generation) == j->generation) {
                        nic_complete_filter(n, j);
                        if (nic_trust(n) != TRUST_NONE && n->host_kind == HOSTDEV_KIND_MACVTAP)
                                manager_reconcile_arm(nic_manager(n));
                }
                /* else: overtaken by a disconnect; the reconnect's full query resyncs. */

                n->n_jobs++;
                nic_work_done(n, "job done");
                job_queue_admit(nic_manager(n));
        }
        free(j->parse_error);
        if (j->info)
                json_object_put(j->info);
        host_namespace_unref(j->netns);
        peer_fd_table_unref(j->peer_fds);
        Manager *m = nic_manager(n);
        nic_unref(n);
        sync_job_release(m, j);
}

static void nic_submit_job(Nic *n, SyncJobMode mode, json_object *info, unsigned caps) {
        if (!job_queue_submit(nic_manager(n), n, mode, info, caps))
                nic_set_state(n, NIC_STATE_PARKED, "waiting for room in the worker pool");
}

void nic_drop_parked_job(Nic *n) {
        json_object_put(TAKE_PTR(n->parked_info));
        nic_work_done(n, "parked job dropped");
}

void nic_start_job(Nic *n, int mode, json_object *info, unsigned caps) {
        Manager *m = nic_manager(n);
        Guest *g = n->guest;

        nic_transition(
                n, mode == SYNC_JOB_REVERT ? NIC_STATE_REVERTING : NIC_STATE_SYNCING, "job submitted", true);
        SyncJob *j = sync_job_alloc(m);
        if (!j) {
                nic_flush_state_log(n);
                json_object_put(info);
                log_nic(n, LOG_ERR, "cannot queue a sync job: out of memory");
                nic_work_done(n, "out of memory");
                return;
        }
        j->job.run = sync_job_run;
        j->job.complete = sync_job_complete;
        /* A revert must happen even when the daemon is stopping: it undoes what we did. */
        j->job.run_at_shutdown = mode == SYNC_JOB_REVERT;
        j->owner = nic_ref(n);
        j->mode = mode;
        j->info = info;
        j->generation_now = &g->generation;
        /* A filter belongs to the connection it was queried on: a disconnect since makes it stale. */
        j->generation = mode == SYNC_JOB_FILTER ? n->query_generation : atomic_load(&g->generation);
        if (n->filter) {
                j->have_previous = true;
                j->previous = *n->filter;
        }
        j->trust = mode == SYNC_JOB_REVERT ? caps : nic_trust(n);
        j->reason = n->next_reason;
        if (mode == SYNC_JOB_FILTER) {
                n->next_reason = "guest";
                j->timing = n->timing;
        }
        j->vlan_policy = m->config.vlan_policy;
        j->unicast_policy = m->config.unicast_policy;
        j->netns = host_namespace_ref(g->netns ?: m->host_ns);
        j->state_dir = m->baselines;
        if (n->host_interface)
                strscpy(j->ifname, sizeof(j->ifname), n->host_interface);
        j->ifname_configured = n->host_interface_configured;
        j->backend_fd = n->backend_fd;
        j->peer_cache = n->peer_cache;
        j->record_file = n->record_file;
        j->claims = m->claims;
        j->guest_name = g->name;
        j->nic_id = n->id;
        j->peer_pid = g->qmp ? qmp_client_get_peer_pid(g->qmp) : 0;
        j->peer_fds = peer_fd_table_ref(g->peer_fds);
        if (n->ownership) {
                j->have_ownership = true;
                j->ownership = *n->ownership;
        }

        int r = worker_pool_submit(m->workers, &j->job);
        nic_flush_state_log(n);
        if (r < 0) {
                log_nic(n, LOG_ERR, "cannot queue a sync job: %s", strerror(-r));
                j->job.complete(&j->job, -ECANCELED);
                nic_kick(n);
        }
}

/* ---- query-rx-filter ----------------------------------------------------------------------------- */

/* Takes sole ownership of a child of a reply: detach it so no other thread ever touches a shared
 * reference count (json-c's counting is not atomic). */
static json_object *steal_array_element(json_object *array, size_t index) {
        json_object *o = json_object_get(json_object_array_get_idx(array, index));
        json_object_array_put_idx(array, index, NULL);
        return o;
}

/* A filter reply for the connection it was queried on: discover first when this connection has not
 * been discovered yet (a restarted QEMU may use other devices), else sync. */
static void nic_process_reply(Nic *n, json_object *info) {
        if (n->discovered_generation == n->query_generation) {
                nic_submit_job(n, SYNC_JOB_FILTER, info, 0);
                return;
        }
        n->discovery_reply = info;
        if (!n->host_interface_configured) {
                n->host_announced = false;
                n->host_interface = mfree(n->host_interface);
                n->backend_fd = -1;
        }
        nic_set_state(n, NIC_STATE_DISCOVERING, "first reply on this connection");
        nic_discover(n);
}

static void on_query_reply(QmpClient *c, json_object *result, const QmpError *err, void *userdata) {
        _cleanup_(nic_unrefp) Nic *n = userdata;

        if (n->state != NIC_STATE_QUERYING)
                return; /* abandoned when the NIC went: other work may be running by now */
        n->timing.reply = now_usec(CLOCK_REALTIME);

        if (!nic_is_live(n) || (err && (err->error == -ECONNRESET || err->error == -ECANCELED))) {
                /* Gone or disconnected: the reconnect's full query resyncs. */
                n->want_query = false;
                nic_work_done(n, "disconnected while querying");
                return;
        }

        if (err) {
                const char *desc = err->desc ? err->desc : strerror(-err->error);
                if (strstr(desc, "invalid net client name")) {
                        log_nic(n, LOG_INFO, "gone from QEMU (%s)", desc);
                        nic_set_state(n, NIC_STATE_IDLE, "gone from QEMU");
                        guest_remove_nic(n->guest, n, true);
                        return;
                }
                if (strstr(desc, "doesn't support rx-filter querying")) {
                        log_nic(n, LOG_NOTICE, "not a virtio-net NIC, its filter can't be queried: %s",
                                desc);
                        nic_set_error(n, NIC_SYNC_UNSUPPORTED, desc);
                        n->want_query = false;
                        nic_work_done(n, "unsupported");
                        return;
                }
                if (strstr(desc, "isn't a NIC"))
                        log_nic(n, LOG_ERR, "bug: queried a netdev instead of a NIC: %s", desc);
                else
                        log_nic(n, LOG_WARNING, "query-rx-filter failed: %s", desc);
                /* A late reply to a timed-out query re-arms QEMU's event without telling us the state:
                 * ask again (paced by the rate limit), or a change made before a hang never lands. */
                if (err->error == -ETIMEDOUT)
                        n->want_query = true;
                nic_set_error(n, NIC_SYNC_FAILED, desc);
                nic_work_done(n, "query failed");
                return;
        }

        if (!json_object_is_type(result, json_type_array) || json_object_array_length(result) != 1) {
                log_nic_id(n, MESSAGE_ID_MONITOR_MISBEHAVING, LOG_WARNING,
                        "query-rx-filter returned %s, expected one RxFilterInfo",
                        json_object_is_type(result, json_type_array) ? "a list of another length"
                                                                     : "something that is not a list");
                nic_set_error(n, NIC_SYNC_FAILED, "malformed query-rx-filter reply");
                nic_work_done(n, "malformed reply");
                return;
        }
        /* The reply is kept until a worker takes it, behind others when the pool is busy: one that took
         * more than one NIC's largest filter could take would be kept for every NIC of the guest. */
        size_t cost = qmp_client_get_message_cost(c);
        if (cost > RXFILTER_REPLY_COST_MAX) {
                log_nic_id(n, MESSAGE_ID_MONITOR_MISBEHAVING, LOG_WARNING,
                        "query-rx-filter reply took %zu KiB to parse, more than one NIC's filter can (%u "
                        "KiB): refusing it",
                        cost / 1024, RXFILTER_REPLY_COST_MAX / 1024);
                nic_set_error(n, NIC_SYNC_FAILED, "query-rx-filter reply too large");
                nic_work_done(n, "reply too large");
                return;
        }
        nic_process_reply(n, steal_array_element(result, 0));
}

/* {"name":ID}, serialized once by json-c (which escapes the id): every change sends it. */
static const char *nic_query_arguments(Nic *n) {
        if (n->query_arguments)
                return n->query_arguments;
        json_object *args = json_object_new_object(), *name = json_object_new_string(n->id);
        /* Checked: json-c adds a NULL value as null, which would be kept for the NIC's life. */
        if (args && name && json_object_object_add(args, "name", TAKE_PTR(name)) == 0) {
                const char *text = json_object_to_json_string_ext(args, JSON_C_TO_STRING_PLAIN);
                n->query_arguments = text ? strdup(text) : NULL;
        }
        json_object_put(args);
        json_object_put(name);
        return n->query_arguments;
}

static void nic_send_query(Nic *n) {
        const char *args = nic_query_arguments(n);
        if (!args) {
                log_oom();
                nic_work_done(n, "out of memory");
                return;
        }
        /* Set before sending: a write that fails runs on_query_reply() inside qmp_client_send(). What
         * was asked until now, this query answers. */
        n->want_query = false;
        n->query_generation = atomic_load(&n->guest->generation);
        nic_transition(n, NIC_STATE_QUERYING, "query-rx-filter", true);
        n->n_queries++;
        /* The event this query answers; one read while querying is the next query's, and a query asked
         * for without one (resync, reconnect) has none (0). */
        n->timing.event = n->last_event_usec;
        n->last_event_usec = 0;
        n->timing.query = now_usec(CLOCK_REALTIME);
        _cleanup_(nic_unrefp) _unused_ Nic *hold = nic_ref(n); /* handlers may drop the last reference */
        int64_t r =
                qmp_client_send_text(n->guest->qmp, "query-rx-filter", args, 0, on_query_reply, nic_ref(n));
        nic_flush_state_log(n);
        if (r < 0) {
                nic_unref(n);
                if (r != -ENOTCONN)
                        log_nic(n, LOG_WARNING, "cannot send query-rx-filter: %s", strerror((int)-r));
                n->want_query = false;
                nic_work_done(n, "query not sent");
        }
}

static int on_defer_timer(sd_event_source *s, uint64_t usec, void *userdata) {
        Nic *n = userdata;
        n->defer_timer = sd_event_source_disable_unref(n->defer_timer);
        if (nic_is_live(n))
                nic_send_query(n);
        else
                nic_work_done(n, "not live when the deferred query was due");
        return 0;
}

/* Token bucket per NIC (MaxQueriesPerSecond= refills it, NIC_QUERY_BURST is its size): an excess query
 * is deferred, never dropped, so a flooding guest costs bounded CPU and the final state still lands. */
static uint64_t nic_rate_limit_delay(Nic *n) {
        Manager *m = nic_manager(n);
        unsigned rate = m->config.max_queries_per_second;
        return rate_limit_take(
                &n->query_limit, rate, rate > NIC_QUERY_BURST ? rate : NIC_QUERY_BURST, manager_now(m));
}

static void nic_start_query(Nic *n) {
        uint64_t delay = nic_rate_limit_delay(n);
        if (delay == 0) {
                nic_send_query(n);
                return;
        }
        nic_manager(n)->n_queries_deferred++; /* metrics */
        int r = sd_event_add_time_relative(
                nic_manager(n)->event, &n->defer_timer, CLOCK_MONOTONIC, delay, 0, on_defer_timer, n);
        if (r < 0) {
                log_nic(n, LOG_WARNING, "cannot defer query, sending now: %s", strerror(-r));
                nic_send_query(n);
                return;
        }
        nic_set_state(n, NIC_STATE_DEFERRED, "rate limit");
}

/* ---- discovery ------------------------------------------------------------------------------------ */

/* The object appears on the bus once, when its QOM path (a const property) is known. */
static void nic_publish(Nic *n) {
        if (n->published || n->removed)
                return;
        n->published = true;
        bus_nic_emit_added(n);
        bus_guest_emit_changed(n->guest, "Nics", NULL);
}

void nic_discovery_done(Nic *n) {
        json_object *info = TAKE_PTR(n->discovery_reply);

        /* Interrupted by a disconnect: what discovery found is not to be trusted, and the NIC is not
         * published with a QOM path that may be wrong. The reconnect discovers again. */
        if (!nic_is_live(n) || atomic_load(&n->guest->generation) != n->query_generation) {
                json_object_put(info);
                n->want_query = false;
                nic_work_done(n, "discovery interrupted");
                return;
        }
        n->discovered_generation = n->query_generation;
        nic_publish(n);
        if (!info) {
                nic_work_done(n, "discovered");
                return;
        }
        nic_submit_job(n, SYNC_JOB_FILTER, info, 0);
}

void nic_process_full_reply(Nic *n, json_object *info, const char *reason) {
        nic_set_next_reason(n, n->filter ? reason : "initial");
        if (n->state != NIC_STATE_IDLE || n->want_revert) {
                /* Work is outstanding: fold this into one more query after it. */
                json_object_put(info);
                nic_request_query(n);
                return;
        }
        n->want_query = false; /* this reply is the answer */
        n->query_generation = atomic_load(&n->guest->generation);
        nic_process_reply(n, info);
}
