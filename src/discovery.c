/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* discovery.c: where a NIC lives: its QOM path (also for NICs without id=), backend and host interface.
 *
 * The chain, all asynchronous on the guest's monitor:
 *   1. `info network`        NIC line "net0: ..." and its peer " \ hostnet0: ...,ifname=tap0" (or fd=N)
 *   2. qom-get /machine/peripheral/ID netdev   found: the NIC has an id, its path is confirmed
 *   3. otherwise (no id=, QEMU calls it "virtio-net-pci.0"): qom-list /machine/peripheral-anon and
 *      qom-get each device's netdev until it names our backend: that device is the NIC
 *   4. qom-get PATH mac      the configured MAC, published, not waited for
 * Any step that fails leaves what is unknown unknown; the filter is synced regardless. */
#include <net/if.h>
#include <stdio.h>
#include <string.h>

#include "bus.h"
#include "nic.h"

typedef struct Discovery {
        Nic *nic; /* reference */
        char *text; /* `info network` output */
        char **candidates;
        size_t n_candidates, next;
} Discovery;

static Discovery *discovery_free(Discovery *d) {
        if (!d)
                return NULL;
        nic_unref(d->nic);
        free(d->text);
        for (size_t i = 0; i < d->n_candidates; i++)
                free(d->candidates[i]);
        free(d->candidates);
        free(d);
        return NULL;
}

static void discovery_finish(Discovery *d) {
        Nic *n = nic_ref(d->nic);
        discovery_free(d);
        /* Not DISCOVERING any more: the NIC was removed meanwhile and has moved on. */
        if (n->state == NIC_STATE_DISCOVERING)
                nic_discovery_done(n);
        nic_unref(n);
}

/* The value of one "key=value" in a comma-separated `info network` parameter list. */
static bool info_param(const char *params, size_t len, const char *key, char *ret, size_t size) {
        size_t key_len = strlen(key);
        for (const char *p = params; p < params + len;) {
                size_t item = strcspn(p, ",");
                if (item > len - (size_t)(p - params))
                        item = len - (size_t)(p - params);
                if (item > key_len && strncmp(p, key, key_len) == 0 && p[key_len] == '=') {
                        snprintf(ret, size, "%.*s", (int)(item - key_len - 1), p + key_len + 1);
                        return true;
                }
                p += item + 1;
        }
        return false;
}

/* Finds "NAME: params" at the start of a line (after an optional " \ "), returns params and length. */
static const char *info_find(const char *text, const char *name, bool peer, size_t *ret_len) {
        size_t name_len = strlen(name);
        for (const char *line = text; line && *line;
                line = strchr(line, '\n'), line = line ? line + 1 : NULL) {
                const char *p = line;
                bool is_peer = false;
                while (*p == ' ' || *p == '\\')
                        is_peer |= *p++ == '\\';
                if (is_peer != peer || strncmp(p, name, name_len) != 0 || p[name_len] != ':' ||
                        p[name_len + 1] != ' ')
                        continue;
                p += name_len + 2;
                *ret_len = strcspn(p, "\r\n");
                return p;
        }
        return NULL;
}

/* The NIC's peer (its backend) is the indented line right after the NIC's own. */
static char *info_peer_of(const char *text, const char *nic_id) {
        size_t len;
        const char *p = info_find(text, nic_id, false, &len);
        if (!p)
                return NULL;
        const char *next = strchr(p, '\n');
        if (!next)
                return NULL;
        next++;
        while (*next == ' ')
                next++;
        if (*next != '\\')
                return NULL;
        next++;
        while (*next == ' ')
                next++;
        size_t id_len = strcspn(next, ":\r\n");
        return next[id_len] == ':' ? strndup(next, id_len) : NULL;
}

static void discovery_take_backend(Discovery *d) {
        Nic *n = d->nic;
        size_t len;
        char value[64];

        if (!n->netdev || !d->text)
                return;
        const char *params = info_find(d->text, n->netdev, true, &len);
        if (!params)
                return;
        if (!n->host_interface && info_param(params, len, "ifname", value, sizeof(value)) &&
                strlen(value) < IF_NAMESIZE) {
                n->host_interface = strdup(value);
                if (!n->host_interface)
                        log_oom();
        } else if (info_param(params, len, "fd", value, sizeof(value)))
                n->backend_fd = atoi(value);
}

/* Still the NIC's current work, on the connection it started on. */
static bool discovery_alive(Discovery *d) {
        Nic *n = d->nic;
        return n->state == NIC_STATE_DISCOVERING && nic_is_live(n) &&
                atomic_load(&n->guest->generation) == n->query_generation;
}

static int64_t discovery_send(
        Discovery *d, const char *command, json_object *args, qmp_reply_handler_t handler) {
        return qmp_client_send(d->nic->guest->qmp, command, args, 0, handler, d);
}

static json_object *qom_args(const char *path, const char *property) {
        json_object *args = json_object_new_object();
        if (!args)
                return NULL;
        json_object_object_add(args, "path", json_object_new_string(path));
        if (property)
                json_object_object_add(args, "property", json_object_new_string(property));
        return args;
}

static void on_configured_mac(QmpClient *c, json_object *result, const QmpError *err, void *userdata) {
        _cleanup_(nic_unrefp) Nic *n = userdata;
        const char *mac =
                json_object_is_type(result, json_type_string) ? json_object_get_string(result) : NULL;

        if (n->removed || err || !mac || (n->configured_mac && strcmp(n->configured_mac, mac) == 0))
                return;
        free(n->configured_mac);
        n->configured_mac = strdup(mac);
        bus_nic_emit_changed(n, "ConfiguredMac", NULL);
}

/* The QOM path is known: publish the configured MAC (not waited for) and sync. */
static void discovery_found(Discovery *d) {
        Nic *n = d->nic;

        discovery_take_backend(d);
        if (qmp_client_send(n->guest->qmp, "qom-get", qom_args(n->qom_path, "mac"), 0, on_configured_mac,
                    nic_ref(n)) < 0)
                nic_unref(n);
        discovery_finish(d);
}

static void discovery_try_next_candidate(Discovery *d);

static void on_candidate_netdev(QmpClient *c, json_object *result, const QmpError *err, void *userdata) {
        Discovery *d = userdata;

        if (!discovery_alive(d)) {
                discovery_finish(d);
                return;
        }
        if (!err && json_object_is_type(result, json_type_string) &&
                strcmp(json_object_get_string(result), d->nic->netdev) == 0) {
                char *path = d->candidates[d->next - 1];
                if (guest_set_nic_qom_path(d->nic->guest, d->nic, path) < 0) {
                        log_oom();
                        discovery_finish(d);
                        return;
                }
                log_nic(d->nic, LOG_INFO, "has no id=, found at %s", path);
                discovery_found(d);
                return;
        }
        discovery_try_next_candidate(d);
}

static void discovery_try_next_candidate(Discovery *d) {
        if (d->next >= d->n_candidates) {
                log_nic(d->nic, LOG_NOTICE, "no QOM device uses backend %s; its path stays unknown",
                        d->nic->netdev);
                discovery_take_backend(d);
                discovery_finish(d);
                return;
        }
        const char *path = d->candidates[d->next++];
        if (discovery_send(d, "qom-get", qom_args(path, "netdev"), on_candidate_netdev) < 0)
                discovery_finish(d);
}

static void on_anon_list(QmpClient *c, json_object *result, const QmpError *err, void *userdata) {
        Discovery *d = userdata;

        if (!discovery_alive(d)) {
                discovery_finish(d);
                return;
        }
        size_t n = json_object_is_type(result, json_type_array) ? json_object_array_length(result) : 0;
        d->candidates = calloc(n ? n : 1, sizeof(char *));
        if (!d->candidates) {
                log_oom();
                discovery_finish(d);
                return;
        }
        for (size_t i = 0; i < n; i++) {
                json_object *child = json_object_array_get_idx(result, i), *name, *type;
                if (!json_object_object_get_ex(child, "name", &name) ||
                        !json_object_object_get_ex(child, "type", &type) ||
                        !json_object_is_type(name, json_type_string) ||
                        !json_object_is_type(type, json_type_string) ||
                        strncmp(json_object_get_string(type), "child<", 6) != 0)
                        continue;
                if (asprintf(&d->candidates[d->n_candidates], "/machine/peripheral-anon/%s",
                            json_object_get_string(name)) < 0)
                        break;
                d->n_candidates++;
        }
        discovery_try_next_candidate(d);
}

static void on_peripheral_netdev(QmpClient *c, json_object *result, const QmpError *err, void *userdata) {
        Discovery *d = userdata;
        Nic *n = d->nic;

        if (!discovery_alive(d)) {
                discovery_finish(d);
                return;
        }

        if (!err && json_object_is_type(result, json_type_string)) {
                free(n->netdev);
                n->netdev = strdup(json_object_get_string(result));
                discovery_found(d);
                return;
        }

        /* No device with that id: a NIC created without id=. Its backend, from `info network`, finds it. */
        free(n->netdev);
        n->netdev = d->text ? info_peer_of(d->text, n->id) : NULL;
        if (!n->netdev) {
                log_nic(n, LOG_NOTICE, "not at %s and no backend in `info network`; host interface unknown",
                        n->qom_path);
                discovery_finish(d);
                return;
        }
        if (discovery_send(d, "qom-list", qom_args("/machine/peripheral-anon", NULL), on_anon_list) < 0)
                discovery_finish(d);
}

static void on_info_network(QmpClient *c, json_object *result, const QmpError *err, void *userdata) {
        Discovery *d = userdata;

        if (!discovery_alive(d)) {
                discovery_finish(d);
                return;
        }
        if (err)
                log_nic(d->nic, LOG_DEBUG, "info network failed: %s",
                        err->desc ? err->desc : strerror(-err->error));
        else if (json_object_is_type(result, json_type_string))
                d->text = strdup(json_object_get_string(result));

        if (discovery_send(d, "qom-get", qom_args(d->nic->qom_path, "netdev"), on_peripheral_netdev) < 0)
                discovery_finish(d);
}

void nic_discover(Nic *n) {
        Discovery *d = calloc(1, sizeof(Discovery));
        if (!d) {
                log_oom();
                nic_discovery_done(n);
                return;
        }
        d->nic = nic_ref(n);

        json_object *args = json_object_new_object();
        if (args)
                json_object_object_add(args, "command-line", json_object_new_string("info network"));
        if (!args || discovery_send(d, "human-monitor-command", args, on_info_network) < 0)
                discovery_finish(d);
}
