/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* qmp-events.c: the QMP events guestnetd handles, in a table sorted by name for bsearch. */
#include <inttypes.h>
#include <string.h>

#include "bus.h"
#include "guest.h"
#include "manager.h"
#include "message-ids.h"
#include "nic.h"

/* A relayed event is a signal every subscriber of the bus gets: QEMU's are a few hundred bytes, so one
 * that took more than this to parse is not QEMU's to relay; and a guest's monitor may relay as many a
 * second as MaxQueriesPerSecond= lets it query (0: no limit), with a burst as large as unplugging every
 * NIC of a guest (two events each). The rest are dropped and counted. */
#define NET_EVENT_COST_MAX (16u * 1024u)
#define NET_EVENTS_BURST   (2u * GUEST_NICS_MAX)

static void relay_event(Guest *g, const char *event, json_object *data, uint64_t timestamp_usec) {
        size_t cost = g->qmp ? qmp_client_get_message_cost(g->qmp) : 0;
        unsigned rate = g->manager->config.max_queries_per_second;
        uint64_t now = manager_now(g->manager);
        const char *why = cost > NET_EVENT_COST_MAX                                 ? "too large"
                : !rate_limit_try(&g->net_event_limit, rate, NET_EVENTS_BURST, now) ? "too many"
                                                                                    : NULL;

        if (why) {
                g->n_net_events_dropped++;
                g->net_events_last_drop_usec = now;
                if (!g->net_events_dropping)
                        log_guest_id(g, MESSAGE_ID_MONITOR_MISBEHAVING, LOG_WARNING,
                                "not relaying %s: %s (%zu KiB to parse; at most %u KiB, %u a second): "
                                "dropping such events until one may be relayed again",
                                event, why, cost / 1024, NET_EVENT_COST_MAX / 1024, rate);
                g->net_events_dropping = true;
                return;
        }
        /* A flood at the limit lets an event through now and then: the run of drops is over only when
         * a second has passed without one, so a flood is said once, not at every token. */
        if (g->net_events_dropping && now - g->net_events_last_drop_usec >= 1000000) {
                log_guest(g, LOG_INFO, "relaying events again (%" PRIu64 " dropped so far)",
                        g->n_net_events_dropped);
                g->net_events_dropping = false;
        }
        g->n_net_events_relayed++;
        if (log_max_level >= LOG_DEBUG) /* the text is made only when it is logged */
                log_guest(g, LOG_DEBUG, "network event %s %s", event,
                        data ? json_object_to_json_string(data) : "{}");
        bus_guest_emit_net_event(g, event, data, timestamp_usec);
}

/* NIC_RX_FILTER_CHANGED {name?, path}: the handler only finds the NIC and schedules its query. */
static void on_nic_rx_filter_changed(
        Guest *g, const char *event, json_object *data, uint64_t timestamp_usec) {
        json_object *name = NULL, *path = NULL;
        Nic *n = NULL;

        if (json_object_object_get_ex(data, "name", &name) && json_object_is_type(name, json_type_string))
                n = guest_find_nic(g, json_object_get_string(name));
        if (!n && json_object_object_get_ex(data, "path", &path) &&
                json_object_is_type(path, json_type_string)) {
                /* A NIC without id= is named only by its path: ".../virtio-backend" of the device. */
                char qom[512];
                const char *p = json_object_get_string(path), *suffix = strstr(p, "/virtio-backend");
                size_t len = suffix && suffix[strlen("/virtio-backend")] == '\0' ? (size_t)(suffix - p)
                                                                                 : strlen(p);
                if (len < sizeof(qom)) {
                        memcpy(qom, p, len);
                        qom[len] = '\0';
                        n = guest_find_nic_by_qom_path(g, qom);
                }
        }

        if (n) {
                nic_filter_changed(n);
                return;
        }
        /* A NIC we don't know yet (hotplugged): a query without a name finds it and re-arms it. */
        log_guest(g, LOG_DEBUG, "filter event for unknown NIC %s, querying all NICs",
                name           ? json_object_get_string(name)
                        : path ? json_object_get_string(path)
                               : "(unnamed)");
        (void)guest_query_all_nics(g, "guest");
}

/* DEVICE_DELETED {device?, path}: a virtio NIC sends two, the backend path first, then the device id. */
static void on_device_deleted(Guest *g, const char *event, json_object *data, uint64_t timestamp_usec) {
        json_object *device, *path;
        Nic *n = NULL;

        relay_event(g, event, data, timestamp_usec);
        if (json_object_object_get_ex(data, "device", &device) &&
                json_object_is_type(device, json_type_string))
                n = guest_find_nic(g, json_object_get_string(device));
        if (!n && json_object_object_get_ex(data, "path", &path) &&
                json_object_is_type(path, json_type_string))
                n = guest_find_nic_by_qom_path(g, json_object_get_string(path));
        if (n)
                guest_remove_nic(g, n, true);
}

/* A repeat folds into the full query already asked for: say so once, not once per event. */
static int refresh_log_level(Guest *g) {
        return g->full_query_pending || g->full_query_in_flight ? LOG_DEBUG : LOG_INFO;
}

/* RESET: QEMU silently returns every filter to its reset state without an event; resync them all. */
static void on_reset(Guest *g, const char *event, json_object *data, uint64_t timestamp_usec) {
        log_guest(g, refresh_log_level(g), "guest reset, resyncing all NICs");
        relay_event(g, event, data, timestamp_usec);
        (void)guest_query_all_nics(g, "reset");
}

/* RESUME: the guest runs again. After an incoming migration or a restore, its filters arrived in the
 * migration stream, and QEMU announces none of them: refresh every NIC. */
static void on_resume(Guest *g, const char *event, json_object *data, uint64_t timestamp_usec) {
        log_guest(g, refresh_log_level(g), "guest resumed, resyncing all NICs");
        (void)guest_query_all_nics(g, "resync");
}

/* MIGRATION {status}: "completed" on the destination means the migrated filters are in place. */
static void on_migration(Guest *g, const char *event, json_object *data, uint64_t timestamp_usec) {
        json_object *status;

        if (!json_object_object_get_ex(data, "status", &status) ||
                !json_object_is_type(status, json_type_string) ||
                strcmp(json_object_get_string(status), "completed") != 0)
                return;
        log_guest(g, refresh_log_level(g), "migration completed, resyncing all NICs");
        (void)guest_query_all_nics(g, "resync");
}

/* Events about guest networking that we relay without acting on them. */
static void on_relayed_event(Guest *g, const char *event, json_object *data, uint64_t timestamp_usec) {
        relay_event(g, event, data, timestamp_usec);
}

/* Sorted by name (strcmp order): test-qmp-events fails otherwise. */
static const QmpEventHandler event_table[] = {
        { "DEVICE_DELETED", on_device_deleted },
        { "DEVICE_UNPLUG_GUEST_ERROR", on_relayed_event },
        { "FAILOVER_NEGOTIATED", on_relayed_event },
        { "MIGRATION", on_migration },
        { "NETDEV_STREAM_CONNECTED", on_relayed_event },
        { "NETDEV_STREAM_DISCONNECTED", on_relayed_event },
        { "NIC_RX_FILTER_CHANGED", on_nic_rx_filter_changed },
        { "RESET", on_reset },
        { "RESUME", on_resume },
        { "UNPLUG_PRIMARY", on_relayed_event },
};

const QmpEventHandler *qmp_event_table(size_t *ret_n) {
        *ret_n = ELEMENTSOF(event_table);
        return event_table;
}

static int compare_event_name(const void *key, const void *element) {
        return strcmp(key, ((const QmpEventHandler *)element)->name);
}

void qmp_event_dispatch(Guest *g, const char *event, json_object *data, uint64_t timestamp_usec) {
        const QmpEventHandler *h = bsearch(
                event, event_table, ELEMENTSOF(event_table), sizeof(event_table[0]), compare_event_name);
        if (h)
                h->func(g, event, data, timestamp_usec);
}
