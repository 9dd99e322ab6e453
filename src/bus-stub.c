/* bus-stub.c: temporary no-op bus hooks until bus-*.c land (removed by then). */
#include <errno.h>
#include <stdlib.h>

#include "bus.h"

int manager_bus_connect(Manager *m) {
        return -EOPNOTSUPP;
}
void manager_bus_disconnect(Manager *m) {
}
char *guest_bus_path(const Guest *g) {
        return NULL;
}
char *nic_bus_path(const Nic *n) {
        return NULL;
}
void bus_manager_emit_changed(Manager *m, const char *property, ...) {
}
void bus_guest_emit_added(Guest *g) {
}
void bus_guest_emit_removed(Guest *g) {
}
void bus_nic_emit_added(Nic *n) {
}
void bus_nic_emit_removed(Nic *n) {
}
void bus_guest_emit_changed(Guest *g, const char *property, ...) {
}
void bus_nic_emit_changed(Nic *n, const char *property, ...) {
}
void bus_guest_emit_net_event(Guest *g, const char *event, json_object *data, uint64_t timestamp_usec) {
}
void bus_nic_emit_filter_processed(
        Nic *n, unsigned changed_fields, const char *sync, const char *const *extra) {
}
void bus_nic_emit_mac_changed(Nic *n, const char *old_mac, const char *new_mac, const char *reason) {
}
void bus_nic_emit_host_sync_failed(Nic *n, const char *attribute, const char *error) {
}
