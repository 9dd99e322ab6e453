/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* bus-manager.c: io.guestnetd.GuestNet1.Manager at BUS_ROOT_PATH, the object tree and the connection. */
#include <stdarg.h>
#include <string.h>
#include <sys/un.h>

#include "bus-polkit.h"
#include "bus.h"
#include "escape.h"
#include "guest.h"
#include "log.h"
#include "manager.h"
#include "netns.h"
#include "nic.h"
#include "version.h"

#define BUS_GUESTS_PATH   BUS_ROOT_PATH "/guest"
#define SUN_PATH_MAX      sizeof(((struct sockaddr_un *)NULL)->sun_path)
#define SUN_PATH_MAX_TEXT "107" /* SUN_PATH_MAX - 1, for messages */
_Static_assert(SUN_PATH_MAX == 108, "sun_path is 108 bytes on Linux");

static const char *strna(const char *s) {
        return s ? s : "n/a";
}

const sd_bus_error_map bus_error_map[] = {
        SD_BUS_ERROR_MAP(BUS_ERROR_NO_SUCH_GUEST, ENOENT),
        SD_BUS_ERROR_MAP(BUS_ERROR_NO_SUCH_NIC, ENODEV),
        SD_BUS_ERROR_MAP(BUS_ERROR_GUEST_NOT_CONNECTED, ENOTCONN),
        SD_BUS_ERROR_MAP(BUS_ERROR_QMP_FAILED, EIO),
        SD_BUS_ERROR_MAP(BUS_ERROR_HOST_SYNC_FAILED, EREMOTEIO),
        SD_BUS_ERROR_MAP(BUS_ERROR_INVALID_ARGUMENT, EINVAL),
        SD_BUS_ERROR_MAP_END,
};

bool bus_signals_enabled(const Manager *m) {
        return m->config.emit_signals;
}

sd_bus *bus_manager_bus(const Manager *m) {
        /* Closed already when the loop exits (sd-bus's exit handler), before the guests are detached. */
        return m && m->bus && sd_bus_is_open(m->bus) > 0 ? m->bus : NULL;
}

static int guest_compare(const void *a, const void *b) {
        return strcmp((*(Guest *const *)a)->name, (*(Guest *const *)b)->name);
}

/* The guests sorted by name: stable output for Guests and ListGuests(). */
static Guest **manager_sorted_guests(Manager *m) {
        Guest **list = calloc(m->n_guests + 1, sizeof(Guest *));
        size_t n = 0;

        if (!list)
                return NULL;
        for (Guest *g = m->guests; g && n < m->n_guests; g = g->next)
                list[n++] = g;
        qsort(list, n, sizeof(Guest *), guest_compare);
        return list;
}

/* ---- properties --------------------------------------------------------------------------------------- */

static int property_get_version(sd_bus *bus, const char *path, const char *interface, const char *property,
        sd_bus_message *reply, void *userdata, sd_bus_error *error) {
        return sd_bus_message_append(reply, "s", GUESTNETD_VERSION);
}

static int property_get_guests(sd_bus *bus, const char *path, const char *interface, const char *property,
        sd_bus_message *reply, void *userdata, sd_bus_error *error) {
        Manager *m = userdata;
        _cleanup_free_ Guest **guests = manager_sorted_guests(m);
        int r;

        if (!guests)
                return -ENOMEM;
        r = sd_bus_message_open_container(reply, 'a', "o");
        if (r < 0)
                return r;
        for (Guest **g = guests; *g; g++) {
                _cleanup_free_ char *p = guest_bus_path(*g);
                if (!p)
                        return -ENOMEM;
                r = sd_bus_message_append(reply, "o", p);
                if (r < 0)
                        return r;
        }
        return sd_bus_message_close_container(reply);
}

static int property_get_default_trust(sd_bus *bus, const char *path, const char *interface,
        const char *property, sd_bus_message *reply, void *userdata, sd_bus_error *error) {
        Manager *m = userdata;
        return bus_message_append_trust(reply, m->config.default_trust);
}

static int property_get_emit_signals(sd_bus *bus, const char *path, const char *interface,
        const char *property, sd_bus_message *reply, void *userdata, sd_bus_error *error) {
        Manager *m = userdata;
        return sd_bus_message_append(reply, "b", m->config.emit_signals);
}

/* ---- methods ------------------------------------------------------------------------------------------ */

static int method_list_guests(sd_bus_message *message, void *userdata, sd_bus_error *error) {
        _cleanup_(sd_bus_message_unrefp) sd_bus_message *reply = NULL;
        Manager *m = userdata;
        _cleanup_free_ Guest **guests = manager_sorted_guests(m);
        int r;

        if (!guests)
                return -ENOMEM;
        r = sd_bus_message_new_method_return(message, &reply);
        if (r < 0)
                return r;
        r = sd_bus_message_open_container(reply, 'a', "(sso)");
        if (r < 0)
                return r;
        for (Guest **g = guests; *g; g++) {
                _cleanup_free_ char *p = guest_bus_path(*g);
                if (!p)
                        return -ENOMEM;
                r = sd_bus_message_append(reply, "(sso)", (*g)->name, (*g)->uuid ? (*g)->uuid : "", p);
                if (r < 0)
                        return r;
        }
        r = sd_bus_message_close_container(reply);
        if (r < 0)
                return r;
        return sd_bus_send(NULL, reply, NULL);
}

static int reply_guest_path(sd_bus_message *message, Guest *g) {
        _cleanup_free_ char *p = guest_bus_path(g);
        if (!p)
                return -ENOMEM;
        return sd_bus_reply_method_return(message, "o", p);
}

/* Reads a guest name argument and finds the guest, or fails with NoSuchGuest. */
static int read_guest(
        sd_bus_message *message, Manager *m, const char **ret_name, Guest **ret, sd_bus_error *error) {
        const char *name;
        int r;

        r = sd_bus_message_read(message, "s", &name);
        if (r < 0)
                return r;
        Guest *g = manager_find_guest(m, name);
        if (!g)
                return sd_bus_error_setf(error, BUS_ERROR_NO_SUCH_GUEST, "No guest named '%s'.", name);
        if (ret_name)
                *ret_name = name;
        *ret = g;
        return 0;
}

static int method_get_guest(sd_bus_message *message, void *userdata, sd_bus_error *error) {
        Guest *g;
        int r;

        r = read_guest(message, userdata, NULL, &g, error);
        if (r < 0)
                return r;
        return reply_guest_path(message, g);
}

static int method_find_nic_by_host_interface(sd_bus_message *message, void *userdata, sd_bus_error *error) {
        Manager *m = userdata;
        const char *ifname, *reason;
        int r;

        r = sd_bus_message_read(message, "s", &ifname);
        if (r < 0)
                return r;
        reason = ifname_invalid_reason(ifname);
        if (reason)
                return sd_bus_error_setf(error, BUS_ERROR_INVALID_ARGUMENT,
                        "Invalid interface name '%s': %s.", ifname, reason);

        for (Guest *g = m->guests; g; g = g->next)
                for (size_t i = 0; i < g->n_nics; i++) {
                        Nic *n = g->nics[i];
                        if (!n->published || !n->host_interface || strcmp(n->host_interface, ifname) != 0)
                                continue;
                        _cleanup_free_ char *p = nic_bus_path(n);
                        if (!p)
                                return -ENOMEM;
                        return sd_bus_reply_method_return(message, "o", p);
                }
        return sd_bus_error_setf(error, BUS_ERROR_NO_SUCH_NIC, "No NIC uses host interface '%s'.", ifname);
}

/* AttachGuest's "nics" option: a{ss} NIC id → host interface, into cfg. Runs before authorization, so
 * it stops at GUEST_NICS_MAX entries: the duplicate check is quadratic in at most that many. */
static int read_nics_option(sd_bus_message *message, GuestConfig *cfg, sd_bus_error *error) {
        const char *id, *ifname, *reason;
        int r;

        r = sd_bus_message_enter_container(message, 'a', "{ss}");
        if (r < 0)
                return r;
        while ((r = sd_bus_message_read(message, "{ss}", &id, &ifname)) > 0) {
                if (cfg->n_nics >= GUEST_NICS_MAX)
                        return sd_bus_error_setf(error, BUS_ERROR_INVALID_ARGUMENT,
                                "Option 'nics' has more than %d entries: a guest has at most %d NICs.",
                                GUEST_NICS_MAX, GUEST_NICS_MAX);
                reason = nic_id_invalid_reason(id);
                if (reason)
                        return sd_bus_error_setf(error, BUS_ERROR_INVALID_ARGUMENT,
                                "Invalid NIC id in option 'nics': %s (1..%d bytes of UTF-8 without '/' or "
                                "control characters).",
                                reason, NIC_ID_MAX);
                reason = ifname_invalid_reason(ifname);
                if (reason)
                        return sd_bus_error_setf(error, BUS_ERROR_INVALID_ARGUMENT,
                                "Invalid host interface '%s' for NIC '%s' in option 'nics': %s.", ifname, id,
                                reason);
                if (guest_config_find_nic(cfg, id))
                        return sd_bus_error_setf(error, BUS_ERROR_INVALID_ARGUMENT,
                                "NIC '%s' appears twice in option 'nics'.", id);
                for (size_t i = 0; i < cfg->n_nics; i++)
                        if (strcmp(cfg->nics[i].host_interface, ifname) == 0)
                                return sd_bus_error_setf(error, BUS_ERROR_INVALID_ARGUMENT,
                                        "Host interface '%s' is given for two NICs in option 'nics' ('%s' "
                                        "and '%s'): a device is driven by one NIC.",
                                        ifname, cfg->nics[i].id, id);

                NicConfig *nics = realloc(cfg->nics, (cfg->n_nics + 1) * sizeof(NicConfig));
                if (!nics)
                        return -ENOMEM;
                cfg->nics = nics;
                nics[cfg->n_nics] =
                        (NicConfig){ .id = strdup(id), .host_interface = strdup(ifname), .trust = -1 };
                cfg->n_nics++;
                if (!nics[cfg->n_nics - 1].id || !nics[cfg->n_nics - 1].host_interface)
                        return -ENOMEM;
        }
        if (r < 0)
                return r;
        return sd_bus_message_exit_container(message);
}

/* AttachGuest's a{sv} options into a new GuestConfig; InvalidArgument says which key and why. Runs
 * before authorization: bounded, and no file system access (which would tell any caller whether a
 * root-only path exists, or block on a FIFO). */
static int read_attach_options(sd_bus_message *message, const char *name, const char *qmp_socket,
        GuestConfig **ret, sd_bus_error *error) {
        static const struct {
                const char *key, *type;
        } known[] = { { "nics", "a{ss}" }, { "trust", "as" }, { "netns", "s" } };
        _cleanup_(guest_config_freep) GuestConfig *cfg = calloc(1, sizeof(GuestConfig));
        unsigned seen = 0;
        int r;

        if (!cfg)
                return -ENOMEM;
        cfg->trust = -1;
        cfg->name = strdup(name);
        cfg->qmp_socket = strdup(qmp_socket);
        cfg->source = strdup("D-Bus AttachGuest()");
        if (!cfg->name || !cfg->qmp_socket || !cfg->source)
                return -ENOMEM;

        r = sd_bus_message_enter_container(message, 'a', "{sv}");
        if (r < 0)
                return r;
        while ((r = sd_bus_message_enter_container(message, 'e', "sv")) > 0) {
                const char *key, *contents;
                size_t k;

                r = sd_bus_message_read(message, "s", &key);
                if (r < 0)
                        return r;
                for (k = 0; k < ELEMENTSOF(known); k++)
                        if (strcmp(key, known[k].key) == 0)
                                break;
                if (k == ELEMENTSOF(known))
                        return sd_bus_error_setf(error, BUS_ERROR_INVALID_ARGUMENT,
                                "Unknown option '%s' (known: nics a{ss}, trust as, netns s).", key);
                if (seen & (1u << k))
                        return sd_bus_error_setf(
                                error, BUS_ERROR_INVALID_ARGUMENT, "Option '%s' is given twice.", key);
                seen |= 1u << k;

                r = sd_bus_message_peek_type(message, NULL, &contents);
                if (r < 0)
                        return r;
                if (strcmp(contents, known[k].type) != 0)
                        return sd_bus_error_setf(error, BUS_ERROR_INVALID_ARGUMENT,
                                "Option '%s' must be of type %s, not %s.", key, known[k].type, contents);
                r = sd_bus_message_enter_container(message, 'v', contents);
                if (r < 0)
                        return r;

                if (strcmp(key, "nics") == 0)
                        r = read_nics_option(message, cfg, error);
                else if (strcmp(key, "trust") == 0) {
                        unsigned trust;
                        r = bus_message_read_trust(message, &trust, error);
                        cfg->trust = (int)trust;
                } else {
                        const char *netns, *reason;
                        r = sd_bus_message_read(message, "s", &netns);
                        if (r < 0)
                                return r;
                        reason = netns_path_invalid_reason(netns);
                        if (reason)
                                return sd_bus_error_setf(error, BUS_ERROR_INVALID_ARGUMENT,
                                        "Invalid option 'netns': %s.", reason);
                        if (free_and_strdup(&cfg->netns, netns) < 0)
                                return -ENOMEM;
                }
                if (r < 0)
                        return r;
                r = sd_bus_message_exit_container(message); /* v */
                if (r >= 0)
                        r = sd_bus_message_exit_container(message); /* e */
                if (r < 0)
                        return r;
        }
        if (r < 0)
                return r;
        r = sd_bus_message_exit_container(message);
        if (r < 0)
                return r;

        *ret = TAKE_PTR(cfg);
        return 0;
}

/* "a,b,c" of the NICs' ids or host interfaces, for polkit details (at most GUEST_NICS_MAX entries). */
static char *join_nic_config(const GuestConfig *cfg, bool host_interfaces) {
        size_t size = 1;
        for (size_t i = 0; i < cfg->n_nics; i++)
                size += strlen(host_interfaces ? cfg->nics[i].host_interface : cfg->nics[i].id) + 1;
        char *s = malloc(size), *p = s;
        if (!s)
                return NULL;
        *p = '\0';
        for (size_t i = 0; i < cfg->n_nics; i++)
                p = stpcpy(stpcpy(p, i > 0 ? "," : ""),
                        host_interfaces ? cfg->nics[i].host_interface : cfg->nics[i].id);
        return s;
}

static int method_attach_guest(sd_bus_message *message, void *userdata, sd_bus_error *error);

/* The socket reaches polkit as a detail and QmpSocket as a property, before and after authorization:
 * a path a unix socket can have, without bytes a log or a terminal would take for something else. */
static const char *qmp_socket_invalid_reason(const char *path) {
        if (strlen(path) >= SUN_PATH_MAX)
                return "too long for a unix socket (at most " SUN_PATH_MAX_TEXT " bytes)";
        if (path[0] != '/')
                return "not an absolute path";
        if (has_control_chars(path))
                return "the path contains control characters";
        return NULL;
}

/* AttachGuest needs manage-guests, with everything that decides which host devices the guest's NICs
 * may drive as details: the socket (whose QEMU is trusted to name its fds), the host interfaces, the
 * namespace. It also needs set-trust whenever the guest's NICs would be trusted: through "trust", or
 * through DefaultTrust=, with or without host interfaces (the QEMU at the socket then drives the devices
 * it holds). Delegating manage-guests alone never changes a host device. */
static int attach_guest_authorize(
        sd_bus_message *message, Manager *m, const GuestConfig *cfg, sd_bus_error *error) {
        unsigned trust = cfg->trust >= 0 ? (unsigned)cfg->trust : m->config.default_trust;
        bool grants_trust = trust != TRUST_NONE;
        _cleanup_free_ char *ids = join_nic_config(cfg, false), *ifnames = join_nic_config(cfg, true),
                            *trust_words = trust_to_string(trust);

        if (!ids || !ifnames || !trust_words)
                return -ENOMEM;

        const char *manage_details[] = { "guest", cfg->name, "qmp_socket", cfg->qmp_socket, "host_interface",
                ifnames, "netns", cfg->netns ? cfg->netns : "", "trust", trust_words, NULL };
        const char *trust_details[] = { "guest", cfg->name, "nic", ids, "host_interface", ifnames, "trust",
                trust_words, NULL };
        const BusPolkitCheck checks[] = {
                { BUS_ACTION_MANAGE_GUESTS, manage_details },
                { BUS_ACTION_SET_TRUST, trust_details },
        };
        return bus_polkit_verify_many_async(
                message, m, checks, grants_trust ? 2 : 1, method_attach_guest, error);
}

static int method_attach_guest(sd_bus_message *message, void *userdata, sd_bus_error *error) {
        _cleanup_(guest_config_freep) GuestConfig *cfg = NULL;
        Manager *m = userdata;
        const char *name, *qmp_socket, *reason;
        Guest *g;
        int r;

        r = sd_bus_message_read(message, "ss", &name, &qmp_socket);
        if (r < 0)
                return r;
        reason = guest_name_invalid_reason(name);
        if (reason)
                return sd_bus_error_setf(
                        error, BUS_ERROR_INVALID_ARGUMENT, "Invalid guest name '%s': %s.", name, reason);
        reason = qmp_socket_invalid_reason(qmp_socket);
        if (reason)
                return sd_bus_error_setf(
                        error, BUS_ERROR_INVALID_ARGUMENT, "Invalid QMP socket path: %s.", reason);
        r = read_attach_options(message, name, qmp_socket, &cfg, error);
        if (r < 0)
                return r;
        if (manager_find_guest(m, name))
                return sd_bus_error_setf(
                        error, BUS_ERROR_INVALID_ARGUMENT, "A guest named '%s' is already attached.", name);

        r = attach_guest_authorize(message, m, cfg, error);
        if (r <= 0)
                return r < 0 ? r : 1;

        /* Authorized: now the namespace may be looked at (without blocking or following links). */
        if (cfg->netns) {
                _cleanup_close_ int fd = -EBADF;
                r = netns_open(cfg->netns, false, &fd);
                if (r < 0)
                        return sd_bus_error_setf(error, BUS_ERROR_INVALID_ARGUMENT,
                                "Option 'netns': cannot use %s: %s.", cfg->netns, netns_open_strerror(r));
        }

        r = manager_attach_guest(m, name, qmp_socket, GUEST_SOURCE_BUS, cfg, &g);
        if (r == -EEXIST)
                return sd_bus_error_setf(
                        error, BUS_ERROR_INVALID_ARGUMENT, "A guest named '%s' is already attached.", name);
        if (r < 0)
                return sd_bus_error_set_errnof(error, r, "Failed to attach guest '%s': %m", name);
        log_guest(g, LOG_INFO, "attached over D-Bus by %s", strna(sd_bus_message_get_sender(message)));
        return reply_guest_path(message, g);
}

static int method_detach_guest(sd_bus_message *message, void *userdata, sd_bus_error *error) {
        Manager *m = userdata;
        const char *name;
        Guest *g;
        int r;

        r = read_guest(message, m, &name, &g, error);
        if (r < 0)
                return r;

        r = bus_polkit_verify_async(message, m, BUS_ACTION_MANAGE_GUESTS,
                (const char *[]){ "guest", name, NULL }, method_detach_guest, error);
        if (r <= 0)
                return r < 0 ? r : 1;

        log_guest(g, LOG_INFO, "detaching on request of %s", strna(sd_bus_message_get_sender(message)));
        manager_detach_guest(m, g);
        return sd_bus_reply_method_return(message, NULL);
}

static int method_resync(sd_bus_message *message, void *userdata, sd_bus_error *error) {
        Manager *m = userdata;
        int r;

        r = bus_polkit_verify_async(message, m, BUS_ACTION_RESYNC, NULL, method_resync, error);
        if (r <= 0)
                return r < 0 ? r : 1;

        /* Guests that are not connected resync by themselves when they connect. */
        for (Guest *g = m->guests; g; g = g->next)
                if (guest_is_connected(g)) {
                        r = guest_query_all_nics(g, "resync");
                        if (r < 0)
                                log_guest_errno(
                                        g, LOG_WARNING, r, "cannot send query-rx-filter for resync: %m");
                }
        return sd_bus_reply_method_return(message, NULL);
}

const sd_bus_vtable bus_manager_vtable[] = {
        SD_BUS_VTABLE_START(0),
        SD_BUS_PROPERTY("Version", "s", property_get_version, 0, SD_BUS_VTABLE_PROPERTY_CONST),
        SD_BUS_PROPERTY("Guests", "ao", property_get_guests, 0, SD_BUS_VTABLE_PROPERTY_EMITS_CHANGE),
        SD_BUS_PROPERTY(
                "DefaultTrust", "as", property_get_default_trust, 0, SD_BUS_VTABLE_PROPERTY_EMITS_CHANGE),
        SD_BUS_PROPERTY("EmitSignals", "b", property_get_emit_signals, 0, SD_BUS_VTABLE_PROPERTY_CONST),
        SD_BUS_METHOD_WITH_ARGS("ListGuests", SD_BUS_NO_ARGS, SD_BUS_RESULT("a(sso)", guests),
                method_list_guests, SD_BUS_VTABLE_UNPRIVILEGED),
        SD_BUS_METHOD_WITH_ARGS("GetGuest", SD_BUS_ARGS("s", name), SD_BUS_RESULT("o", path),
                method_get_guest, SD_BUS_VTABLE_UNPRIVILEGED),
        SD_BUS_METHOD_WITH_ARGS("FindNicByHostInterface", SD_BUS_ARGS("s", ifname), SD_BUS_RESULT("o", path),
                method_find_nic_by_host_interface, SD_BUS_VTABLE_UNPRIVILEGED),
        SD_BUS_METHOD_WITH_ARGS("AttachGuest", SD_BUS_ARGS("s", name, "s", qmp_socket, "a{sv}", options),
                SD_BUS_RESULT("o", path), method_attach_guest, SD_BUS_VTABLE_UNPRIVILEGED),
        SD_BUS_METHOD_WITH_ARGS("DetachGuest", SD_BUS_ARGS("s", name), SD_BUS_NO_RESULT, method_detach_guest,
                SD_BUS_VTABLE_UNPRIVILEGED),
        SD_BUS_METHOD_WITH_ARGS(
                "Resync", SD_BUS_NO_ARGS, SD_BUS_NO_RESULT, method_resync, SD_BUS_VTABLE_UNPRIVILEGED),
        SD_BUS_METHOD_WITH_ARGS("GetMetrics", SD_BUS_NO_ARGS, SD_BUS_RESULT("a(sssa(a{ss}d))", families),
                bus_method_get_metrics, SD_BUS_VTABLE_UNPRIVILEGED),
        SD_BUS_VTABLE_END,
};

/* ---- the object tree ---------------------------------------------------------------------------------- */

static int strv_push_consume(char ***list, size_t *n, char *s) {
        if (!s)
                return -ENOMEM;
        char **l = realloc(*list, (*n + 2) * sizeof(char *));
        if (!l) {
                free(s);
                return -ENOMEM;
        }
        l[(*n)++] = s;
        l[*n] = NULL;
        *list = l;
        return 0;
}

static void strv_freep(char ***list) {
        for (char **s = *list; s && *s; s++)
                free(*s);
        free(*list);
}

/* True when a is b or one of its ancestors ("/" included). */
static bool path_is_ancestor(const char *a, const char *b) {
        size_t l = strlen(a);
        if (strcmp(a, "/") == 0)
                return true;
        return strncmp(a, b, l) == 0 && (b[l] == '/' || b[l] == '\0');
}

/* sd-bus calls this with the path it is listing: for GetManagedObjects with BUS_ROOT_PATH, wanting every
 * object below (it walks registered nodes recursively, but calls us only from the top); for Introspect
 * with the introspected path, wanting only direct children (deeper paths would become child node names
 * with slashes). Guests and NICs are two levels apart ("…/guest/NAME/nic/ID"), so "…/guest/NAME/nic" is
 * listed as the step between them for Introspect, as busctl tree walks it. */
static int enumerate_nodes(sd_bus *bus, const char *path, void *userdata, char ***ret, sd_bus_error *error) {
        _cleanup_(strv_freep) char **list = NULL;
        _cleanup_free_ char *name = NULL;
        Manager *m = userdata;
        bool guests = false, nic_step = false, nics = false;
        size_t n = 0;
        int r;

        if (strcmp(path, BUS_GUESTS_PATH) == 0)
                guests = true;
        else if (path_is_ancestor(path, BUS_GUESTS_PATH))
                guests = nics = true;
        else if (sd_bus_path_decode_many(path, BUS_GUESTS_PATH "/%", &name) > 0)
                nic_step = true;
        else if (sd_bus_path_decode_many(path, BUS_GUESTS_PATH "/%/nic", &name) > 0)
                nics = true;

        for (Guest *g = m->guests; g; g = g->next) {
                if (name && strcmp(g->name, name) != 0)
                        continue;
                if (guests) {
                        r = strv_push_consume(&list, &n, guest_bus_path(g));
                        if (r < 0)
                                return r;
                }
                if (nic_step && g->n_nics > 0) {
                        char *p = NULL;
                        r = strv_push_consume(&list, &n, asprintf(&p, "%s/nic", path) < 0 ? NULL : p);
                        if (r < 0)
                                return r;
                }
                for (size_t i = 0; nics && i < g->n_nics; i++) {
                        if (!g->nics[i]->published)
                                continue;
                        r = strv_push_consume(&list, &n, nic_bus_path(g->nics[i]));
                        if (r < 0)
                                return r;
                }
        }
        *ret = TAKE_PTR(list);
        return 0;
}

int bus_object_resolve(Manager *m, sd_bus_message *message, void **ret, sd_bus_error *error) {
        const char *path = sd_bus_message_get_path(message);
        _cleanup_free_ char *name = NULL, *id = NULL;
        Guest *g;
        Nic *n;

        if (path && strcmp(path, BUS_ROOT_PATH) == 0) {
                *ret = m;
                return 0;
        }
        if (path && sd_bus_path_decode_many(path, BUS_GUESTS_PATH "/%", &name) > 0) {
                if (bus_guest_find(m, path, &g) <= 0)
                        return sd_bus_error_setf(
                                error, BUS_ERROR_NO_SUCH_GUEST, "No guest named '%s'.", name);
                *ret = g;
                return 0;
        }
        if (path && sd_bus_path_decode_many(path, BUS_GUESTS_PATH "/%/nic/%", &name, &id) > 0) {
                if (!manager_find_guest(m, name))
                        return sd_bus_error_setf(
                                error, BUS_ERROR_NO_SUCH_GUEST, "No guest named '%s'.", name);
                if (bus_nic_find(m, path, &n) <= 0)
                        return sd_bus_error_setf(
                                error, BUS_ERROR_NO_SUCH_NIC, "Guest '%s' has no NIC '%s'.", name, id);
                *ret = n;
                return 0;
        }
        return sd_bus_error_setf(error, SD_BUS_ERROR_UNKNOWN_OBJECT, "Unknown object '%s'.", strna(path));
}

/* ---- connection --------------------------------------------------------------------------------------- */

/* Runs before sd-bus's own exit handler closes the bus (higher priority), so callers still waiting for
 * polkit get an answer rather than NoReply. */
static int on_event_exit(sd_event_source *s, void *userdata) {
        bus_polkit_flush(NULL);
        return 0;
}

int manager_bus_connect(Manager *m) {
        _cleanup_(sd_bus_flush_close_unrefp) sd_bus *bus = NULL;
        int r;

        r = sd_bus_open_system(&bus);
        if (r < 0)
                return log_error_errno(r, "Failed to connect to the system bus: %m");
        r = sd_bus_error_add_map(bus_error_map);
        if (r < 0)
                return log_error_errno(r, "Failed to register the bus error map: %m");

        r = sd_bus_add_object_vtable(bus, NULL, BUS_ROOT_PATH, BUS_MANAGER_INTERFACE, bus_manager_vtable, m);
        if (r < 0)
                return log_error_errno(r, "Failed to add the Manager object: %m");
        r = sd_bus_add_object_manager(bus, NULL, BUS_ROOT_PATH);
        if (r < 0)
                return log_error_errno(r, "Failed to add the object manager: %m");
        r = sd_bus_add_node_enumerator(bus, NULL, BUS_GUESTS_PATH, enumerate_nodes, m);
        if (r < 0)
                return log_error_errno(r, "Failed to add the node enumerator: %m");

        r = bus_guest_register(bus, m);
        if (r >= 0)
                r = bus_nic_register(bus, m);
        if (r < 0)
                return log_error_errno(r, "Failed to add the guest and NIC objects: %m");

        /* One instance: the name is requested without queueing (flags 0), and synchronously, so that a
         * second guestnetd learns it is second before it touches any guest or baseline. Any other
         * failure (policy) leaves us running: the objects still publish signals. */
        r = sd_bus_request_name(bus, BUS_NAME, 0);
        if (r == -EEXIST)
                return log_error_errno(r,
                        "Another process owns %s on this bus (a guestnetd already running?); "
                        "refusing to start a second instance.",
                        BUS_NAME);
        if (r < 0)
                log_error_errno(r, "Failed to acquire bus name %s: %m", BUS_NAME);
        else
                log_info("Acquired bus name %s", BUS_NAME);
        r = sd_bus_attach_event(bus, m->event, SD_EVENT_PRIORITY_NORMAL);
        if (r < 0)
                return log_error_errno(r, "Failed to attach the bus to the event loop: %m");
        _cleanup_(sd_event_source_unrefp) sd_event_source *exit_source = NULL;
        r = sd_event_add_exit(m->event, &exit_source, on_event_exit, NULL);
        if (r >= 0)
                r = sd_event_source_set_priority(exit_source, SD_EVENT_PRIORITY_IMPORTANT);
        if (r >= 0)
                r = sd_event_source_set_floating(exit_source, true);
        if (r < 0)
                return log_error_errno(r, "Failed to add the bus exit handler: %m");

        m->bus = TAKE_PTR(bus);
        return 0;
}

void manager_bus_disconnect(Manager *m) {
        if (!m->bus)
                return;
        bus_polkit_flush(m->bus);
        m->bus = sd_bus_flush_close_unref(m->bus);
}

void bus_manager_emit_changed(Manager *m, const char *property, ...) {
        const char *names[8] = {};
        size_t n = 0;
        va_list ap;
        int r;

        if (!bus_manager_bus(m))
                return;
        va_start(ap, property);
        for (const char *p = property; p && n < ELEMENTSOF(names) - 1; p = va_arg(ap, const char *))
                names[n++] = p;
        va_end(ap);

        r = sd_bus_emit_properties_changed_strv(
                bus_manager_bus(m), BUS_ROOT_PATH, BUS_MANAGER_INTERFACE, (char **)names);
        if (r < 0)
                log_debug_errno(r, "Failed to emit PropertiesChanged on the Manager: %m");
}
