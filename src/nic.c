/* nic.c: a NIC's pipeline: event → query-rx-filter (async) → worker (validate, diff, apply) → completion. */
#include "nic.h"

#include <fcntl.h>
#include <limits.h>
#include <math.h>
#include <net/if.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>
#include <time.h>

#include "bus.h"
#include "manager.h"

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
        n->defer_timer = sd_event_source_disable_unref(n->defer_timer);
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
        return n->guest->manager;
}

static bool nic_is_live(Nic *n) {
        return !n->removed && n->guest->manager && n->guest->state == GUEST_STATE_CONNECTED;
}

/* ---- the worker job ---------------------------------------------------------------------------- */

typedef enum SyncOutcome {
        SYNC_OBSERVED,
        SYNC_APPLIED,
        SYNC_PARTIAL,
        SYNC_FAILED,
} SyncOutcome;

static const char *const sync_outcome_names[] = {
        [SYNC_OBSERVED] = "observed",
        [SYNC_APPLIED] = "applied",
        [SYNC_PARTIAL] = "partial",
        [SYNC_FAILED] = "failed",
};

typedef struct FilterJob {
        WorkerJob job;
        Nic *nic; /* reference; touched only by the loop thread */
        Guest *guest;
        uint64_t generation;

        /* Inputs, copied so the worker never reads loop-owned state. */
        json_object *info; /* exclusively owned */
        bool have_previous;
        RxFilter previous;
        unsigned trust;
        VlanPolicy vlan_policy;
        UnicastPolicy unicast_policy;
        HostContext *host;
        char ifname[IF_NAMESIZE]; /* empty: resolve from backend_fd/peer_pid, or unknown */
        int backend_fd;
        pid_t peer_pid;
        const char *reason; /* MacChanged reason */

        /* Outputs. */
        char *parse_error;
        RxFilter filter;
        unsigned changed;
        bool have_link;
        HostLinkState link;
        SyncOutcome outcome;
        bool stale;
        char error[256]; /* first failure, for LastError */
        HostApplyResult apply;
} FilterJob;

/* Resolves an fd-passed backend on the host: a tap fd shows "iff:" in fdinfo, a macvtap fd is
 * /dev/tapIFINDEX. */
static int resolve_backend_fd(pid_t pid, int fd, char ifname[static IF_NAMESIZE]) {
        char path[64], target[PATH_MAX];

        snprintf(path, sizeof(path), "/proc/%d/fd/%d", (int)pid, fd);
        ssize_t len = readlink(path, target, sizeof(target) - 1);
        if (len < 0)
                return -errno;
        target[len] = '\0';

        unsigned ifindex;
        if (sscanf(target, "/dev/tap%u", &ifindex) == 1)
                return if_indextoname(ifindex, ifname) ? 0 : -errno;

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

static void job_fail(FilterJob *j, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static void job_fail(FilterJob *j, const char *fmt, ...) {
        va_list ap;
        j->outcome = SYNC_FAILED;
        if (j->error[0])
                return;
        va_start(ap, fmt);
        vsnprintf(j->error, sizeof(j->error), fmt, ap);
        va_end(ap);
}

static void record_attribute(
        FilterJob *j, const char *attribute, int r, unsigned *n_ok, unsigned *n_failed) {
        if (r == 0) {
                (*n_ok)++;
                return;
        }
        (*n_failed)++;
        if (!j->error[0])
                snprintf(j->error, sizeof(j->error), "%s: %s", attribute, strerror(-r));
}

static void filter_job_run(WorkerJob *job) {
        FilterJob *j = (FilterJob *)job;
        int r;

        r = rxfilter_from_json(j->info, &j->filter, &j->parse_error);
        json_object_put(j->info);
        j->info = NULL;
        if (r < 0)
                return;

        j->changed = j->have_previous ? rxfilter_diff(&j->previous, &j->filter) : _RXFILTER_FIELD_ALL;
        j->outcome = SYNC_OBSERVED;

        if (!j->ifname[0] && j->backend_fd >= 0 && j->peer_pid > 0)
                (void)resolve_backend_fd(j->peer_pid, j->backend_fd, j->ifname);
        if (!j->ifname[0])
                return;

        r = hostdev_read(j->host, j->ifname, &j->link);
        if (r < 0) {
                job_fail(j, "host interface %s: %s", j->ifname, strerror(-r));
                return;
        }
        j->have_link = true;

        if (j->trust == TRUST_NONE || j->link.kind != HOSTDEV_KIND_MACVTAP)
                return;

        HostFilter desired;
        HostChange change;
        rxfilter_to_host(&j->filter, j->vlan_policy, j->unicast_policy, &desired);
        hostdev_plan(&j->link, &desired, j->trust, &change);

        /* The guest may have disconnected (or been detached) while we worked: never act for a
         * connection that is gone. */
        if (atomic_load(&j->guest->generation) != j->generation) {
                j->stale = true;
                return;
        }

        unsigned n_ok = 0, n_failed = 0;
        j->apply = (HostApplyResult){ 0 };
        if (!host_change_is_empty(&change))
                (void)hostdev_apply(j->host, &j->link, &change, &j->apply);

        if ((j->trust & TRUST_MAC) && !ether_addr_is_valid_unicast(&desired.mac)) {
                char mac[ETHER_ADDR_STRLEN];
                j->apply.mac = -EADDRNOTAVAIL;
                snprintf(j->error, sizeof(j->error), "mac: refused guest MAC %s: not a unicast address",
                        ether_addr_format(&desired.mac, mac));
        }
        record_attribute(j, "mac", j->apply.mac, &n_ok, &n_failed);
        record_attribute(j, "promisc", j->apply.promisc, &n_ok, &n_failed);
        record_attribute(j, "allmulti", j->apply.allmulti, &n_ok, &n_failed);
        record_attribute(j, "multicast", j->apply.multicast, &n_ok, &n_failed);
        j->outcome = n_failed == 0 ? SYNC_APPLIED : n_ok == 0 ? SYNC_FAILED : SYNC_PARTIAL;

        /* Publish what the device became, not what it was. */
        if (!host_change_is_empty(&change))
                (void)hostdev_read(j->host, j->ifname, &j->link);
}

static void format_fields(unsigned changed, char *buf, size_t size) {
        size_t len = 0;
        buf[0] = '\0';
        for (unsigned bit = 1; bit & _RXFILTER_FIELD_ALL; bit <<= 1)
                if (changed & bit)
                        len += (size_t)snprintf(buf + len, len < size ? size - len : 0, "%s%s",
                                len ? " " : "", rxfilter_field_to_string(bit));
}

static void nic_query_done(Nic *n);

static void filter_job_complete(WorkerJob *job, int error) {
        FilterJob *j = (FilterJob *)job;
        Nic *n = j->nic;

        if (error < 0 || n->removed || j->stale || atomic_load(&n->guest->generation) != j->generation) {
                /* Cancelled at shutdown or overtaken by a disconnect: the reconnect's full query resyncs. */
                n->busy = n->rerun = false;
                goto finish;
        }

        if (j->parse_error) {
                log_nic(n, LOG_WARNING, "invalid query-rx-filter reply: %s", j->parse_error);
                nic_set_error(n, NIC_SYNC_FAILED, j->parse_error);
                goto done;
        }

        bool host_changed = false;
        if (j->ifname[0] && !n->host_interface) {
                n->host_interface = strdup(j->ifname);
                if (!n->host_interface)
                        log_oom();
                host_changed = true;
        }
        HostDevKind kind = j->have_link ? j->link.kind : HOSTDEV_KIND_UNKNOWN;
        if (kind != n->host_kind) {
                n->host_kind = kind;
                host_changed = true;
        }
        if (host_changed)
                bus_nic_emit_changed(n, "HostInterface", "HostInterfaceKind", NULL);
        if (!n->host_announced) {
                n->host_announced = true;
                if (j->have_link)
                        log_nic(n, LOG_INFO, "host interface %s (%s)", j->ifname,
                                hostdev_kind_to_string(n->host_kind));
                else if (j->ifname[0])
                        log_nic(n, LOG_INFO, "host interface %s (unavailable)", j->ifname);
                else
                        log_nic(n, LOG_INFO, "host interface unknown");
        }

        char old_mac[ETHER_ADDR_STRLEN] = "";
        if (n->filter)
                ether_addr_format(&n->filter->main_mac, old_mac);
        else if (!(n->filter = malloc(sizeof(RxFilter)))) {
                log_oom();
                goto done;
        }
        memcpy(n->filter, &j->filter, sizeof(RxFilter));
        if (j->changed) {
                n->changes++;
                n->last_change_usec = now_usec(CLOCK_REALTIME);
        }

        NicSyncState state = j->outcome == SYNC_APPLIED ? NIC_SYNC_IN_SYNC
                : j->outcome == SYNC_OBSERVED ? (j->error[0] ? NIC_SYNC_FAILED : NIC_SYNC_OBSERVING)
                                              : NIC_SYNC_FAILED;
        bool state_changed = nic_update_sync_state(n, state, j->error[0] ? j->error : NULL);

        char fields[256];
        format_fields(j->changed, fields, sizeof(fields));
        int level = j->outcome == SYNC_FAILED || j->outcome == SYNC_PARTIAL ? LOG_WARNING : LOG_INFO;
        if (j->changed)
                log_nic(n, level, "filter changed [%s]; host %s%s%s", fields, sync_outcome_names[j->outcome],
                        j->error[0] ? ": " : "", j->error);
        else
                log_nic(n, j->error[0] ? level : LOG_DEBUG, "filter unchanged; host %s%s%s",
                        sync_outcome_names[j->outcome], j->error[0] ? ": " : "", j->error);

        const char *extra[5] = { NULL };
        size_t n_extra = 0;
        if (j->changed) {
                extra[n_extra++] = "Changes";
                extra[n_extra++] = "LastChangeUSec";
        }
        if (state_changed) {
                extra[n_extra++] = "SyncState";
                extra[n_extra++] = "LastError";
        }
        bus_nic_emit_filter_processed(n, j->changed, sync_outcome_names[j->outcome], extra);

        if (j->changed & RXFILTER_FIELD_MAC) {
                char new_mac[ETHER_ADDR_STRLEN];
                bus_nic_emit_mac_changed(
                        n, old_mac, ether_addr_format(&n->filter->main_mac, new_mac), j->reason);
        }
        static const struct {
                const char *name;
                size_t offset;
        } attributes[] = {
                { "mac", offsetof(HostApplyResult, mac) },
                { "promisc", offsetof(HostApplyResult, promisc) },
                { "allmulti", offsetof(HostApplyResult, allmulti) },
                { "multicast", offsetof(HostApplyResult, multicast) },
        };
        for (size_t i = 0; i < ELEMENTSOF(attributes); i++) {
                int r = *(const int *)((const char *)&j->apply + attributes[i].offset);
                if (r >= 0)
                        continue;
                char message[300];
                if (strcmp(attributes[i].name, "mac") == 0 && r == -EADDRNOTAVAIL &&
                        strstr(j->error, "refused"))
                        snprintf(message, sizeof(message), "%s", j->error);
                else
                        snprintf(message, sizeof(message), "%s: %s", j->ifname, strerror(-r));
                bus_nic_emit_host_sync_failed(n, attributes[i].name, message);
        }

done:
        n->n_jobs++;
        nic_query_done(n);
finish:
        free(j->parse_error);
        if (j->info)
                json_object_put(j->info);
        guest_unref(j->guest);
        nic_unref(n);
        free(j);
}

static void nic_submit_job(Nic *n, json_object *info) {
        Manager *m = nic_manager(n);
        Guest *g = n->guest;

        FilterJob *j = calloc(1, sizeof(FilterJob));
        if (!j) {
                json_object_put(info);
                log_oom();
                n->busy = false;
                return;
        }
        j->job.run = filter_job_run;
        j->job.complete = filter_job_complete;
        j->nic = nic_ref(n);
        j->guest = guest_ref(g);
        j->generation = atomic_load(&g->generation);
        j->info = info;
        if (n->filter) {
                j->have_previous = true;
                memcpy(&j->previous, n->filter, sizeof(RxFilter));
        }
        j->trust = nic_trust(n);
        j->reason = n->next_reason;
        n->next_reason = "guest";
        j->vlan_policy = m->config.vlan_policy;
        j->unicast_policy = m->config.unicast_policy;
        j->host = m->host;
        if (n->host_interface)
                snprintf(j->ifname, sizeof(j->ifname), "%s", n->host_interface);
        j->backend_fd = n->backend_fd;
        j->peer_pid = qmp_client_get_peer_pid(g->qmp);

        int r = worker_pool_submit(m->workers, &j->job);
        if (r < 0) {
                log_nic(n, LOG_ERR, "cannot queue filter job: %s", strerror(-r));
                j->job.complete(&j->job, r);
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

        if (!nic_is_live(n)) {
                n->busy = n->rerun = false;
                return;
        }

        if (err) {
                if (err->error == -ECONNRESET || err->error == -ECANCELED) {
                        n->busy = n->rerun = false;
                        return;
                }
                if (err->desc && strstr(err->desc, "invalid net client name")) {
                        log_nic(n, LOG_INFO, "gone from QEMU (%s)", err->desc);
                        guest_remove_nic(n->guest, n);
                        return;
                }
                if (err->desc && strstr(err->desc, "doesn't support rx-filter querying")) {
                        log_nic(n, LOG_NOTICE, "not a virtio-net NIC, its filter can't be queried: %s",
                                err->desc);
                        nic_set_error(n, NIC_SYNC_UNSUPPORTED, err->desc);
                        n->busy = n->rerun = false;
                        return;
                }
                if (err->desc && strstr(err->desc, "isn't a NIC"))
                        log_nic(n, LOG_ERR, "bug: queried a netdev instead of a NIC: %s", err->desc);
                else
                        log_nic(n, LOG_WARNING, "query-rx-filter failed: %s",
                                err->desc ? err->desc : strerror(-err->error));
                nic_set_error(n, NIC_SYNC_FAILED, err->desc ? err->desc : strerror(-err->error));
                nic_query_done(n);
                return;
        }

        if (!json_object_is_type(result, json_type_array) || json_object_array_length(result) != 1) {
                log_nic(n, LOG_WARNING, "query-rx-filter returned %s, expected one RxFilterInfo",
                        json_object_is_type(result, json_type_array) ? "a list of another length"
                                                                     : "something that is not a list");
                nic_set_error(n, NIC_SYNC_FAILED, "malformed query-rx-filter reply");
                nic_query_done(n);
                return;
        }
        nic_submit_job(n, steal_array_element(result, 0));
}

static void nic_send_query(Nic *n) {
        Guest *g = n->guest;

        json_object *args = json_object_new_object();
        if (!args || json_object_object_add(args, "name", json_object_new_string(n->id)) < 0) {
                json_object_put(args);
                log_oom();
                n->busy = false;
                return;
        }
        int64_t r = qmp_client_send(g->qmp, "query-rx-filter", args, 0, on_query_reply, nic_ref(n));
        if (r < 0) {
                nic_unref(n);
                n->busy = n->rerun = false;
                if (r != -ENOTCONN)
                        log_nic(n, LOG_WARNING, "cannot send query-rx-filter: %s", strerror((int)-r));
                return;
        }
        n->n_queries++;
}

static int on_defer_timer(sd_event_source *s, uint64_t usec, void *userdata) {
        Nic *n = userdata;
        n->defer_timer = sd_event_source_disable_unref(n->defer_timer);
        if (nic_is_live(n))
                nic_send_query(n);
        else
                n->busy = n->rerun = false;
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
        int r = sd_event_add_time_relative(
                nic_manager(n)->event, &n->defer_timer, CLOCK_MONOTONIC, delay, 0, on_defer_timer, n);
        if (r < 0) {
                log_nic(n, LOG_WARNING, "cannot defer query, sending now: %s", strerror(-r));
                nic_send_query(n);
        }
}

static void nic_request_query(Nic *n) {
        if (n->sync_state == NIC_SYNC_UNSUPPORTED || !nic_is_live(n))
                return;
        if (n->busy) {
                n->rerun = true;
                return;
        }
        n->busy = true;
        nic_start_query(n);
}

void nic_filter_changed(Nic *n) {
        n->n_events++;
        nic_request_query(n);
}

void nic_resync(Nic *n, const char *reason) {
        n->next_reason = reason;
        nic_request_query(n);
}

void nic_set_trust(Nic *n, unsigned trust) {
        unsigned old = nic_trust(n);
        n->trust_override = (int)trust;
        if (trust == old)
                return;
        _cleanup_free_ char *s = trust_to_string(trust);
        log_nic(n, LOG_INFO, "trust set to %s", s ? s : "?");
        bus_nic_emit_changed(n, "Trust", NULL);
        nic_resync(n, "resync");
}

/* The outstanding work finished: run once more if events arrived meanwhile. */
static void nic_query_done(Nic *n) {
        n->busy = false;
        if (n->rerun) {
                n->rerun = false;
                nic_request_query(n);
        }
}

/* ---- discovery of the host interface -------------------------------------------------------------- */

static void nic_finish_discovery(Nic *n) {
        json_object *info = n->discovery_reply;
        n->discovery_reply = NULL;
        if (!info) {
                n->busy = false;
                return;
        }
        nic_submit_job(n, info);
}

/* Parses `info network` for our backend: " \ hostnet0: index=0,type=tap,ifname=tap0,..." or "...,fd=3". */
static void nic_parse_info_network(Nic *n, const char *text) {
        size_t id_len = strlen(n->netdev);

        for (const char *line = text; line && *line;
                line = strchr(line, '\n'), line = line ? line + 1 : NULL) {
                const char *p = line;
                while (*p == ' ' || *p == '\\')
                        p++;
                if (strncmp(p, n->netdev, id_len) != 0 || p[id_len] != ':')
                        continue;
                p += id_len + 1;
                size_t len = strcspn(p, "\r\n");
                char params[512];
                snprintf(params, sizeof(params), "%.*s", (int)len, p);

                char *save = NULL;
                for (char *kv = strtok_r(params, ", ", &save); kv; kv = strtok_r(NULL, ", ", &save)) {
                        if (strncmp(kv, "ifname=", 7) == 0 && !n->host_interface &&
                                strlen(kv + 7) < IF_NAMESIZE) {
                                n->host_interface = strdup(kv + 7);
                                if (!n->host_interface)
                                        log_oom();
                        } else if (strncmp(kv, "fd=", 3) == 0)
                                n->backend_fd = atoi(kv + 3);
                }
                return;
        }
}

static void on_info_network(QmpClient *c, json_object *result, const QmpError *err, void *userdata) {
        _cleanup_(nic_unrefp) Nic *n = userdata;

        if (!nic_is_live(n)) {
                n->busy = n->rerun = false;
                return;
        }
        if (err)
                log_nic(n, LOG_DEBUG, "info network failed: %s",
                        err->desc ? err->desc : strerror(-err->error));
        else if (json_object_is_type(result, json_type_string))
                nic_parse_info_network(n, json_object_get_string(result));
        nic_finish_discovery(n);
}

static void on_qom_netdev(QmpClient *c, json_object *result, const QmpError *err, void *userdata) {
        _cleanup_(nic_unrefp) Nic *n = userdata;

        if (!nic_is_live(n)) {
                n->busy = n->rerun = false;
                return;
        }
        if (err || !json_object_is_type(result, json_type_string)) {
                log_nic(n, LOG_DEBUG, "qom-get %s netdev failed: %s", n->qom_path,
                        err && err->desc ? err->desc : "not a string");
                nic_finish_discovery(n);
                return;
        }
        free(n->netdev);
        n->netdev = strdup(json_object_get_string(result));
        if (!n->netdev) {
                log_oom();
                nic_finish_discovery(n);
                return;
        }

        json_object *args = json_object_new_object();
        json_object_object_add(args, "command-line", json_object_new_string("info network"));
        if (qmp_client_send(c, "human-monitor-command", args, 0, on_info_network, nic_ref(n)) < 0) {
                nic_unref(n);
                nic_finish_discovery(n);
        }
}

static void on_qom_mac(QmpClient *c, json_object *result, const QmpError *err, void *userdata) {
        _cleanup_(nic_unrefp) Nic *n = userdata;

        if (n->removed || err || !json_object_is_type(result, json_type_string))
                return;
        if (streq_ptr(n->configured_mac, json_object_get_string(result)))
                return;
        free(n->configured_mac);
        n->configured_mac = strdup(json_object_get_string(result));
        bus_nic_emit_changed(n, "ConfiguredMac", NULL);
}

static int64_t nic_qom_get(Nic *n, const char *property, qmp_reply_handler_t handler) {
        json_object *args = json_object_new_object();
        if (!args)
                return -ENOMEM;
        json_object_object_add(args, "path", json_object_new_string(n->qom_path));
        json_object_object_add(args, "property", json_object_new_string(property));
        int64_t r = qmp_client_send(n->guest->qmp, "qom-get", args, 0, handler, nic_ref(n));
        if (r < 0)
                nic_unref(n);
        return r;
}

void nic_process_full_reply(Nic *n, json_object *info, const char *reason) {
        n->next_reason = n->filter ? reason : "initial";
        if (n->busy) {
                /* A query or job is outstanding: fold this into one more round. */
                json_object_put(info);
                n->rerun = true;
                return;
        }
        n->busy = true;

        (void)nic_qom_get(n, "mac", on_qom_mac);

        if (n->host_interface_configured) {
                nic_submit_job(n, info);
                return;
        }

        /* Discover the backend on every connect: a restarted QEMU may use another device. */
        n->host_announced = false;
        n->host_interface = mfree(n->host_interface);
        n->backend_fd = -1;
        n->discovery_reply = info;
        if (nic_qom_get(n, "netdev", on_qom_netdev) < 0)
                nic_finish_discovery(n);
}
