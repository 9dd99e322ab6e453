/* guest.c: a guest's QMP connection: connect, greet, discover NICs, reconnect with backoff. */
#include "guest.h"

#include <fcntl.h>
#include <string.h>
#include <sys/stat.h>

#include "bus.h"
#include "manager.h"
#include "nic.h"

static const char *const guest_state_names[_GUEST_STATE_MAX] = {
        [GUEST_STATE_CONNECTING] = "connecting",
        [GUEST_STATE_CONNECTED] = "connected",
        [GUEST_STATE_DISCONNECTED] = "disconnected",
};

const char *guest_state_to_string(GuestState s) {
        return s >= 0 && s < _GUEST_STATE_MAX ? guest_state_names[s] : NULL;
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
        g->backoff_usec = GUEST_RECONNECT_MIN_USEC;
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
        free(g->nics);
        guest_config_free(g->config);
        free(g->name);
        free(g->qmp_socket);
        free(g->uuid);
        free(g->qemu_name);
        free(g->qemu_version);
        host_namespace_unref(g->netns);
        free(g);
        return NULL;
}

static void guest_set_state(Guest *g, GuestState state) {
        if (g->state == state)
                return;
        g->state = state;
        bus_guest_emit_changed(g, "State", NULL);
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
        for (size_t i = 0; i < g->n_nics; i++)
                if (strcmp(g->nics[i]->id, id) == 0)
                        return g->nics[i];
        return NULL;
}

Nic *guest_find_nic_by_qom_path(Guest *g, const char *qom_path) {
        for (size_t i = 0; i < g->n_nics; i++)
                if (strcmp(g->nics[i]->qom_path, qom_path) == 0)
                        return g->nics[i];
        return NULL;
}

static int guest_add_nic(Guest *g, const char *id, Nic **ret) {
        Nic *n;
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
                if (!n->host_interface) {
                        nic_unref(n);
                        return -ENOMEM;
                }
                n->host_interface_configured = true;
        }
        g->nics[g->n_nics++] = n;
        _cleanup_free_ char *trust = trust_to_string(guest_nic_trust(g, id));
        log_nic(n, LOG_INFO, "discovered (trust %s)", trust ? trust : "?");
        *ret = n;
        return 0;
}

void guest_remove_nic(Guest *g, Nic *n, bool revert) {
        for (size_t i = 0; i < g->n_nics; i++) {
                if (g->nics[i] != n)
                        continue;
                bus_nic_emit_removed(n);
                memmove(g->nics + i, g->nics + i + 1, (g->n_nics - i - 1) * sizeof(Nic *));
                g->n_nics--;
                if (n->published)
                        bus_guest_emit_changed(g, "Nics", NULL);
                log_nic(n, LOG_INFO, "removed");
                nic_detach(n);
                if (revert)
                        nic_revert(n, TRUST_ALL);
                nic_unref(n);
                return;
        }
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
                guest_set_state(g, GUEST_STATE_DISCONNECTED);
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
        log_guest(g, delay >= GUEST_RECONNECT_MAX_USEC ? LOG_WARNING : LOG_INFO,
                "%s: %s; reconnecting in %llu ms", reason ? "disconnected" : "connect failed",
                reason ? reason : strerror(-error), (unsigned long long)(delay / 1000));
}

static void on_query_name(QmpClient *c, json_object *result, const QmpError *err, void *userdata) {
        Guest *g = userdata;
        json_object *name;
        if (!err && json_object_object_get_ex(result, "name", &name) &&
                json_object_is_type(name, json_type_string)) {
                free(g->qemu_name);
                g->qemu_name = strdup(json_object_get_string(name));
        }
}

static void on_query_uuid(QmpClient *c, json_object *result, const QmpError *err, void *userdata) {
        Guest *g = userdata;
        json_object *uuid;
        if (!err && json_object_object_get_ex(result, "UUID", &uuid) &&
                json_object_is_type(uuid, json_type_string)) {
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
        log_guest(g, LOG_INFO, "connected to QEMU %s%s%s%s%s",
                g->qemu_version ? g->qemu_version : "(unknown version)", g->qemu_name ? ", name " : "",
                g->qemu_name ? g->qemu_name : "", g->uuid ? ", uuid " : "", g->uuid ? g->uuid : "");
}

typedef struct FullQuery {
        Guest *guest;
        const char *reason;
} FullQuery;

static void on_query_all_nics(QmpClient *c, json_object *result, const QmpError *err, void *userdata) {
        _cleanup_free_ FullQuery *q = userdata;
        _cleanup_(guest_unrefp) Guest *g = q->guest;

        if (!g->manager || g->state != GUEST_STATE_CONNECTED)
                return;
        if (err) {
                if (err->error != -ECONNRESET && err->error != -ECANCELED)
                        log_guest(g, LOG_WARNING, "query-rx-filter (all NICs) failed: %s",
                                err->desc ? err->desc : strerror(-err->error));
                return;
        }
        if (!json_object_is_type(result, json_type_array)) {
                log_guest(g, LOG_WARNING, "query-rx-filter (all NICs) did not return a list");
                return;
        }
        /* Only a monitor that answered its first full query counts as healthy: one that negotiates and
         * then always fails must not be reconnected every 100 ms forever. */
        g->backoff_usec = GUEST_RECONNECT_MIN_USEC;

        size_t n_infos = json_object_array_length(result);
        bool *seen = calloc(g->n_nics + n_infos + 1, sizeof(bool));
        if (!seen) {
                log_oom();
                return;
        }

        for (size_t i = 0; i < n_infos; i++) {
                json_object *info = json_object_array_get_idx(result, i), *name;
                if (!json_object_object_get_ex(info, "name", &name) ||
                        !json_object_is_type(name, json_type_string) ||
                        json_object_get_string_len(name) == 0 ||
                        json_object_get_string_len(name) > RXFILTER_NAME_MAX) {
                        log_guest(g, LOG_WARNING, "query-rx-filter entry %zu has no valid name, ignoring it",
                                i);
                        continue;
                }
                Nic *n = guest_find_nic(g, json_object_get_string(name));
                if (!n && guest_add_nic(g, json_object_get_string(name), &n) < 0) {
                        log_oom();
                        continue;
                }
                for (size_t k = 0; k < g->n_nics; k++)
                        if (g->nics[k] == n)
                                seen[k] = true;

                /* Exclusive ownership before a worker touches it: json-c refcounts are not atomic. */
                json_object *owned = json_object_get(info);
                json_object_array_put_idx(result, i, NULL);
                nic_process_full_reply(n, owned, q->reason);
        }

        /* NICs QEMU no longer reports are gone (unplugged while we were away). */
        for (size_t k = g->n_nics; k > 0; k--)
                if (!seen[k - 1])
                        guest_remove_nic(g, g->nics[k - 1], true);
        free(seen);
}

int guest_query_all_nics(Guest *g, const char *reason) {
        FullQuery *q = malloc(sizeof(FullQuery));
        if (!q)
                return -ENOMEM;
        *q = (FullQuery){ .guest = guest_ref(g), .reason = reason };
        int64_t r = qmp_client_send(g->qmp, "query-rx-filter", NULL, 0, on_query_all_nics, q);
        if (r < 0) {
                guest_unref(g);
                free(q);
                return (int)r;
        }
        return 0;
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

        int fd = open(p, O_RDONLY | O_CLOEXEC);
        struct stat st;
        if (fd < 0 || fstat(fd, &st) < 0) {
                log_guest_errno(
                        g, LOG_WARNING, errno, "cannot open network namespace %s, using ours: %m", p);
                safe_close(fd);
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

static void on_qmp_state(QmpClient *c, QmpState state, int error, const char *reason, void *userdata) {
        Guest *g = userdata;

        if (state == QMP_STATE_READY) {
                guest_update_netns(g);
                guest_set_state(g, GUEST_STATE_CONNECTED);
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
                /* The guest stopped (or we lost it): its host devices go back to their baselines; a
                 * reconnect's full query syncs them again. */
                if (g->manager && g->manager->config.revert_on_stop)
                        for (size_t i = 0; i < g->n_nics; i++)
                                nic_revert(g->nics[i], TRUST_ALL);
                guest_schedule_reconnect(g, error, reason ? reason : "connection lost");
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
        guest_set_state(g, GUEST_STATE_CONNECTING);
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
        atomic_fetch_add(&g->generation, 1);
        guest_set_state(g, GUEST_STATE_DISCONNECTED);
        /* Freeing the client fails its pending commands: their handlers drop their references. */
        g->qmp = qmp_client_free(g->qmp);
        while (g->n_nics > 0)
                guest_remove_nic(g, g->nics[g->n_nics - 1], revert);
        log_guest(g, LOG_INFO, "detached");
}
