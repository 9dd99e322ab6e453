/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* bus-metrics.c: Manager.GetMetrics(): the daemon's state as metric families, built only when asked. */
#include <stdarg.h>

#include "bus.h"
#include "guest.h"
#include "manager.h"
#include "metrics.h"
#include "nic.h"
#include "trust.h"

/* One family: (name, type, help, samples a(a{ss}d)); samples added by the caller between open and close. */
static int family_open(sd_bus_message *reply, const char *name, const char *type, const char *help) {
        int r;

        r = sd_bus_message_open_container(reply, 'r', "sssa(a{ss}d)");
        if (r >= 0)
                r = sd_bus_message_append(reply, "sss", name, type, help);
        if (r >= 0)
                r = sd_bus_message_open_container(reply, 'a', "(a{ss}d)");
        return r;
}

static int family_close(sd_bus_message *reply) {
        int r = sd_bus_message_close_container(reply);
        return r < 0 ? r : sd_bus_message_close_container(reply);
}

/* A sample with NULL-terminated label name/value pairs. */
static int sample(sd_bus_message *reply, double value, ...) {
        const char *k;
        va_list ap;
        int r;

        r = sd_bus_message_open_container(reply, 'r', "a{ss}d");
        if (r >= 0)
                r = sd_bus_message_open_container(reply, 'a', "{ss}");
        va_start(ap, value);
        while (r >= 0 && (k = va_arg(ap, const char *)))
                r = sd_bus_message_append(reply, "{ss}", k, va_arg(ap, const char *));
        va_end(ap);
        if (r >= 0)
                r = sd_bus_message_close_container(reply);
        if (r >= 0)
                r = sd_bus_message_append(reply, "d", value);
        if (r >= 0)
                r = sd_bus_message_close_container(reply);
        return r;
}

#define FOREACH_NIC(m, g, i)                         \
        for (Guest *g = (m)->guests; g; g = g->next) \
                for (size_t i = 0; i < g->n_nics; i++)

static int append_daemon(sd_bus_message *reply, Manager *m) {
        size_t n_nics = 0, n_waiting = 0;
        int r;

        FOREACH_NIC(m, g, i)
        n_nics++;
        for (Nic *n = m->parked_head; n; n = n->parked_next)
                n_waiting++;

        const struct {
                const char *name, *type, *help;
                double value;
        } daemon[] = {
                { "guestnetd_guests", "gauge", "Guests attached.", (double)m->n_guests },
                { "guestnetd_nics", "gauge", "NICs of the attached guests.", (double)n_nics },
                { "guestnetd_jobs_in_flight", "gauge", "Sync jobs queued or running on the worker pool.",
                        (double)worker_pool_outstanding(m->workers) },
                { "guestnetd_jobs_waiting", "gauge", "Sync jobs waiting for room in the worker pool.",
                        (double)n_waiting },
                { "guestnetd_queries_deferred_total", "counter",
                        "query-rx-filter commands deferred by MaxQueriesPerSecond=.",
                        (double)m->n_queries_deferred },
        };
        for (size_t k = 0; k < ELEMENTSOF(daemon); k++) {
                r = family_open(reply, daemon[k].name, daemon[k].type, daemon[k].help);
                if (r >= 0)
                        r = sample(reply, daemon[k].value, NULL);
                if (r >= 0)
                        r = family_close(reply);
                if (r < 0)
                        return r;
        }
        return 0;
}

static int append_guests(sd_bus_message *reply, Manager *m) {
        int r;

        r = family_open(reply, "guestnetd_guest_connected", "gauge",
                "Whether guestnetd is connected to the guest's QMP monitor.");
        for (Guest *g = m->guests; g && r >= 0; g = g->next)
                r = sample(reply, guest_is_connected(g), "guest", g->name, NULL);
        if (r >= 0)
                r = family_close(reply);
        if (r >= 0)
                r = family_open(reply, "guestnetd_guest_reconnects_total", "counter",
                        "Connections to the guest's QMP monitor after the first.");
        for (Guest *g = m->guests; g && r >= 0; g = g->next)
                r = sample(
                        reply, g->n_connects > 0 ? (double)(g->n_connects - 1) : 0, "guest", g->name, NULL);
        if (r >= 0)
                r = family_close(reply);
        return r;
}

static int append_nic_counters(sd_bus_message *reply, Manager *m) {
        int r;

        r = family_open(reply, "guestnetd_nic_changes_total", "counter",
                "RX filter changes of the NIC seen by guestnetd.");
        FOREACH_NIC(m, g, i) {
                if (r >= 0)
                        r = sample(reply, (double)g->nics[i]->changes, "guest", g->name, "nic",
                                g->nics[i]->id, NULL);
        }
        if (r >= 0)
                r = family_close(reply);
        if (r >= 0)
                r = family_open(reply, "guestnetd_nic_last_change_timestamp_seconds", "gauge",
                        "When the NIC's RX filter last changed (only NICs that changed).");
        FOREACH_NIC(m, g, i) {
                if (r >= 0 && g->nics[i]->changes > 0)
                        r = sample(reply, (double)g->nics[i]->last_change_usec / 1e6, "guest", g->name,
                                "nic", g->nics[i]->id, NULL);
        }
        if (r >= 0)
                r = family_close(reply);

        for (int failed = 0; failed <= 1 && r >= 0; failed++) {
                r = family_open(reply,
                        failed ? "guestnetd_nic_host_syncs_failed_total"
                               : "guestnetd_nic_host_syncs_applied_total",
                        "counter",
                        failed ? "Attributes guestnetd failed to change on the NIC's host device."
                               : "Attributes guestnetd changed on the NIC's host device (syncs and "
                                 "reverts).");
                FOREACH_NIC(m, g, i) {
                        const NicMetrics *nm = &g->nics[i]->metrics;
                        for (size_t a = 0; a < HOST_ATTRIBUTES_ALL && r >= 0; a++)
                                r = sample(reply,
                                        (double)(failed ? nm->host_failed[a] : nm->host_applied[a]), "guest",
                                        g->name, "nic", g->nics[i]->id, "attribute", host_attributes[a].name,
                                        NULL);
                }
                if (r >= 0)
                        r = family_close(reply);
        }
        return r;
}

static int append_nic_states(sd_bus_message *reply, Manager *m) {
        int r;

        r = family_open(reply, "guestnetd_nic_trusted", "gauge",
                "Whether the guest may change this capability of the NIC's host device.");
        FOREACH_NIC(m, g, i) {
                unsigned trust = nic_trust(g->nics[i]);
                for (unsigned bit = 1; bit & TRUST_ALL && r >= 0; bit <<= 1)
                        r = sample(reply, (trust & bit) != 0, "guest", g->name, "nic", g->nics[i]->id,
                                "capability", trust_capability_to_string(bit), NULL);
        }
        if (r >= 0)
                r = family_close(reply);
        if (r >= 0)
                r = family_open(reply, "guestnetd_nic_sync_state", "gauge",
                        "The NIC's sync state: 1 for the current one.");
        FOREACH_NIC(m, g, i) {
                for (int s = 0; s < _NIC_SYNC_MAX && r >= 0; s++)
                        r = sample(reply, g->nics[i]->sync_state == (NicSyncState)s, "guest", g->name, "nic",
                                g->nics[i]->id, "state", nic_sync_state_to_string(s), NULL);
        }
        if (r >= 0)
                r = family_close(reply);
        return r;
}

int bus_method_get_metrics(sd_bus_message *message, void *userdata, sd_bus_error *error) {
        _cleanup_(sd_bus_message_unrefp) sd_bus_message *reply = NULL;
        Manager *m = userdata;
        int r;

        r = sd_bus_message_new_method_return(message, &reply);
        if (r >= 0)
                r = sd_bus_message_open_container(reply, 'a', "(sssa(a{ss}d))");
        if (r >= 0)
                r = append_daemon(reply, m);
        if (r >= 0)
                r = append_guests(reply, m);
        if (r >= 0)
                r = append_nic_counters(reply, m);
        if (r >= 0)
                r = append_nic_states(reply, m);
        if (r >= 0)
                r = sd_bus_message_close_container(reply);
        if (r < 0)
                return r;
        return sd_bus_send(NULL, reply, NULL);
}
