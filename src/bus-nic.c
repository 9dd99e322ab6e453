/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* bus-nic.c: io.guestnetd.GuestNet1.Nic, one object per guest NIC at …/guest/<enc name>/nic/<enc id>. */
#include <stdarg.h>
#include <string.h>

#include "bus-backlog.h"
#include "bus-polkit.h"
#include "bus.h"
#include "guest.h"
#include "log.h"
#include "manager.h"
#include "nic.h"

char *nic_bus_path(const Nic *n) {
        char *p = NULL;
        if (sd_bus_path_encode_many(&p, BUS_ROOT_PATH "/guest/%/nic/%", n->guest->name, n->id) < 0)
                return NULL;
        return p;
}

/* The same, encoded once: every signal of the NIC names it. NULL when out of memory. */
static const char *nic_object_path(Nic *n) {
        if (!n->bus_path)
                n->bus_path = nic_bus_path(n);
        return n->bus_path;
}

int bus_nic_find(Manager *m, const char *path, Nic **ret) {
        _cleanup_free_ char *name = NULL, *id = NULL;
        int r;

        r = sd_bus_path_decode_many(path, BUS_ROOT_PATH "/guest/%/nic/%", &name, &id);
        if (r <= 0)
                return r;
        Guest *g = manager_find_guest(m, name);
        Nic *n = g ? guest_find_nic(g, id) : NULL;
        if (!n || !n->published)
                return 0;
        *ret = n;
        return 1;
}

static int nic_object_find(sd_bus *bus, const char *path, const char *interface, void *userdata,
        void **found, sd_bus_error *error) {
        Nic *n;
        int r;

        r = bus_nic_find(userdata, path, &n);
        if (r <= 0)
                return r;
        *found = n;
        return 1;
}

/* ---- trust -------------------------------------------------------------------------------------------- */

int bus_message_read_trust(sd_bus_message *message, unsigned *ret, sd_bus_error *error) {
        const char *word;
        unsigned trust = 0;
        size_t n = 0;
        bool sole = false;
        int r;

        r = sd_bus_message_enter_container(message, 'a', "s");
        if (r < 0)
                return r;
        while ((r = sd_bus_message_read(message, "s", &word)) > 0) {
                unsigned bit = 0;

                n++;
                if (strcmp(word, "all") == 0 || strcmp(word, "none") == 0) {
                        sole = true;
                        trust = strcmp(word, "all") == 0 ? TRUST_ALL : TRUST_NONE;
                } else {
                        for (unsigned b = 1; b <= TRUST_ALL; b <<= 1)
                                if (strcmp(word, trust_capability_to_string(b)) == 0)
                                        bit = b;
                        if (!bit)
                                return sd_bus_error_setf(error, BUS_ERROR_INVALID_ARGUMENT,
                                        "Unknown trust capability '%s' (allowed: " TRUST_CAPABILITIES_ALLOWED
                                        ").",
                                        word);
                        /* Read before authorization: a repeat ends the list, so it is never longer
                         * than the capabilities there are, and a call held for polkit stays small. */
                        if (trust & bit)
                                return sd_bus_error_setf(error, BUS_ERROR_INVALID_ARGUMENT,
                                        "Trust capability '%s' is given twice.", word);
                        trust |= bit;
                }
                if (sole && n > 1)
                        return sd_bus_error_setf(error, BUS_ERROR_INVALID_ARGUMENT,
                                "Trust 'all' and 'none' must be given alone, not with other capabilities.");
        }
        if (r < 0)
                return r;
        r = sd_bus_message_exit_container(message);
        if (r < 0)
                return r;
        *ret = trust;
        return 0;
}

int bus_message_append_trust(sd_bus_message *message, unsigned trust) {
        int r;

        r = sd_bus_message_open_container(message, 'a', "s");
        for (unsigned b = 1; b <= TRUST_ALL && r >= 0; b <<= 1)
                if (trust & b)
                        r = sd_bus_message_append_basic(message, 's', trust_capability_to_string(b));
        if (r < 0)
                return r;
        return sd_bus_message_close_container(message);
}

/* ---- the filter: one appender per field, shared by the properties and RxFilterChanged -------------------
 */

/* Before the first processed filter (SyncState "pending") nothing is known: Mac is "", the rest reads as an
 * empty filter (false, "normal", empty tables). */
static const RxFilter empty_filter = {};

/* The appenders below use sd_bus_message_append_basic(): sd_bus_message_append() parses its format
 * string on every call, and a change appends a few dozen values to its two signals. */
static int bus_append_bool(sd_bus_message *m, bool b) {
        int v = b;
        return sd_bus_message_append_basic(m, 'b', &v);
}

static int append_mac_table(sd_bus_message *m, const EtherAddr *table, size_t n) {
        char buf[ETHER_ADDR_STRLEN];
        int r;

        r = sd_bus_message_open_container(m, 'a', "s");
        for (size_t i = 0; i < n && r >= 0; i++)
                r = sd_bus_message_append_basic(m, 's', ether_addr_format(&table[i], buf));
        if (r < 0)
                return r;
        return sd_bus_message_close_container(m);
}

static int append_mac(sd_bus_message *m, const RxFilter *f) {
        char buf[ETHER_ADDR_STRLEN];
        return sd_bus_message_append_basic(
                m, 's', f == &empty_filter ? "" : ether_addr_format(&f->main_mac, buf));
}
static int append_promiscuous(sd_bus_message *m, const RxFilter *f) {
        return bus_append_bool(m, f->promiscuous);
}
static int append_unicast_mode(sd_bus_message *m, const RxFilter *f) {
        return sd_bus_message_append_basic(m, 's', rx_mode_to_string(f->unicast));
}
static int append_multicast_mode(sd_bus_message *m, const RxFilter *f) {
        return sd_bus_message_append_basic(m, 's', rx_mode_to_string(f->multicast));
}
static int append_vlan_mode(sd_bus_message *m, const RxFilter *f) {
        return sd_bus_message_append_basic(m, 's', rx_mode_to_string(f->vlan));
}
static int append_unicast_table(sd_bus_message *m, const RxFilter *f) {
        return append_mac_table(m, f->unicast_table, f->n_unicast);
}
static int append_multicast_table(sd_bus_message *m, const RxFilter *f) {
        return append_mac_table(m, f->multicast_table, f->n_multicast);
}
/* Empty in vlan mode "all": 4096 entries that say nothing. */
static int append_vlan_table(sd_bus_message *m, const RxFilter *f) {
        int r;

        r = sd_bus_message_open_container(m, 'a', "q");
        /* Word by word: 64 words instead of 4096 bit tests on every signal. */
        for (unsigned w = 0; f->vlan != RX_MODE_ALL && w < RXFILTER_VLAN_MAX / 64 && r >= 0; w++)
                for (uint64_t bits = f->vlan_bitmap[w]; bits && r >= 0; bits &= bits - 1)
                        r = sd_bus_message_append_basic(
                                m, 'q', &(uint16_t){ (uint16_t)(w * 64 + (unsigned)__builtin_ctzll(bits)) });
        if (r < 0)
                return r;
        return sd_bus_message_close_container(m);
}
static int append_unicast_overflow(sd_bus_message *m, const RxFilter *f) {
        return bus_append_bool(m, f->unicast_overflow);
}
static int append_multicast_overflow(sd_bus_message *m, const RxFilter *f) {
        return bus_append_bool(m, f->multicast_overflow);
}

static const struct {
        RxFilterField field; /* its name: rxfilter_field_to_string() */
        const char *signature;
        int (*append)(sd_bus_message *m, const RxFilter *f);
} filter_fields[] = {
        { RXFILTER_FIELD_MAC, "s", append_mac },
        { RXFILTER_FIELD_PROMISCUOUS, "b", append_promiscuous },
        { RXFILTER_FIELD_UNICAST_MODE, "s", append_unicast_mode },
        { RXFILTER_FIELD_MULTICAST_MODE, "s", append_multicast_mode },
        { RXFILTER_FIELD_VLAN_MODE, "s", append_vlan_mode },
        { RXFILTER_FIELD_UNICAST_TABLE, "as", append_unicast_table },
        { RXFILTER_FIELD_MULTICAST_TABLE, "as", append_multicast_table },
        { RXFILTER_FIELD_VLAN_TABLE, "aq", append_vlan_table },
        { RXFILTER_FIELD_UNICAST_OVERFLOW, "b", append_unicast_overflow },
        { RXFILTER_FIELD_MULTICAST_OVERFLOW, "b", append_multicast_overflow },
};

static const RxFilter *nic_filter(const Nic *n) {
        return n->filter ? n->filter : &empty_filter;
}

/* ---- properties --------------------------------------------------------------------------------------- */

static int property_get_filter_field(sd_bus *bus, const char *path, const char *interface,
        const char *property, sd_bus_message *reply, void *userdata, sd_bus_error *error) {
        Nic *n = userdata;

        for (size_t i = 0; i < ELEMENTSOF(filter_fields); i++)
                if (strcmp(property, rxfilter_field_to_string(filter_fields[i].field)) == 0)
                        return filter_fields[i].append(reply, nic_filter(n));
        return -ENOENT;
}

static int property_get_string(sd_bus *bus, const char *path, const char *interface, const char *property,
        sd_bus_message *reply, void *userdata, sd_bus_error *error) {
        Nic *n = userdata;
        const char *s = strcmp(property, "HostInterfaceKind") == 0 ? hostdev_kind_to_string(n->host_kind)
                                                                   : nic_sync_state_to_string(n->sync_state);
        return sd_bus_message_append_basic(reply, 's', s ? s : "");
}

static int property_get_guest(sd_bus *bus, const char *path, const char *interface, const char *property,
        sd_bus_message *reply, void *userdata, sd_bus_error *error) {
        Nic *n = userdata;
        _cleanup_free_ char *p = guest_bus_path(n->guest);
        if (!p)
                return -ENOMEM;
        return sd_bus_message_append(reply, "o", p);
}

static int property_get_trust(sd_bus *bus, const char *path, const char *interface, const char *property,
        sd_bus_message *reply, void *userdata, sd_bus_error *error) {
        return bus_message_append_trust(reply, nic_trust(userdata));
}

/* ---- methods ------------------------------------------------------------------------------------------ */

/* Details for polkit rules: guest, nic and host_interface when known. */
#define NIC_POLKIT_DETAILS(n)                                         \
        ((const char *[]){ "guest", (n)->guest->name, "nic", (n)->id, \
                (n)->host_interface ? "host_interface" : NULL, (n)->host_interface, NULL })

static int method_set_trust(sd_bus_message *message, void *userdata, sd_bus_error *error) {
        Nic *n = userdata;
        unsigned trust;
        int r;

        r = bus_message_read_trust(message, &trust, error);
        if (r < 0)
                return r;
        r = bus_polkit_verify_async(message, n->guest->manager, BUS_ACTION_SET_TRUST, NIC_POLKIT_DETAILS(n),
                method_set_trust, error);
        if (r <= 0)
                return r < 0 ? r : 1;

        _cleanup_free_ char *s = trust_to_string(trust);
        log_nic(n, LOG_INFO, "trust set to %s by %s", s ? s : "?", sd_bus_message_get_sender(message));
        nic_set_trust(n, trust);
        return sd_bus_reply_method_return(message, NULL);
}

static int method_resync(sd_bus_message *message, void *userdata, sd_bus_error *error) {
        Nic *n = userdata;
        Guest *g = n->guest;
        int r;

        if (!guest_is_connected(g))
                return sd_bus_error_setf(error, BUS_ERROR_GUEST_NOT_CONNECTED,
                        "Guest '%s' is not connected (%s).", g->name, guest_state_to_bus_string(g->state));
        r = bus_polkit_verify_async(
                message, g->manager, BUS_ACTION_RESYNC, NIC_POLKIT_DETAILS(n), method_resync, error);
        if (r <= 0)
                return r < 0 ? r : 1;

        if (!guest_is_connected(g))
                return sd_bus_error_setf(error, BUS_ERROR_GUEST_NOT_CONNECTED,
                        "Guest '%s' is not connected (%s).", g->name, guest_state_to_bus_string(g->state));
        nic_resync(n, "resync");
        return sd_bus_reply_method_return(message, NULL);
}

#define FILTER_PROPERTY(name, signature) \
        SD_BUS_PROPERTY(name, signature, property_get_filter_field, 0, SD_BUS_VTABLE_PROPERTY_EMITS_CHANGE)

const sd_bus_vtable bus_nic_vtable[] = {
        SD_BUS_VTABLE_START(0),
        /* NULL strings read as "" (sd-bus appends a NULL string as the empty one). */
        SD_BUS_PROPERTY("Id", "s", NULL, offsetof(Nic, id), SD_BUS_VTABLE_PROPERTY_CONST),
        SD_BUS_PROPERTY("Guest", "o", property_get_guest, 0, SD_BUS_VTABLE_PROPERTY_CONST),
        SD_BUS_PROPERTY("QomPath", "s", NULL, offsetof(Nic, qom_path), SD_BUS_VTABLE_PROPERTY_CONST),
        SD_BUS_PROPERTY("HostInterface", "s", NULL, offsetof(Nic, host_interface),
                SD_BUS_VTABLE_PROPERTY_EMITS_CHANGE),
        SD_BUS_PROPERTY(
                "HostInterfaceKind", "s", property_get_string, 0, SD_BUS_VTABLE_PROPERTY_EMITS_CHANGE),
        SD_BUS_PROPERTY("ConfiguredMac", "s", NULL, offsetof(Nic, configured_mac),
                SD_BUS_VTABLE_PROPERTY_EMITS_CHANGE),
        FILTER_PROPERTY("Mac", "s"),
        FILTER_PROPERTY("Promiscuous", "b"),
        FILTER_PROPERTY("UnicastMode", "s"),
        FILTER_PROPERTY("MulticastMode", "s"),
        FILTER_PROPERTY("VlanMode", "s"),
        FILTER_PROPERTY("UnicastTable", "as"),
        FILTER_PROPERTY("MulticastTable", "as"),
        FILTER_PROPERTY("VlanTable", "aq"),
        FILTER_PROPERTY("UnicastOverflow", "b"),
        FILTER_PROPERTY("MulticastOverflow", "b"),
        SD_BUS_PROPERTY("Trust", "as", property_get_trust, 0, SD_BUS_VTABLE_PROPERTY_EMITS_CHANGE),
        SD_BUS_PROPERTY("SyncState", "s", property_get_string, 0, SD_BUS_VTABLE_PROPERTY_EMITS_CHANGE),
        SD_BUS_PROPERTY(
                "LastError", "s", NULL, offsetof(Nic, last_error), SD_BUS_VTABLE_PROPERTY_EMITS_CHANGE),
        SD_BUS_PROPERTY("Changes", "t", NULL, offsetof(Nic, changes), SD_BUS_VTABLE_PROPERTY_EMITS_CHANGE),
        SD_BUS_PROPERTY("LastChangeUSec", "t", NULL, offsetof(Nic, last_change_usec),
                SD_BUS_VTABLE_PROPERTY_EMITS_CHANGE),
        SD_BUS_METHOD_WITH_ARGS("SetTrust", SD_BUS_ARGS("as", capabilities), SD_BUS_NO_RESULT,
                method_set_trust, SD_BUS_VTABLE_UNPRIVILEGED),
        SD_BUS_METHOD_WITH_ARGS(
                "Resync", SD_BUS_NO_ARGS, SD_BUS_NO_RESULT, method_resync, SD_BUS_VTABLE_UNPRIVILEGED),
        SD_BUS_SIGNAL_WITH_ARGS(
                "RxFilterChanged", SD_BUS_ARGS("a{sv}", filter, "as", changed, "s", sync), 0),
        SD_BUS_SIGNAL_WITH_ARGS("MacChanged", SD_BUS_ARGS("s", old, "s", new, "s", reason), 0),
        SD_BUS_SIGNAL_WITH_ARGS("HostSyncFailed", SD_BUS_ARGS("s", attribute, "s", error), 0),
        SD_BUS_VTABLE_END,
};

int bus_nic_register(sd_bus *bus, Manager *m) {
        return sd_bus_add_fallback_vtable(
                bus, NULL, BUS_ROOT_PATH "/guest", BUS_NIC_INTERFACE, bus_nic_vtable, nic_object_find, m);
}

/* ---- signals ------------------------------------------------------------------------------------------ */

/* The NIC is published: not removed, and its guest still attached. */
static sd_bus *nic_bus(const Nic *n) {
        /* Not announced yet (its QOM path is being discovered) or gone: no object to speak for. */
        return n->removed || !n->published ? NULL : bus_manager_bus(n->guest->manager);
}

static void nic_emit_interfaces(Nic *n, bool added) {
        const char *p = NULL;
        int r;

        if (!nic_bus(n))
                return;
        p = nic_object_path(n);
        if (!p) {
                log_oom();
                return;
        }
        r = added ? sd_bus_emit_interfaces_added(nic_bus(n), p, BUS_NIC_INTERFACE, NULL)
                  : sd_bus_emit_interfaces_removed(nic_bus(n), p, BUS_NIC_INTERFACE, NULL);
        if (r < 0)
                log_nic(n, LOG_DEBUG, "failed to emit Interfaces%s: %s", added ? "Added" : "Removed",
                        strerror(-r));
}

static HeldSignals *nic_hold(Nic *n);
static void nic_hold_properties(Nic *n, HeldSignals *h, const char *const *names);

void bus_nic_emit_added(Nic *n) {
        HeldSignals *h = nic_hold(n);
        if (h) {
                h->added = true;
                return;
        }
        nic_emit_interfaces(n, true);
}

/* Called while the object still exists. */
void bus_nic_emit_removed(Nic *n) {
        if (n->held && !held_signals_remove(n->held)) {
                /* Appeared and went while the bus lagged: nobody has seen it, nothing to say. */
                bus_backlog_forget(n->manager, n);
                return;
        }
        HeldSignals *h = nic_hold(n);
        if (h) {
                (void)held_signals_remove(h); /* what else it held no longer matters */
                return;
        }
        nic_emit_interfaces(n, false);
}

static void nic_emit_properties_changed(Nic *n, const char **names) {
        const char *p = NULL;
        int r;

        if (!names[0])
                return;
        p = nic_object_path(n);
        if (!p) {
                log_oom();
                return;
        }
        r = sd_bus_emit_properties_changed_strv(nic_bus(n), p, BUS_NIC_INTERFACE, (char **)names);
        if (r < 0)
                log_nic(n, LOG_DEBUG, "failed to emit PropertiesChanged: %s", strerror(-r));
}

void bus_nic_emit_changed(Nic *n, const char *property, ...) {
        const char *names[8] = {};
        size_t k = 0;
        va_list ap;

        if (!nic_bus(n))
                return;
        va_start(ap, property);
        for (const char *s = property; s && k < ELEMENTSOF(names) - 1; s = va_arg(ap, const char *))
                names[k++] = s;
        va_end(ap);
        HeldSignals *h = nic_hold(n);
        if (h) {
                nic_hold_properties(n, h, names);
                return;
        }
        nic_emit_properties_changed(n, names);
}

static int append_rx_filter_changed(
        sd_bus_message *m, const Nic *n, unsigned changed_fields, const char *sync) {
        int r;

        r = sd_bus_message_open_container(m, 'a', "{sv}");
        for (size_t i = 0; i < ELEMENTSOF(filter_fields) && r >= 0; i++) {
                r = sd_bus_message_open_container(m, 'e', "sv");
                if (r >= 0)
                        r = sd_bus_message_append_basic(
                                m, 's', rxfilter_field_to_string(filter_fields[i].field));
                if (r >= 0)
                        r = sd_bus_message_open_container(m, 'v', filter_fields[i].signature);
                if (r >= 0)
                        r = filter_fields[i].append(m, nic_filter(n));
                if (r >= 0)
                        r = sd_bus_message_close_container(m);
                if (r >= 0)
                        r = sd_bus_message_close_container(m);
        }
        if (r >= 0)
                r = sd_bus_message_close_container(m);
        if (r >= 0)
                r = sd_bus_message_open_container(m, 'a', "s");
        for (size_t i = 0; i < ELEMENTSOF(filter_fields) && r >= 0; i++)
                if (changed_fields & filter_fields[i].field)
                        r = sd_bus_message_append_basic(
                                m, 's', rxfilter_field_to_string(filter_fields[i].field));
        if (r >= 0)
                r = sd_bus_message_close_container(m);
        if (r >= 0)
                r = sd_bus_message_append_basic(m, 's', sync);
        return r;
}

/* The NIC's own state that a processed filter changes, for PropertiesChanged built directly. */
static int append_changes(sd_bus_message *m, const Nic *n) {
        return sd_bus_message_append_basic(m, 't', &n->changes);
}
static int append_last_change_usec(sd_bus_message *m, const Nic *n) {
        return sd_bus_message_append_basic(m, 't', &n->last_change_usec);
}
static int append_sync_state(sd_bus_message *m, const Nic *n) {
        const char *s = nic_sync_state_to_string(n->sync_state);
        return sd_bus_message_append_basic(m, 's', s ? s : "");
}
static int append_last_error(sd_bus_message *m, const Nic *n) {
        return sd_bus_message_append_basic(m, 's', n->last_error ? n->last_error : "");
}

static const struct {
        const char *name;
        const char *signature;
        int (*append)(sd_bus_message *m, const Nic *n);
} state_properties[] = {
        { "Changes", "t", append_changes },
        { "LastChangeUSec", "t", append_last_change_usec },
        { "SyncState", "s", append_sync_state },
        { "LastError", "s", append_last_error },
};

static int open_property(sd_bus_message *m, const char *name, const char *signature) {
        int r = sd_bus_message_open_container(m, 'e', "sv");
        if (r >= 0)
                r = sd_bus_message_append_basic(m, 's', name);
        if (r >= 0)
                r = sd_bus_message_open_container(m, 'v', signature);
        return r;
}

static int close_property(sd_bus_message *m) {
        int r = sd_bus_message_close_container(m);
        return r < 0 ? r : sd_bus_message_close_container(m);
}

/* PropertiesChanged for a processed filter: the changed filter fields and the NIC's state in extra
 * (names of state_properties). Built here rather than by sd_bus_emit_properties_changed_strv(), which
 * for every signal walks each prefix of the path, finds the object and looks up every property: most
 * of the daemon's cost per change on the bus. The values are the properties' own (same appenders). */
static int nic_send_filter_properties_changed(
        Nic *n, const char *path, unsigned changed_fields, const char *const *extra) {
        _cleanup_(sd_bus_message_unrefp) sd_bus_message *m = NULL;
        int r;

        r = sd_bus_message_new_signal(
                nic_bus(n), &m, path, "org.freedesktop.DBus.Properties", "PropertiesChanged");
        if (r >= 0)
                r = sd_bus_message_append_basic(m, 's', BUS_NIC_INTERFACE);
        if (r >= 0)
                r = sd_bus_message_open_container(m, 'a', "{sv}");
        for (size_t i = 0; i < ELEMENTSOF(filter_fields) && r >= 0; i++) {
                if (!(changed_fields & filter_fields[i].field))
                        continue;
                r = open_property(
                        m, rxfilter_field_to_string(filter_fields[i].field), filter_fields[i].signature);
                if (r >= 0)
                        r = filter_fields[i].append(m, nic_filter(n));
                if (r >= 0)
                        r = close_property(m);
        }
        for (size_t i = 0; extra && extra[i] && r >= 0; i++)
                for (size_t k = 0; k < ELEMENTSOF(state_properties) && r >= 0; k++) {
                        if (strcmp(extra[i], state_properties[k].name) != 0)
                                continue;
                        r = open_property(m, state_properties[k].name, state_properties[k].signature);
                        if (r >= 0)
                                r = state_properties[k].append(m, n);
                        if (r >= 0)
                                r = close_property(m);
                }
        if (r >= 0)
                r = sd_bus_message_close_container(m);
        if (r >= 0)
                r = sd_bus_message_open_container(m, 'a', "s"); /* nothing invalidated */
        if (r >= 0)
                r = sd_bus_message_close_container(m);
        if (r >= 0)
                r = sd_bus_send(NULL, m, NULL);
        return r;
}

/* PropertiesChanged always goes out: properties are state and stay current with EmitSignals=no. Only
 * the event signals (RxFilterChanged, MacChanged, HostSyncFailed, NetEvent) are switched off. A
 * change set that is not announced (announce false) says only its properties. */
static void nic_emit_filter_processed(
        Nic *n, unsigned changed_fields, const char *sync, const char *const *extra, bool announce) {
        _cleanup_(sd_bus_message_unrefp) sd_bus_message *signal = NULL;
        const char *p = NULL;
        int r;

        if (!nic_bus(n))
                return;
        p = nic_object_path(n);
        if (!p) {
                log_oom();
                return;
        }
        r = changed_fields || (extra && extra[0])
                ? nic_send_filter_properties_changed(n, p, changed_fields, extra)
                : 0;
        if (r < 0)
                log_nic(n, LOG_DEBUG, "failed to emit PropertiesChanged: %s", strerror(-r));

        if (!announce || !bus_signals_enabled(n->guest->manager))
                return;
        r = sd_bus_message_new_signal(nic_bus(n), &signal, p, BUS_NIC_INTERFACE, "RxFilterChanged");
        if (r >= 0)
                r = append_rx_filter_changed(signal, n, changed_fields, sync);
        if (r >= 0)
                r = sd_bus_send(NULL, signal, NULL);
        if (r < 0)
                log_nic(n, LOG_WARNING, "failed to emit RxFilterChanged: %s", strerror(-r));
}

static void nic_emit_signal(Nic *n, const char *member, const char *a, const char *b, const char *c) {
        const char *p = NULL;
        int r;

        if (!nic_bus(n) || !bus_signals_enabled(n->guest->manager))
                return;
        p = nic_object_path(n);
        if (!p) {
                log_oom();
                return;
        }
        r = c ? sd_bus_emit_signal(nic_bus(n), p, BUS_NIC_INTERFACE, member, "sss", a, b, c)
              : sd_bus_emit_signal(nic_bus(n), p, BUS_NIC_INTERFACE, member, "ss", a, b);
        if (r < 0)
                log_nic(n, LOG_WARNING, "failed to emit %s: %s", member, strerror(-r));
}

/* ---- while the bus lags (bus-backlog.c): held, merged, said later -------------------------------- */

/* The NIC's held signals, if what it says now is to be held: while the bus lags, and while anything
 * is held (nothing may overtake it: a NIC made again under the same path must not be announced before
 * the old one's InterfacesRemoved). NULL: say it now. Held sets go out from the backlog's timer. */
static HeldSignals *nic_hold(Nic *n) {
        Manager *m = n->guest->manager;

        if (!nic_bus(n) || (!n->held && !bus_backlog_pending(m) && !bus_backlog_check(m)))
                return NULL;
        if (!n->held && !(n->held = calloc(1, sizeof(HeldSignals)))) {
                log_oom(); /* said now, then */
                return NULL;
        }
        bus_backlog_hold(m, n);
        return n->held;
}

static void nic_hold_properties(Nic *n, HeldSignals *h, const char *const *names) {
        /* The interface has fewer properties than a set holds names: never happens, but never silently. */
        if (held_signals_add_properties(h, names) < 0)
                log_nic(n, LOG_WARNING,
                        "more than %u properties held while the bus lags, some not announced",
                        HELD_PROPERTIES_MAX);
}

static bool is_state_property(const char *name) {
        for (size_t i = 0; i < ELEMENTSOF(state_properties); i++)
                if (strcmp(name, state_properties[i].name) == 0)
                        return true;
        return false;
}

/* InterfacesRemoved of an object that is gone (bus_nic_emit_removed() was called while it existed). */
static void nic_flush_removed(Nic *n) {
        sd_bus *bus = bus_manager_bus(n->manager);
        const char *p = nic_object_path(n);

        if (!bus || !p)
                return;
        int r = sd_bus_emit_interfaces_removed(bus, p, BUS_NIC_INTERFACE, NULL);
        if (r < 0)
                log_nic(n, LOG_DEBUG, "failed to emit InterfacesRemoved: %s", strerror(-r));
}

void bus_nic_flush_held(Nic *n) {
        _cleanup_(held_signals_freep) HeldSignals *h = TAKE_PTR(n->held);
        const char *state[ELEMENTSOF(state_properties) + 1] = {}, *other[HELD_PROPERTIES_MAX + 1] = {};
        size_t n_state = 0, n_other = 0;
        char mac_now[ETHER_ADDR_STRLEN] = "";

        if (h && h->removed) {
                nic_flush_removed(n);
                return;
        }
        if (!h || !nic_bus(n))
                return;
        if (h->added) /* with every property's value now */
                nic_emit_interfaces(n, true);
        for (size_t i = 0; i < h->n_properties; i++) {
                if (is_state_property(h->properties[i]) && n_state < ELEMENTSOF(state) - 1)
                        state[n_state++] = h->properties[i];
                else
                        other[n_other++] = h->properties[i];
        }
        /* The values are read now: the newest filter and state, with everything that changed since the
         * NIC last spoke, and the newest outcome. */
        if (h->filter_fields || n_state > 0 || h->rx_filter_changed)
                nic_emit_filter_processed(n, h->filter_fields, h->outcome, state, h->rx_filter_changed);
        if (n_other > 0)
                nic_emit_properties_changed(n, other);
        if (n->filter)
                ether_addr_format(&n->filter->main_mac, mac_now);
        if (held_signals_mac_changed(h, mac_now))
                nic_emit_signal(n, "MacChanged", h->old_mac, mac_now, h->mac_reason);
        for (size_t i = 0; i < h->n_failures; i++)
                nic_emit_signal(n, "HostSyncFailed", h->failures[i].attribute, h->failures[i].error, NULL);
}

void bus_nic_publish_change_set(Nic *n, const NicChangeSet *cs) {
        const char *extra[5] = {};
        size_t n_extra = 0;

        if (cs->changed) {
                extra[n_extra++] = "Changes";
                extra[n_extra++] = "LastChangeUSec";
        }
        if (cs->sync_state_changed) {
                extra[n_extra++] = "SyncState";
                extra[n_extra++] = "LastError";
        }
        /* A change set is a reply that changed something, or one we asked for (resync, trust, reset). */
        bool asked = cs->reason && strcmp(cs->reason, "guest") != 0;
        bool announce = cs->processed && (cs->changed || cs->sync_state_changed || asked);
        const char *reason = cs->reason ? cs->reason : "guest";
        bool mac_changed = (cs->changed & RXFILTER_FIELD_MAC) && n->filter;

        if (!announce && n_extra == 0 && !mac_changed)
                return; /* nothing to say */
        HeldSignals *h = nic_hold(n);
        if (h) {
                held_signals_add_filter(h, announce ? cs->changed : 0, announce, cs->outcome);
                nic_hold_properties(n, h, extra);
                if (mac_changed)
                        held_signals_add_mac(h, cs->old_mac, reason);
                return;
        }
        if (announce)
                nic_emit_filter_processed(n, cs->changed, cs->outcome, extra, true);
        else if (n_extra > 0 && nic_bus(n))
                nic_emit_properties_changed(n, extra);

        if (mac_changed) {
                char new_mac[ETHER_ADDR_STRLEN];
                nic_emit_signal(n, "MacChanged", cs->old_mac,
                        ether_addr_format(&n->filter->main_mac, new_mac), reason);
        }
}

void bus_nic_emit_host_sync_failed(Nic *n, const char *attribute, const char *error) {
        HeldSignals *h = bus_signals_enabled(n->guest->manager) ? nic_hold(n) : NULL;
        if (h) {
                int r = held_signals_add_failure(h, attribute, error);
                if (r == -E2BIG)
                        log_nic(n, LOG_WARNING,
                                "HostSyncFailed for %s not announced: more than %u attributes held",
                                attribute, HELD_FAILURES_MAX);
                else if (r < 0)
                        log_nic(n, LOG_WARNING, "HostSyncFailed for %s not announced: %s", attribute,
                                strerror(-r));
                return;
        }
        nic_emit_signal(n, "HostSyncFailed", attribute, error, NULL);
}
