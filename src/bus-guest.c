/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* bus-guest.c: io.guestnetd.GuestNet1.Guest, one object per guest at BUS_ROOT_PATH/guest/<enc name>. */
#include <stdarg.h>
#include <string.h>

#include "bus-polkit.h"
#include "bus.h"
#include "guest.h"
#include "log.h"
#include "manager.h"
#include "nic.h"

/* JSON nesting relayed as D-Bus containers; deeper data is passed on as its JSON text. Keeps us well
 * inside D-Bus's nesting limit whatever QEMU sends. */
#define NET_EVENT_DEPTH_MAX 8

char *guest_bus_path(const Guest *g) {
        char *p = NULL;
        if (sd_bus_path_encode(BUS_ROOT_PATH "/guest", g->name, &p) < 0)
                return NULL;
        return p;
}

int bus_guest_find(Manager *m, const char *path, Guest **ret) {
        _cleanup_free_ char *name = NULL;
        int r;

        r = sd_bus_path_decode_many(path, BUS_ROOT_PATH "/guest/%", &name);
        if (r <= 0)
                return r;
        Guest *g = manager_find_guest(m, name);
        if (!g)
                return 0;
        *ret = g;
        return 1;
}

static int guest_object_find(sd_bus *bus, const char *path, const char *interface, void *userdata,
        void **found, sd_bus_error *error) {
        Guest *g;
        int r;

        r = bus_guest_find(userdata, path, &g);
        if (r <= 0)
                return r;
        *found = g;
        return 1;
}

/* ---- properties --------------------------------------------------------------------------------------- */

static int property_get_string(sd_bus *bus, const char *path, const char *interface, const char *property,
        sd_bus_message *reply, void *userdata, sd_bus_error *error) {
        Guest *g = userdata;
        const char *s = NULL;

        if (strcmp(property, "Name") == 0)
                s = g->name;
        else if (strcmp(property, "UUID") == 0)
                s = g->uuid;
        else if (strcmp(property, "QmpSocket") == 0)
                s = g->qmp_socket;
        else if (strcmp(property, "State") == 0)
                s = guest_state_to_bus_string(g->state);
        else if (strcmp(property, "QemuVersion") == 0)
                s = g->qemu_version;
        return sd_bus_message_append(reply, "s", s ? s : "");
}

static int string_compare(const void *a, const void *b) {
        return strcmp(*(char *const *)a, *(char *const *)b);
}

static int property_get_nics(sd_bus *bus, const char *path, const char *interface, const char *property,
        sd_bus_message *reply, void *userdata, sd_bus_error *error) {
        Guest *g = userdata;
        char **paths = calloc(g->n_nics + 1, sizeof(char *));
        int r = 0;

        if (!paths)
                return -ENOMEM;
        size_t n = 0;
        for (size_t i = 0; i < g->n_nics && r >= 0; i++)
                if (g->nics[i]->published && !(paths[n++] = nic_bus_path(g->nics[i])))
                        r = -ENOMEM;
        if (r >= 0) {
                qsort(paths, n, sizeof(char *), string_compare);
                r = sd_bus_message_open_container(reply, 'a', "o");
        }
        for (size_t i = 0; i < n && r >= 0; i++)
                r = sd_bus_message_append(reply, "o", paths[i]);
        if (r >= 0)
                r = sd_bus_message_close_container(reply);
        for (size_t i = 0; i < n; i++)
                free(paths[i]);
        free(paths);
        return r;
}

/* ---- methods ------------------------------------------------------------------------------------------ */

static int method_resync(sd_bus_message *message, void *userdata, sd_bus_error *error) {
        Guest *g = userdata;
        int r;

        if (!guest_is_connected(g))
                return sd_bus_error_setf(error, BUS_ERROR_GUEST_NOT_CONNECTED,
                        "Guest '%s' is not connected (%s).", g->name, guest_state_to_bus_string(g->state));

        r = bus_polkit_verify_async(message, g->manager, BUS_ACTION_RESYNC,
                (const char *[]){ "guest", g->name, NULL }, method_resync, error);
        if (r <= 0)
                return r < 0 ? r : 1;

        /* Checked again: the guest may have disconnected while polkit was asked. */
        if (!guest_is_connected(g))
                return sd_bus_error_setf(error, BUS_ERROR_GUEST_NOT_CONNECTED,
                        "Guest '%s' is not connected (%s).", g->name, guest_state_to_bus_string(g->state));
        r = guest_query_all_nics(g, "resync");
        if (r < 0)
                return sd_bus_error_set_errnof(
                        error, r, "Failed to send query-rx-filter to guest '%s': %m", g->name);
        return sd_bus_reply_method_return(message, NULL);
}

const sd_bus_vtable bus_guest_vtable[] = {
        SD_BUS_VTABLE_START(0),
        SD_BUS_PROPERTY("Name", "s", property_get_string, 0, SD_BUS_VTABLE_PROPERTY_CONST),
        SD_BUS_PROPERTY("UUID", "s", property_get_string, 0, SD_BUS_VTABLE_PROPERTY_EMITS_CHANGE),
        SD_BUS_PROPERTY("QmpSocket", "s", property_get_string, 0, SD_BUS_VTABLE_PROPERTY_CONST),
        SD_BUS_PROPERTY("State", "s", property_get_string, 0, SD_BUS_VTABLE_PROPERTY_EMITS_CHANGE),
        SD_BUS_PROPERTY("QemuVersion", "s", property_get_string, 0, SD_BUS_VTABLE_PROPERTY_EMITS_CHANGE),
        SD_BUS_PROPERTY("Nics", "ao", property_get_nics, 0, SD_BUS_VTABLE_PROPERTY_EMITS_CHANGE),
        SD_BUS_METHOD_WITH_ARGS(
                "Resync", SD_BUS_NO_ARGS, SD_BUS_NO_RESULT, method_resync, SD_BUS_VTABLE_UNPRIVILEGED),
        SD_BUS_SIGNAL_WITH_ARGS("NetEvent", SD_BUS_ARGS("s", event, "a{sv}", data), 0),
        SD_BUS_VTABLE_END,
};

int bus_guest_register(sd_bus *bus, Manager *m) {
        return sd_bus_add_fallback_vtable(bus, NULL, BUS_ROOT_PATH "/guest", BUS_GUEST_INTERFACE,
                bus_guest_vtable, guest_object_find, m);
}

/* ---- signals ------------------------------------------------------------------------------------------ */

/* The guest is published: attached and not yet detached. */
static sd_bus *guest_bus(const Guest *g) {
        return bus_manager_bus(g->manager);
}

static void guest_emit_object_manager(Guest *g, bool added) {
        _cleanup_free_ char *p = NULL;
        int r;

        if (!guest_bus(g))
                return;
        p = guest_bus_path(g);
        if (!p) {
                log_oom();
                return;
        }
        r = added ? sd_bus_emit_interfaces_added(guest_bus(g), p, BUS_GUEST_INTERFACE, NULL)
                  : sd_bus_emit_interfaces_removed(guest_bus(g), p, BUS_GUEST_INTERFACE, NULL);
        if (r < 0)
                log_guest_errno(
                        g, LOG_DEBUG, r, "failed to emit Interfaces%s: %m", added ? "Added" : "Removed");
}

void bus_guest_emit_added(Guest *g) {
        guest_emit_object_manager(g, true);
}

void bus_guest_emit_removed(Guest *g) {
        if (g->manager) /* its NICs' held InterfacesRemoved first, whether the bus lags or not */
                bus_backlog_flush_guest(g->manager, g);
        guest_emit_object_manager(g, false);
}

static void guest_emit_properties_changed(Guest *g, const char *const *names) {
        _cleanup_free_ char *p = NULL;
        int r;

        p = guest_bus_path(g);
        if (!p) {
                log_oom();
                return;
        }
        r = sd_bus_emit_properties_changed_strv(guest_bus(g), p, BUS_GUEST_INTERFACE, (char **)names);
        if (r < 0)
                log_guest_errno(g, LOG_DEBUG, r, "failed to emit PropertiesChanged: %m");
}

/* While the bus lags (bus-backlog.c) the names are held, merged, and said once it has caught up:
 * a guest whose NICs come and go changes Nics as often as its QEMU likes. */
void bus_guest_emit_changed(Guest *g, const char *property, ...) {
        const char *names[8] = {};
        size_t n = 0;
        va_list ap;

        if (!guest_bus(g))
                return;
        va_start(ap, property);
        for (const char *s = property; s && n < ELEMENTSOF(names) - 1; s = va_arg(ap, const char *))
                names[n++] = s;
        va_end(ap);

        if (g->held || bus_backlog_pending(g->manager) || bus_backlog_check(g->manager)) {
                if (!g->held && !(g->held = calloc(1, sizeof(HeldSignals)))) {
                        log_oom();
                        guest_emit_properties_changed(g, names);
                        return;
                }
                if (held_signals_add_properties(g->held, names) < 0)
                        log_guest(g, LOG_WARNING,
                                "more than %u properties held while the bus lags, some not "
                                "announced",
                                HELD_PROPERTIES_MAX);
                bus_backlog_hold_guest(g->manager);
                return; /* said by the backlog's timer, after the NICs' */
        }
        guest_emit_properties_changed(g, names);
}

void bus_guest_flush_held(Guest *g) {
        _cleanup_(held_signals_freep) HeldSignals *h = TAKE_PTR(g->held);
        const char *names[HELD_PROPERTIES_MAX + 1] = {};

        if (!h || !guest_bus(g))
                return;
        for (size_t i = 0; i < h->n_properties; i++)
                names[i] = h->properties[i];
        guest_emit_properties_changed(g, names);
}

static int append_json_dict(sd_bus_message *m, json_object *obj, unsigned depth);

static bool json_array_is_strings(json_object *array) {
        size_t n = json_object_array_length(array);
        for (size_t i = 0; i < n; i++)
                if (!json_object_is_type(json_object_array_get_idx(array, i), json_type_string))
                        return false;
        return true;
}

/* One JSON value as a variant: string s, bool b, int x, double d, object a{sv}, array of strings as,
 * other arrays av (JSON nulls left out). */
static int append_json_variant(sd_bus_message *m, json_object *v, unsigned depth) {
        int r;

        if (depth >= NET_EVENT_DEPTH_MAX &&
                (json_object_is_type(v, json_type_object) || json_object_is_type(v, json_type_array)))
                return sd_bus_message_append(m, "v", "s", json_object_to_json_string(v));

        switch (json_object_get_type(v)) {
        case json_type_string:
                return sd_bus_message_append(m, "v", "s", json_object_get_string(v));
        case json_type_boolean:
                return sd_bus_message_append(m, "v", "b", (int)json_object_get_boolean(v));
        case json_type_int:
                return sd_bus_message_append(m, "v", "x", (int64_t)json_object_get_int64(v));
        case json_type_double:
                return sd_bus_message_append(m, "v", "d", json_object_get_double(v));
        case json_type_object:
                r = sd_bus_message_open_container(m, 'v', "a{sv}");
                if (r >= 0)
                        r = append_json_dict(m, v, depth + 1);
                if (r >= 0)
                        r = sd_bus_message_close_container(m);
                return r;
        case json_type_array: {
                bool strings = json_array_is_strings(v);
                size_t n = json_object_array_length(v);

                r = sd_bus_message_open_container(m, 'v', strings ? "as" : "av");
                if (r >= 0)
                        r = sd_bus_message_open_container(m, 'a', strings ? "s" : "v");
                for (size_t i = 0; i < n && r >= 0; i++) {
                        json_object *e = json_object_array_get_idx(v, i);
                        if (strings)
                                r = sd_bus_message_append(m, "s", json_object_get_string(e));
                        else if (e)
                                r = append_json_variant(m, e, depth + 1);
                }
                if (r >= 0)
                        r = sd_bus_message_close_container(m);
                if (r >= 0)
                        r = sd_bus_message_close_container(m);
                return r;
        }
        default:
                return -EINVAL;
        }
}

static int append_json_entries(sd_bus_message *m, json_object *obj, unsigned depth) {
        int r;

        if (!json_object_is_type(obj, json_type_object))
                return 0;
        json_object_object_foreach(obj, key, value) {
                /* JSON null has no D-Bus form; a top-level "timestamp" is ours. */
                if (!value || (depth == 0 && strcmp(key, "timestamp") == 0))
                        continue;
                r = sd_bus_message_open_container(m, 'e', "sv");
                if (r >= 0)
                        r = sd_bus_message_append(m, "s", key);
                if (r >= 0)
                        r = append_json_variant(m, value, depth);
                if (r >= 0)
                        r = sd_bus_message_close_container(m);
                if (r < 0)
                        return r;
        }
        return 0;
}

static int append_json_dict(sd_bus_message *m, json_object *obj, unsigned depth) {
        int r;

        r = sd_bus_message_open_container(m, 'a', "{sv}");
        if (r >= 0)
                r = append_json_entries(m, obj, depth);
        if (r >= 0)
                r = sd_bus_message_close_container(m);
        return r;
}

void bus_guest_emit_net_event(Guest *g, const char *event, json_object *data, uint64_t timestamp_usec) {
        _cleanup_(sd_bus_message_unrefp) sd_bus_message *signal = NULL;
        _cleanup_free_ char *p = NULL;
        int r;

        if (!guest_bus(g) || !bus_signals_enabled(g->manager))
                return;
        if (bus_backlog_check(g->manager)) {
                /* A relayed event is not state: while the bus lags it is dropped, and counted. */
                bus_backlog_count_dropped(g->manager);
                return;
        }
        p = guest_bus_path(g);
        if (!p) {
                log_oom();
                return;
        }

        r = sd_bus_message_new_signal(guest_bus(g), &signal, p, BUS_GUEST_INTERFACE, "NetEvent");
        if (r >= 0)
                r = sd_bus_message_append(signal, "s", event);
        if (r >= 0)
                r = sd_bus_message_open_container(signal, 'a', "{sv}");
        if (r >= 0)
                r = append_json_entries(signal, data, 0);
        if (r >= 0)
                r = sd_bus_message_append(signal, "{sv}", "timestamp", "t", timestamp_usec);
        if (r >= 0)
                r = sd_bus_message_close_container(signal);
        if (r >= 0)
                r = sd_bus_send(NULL, signal, NULL);
        if (r < 0)
                log_guest_errno(g, LOG_WARNING, r, "failed to emit NetEvent %s: %m", event);
}
