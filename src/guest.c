/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* guest.c: a guest's QMP connection: connect, greet, discover NICs, reconnect with backoff. */
#include "guest.h"

#include <fcntl.h>
#include <string.h>
#include <sys/stat.h>

#include "bus.h"
#include "manager.h"
#include "netns.h"
#include "nic.h"

static const char *const guest_state_names[_GUEST_STATE_MAX] = {
        [GUEST_STATE_CONNECTING] = "connecting",
        [GUEST_STATE_NEGOTIATING] = "negotiating",
        [GUEST_STATE_READY] = "ready",
        [GUEST_STATE_DISCONNECTED] = "disconnected",
};

/* The bus contract predates NEGOTIATING: a monitor that answers commands is "connected". */
static const char *const guest_state_bus_names[_GUEST_STATE_MAX] = {
        [GUEST_STATE_CONNECTING] = "connecting",
        [GUEST_STATE_NEGOTIATING] = "connected",
        [GUEST_STATE_READY] = "connected",
        [GUEST_STATE_DISCONNECTED] = "disconnected",
};

const char *guest_state_to_string(GuestState s) {
        return s >= 0 && s < _GUEST_STATE_MAX ? guest_state_names[s] : NULL;
}

const char *guest_state_to_bus_string(GuestState s) {
        return s >= 0 && s < _GUEST_STATE_MAX ? guest_state_bus_names[s] : NULL;
}

static GuestConfig *guest_config_copy(const GuestConfig *src) {
        GuestConfig *c = calloc(1, sizeof(GuestConfig));
        if (!c)
                return NULL;
        c->trust = src->trust;
        c->name = src->name ? strdup(src->name) : NULL;
        c->qmp_socket = src->qmp_socket ? strdup(src->qmp_socket) : NULL;
        c->netns = src->netns ? strdup(src->netns) : NULL;
        c->source = src->source ? strdup(src->source) : NULL;
        c->nics = calloc(src->n_nics ? src->n_nics : 1, sizeof(NicConfig));
        if (!c->nics)
                return guest_config_free(c);
        for (size_t i = 0; i < src->n_nics; i++, c->n_nics++) {
                NicConfig *d = &c->nics[i];
                d->trust = src->nics[i].trust;
                d->id = strdup(src->nics[i].id);
                d->host_interface = src->nics[i].host_interface ? strdup(src->nics[i].host_interface) : NULL;
                if (!d->id || (src->nics[i].host_interface && !d->host_interface)) {
                        c->n_nics++;
                        return guest_config_free(c);
                }
        }
        return c;
}

int guest_new(Manager *m, const char *name, const char *qmp_socket, GuestSource source,
        const GuestConfig *cfg, Guest **ret) {
        _cleanup_(guest_unrefp) Guest *g = calloc(1, sizeof(Guest));
        if (!g)
                return -ENOMEM;
        g->n_ref = 1;
        g->manager = m;
        g->source = source;
        g->state = GUEST_STATE_DISCONNECTED;
        g->generation = 1; /* 0 is "never" for a NIC's discovered_generation */
        g->backoff_usec = GUEST_RECONNECT_MIN_USEC;
        g->full_query_backoff_usec = GUEST_FULL_QUERY_RETRY_MIN_USEC;
        g->full_query_limit = RATE_LIMIT_INIT;
        g->net_event_limit = RATE_LIMIT_INIT;
        g->name = strdup(name);
        g->qmp_socket = strdup(qmp_socket);
        if (!g->name || !g->qmp_socket)
                return -ENOMEM;
        if (cfg && !(g->config = guest_config_copy(cfg)))
                return -ENOMEM;
        *ret = TAKE_PTR(g);
        return 0;
}

Guest *guest_ref(Guest *g) {
        if (g)
                g->n_ref++;
        return g;
}

Guest *guest_unref(Guest *g) {
        if (!g || --g->n_ref > 0)
                return NULL;
        qmp_client_free(g->qmp);
        sd_event_source_disable_unref(g->reconnect_timer);
        sd_event_source_disable_unref(g->full_query_timer);
        free(g->nics);
        held_signals_free(g->held);
        strmap_done(&g->nics_by_id);
        strmap_done(&g->nics_by_qom_path);
        guest_config_free(g->config);
        free(g->name);
        free(g->qmp_socket);
        free(g->uuid);
        free(g->qemu_name);
        free(g->qemu_version);
        host_namespace_unref(g->netns);
        peer_fd_table_unref(g->peer_fds);
        free(g);
        return NULL;
}

/* The one place a guest's state changes. */
static void guest_set_state(Guest *g, GuestState state, const char *why) {
        if (g->state == state)
                return;
        log_guest(g, LOG_DEBUG, "state %s -> %s (%s)", guest_state_to_string(g->state),
                guest_state_to_string(state), why);
        bool publish = guest_state_bus_names[g->state] != guest_state_bus_names[state];
        g->state = state;
        if (publish)
                bus_guest_emit_changed(g, "State", NULL);
}

bool guest_is_connected(const Guest *g) {
        /* The client is asked too: it fails its pending commands before it tells us it disconnected, and
         * a handler running then must not start new work for the old connection. */
        return g->manager && (g->state == GUEST_STATE_NEGOTIATING || g->state == GUEST_STATE_READY) &&
                g->qmp && qmp_client_get_state(g->qmp) == QMP_STATE_READY;
}

unsigned guest_nic_trust(Guest *g, const char *nic_id) {
        if (g->config) {
                const NicConfig *nc = guest_config_find_nic(g->config, nic_id);
                if (nc && nc->trust >= 0)
                        return (unsigned)nc->trust;
                if (g->config->trust >= 0)
                        return (unsigned)g->config->trust;
        }
        return g->manager ? g->manager->config.default_trust : TRUST_NONE;
}

Nic *guest_find_nic(Guest *g, const char *id) {
        return strmap_get(&g->nics_by_id, id);
}

Nic *guest_find_nic_by_qom_path(Guest *g, const char *qom_path) {
        return strmap_get(&g->nics_by_qom_path, qom_path);
}

int guest_set_nic_qom_path(Guest *g, Nic *n, const char *qom_path) {
        char *p = strdup(qom_path);
        if (!p)
                return -ENOMEM;
        if (strmap_get(&g->nics_by_qom_path, n->qom_path) == n)
                strmap_remove(&g->nics_by_qom_path, n->qom_path);
        free(n->qom_path);
        n->qom_path = p;
        /* Two NICs claiming one path (a lying monitor): the first keeps it, the other is found by id. */
        int r = strmap_put(&g->nics_by_qom_path, n->qom_path, n);
        return r == -EEXIST ? 0 : r;
}

static int guest_add_nic(Guest *g, const char *id, Nic **ret) {
        _cleanup_(nic_unrefp) Nic *n = NULL;
        int r;

        Nic **nics = realloc(g->nics, (g->n_nics + 1) * sizeof(Nic *));
        if (!nics)
                return -ENOMEM;
        g->nics = nics;
        r = nic_new(g, id, &n);
        if (r < 0)
                return r;

        const NicConfig *nc = g->config ? guest_config_find_nic(g->config, id) : NULL;
        if (nc && nc->host_interface) {
                n->host_interface = strdup(nc->host_interface);
                if (!n->host_interface)
                        return -ENOMEM;
                n->host_interface_configured = true;
        }
        r = strmap_put(&g->nics_by_id, n->id, n);
        if (r < 0)
                return r;
        r = strmap_put(&g->nics_by_qom_path, n->qom_path, n);
        if (r < 0 && r != -EEXIST) {
                strmap_remove(&g->nics_by_id, n->id);
                return r;
        }
        g->nics[g->n_nics++] = n;
        _cleanup_free_ char *trust = trust_to_string(guest_nic_trust(g, id));
        log_nic(n, LOG_INFO, "discovered (trust %s)", trust ? trust : "?");
        *ret = TAKE_PTR(n);
        return 0;
}

/* Takes n out of the guest; returns whether it was on the bus (the caller publishes Nics). */
static bool guest_drop_nic(Guest *g, Nic *n, bool revert) {
        for (size_t i = 0; i < g->n_nics; i++) {
                if (g->nics[i] != n)
                        continue;
                bool published = n->published;
                bus_nic_emit_removed(n);
                memmove(g->nics + i, g->nics + i + 1, (g->n_nics - i - 1) * sizeof(Nic *));
                g->n_nics--;
                strmap_remove(&g->nics_by_id, n->id);
                if (strmap_get(&g->nics_by_qom_path, n->qom_path) == n)
                        strmap_remove(&g->nics_by_qom_path, n->qom_path);
                log_nic(n, LOG_INFO, "removed");
                nic_detach(n);
                if (revert)
                        nic_revert(n, TRUST_ALL);
                nic_unref(n);
                return published;
        }
        return false;
}

void guest_remove_nic(Guest *g, Nic *n, bool revert) {
        if (guest_drop_nic(g, n, revert))
                bus_guest_emit_changed(g, "Nics", NULL);
        guest_nic_idle(g);
}

/* Every NIC goes with one Nics change, however many there were. */
static void guest_remove_all_nics(Guest *g, bool revert) {
        bool published = false;
        while (g->n_nics > 0)
                published |= guest_drop_nic(g, g->nics[g->n_nics - 1], revert);
        if (published)
                bus_guest_emit_changed(g, "Nics", NULL);
        guest_nic_idle(g);
}

void guest_nic_idle(Guest *g) {
        /* A stopped guest's namespace (and the sockets opened in it) is held only for its reverts. */
        if (g->state != GUEST_STATE_DISCONNECTED || !g->netns || g->n_nics_working > 0)
                return;
        log_guest(g, LOG_DEBUG, "reverts done, releasing its network namespace");
        g->netns = host_namespace_unref(g->netns);
}

/* ---- connection ---------------------------------------------------------------------------------- */

static int guest_connect(Guest *g);

static int on_reconnect_timer(sd_event_source *s, uint64_t usec, void *userdata) {
        Guest *g = userdata;
        g->reconnect_timer = sd_event_source_disable_unref(g->reconnect_timer);
        (void)guest_connect(g);
        return 0;
}

static void guest_schedule_reconnect(Guest *g, int error, const char *reason) {
        uint64_t delay = g->backoff_usec;

        g->backoff_usec = g->backoff_usec * 2 > GUEST_RECONNECT_MAX_USEC ? GUEST_RECONNECT_MAX_USEC
                                                                         : g->backoff_usec * 2;
        /* A lost connection is news; a retry that fails again is not (State would flap on the bus). */
        if (reason)
                guest_set_state(g, GUEST_STATE_DISCONNECTED, reason);
        if (!g->manager)
                return;
        /* A drop-in's socket in the watched directory that is gone (a libvirt domain shut off): the
         * directory watch tells us when QEMU creates it again; polling would log forever. */
        if (error == -ENOENT && manager_watches_socket(g->manager, g->qmp_socket)) {
                g->waiting_for_socket = true;
                log_guest(g, LOG_INFO, "QMP socket %s does not exist; waiting for it to appear",
                        g->qmp_socket);
                return;
        }

        int r = sd_event_add_time_relative(
                g->manager->event, &g->reconnect_timer, CLOCK_MONOTONIC, delay, 0, on_reconnect_timer, g);
        if (r < 0) {
                log_guest_errno(g, LOG_ERR, r, "cannot schedule a reconnect: %m");
                return;
        }
        /* A QEMU that is not up yet is normal: say it once per backoff cycle, loudly only when it hurts. */
        log_guest_id(g, reason ? MESSAGE_ID_GUEST_DISCONNECTED : NULL,
                delay >= GUEST_RECONNECT_MAX_USEC ? LOG_WARNING : LOG_INFO,
                "%s: %s; reconnecting in %llu ms", reason ? "disconnected" : "connect failed",
                reason ? reason : strerror(-error), (unsigned long long)(delay / 1000));
}

static void on_query_name(QmpClient *c, json_object *result, const QmpError *err, void *userdata) {
        Guest *g = userdata;
        json_object *name;
        if (!err && json_object_object_get_ex(result, "name", &name) &&
                json_object_is_type(name, json_type_string)) {
                const char *reason = display_text_invalid_reason(json_object_get_string(name), 256);
                if (reason) {
                        log_guest_id(g, MESSAGE_ID_MONITOR_MISBEHAVING, LOG_WARNING,
                                "ignoring the name QEMU reports: %s", reason);
                        return;
                }
                free(g->qemu_name);
                g->qemu_name = strdup(json_object_get_string(name));
        }
}

static void on_query_uuid(QmpClient *c, json_object *result, const QmpError *err, void *userdata) {
        Guest *g = userdata;
        json_object *uuid;
        /* QEMU started without -uuid answers all zeros: no UUID, published as "" (dbus-api.md). */
        if (!err && json_object_object_get_ex(result, "UUID", &uuid) &&
                json_object_is_type(uuid, json_type_string) &&
                !uuid_is_valid(json_object_get_string(uuid))) {
                log_guest_id(g, MESSAGE_ID_MONITOR_MISBEHAVING, LOG_WARNING,
                        "ignoring the UUID QEMU reports: not of the form 8-4-4-4-12 hex digits");
                return;
        }
        if (!err && json_object_object_get_ex(result, "UUID", &uuid) &&
                json_object_is_type(uuid, json_type_string) &&
                strcmp(json_object_get_string(uuid), "00000000-0000-0000-0000-000000000000") != 0) {
                free(g->uuid);
                g->uuid = strdup(json_object_get_string(uuid));
                bus_guest_emit_changed(g, "UUID", NULL);
        }
}

static void on_query_version(QmpClient *c, json_object *result, const QmpError *err, void *userdata) {
        Guest *g = userdata;
        json_object *qemu, *major, *minor, *micro;

        if (err) {
                log_guest(g, LOG_WARNING, "query-version failed: %s", err->desc ? err->desc : "");
                return;
        }
        if (json_object_object_get_ex(result, "qemu", &qemu) &&
                json_object_object_get_ex(qemu, "major", &major) &&
                json_object_object_get_ex(qemu, "minor", &minor) &&
                json_object_object_get_ex(qemu, "micro", &micro)) {
                free(g->qemu_version);
                if (asprintf(&g->qemu_version, "%d.%d.%d", json_object_get_int(major),
                            json_object_get_int(minor), json_object_get_int(micro)) < 0)
                        g->qemu_version = NULL;
                bus_guest_emit_changed(g, "QemuVersion", NULL);
        }
        log_guest_id(g, MESSAGE_ID_GUEST_CONNECTED, LOG_INFO, "connected to QEMU %s%s%s%s%s",
                g->qemu_version ? g->qemu_version : "(unknown version)", g->qemu_name ? ", name " : "",
                g->qemu_name ? g->qemu_name : "", g->uuid ? ", uuid " : "", g->uuid ? g->uuid : "");
}

/* ---- the full query ----------------------------------------------------------------------------- */

typedef struct FullQuery {
        Guest *guest;
        const char *reason;
} FullQuery;

static int reason_rank(const char *reason) {
        return strcmp(reason, "reset") == 0 ? 2 : strcmp(reason, "resync") == 0 ? 1 : 0;
}

/* Folds a request into the follow-up: one query answers them all, with the strongest reason. */
static void guest_full_query_want(Guest *g, const char *reason) {
        if (!g->full_query_pending || reason_rank(reason) > reason_rank(g->full_query_pending))
                g->full_query_pending = reason;
}

static void guest_full_query_kick(Guest *g, bool token_held);

static int on_full_query_timer(sd_event_source *s, uint64_t usec, void *userdata) {
        Guest *g = userdata;
        g->full_query_timer = sd_event_source_disable_unref(g->full_query_timer);
        /* A retry takes a token like any other query; the rate limit's deferral already holds the one
         * that accrued meanwhile. */
        bool token_held = g->full_query_token_held;
        g->full_query_token_held = false;
        guest_full_query_kick(g, token_held);
        return 0;
}

static void guest_full_query_arm(Guest *g, uint64_t delay) {
        int r = sd_event_add_time_relative(
                g->manager->event, &g->full_query_timer, CLOCK_MONOTONIC, delay, 0, on_full_query_timer, g);
        if (r < 0)
                log_guest_errno(g, LOG_ERR, r, "cannot schedule the full query-rx-filter: %m");
}

/* A full query failed or timed out: ask again later, backing off, until one is answered. */
static void guest_full_query_retry(Guest *g, const char *reason) {
        uint64_t delay = g->full_query_backoff_usec;

        g->full_query_backoff_usec =
                delay * 2 > GUEST_FULL_QUERY_RETRY_MAX_USEC ? GUEST_FULL_QUERY_RETRY_MAX_USEC : delay * 2;
        guest_full_query_want(g, reason);
        g->full_query_timer = sd_event_source_disable_unref(g->full_query_timer);
        g->full_query_token_held = false;
        log_guest(g, LOG_INFO, "retrying the full query-rx-filter in %llu ms",
                (unsigned long long)(delay / 1000));
        guest_full_query_arm(g, delay);
}

static void guest_process_full_reply(Guest *g, json_object *result, const char *reason) {
        size_t n_infos = json_object_array_length(result), n_ignored = 0;
        uint64_t generation = atomic_load(&g->generation);

        for (size_t k = 0; k < g->n_nics; k++)
                g->nics[k]->seen = false;

        for (size_t i = 0; i < n_infos; i++) {
                json_object *info = json_object_array_get_idx(result, i), *name;
                if (!json_object_object_get_ex(info, "name", &name) ||
                        !json_object_is_type(name, json_type_string) ||
                        (size_t)json_object_get_string_len(name) != strlen(json_object_get_string(name)) ||
                        nic_id_invalid_reason(json_object_get_string(name))) {
                        log_guest_id(g, MESSAGE_ID_MONITOR_MISBEHAVING, LOG_WARNING,
                                "query-rx-filter entry %zu has no valid name (1..%d bytes of UTF-8 without "
                                "'/' "
                                "or control characters), ignoring it",
                                i, NIC_ID_MAX);
                        continue;
                }
                Nic *n = guest_find_nic(g, json_object_get_string(name));
                if (!n) {
                        if (g->n_nics >= GUEST_NICS_MAX) {
                                n_ignored++;
                                continue;
                        }
                        if (guest_add_nic(g, json_object_get_string(name), &n) < 0) {
                                log_oom();
                                continue;
                        }
                }
                if (n->seen)
                        continue; /* listed twice: the first entry counts */
                n->seen = true;

                /* Exclusive ownership before a worker touches it: json-c refcounts are not atomic. */
                json_object *owned = json_object_get(info);
                json_object_array_put_idx(result, i, NULL);
                nic_process_full_reply(n, owned, reason);
        }
        if (n_ignored > 0)
                log_guest(g, LOG_WARNING,
                        "query-rx-filter listed %zu NICs beyond the limit of %d, ignoring them", n_ignored,
                        GUEST_NICS_MAX);

        /* NICs QEMU no longer reports are gone (unplugged while we were away), unless the connection went
         * while we processed (then the reply is not the whole truth any more). */
        if (!guest_is_connected(g) || atomic_load(&g->generation) != generation)
                return;
        bool published = false;
        for (size_t k = g->n_nics; k > 0; k--)
                if (!g->nics[k - 1]->seen)
                        published |= guest_drop_nic(g, g->nics[k - 1], true);
        if (published)
                bus_guest_emit_changed(g, "Nics", NULL);
}

static void on_query_all_nics(QmpClient *c, json_object *result, const QmpError *err, void *userdata) {
        _cleanup_free_ FullQuery *q = userdata;
        _cleanup_(guest_unrefp) Guest *g = q->guest;

        g->full_query_in_flight = false;
        /* Disconnected (or detached): the reconnect's full query takes over. */
        if (!guest_is_connected(g) || (err && (err->error == -ECONNRESET || err->error == -ECANCELED)))
                return;
        if (err || !json_object_is_type(result, json_type_array)) {
                log_guest_id(g, err ? NULL : MESSAGE_ID_MONITOR_MISBEHAVING, LOG_WARNING,
                        "query-rx-filter (all NICs) failed: %s",
                        err ? (err->desc ? err->desc : strerror(-err->error)) : "the reply is not a list");
                guest_full_query_retry(g, q->reason);
                return;
        }
        /* Only a monitor that answered its first full query counts as healthy: one that negotiates and
         * then always fails must not be reconnected every 100 ms forever. */
        g->backoff_usec = GUEST_RECONNECT_MIN_USEC;
        g->full_query_backoff_usec = GUEST_FULL_QUERY_RETRY_MIN_USEC;
        guest_set_state(g, GUEST_STATE_READY, "first full query answered");

        guest_process_full_reply(g, result, q->reason);
        guest_full_query_kick(g, false);
}

static void guest_send_full_query(Guest *g) {
        FullQuery *q = malloc(sizeof(FullQuery));
        if (!q) {
                log_oom();
                return;
        }
        *q = (FullQuery){ .guest = guest_ref(g), .reason = TAKE_PTR(g->full_query_pending) };
        /* Set before sending: a write that fails runs on_query_all_nics() inside qmp_client_send(). */
        g->full_query_in_flight = true;
        int64_t r = qmp_client_send(
                g->qmp, "query-rx-filter", NULL, g->query_timeout_usec, on_query_all_nics, q);
        if (r < 0) {
                g->full_query_in_flight = false;
                log_guest_errno(g, LOG_WARNING, (int)r, "cannot send query-rx-filter: %m");
                if (r != -ENOTCONN)
                        guest_full_query_retry(g, q->reason);
                guest_unref(g);
                free(q);
        }
}

static void guest_full_query_kick(Guest *g, bool token_held) {
        if (g->full_query_in_flight || g->full_query_timer || !g->full_query_pending)
                return;
        if (!guest_is_connected(g)) {
                g->full_query_pending = NULL;
                return;
        }
        /* Paced like a NIC's own queries: a RESET flood costs one query per token, not one per event.
         * A query deferred by the limit is sent with the token that accrued meanwhile: taking another
         * when its timer fires, on time, would defer it again, for as long as events keep coming. */
        unsigned rate = g->manager->config.max_queries_per_second;
        uint64_t delay = token_held
                ? 0
                : rate_limit_take(&g->full_query_limit, rate,
                          rate > NIC_QUERY_BURST ? rate : NIC_QUERY_BURST, manager_now(g->manager));
        if (delay > 0) {
                guest_full_query_arm(g, delay);
                g->full_query_token_held = g->full_query_timer != NULL;
                return;
        }
        guest_send_full_query(g);
}

int guest_query_all_nics(Guest *g, const char *reason) {
        if (!guest_is_connected(g))
                return -ENOTCONN;
        guest_full_query_want(g, reason);
        guest_full_query_kick(g, false);
        return 0;
}

/* Forgets the full query's follow-up and retry: the next connection starts afresh. */
static void guest_full_query_reset(Guest *g) {
        g->full_query_pending = NULL;
        g->full_query_timer = sd_event_source_disable_unref(g->full_query_timer);
        g->full_query_token_held = false;
        g->full_query_backoff_usec = GUEST_FULL_QUERY_RETRY_MIN_USEC;
}

/* Host work happens in the guest's network namespace: NetworkNamespace= if configured, else the QEMU
 * process's (found through SO_PEERCRED). Opening the path here is cheap; entering it is the workers'. */
static void guest_update_netns(Guest *g) {
        char path[64];
        const char *p = g->config ? g->config->netns : NULL;

        g->netns = host_namespace_unref(g->netns);
        if (!p) {
                pid_t pid = qmp_client_get_peer_pid(g->qmp);
                if (pid <= 0)
                        return;
                snprintf(path, sizeof(path), "/proc/%d/ns/net", (int)pid);
                p = path;
        }

        /* A configured path is not followed (a planted link could lead anywhere); /proc/PID/ns/net is
         * a magic link by design. Fail closed: without the namespace no device is matched by name in
         * ours, the guest's NICs fail to sync instead. */
        int fd = -EBADF, r = netns_open(p, !g->config || !g->config->netns, &fd);
        struct stat st;
        if (r >= 0 && fstat(fd, &st) < 0)
                r = -errno;
        if (r < 0) {
                log_guest_errno(g, LOG_ERR, r,
                        "cannot open network namespace %s: %s; its NICs will not be synced", p,
                        netns_open_strerror(r));
                safe_close(fd);
                if (host_namespace_new(r, &g->netns) < 0)
                        log_oom();
                return;
        }
        if ((unsigned long)st.st_ino == g->manager->host->netns_id) {
                safe_close(fd);
                return;
        }
        if (host_namespace_new(fd, &g->netns) < 0)
                log_oom();
        else
                log_guest(g, LOG_INFO, "host devices in network namespace %s", p);
}

/* The connected QEMU's fd table, where jobs verify the devices it holds. Without it (its /proc cannot
 * be opened) they go through /proc/PID/fd/N and fail there with the reason. */
static void guest_update_peer_fds(Guest *g) {
        g->peer_fds = peer_fd_table_unref(g->peer_fds);
        pid_t pid = qmp_client_get_peer_pid(g->qmp);
        int r = pid > 0 ? peer_fd_table_open(pid, &g->peer_fds) : 0;
        if (r < 0)
                log_guest_errno(g, LOG_DEBUG, r, "cannot open the fd table of QEMU (pid %d): %m", (int)pid);
}

static void on_qmp_state(QmpClient *c, QmpState state, int error, const char *reason, void *userdata) {
        Guest *g = userdata;

        if (state == QMP_STATE_READY) {
                guest_update_netns(g);
                guest_update_peer_fds(g);
                guest_full_query_reset(g);
                guest_set_state(g, GUEST_STATE_NEGOTIATING, "monitor ready");
                g->n_connects++; /* metrics */
                (void)qmp_client_send(c, "query-name", NULL, 0, on_query_name, g);
                (void)qmp_client_send(c, "query-uuid", NULL, 0, on_query_uuid, g);
                (void)qmp_client_send(c, "query-version", NULL, 0, on_query_version, g);
                /* Without a name: discovers every NIC and re-arms each one's event. */
                if (guest_query_all_nics(g, "resync") < 0)
                        log_guest(g, LOG_WARNING, "cannot send the initial query-rx-filter");
                return;
        }

        if (state == QMP_STATE_DISCONNECTED) {
                atomic_fetch_add(&g->generation, 1);
                guest_full_query_reset(g);
                /* The guest stopped (or we lost it): its host devices go back to their baselines; a
                 * reconnect's full query syncs them again. */
                if (g->manager && g->manager->config.revert_on_stop)
                        for (size_t i = 0; i < g->n_nics; i++)
                                nic_revert(g->nics[i], TRUST_ALL);
                guest_schedule_reconnect(g, error, reason ? reason : "connection lost");
                guest_nic_idle(g);
        }
}

static void on_qmp_event(
        QmpClient *c, const char *event, json_object *data, uint64_t timestamp_usec, void *userdata) {
        qmp_event_dispatch(userdata, event, data, timestamp_usec);
}

static int guest_connect(Guest *g) {
        int r;

        if (!g->qmp) {
                r = qmp_client_new(g->manager->event, g->qmp_socket, on_qmp_state, on_qmp_event, g, &g->qmp);
                if (r < 0)
                        return log_guest_errno(g, LOG_ERR, r, "cannot create QMP client: %m");
        }
        r = qmp_client_connect(g->qmp);
        if (r < 0)
                guest_schedule_reconnect(g, r, NULL);
        return 0;
}

int guest_start(Guest *g) {
        log_guest(g, LOG_INFO, "attached (QMP socket %s)", g->qmp_socket);
        guest_set_state(g, GUEST_STATE_CONNECTING, "attached");
        return guest_connect(g);
}

void guest_socket_appeared(Guest *g) {
        if (!g->waiting_for_socket)
                return;
        g->waiting_for_socket = false;
        g->backoff_usec = GUEST_RECONNECT_MIN_USEC;
        (void)guest_connect(g);
}

void guest_stop(Guest *g, bool revert) {
        g->reconnect_timer = sd_event_source_disable_unref(g->reconnect_timer);
        guest_full_query_reset(g);
        atomic_fetch_add(&g->generation, 1);
        /* Freeing the client fails its pending commands: their handlers drop their references. */
        g->qmp = qmp_client_free(g->qmp);
        guest_remove_all_nics(g, revert);
        /* Only now: the reverts are all asked for, so the namespace stays until they are done. */
        guest_set_state(g, GUEST_STATE_DISCONNECTED, "detached");
        guest_nic_idle(g);
        log_guest(g, LOG_INFO, "detached");
}
