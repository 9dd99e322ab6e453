/* nic.c: a NIC's pipeline on the loop thread: event → query-rx-filter (async) → sync job → completion. */
#include "nic.h"

#include <math.h>
#include <stddef.h>
#include <stdio.h>
#include <string.h>
#include <time.h>

#include "bus.h"
#include "manager.h"
#include "syncjob.h"

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

static uint64_t now_usec(clockid_t clock) {
        struct timespec ts;
        clock_gettime(clock, &ts);
        return (uint64_t)ts.tv_sec * 1000000ULL + (uint64_t)ts.tv_nsec / 1000ULL;
}

int nic_new(Guest *g, const char *id, Nic **ret) {
        Nic *n = calloc(1, sizeof(Nic));
        if (!n)
                return -ENOMEM;
        n->n_ref = 1;
        n->backend_fd = -1;
        n->sync_state = NIC_SYNC_PENDING;
        n->id = strdup(id);
        if (!n->id || asprintf(&n->qom_path, "/machine/peripheral/%s", id) < 0) {
                free(n->id);
                free(n);
                return -ENOMEM;
        }
        n->guest = guest_ref(g);
        n->manager = g->manager;
        n->tokens = -1; /* bucket starts full on first use */
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

void nic_detach(Nic *n) {
        n->removed = true;
        if (n->defer_timer) {
                /* The deferred query will never be sent: that was our outstanding work. */
                n->defer_timer = sd_event_source_disable_unref(n->defer_timer);
                n->busy = false;
        }
        if (n->query_in_flight) {
                /* Don't let a hung QEMU hold up the revert of a NIC it unplugged: forget the query. */
                n->query_in_flight = false;
                n->busy = false;
        }
        if (n->discovery_reply) {
                json_object_put(n->discovery_reply);
                n->discovery_reply = NULL;
        }
}

Nic *nic_unref(Nic *n) {
        if (!n || --n->n_ref > 0)
                return NULL;
        nic_detach(n);
        guest_unref(n->guest);
        free(n->id);
        free(n->qom_path);
        free(n->netdev);
        free(n->host_interface);
        free(n->configured_mac);
        free(n->filter);
        free(n->ownership);
        free(n->last_error);
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
                n->last_error = error ? strdup(error) : NULL;
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

static bool nic_is_live(Nic *n) {
        return !n->removed && n->guest->manager && n->guest->state == GUEST_STATE_CONNECTED;
}

/* ---- the work queue of one ---------------------------------------------------------------------- *
 * A NIC has at most one piece of work outstanding (a query, a discovery or a job: `busy`). What arrives
 * meanwhile is folded into flags: `pending_revert` (capabilities to undo) and `rerun` (query again).
 * When the work finishes, nic_kick() starts the next: reverts first, then the query. So one NIC's work
 * never overlaps or reorders, and the final state always lands. */

static void nic_start_query(Nic *n);
static void nic_submit_job(Nic *n, SyncJobMode mode, json_object *info, unsigned caps);

static void nic_kick(Nic *n) {
        if (n->busy)
                return;
        if (n->pending_revert) {
                unsigned caps = n->pending_revert;
                n->pending_revert = 0;
                if (n->ownership && n->host_interface) {
                        n->busy = true;
                        nic_submit_job(n, SYNC_JOB_REVERT, NULL, caps);
                        return;
                }
        }
        if (!n->rerun)
                return;
        n->rerun = false;
        if (n->sync_state == NIC_SYNC_UNSUPPORTED || !nic_is_live(n))
                return;
        n->busy = true;
        nic_start_query(n);
}

static void nic_work_done(Nic *n) {
        n->busy = false;
        nic_kick(n);
}

static void nic_request_query(Nic *n) {
        n->rerun = true;
        nic_kick(n);
}

void nic_filter_changed(Nic *n) {
        n->n_events++;
        nic_request_query(n);
}

void nic_resync(Nic *n, const char *reason) {
        n->next_reason = reason;
        nic_request_query(n);
}

void nic_revert(Nic *n, unsigned caps) {
        if (caps == 0)
                return;
        n->pending_revert |= caps;
        nic_kick(n);
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
        if (n->busy || !n->filter || !nic_is_live(n) || nic_trust(n) == TRUST_NONE ||
                n->host_kind != HOSTDEV_KIND_MACVTAP)
                return false;
        n->busy = true;
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

        char old_mac[ETHER_ADDR_STRLEN] = "";
        if (n->filter)
                ether_addr_format(&n->filter->main_mac, old_mac);
        else if (!(n->filter = malloc(sizeof(RxFilter)))) {
                log_oom();
                return;
        }
        *n->filter = j->filter;
        if (j->changed) {
                n->changes++;
                n->last_change_usec = now_usec(CLOCK_REALTIME);
        }

        NicSyncState state = j->outcome == SYNC_APPLIED       ? NIC_SYNC_IN_SYNC
                : j->outcome == SYNC_OBSERVED && !j->error[0] ? NIC_SYNC_OBSERVING
                                                              : NIC_SYNC_FAILED;
        bool state_changed = nic_update_sync_state(n, state, j->error[0] ? j->error : NULL);

        const char *outcome = sync_outcome_to_string(j->outcome);
        int level = j->outcome == SYNC_FAILED || j->outcome == SYNC_PARTIAL ? LOG_WARNING : LOG_INFO;
        if (j->changed) {
                char fields[256];
                format_fields(j->changed, fields, sizeof(fields));
                log_nic_id(n, j->outcome == SYNC_APPLIED ? MESSAGE_ID_FILTER_APPLIED : NULL, level,
                        "filter changed [%s]; host %s%s%s", fields, outcome, j->error[0] ? ": " : "",
                        j->error);
        } else
                log_nic(n, j->error[0] ? level : LOG_DEBUG, "filter %s; host %s%s%s",
                        j->mode == SYNC_JOB_RECONCILE ? "reconciled" : "unchanged", outcome,
                        j->error[0] ? ": " : "", j->error);

        const char *extra[5] = {};
        size_t n_extra = 0;
        if (j->changed) {
                extra[n_extra++] = "Changes";
                extra[n_extra++] = "LastChangeUSec";
        }
        if (state_changed) {
                extra[n_extra++] = "SyncState";
                extra[n_extra++] = "LastError";
        }
        /* A change set is a reply that changed something, or one we asked for (resync, trust, reset). */
        bool asked = !streq_ptr(j->reason, "guest");
        if (j->mode == SYNC_JOB_FILTER && (j->changed || state_changed || asked))
                bus_nic_emit_filter_processed(n, j->changed, outcome, extra);
        else if (state_changed)
                bus_nic_emit_changed(n, "SyncState", "LastError", NULL);

        if (j->changed & RXFILTER_FIELD_MAC) {
                char new_mac[ETHER_ADDR_STRLEN];
                bus_nic_emit_mac_changed(
                        n, old_mac, ether_addr_format(&n->filter->main_mac, new_mac), j->reason);
        }
        nic_emit_failed_attributes(n, j);
}

static void sync_job_complete(WorkerJob *job, int error) {
        SyncJob *j = (SyncJob *)job;
        Nic *n = j->owner;

        if (error == -ECANCELED) {
                /* Shutdown: nothing more will run. */
                n->busy = false;
                goto finish;
        }

        /* Host facts (interface, kind, ownership) are true whatever happened to the guest meanwhile. */
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
        nic_work_done(n);
        manager_submit_parked_jobs(nic_manager(n));
finish:
        free(j->parse_error);
        if (j->info)
                json_object_put(j->info);
        host_namespace_unref(j->netns);
        nic_unref(n);
        free(j);
}

/* Bounds the jobs built at once: each holds about 5 KiB plus its reply, and a thousand guests
 * connecting together would otherwise build one per NIC in one burst. Enough to keep every worker
 * busy; the rest wait in a FIFO holding only their reply. */
#define JOBS_IN_FLIGHT_MAX 256

static void nic_start_job(Nic *n, SyncJobMode mode, json_object *info, unsigned caps);

static void nic_park_job(Nic *n, SyncJobMode mode, json_object *info, unsigned caps) {
        Manager *m = nic_manager(n);

        n->parked_mode = mode;
        n->parked_info = info;
        n->parked_caps = caps;
        n->parked_next = NULL;
        nic_ref(n);
        if (m->parked_tail)
                m->parked_tail->parked_next = n;
        else
                m->parked_head = n;
        m->parked_tail = n;
}

void manager_submit_parked_jobs(Manager *m) {
        while (m->parked_head &&
                (m->shutting_down || worker_pool_outstanding(m->workers) < JOBS_IN_FLIGHT_MAX)) {
                Nic *n = m->parked_head;
                m->parked_head = n->parked_next;
                if (!m->parked_head)
                        m->parked_tail = NULL;

                SyncJobMode mode = n->parked_mode;
                json_object *info = TAKE_PTR(n->parked_info);
                if (mode == SYNC_JOB_REVERT || (!m->shutting_down && !n->removed))
                        nic_start_job(n, mode, info, n->parked_caps);
                else {
                        json_object_put(info);
                        nic_work_done(n);
                }
                nic_unref(n);
        }
}

static void nic_submit_job(Nic *n, SyncJobMode mode, json_object *info, unsigned caps) {
        Manager *m = nic_manager(n);

        /* First come, first served: with others waiting, wait behind them. */
        if (!m->shutting_down &&
                (m->parked_head || worker_pool_outstanding(m->workers) >= JOBS_IN_FLIGHT_MAX)) {
                nic_park_job(n, mode, info, caps);
                return;
        }
        nic_start_job(n, mode, info, caps);
}

static void nic_start_job(Nic *n, SyncJobMode mode, json_object *info, unsigned caps) {
        Manager *m = nic_manager(n);
        Guest *g = n->guest;

        SyncJob *j = calloc(1, sizeof(SyncJob));
        if (!j) {
                json_object_put(info);
                log_nic(n, LOG_ERR, "cannot queue a sync job: out of memory");
                n->busy = false;
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
        j->generation = atomic_load(&g->generation);
        if (n->filter) {
                j->have_previous = true;
                j->previous = *n->filter;
        }
        j->trust = mode == SYNC_JOB_REVERT ? caps : nic_trust(n);
        j->reason = n->next_reason;
        if (mode == SYNC_JOB_FILTER)
                n->next_reason = "guest";
        j->vlan_policy = m->config.vlan_policy;
        j->unicast_policy = m->config.unicast_policy;
        j->host = m->host;
        j->netns = host_namespace_ref(g->netns);
        j->state_dir = m->baseline_dir;
        if (n->host_interface)
                snprintf(j->ifname, sizeof(j->ifname), "%s", n->host_interface);
        j->backend_fd = n->backend_fd;
        j->peer_pid = g->qmp ? qmp_client_get_peer_pid(g->qmp) : 0;
        if (n->ownership) {
                j->have_ownership = true;
                j->ownership = *n->ownership;
        }

        int r = worker_pool_submit(m->workers, &j->job);
        if (r < 0) {
                log_nic(n, LOG_ERR, "cannot queue a sync job: %s", strerror(-r));
                j->job.complete(&j->job, -ECANCELED);
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

static void on_query_reply(QmpClient *c, json_object *result, const QmpError *err, void *userdata) {
        _cleanup_(nic_unrefp) Nic *n = userdata;

        if (!n->query_in_flight)
                return; /* abandoned when the NIC went: other work may be running by now */
        n->query_in_flight = false;

        if (!nic_is_live(n) || (err && (err->error == -ECONNRESET || err->error == -ECANCELED))) {
                /* Gone or disconnected: the reconnect's full query resyncs. */
                n->rerun = false;
                nic_work_done(n);
                return;
        }

        if (err) {
                const char *desc = err->desc ? err->desc : strerror(-err->error);
                if (strstr(desc, "invalid net client name")) {
                        log_nic(n, LOG_INFO, "gone from QEMU (%s)", desc);
                        n->busy = false;
                        guest_remove_nic(n->guest, n, true);
                        return;
                }
                if (strstr(desc, "doesn't support rx-filter querying")) {
                        log_nic(n, LOG_NOTICE, "not a virtio-net NIC, its filter can't be queried: %s",
                                desc);
                        nic_set_error(n, NIC_SYNC_UNSUPPORTED, desc);
                        n->rerun = false;
                        nic_work_done(n);
                        return;
                }
                if (strstr(desc, "isn't a NIC"))
                        log_nic(n, LOG_ERR, "bug: queried a netdev instead of a NIC: %s", desc);
                else
                        log_nic(n, LOG_WARNING, "query-rx-filter failed: %s", desc);
                /* A late reply to a timed-out query re-arms QEMU's event without telling us the state:
                 * ask again (paced by the rate limit), or a change made before a hang never lands. */
                if (err->error == -ETIMEDOUT)
                        n->rerun = true;
                nic_set_error(n, NIC_SYNC_FAILED, desc);
                nic_work_done(n);
                return;
        }

        if (!json_object_is_type(result, json_type_array) || json_object_array_length(result) != 1) {
                log_nic_id(n, MESSAGE_ID_MONITOR_MISBEHAVING, LOG_WARNING,
                        "query-rx-filter returned %s, expected one RxFilterInfo",
                        json_object_is_type(result, json_type_array) ? "a list of another length"
                                                                     : "something that is not a list");
                nic_set_error(n, NIC_SYNC_FAILED, "malformed query-rx-filter reply");
                nic_work_done(n);
                return;
        }
        nic_submit_job(n, SYNC_JOB_FILTER, steal_array_element(result, 0), 0);
}

static void nic_send_query(Nic *n) {
        json_object *args = json_object_new_object();
        if (!args || json_object_object_add(args, "name", json_object_new_string(n->id)) < 0) {
                json_object_put(args);
                log_oom();
                nic_work_done(n);
                return;
        }
        int64_t r = qmp_client_send(n->guest->qmp, "query-rx-filter", args, 0, on_query_reply, nic_ref(n));
        if (r < 0) {
                nic_unref(n);
                if (r != -ENOTCONN)
                        log_nic(n, LOG_WARNING, "cannot send query-rx-filter: %s", strerror((int)-r));
                n->rerun = false;
                nic_work_done(n);
                return;
        }
        n->n_queries++;
        n->query_in_flight = true;
}

static int on_defer_timer(sd_event_source *s, uint64_t usec, void *userdata) {
        Nic *n = userdata;
        n->defer_timer = sd_event_source_disable_unref(n->defer_timer);
        if (nic_is_live(n))
                nic_send_query(n);
        else
                nic_work_done(n);
        return 0;
}

/* Token bucket per NIC (MaxQueriesPerSecond=): an excess query is deferred, never dropped, so a
 * flooding guest costs bounded CPU and the final state still lands. */
static uint64_t nic_rate_limit_delay(Nic *n) {
        unsigned rate = nic_manager(n)->config.max_queries_per_second;
        if (rate == 0)
                return 0;

        uint64_t now = now_usec(CLOCK_MONOTONIC);
        double burst = rate;
        if (n->tokens < 0)
                n->tokens = burst;
        else
                n->tokens = fmin(burst, n->tokens + (double)(now - n->tokens_usec) * rate / 1e6);
        n->tokens_usec = now;

        if (n->tokens >= 1.0) {
                n->tokens -= 1.0;
                return 0;
        }
        uint64_t delay = (uint64_t)((1.0 - n->tokens) * 1e6 / rate) + 1;
        n->tokens = 0; /* the deferred query spends the token that accrues meanwhile */
        n->tokens_usec = now + delay;
        return delay;
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
        }
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

        nic_publish(n);

        if (!nic_is_live(n)) {
                json_object_put(info);
                n->rerun = false;
                nic_work_done(n);
                return;
        }
        if (!info) {
                nic_work_done(n);
                return;
        }
        nic_submit_job(n, SYNC_JOB_FILTER, info, 0);
}

void nic_process_full_reply(Nic *n, json_object *info, const char *reason) {
        n->next_reason = n->filter ? reason : "initial";
        if (n->busy || n->pending_revert) {
                /* Work is outstanding: fold this into one more round after it. */
                json_object_put(info);
                nic_request_query(n);
                return;
        }
        n->busy = true;

        /* Discover on every connect: a restarted QEMU may use other devices. */
        n->discovery_reply = info;
        if (!n->host_interface_configured) {
                n->host_announced = false;
                n->host_interface = mfree(n->host_interface);
                n->backend_fd = -1;
        }
        nic_discover(n);
}
