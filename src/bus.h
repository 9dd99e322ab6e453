/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* bus.h: the hooks through which the core publishes state on the bus; all are no-ops without a bus. */
#pragma once

#include <json-c/json.h>
#include <stdbool.h>
#include <stdint.h>
#include <systemd/sd-bus.h>

typedef struct Manager Manager;
typedef struct Guest Guest;
typedef struct Nic Nic;

#define BUS_NAME      "io.guestnetd.GuestNet1"
#define BUS_ROOT_PATH "/io/guestnetd/GuestNet1"

#define BUS_MANAGER_INTERFACE BUS_NAME ".Manager"
#define BUS_GUEST_INTERFACE   BUS_NAME ".Guest"
#define BUS_NIC_INTERFACE     BUS_NAME ".Nic"

#define BUS_ERROR_NO_SUCH_GUEST       BUS_NAME ".NoSuchGuest"
#define BUS_ERROR_NO_SUCH_NIC         BUS_NAME ".NoSuchNic"
#define BUS_ERROR_GUEST_NOT_CONNECTED BUS_NAME ".GuestNotConnected"
#define BUS_ERROR_QMP_FAILED          BUS_NAME ".QmpFailed"
#define BUS_ERROR_HOST_SYNC_FAILED    BUS_NAME ".HostSyncFailed"
#define BUS_ERROR_INVALID_ARGUMENT    BUS_NAME ".InvalidArgument"

/* polkit actions (polkit/io.guestnetd.GuestNet1.policy). */
#define BUS_ACTION_MANAGE_GUESTS BUS_NAME ".manage-guests"
#define BUS_ACTION_SET_TRUST     BUS_NAME ".set-trust"
#define BUS_ACTION_RESYNC        BUS_NAME ".resync"

/* The compiled interfaces: the source of truth for the bus and for --bus-introspect. */
extern const sd_bus_vtable bus_manager_vtable[];
extern const sd_bus_vtable bus_guest_vtable[];
extern const sd_bus_vtable bus_nic_vtable[];

/* Our error names with the errno each maps to, for sd_bus_error_add_map() in daemon and clients. */
extern const sd_bus_error_map bus_error_map[];

/* Connects to the system bus (DBUS_SYSTEM_BUS_ADDRESS honoured), registers the object tree and
 * requests BUS_NAME without queueing. -EEXIST: another process owns the name (a second instance must
 * exit); any other failure is returned too and the caller decides whether to run without a bus. */
int manager_bus_connect(Manager *m);
void manager_bus_disconnect(Manager *m);

/* Object paths, malloc'd: BUS_ROOT_PATH/guest/<enc name>[/nic/<enc id>]. NULL on OOM. */
char *guest_bus_path(const Guest *g);
char *nic_bus_path(const Nic *n);

void bus_manager_emit_changed(Manager *m, const char *property, ...) __attribute__((sentinel));

/* ObjectManager InterfacesAdded / InterfacesRemoved (sd-bus does not emit them by itself). Removal is
 * announced while the object still exists. */
void bus_guest_emit_added(Guest *g);
void bus_guest_emit_removed(Guest *g);
void bus_nic_emit_added(Nic *n);
void bus_nic_emit_removed(Nic *n);

/* PropertiesChanged for the named properties (NULL-terminated). */
void bus_guest_emit_changed(Guest *g, const char *property, ...) __attribute__((sentinel));
void bus_nic_emit_changed(Nic *n, const char *property, ...) __attribute__((sentinel));

/* Guest.NetEvent(s event, a{sv} data): the event's fields plus "timestamp" (t, µs). */
void bus_guest_emit_net_event(Guest *g, const char *event, json_object *data, uint64_t timestamp_usec);

/* What one completed sync changed on a NIC, as the core saw it; bus_nic_publish_change_set() decides
 * how that looks on the bus. */
typedef struct NicChangeSet {
        unsigned changed; /* RxFilterField bits vs the previous filter (all for the first) */
        bool sync_state_changed; /* SyncState or LastError */
        bool processed; /* a query-rx-filter reply (not a reconcile of the last filter) */
        const char *outcome; /* sync outcome: observed, applied, partial, failed */
        const char *reason; /* why it was queried: guest, initial, resync, reset */
        char old_mac[18]; /* the MAC before, "" for the first filter */
} NicChangeSet;

/* One change set: one PropertiesChanged with every changed property; RxFilterChanged(filter, changed,
 * sync) for a reply that changed something or one we asked for (any reason but "guest"); MacChanged
 * when the MAC changed. */
void bus_nic_publish_change_set(Nic *n, const NicChangeSet *cs);
/* Nic.HostSyncFailed(s attribute, s error). */
void bus_nic_emit_host_sync_failed(Nic *n, const char *attribute, const char *error);

/* ---- shared by the bus-*.c files ------------------------------------------------------------------ */

/* Manager.GetMetrics() (bus-metrics.c). */
int bus_method_get_metrics(sd_bus_message *message, void *userdata, sd_bus_error *error);

/* Registers the fallback vtable (with its object-find callback) for guests, resp. NICs. */
int bus_guest_register(sd_bus *bus, Manager *m);
int bus_nic_register(sd_bus *bus, Manager *m);

/* m's bus while it is open, else NULL (also for m NULL, a detached guest's): emitting is a no-op then. */
sd_bus *bus_manager_bus(const Manager *m);

/* The object an object path names: 1 and *ret when it exists, 0 when not (a path of another shape or
 * a guest/NIC that is not there). */
int bus_guest_find(Manager *m, const char *path, Guest **ret);
int bus_nic_find(Manager *m, const char *path, Nic **ret);

/* The userdata a method handler for this message's path expects (Manager, Guest or Nic), looked up
 * again; NoSuchGuest / NoSuchNic when it went away meanwhile. For calls answered later (polkit). */
int bus_object_resolve(Manager *m, sd_bus_message *message, void **ret, sd_bus_error *error);

/* Reads an "as" of trust capabilities (mac multicast allmulti promisc, or "all" / "none" alone) into a
 * Trust mask; InvalidArgument naming the bad word otherwise. */
int bus_message_read_trust(sd_bus_message *message, unsigned *ret, sd_bus_error *error);
/* Appends a Trust mask as "as" of capability names. */
int bus_message_append_trust(sd_bus_message *message, unsigned trust);

/* Whether RxFilterChanged, MacChanged, HostSyncFailed and NetEvent go out (EmitSignals=). */
bool bus_signals_enabled(const Manager *m);
