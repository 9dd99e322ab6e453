/* bus.h: the hooks through which the core publishes state on the bus; all are no-ops without a bus. */
#pragma once

#include <json-c/json.h>
#include <stdint.h>

typedef struct Manager Manager;
typedef struct Guest Guest;
typedef struct Nic Nic;

#define BUS_NAME      "io.guestnetd.GuestNet1"
#define BUS_ROOT_PATH "/io/guestnetd/GuestNet1"

/* Connects to the system bus (DBUS_SYSTEM_BUS_ADDRESS honoured), registers the object tree and
 * requests BUS_NAME. A failure is returned; the caller decides whether to run without a bus. */
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

/* One processed change set: one PropertiesChanged with every changed filter property (RxFilterField
 * bits in changed_fields) plus Changes, LastChangeUSec, SyncState, LastError as given in extra
 * (NULL-terminated names, may be empty); then RxFilterChanged(filter, changed, sync). */
void bus_nic_emit_filter_processed(
        Nic *n, unsigned changed_fields, const char *sync, const char *const *extra);
/* Nic.MacChanged(s old, s new, s reason): reason guest, initial, resync, reset. */
void bus_nic_emit_mac_changed(Nic *n, const char *old_mac, const char *new_mac, const char *reason);
/* Nic.HostSyncFailed(s attribute, s error). */
void bus_nic_emit_host_sync_failed(Nic *n, const char *attribute, const char *error);
