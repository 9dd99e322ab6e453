/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* bus-backlog.c: sd-bus queues every message the bus does not read at once, up to 384 Ki messages
 * (BUS_WQUEUE_MAX): a stalled or starved dbus-daemon, and guests that change their filters or QEMUs that
 * send events as fast as they can, would grow our memory for as long as it lags (66 MiB seen in the
 * benchmarks when dbus-daemon fell behind). While it lags, a NIC's signals are held and merged into one
 * set per NIC (heldsignals.h), relayed NetEvents are dropped and counted; once it has caught up the held
 * sets go out, the oldest NIC first, only as many as keep the queue below BUS_BACKLOG_HIGH. */
#include "bus-backlog.h"

#include <inttypes.h>
#include <stdlib.h>

#include "bus.h"
#include "guest.h"
#include "log.h"
#include "manager.h"
#include "nic.h"

static uint64_t bus_queued(Manager *m) {
        uint64_t q = 0;

        if (m->bus)
                (void)sd_bus_get_n_queued_write(m->bus, &q);
        return q;
}

static int on_backlog_timer(sd_event_source *s, uint64_t usec, void *userdata);

static void backlog_arm(Manager *m) {
        BusBacklog *b = &m->backlog;
        int r;

        if (!b->timer) {
                /* Accuracy 1 ms: the default (250 ms) would wait up to a quarter second after the bus
                 * caught up. */
                r = sd_event_add_time_relative(m->event, &b->timer, CLOCK_MONOTONIC, BUS_BACKLOG_RETRY_USEC,
                        1000, on_backlog_timer, m);
                if (r >= 0)
                        (void)sd_event_source_set_description(b->timer, "bus-backlog");
        } else {
                int enabled = SD_EVENT_OFF;
                (void)sd_event_source_get_enabled(b->timer, &enabled);
                if (enabled != SD_EVENT_OFF)
                        return; /* already due */
                r = sd_event_source_set_time_relative(b->timer, BUS_BACKLOG_RETRY_USEC);
                if (r >= 0)
                        r = sd_event_source_set_enabled(b->timer, SD_EVENT_ONESHOT);
        }
        if (r < 0) /* the held sets then go out with the NIC's next change */
                log_warning_errno(r, "Failed to arm the bus backlog timer: %m");
}

bool bus_backlog_check(Manager *m) {
        BusBacklog *b = &m->backlog;
        uint64_t q = bus_queued(m);

        if (!b->active && q >= BUS_BACKLOG_HIGH) {
                b->active = true;
                b->n_sets = b->n_dropped = b->n_forgotten = 0;
                log_warning("The bus is not reading our messages (%" PRIu64 " queued): NIC signals are held "
                            "and merged per NIC, NetEvent signals dropped, until it catches up.",
                        q);
                backlog_arm(m);
        } else if (b->active && q < BUS_BACKLOG_LOW) {
                b->active = false;
                log_info("The bus has caught up: %" PRIu64 " NIC signal sets were merged, %" PRIu64
                         " NetEvent signals dropped, %" PRIu64 " NICs came and went unannounced meanwhile.",
                        b->n_sets, b->n_dropped, b->n_forgotten);
        }
        return b->active;
}

void bus_backlog_hold(Manager *m, Nic *n) {
        BusBacklog *b = &m->backlog;

        b->n_sets++;
        backlog_arm(m); /* armed already, almost always: a cheap look */
        if (n->held_queued)
                return;
        n->held_queued = true;
        n->held_next = NULL;
        nic_ref(n);
        if (b->tail)
                b->tail->held_next = n;
        else
                b->head = n;
        b->tail = n;
}

/* Takes the NIC at *p (prev: the one before it, NULL at the head) out of the list; the caller gets
 * the list's reference. */
static Nic *backlog_take(BusBacklog *b, Nic **p, Nic *prev) {
        Nic *n = *p;

        *p = n->held_next;
        if (b->tail == n)
                b->tail = prev;
        n->held_next = NULL;
        n->held_queued = false;
        return n;
}

static Nic *backlog_pop(BusBacklog *b) {
        return b->head ? backlog_take(b, &b->head, NULL) : NULL;
}

static void backlog_unlink(BusBacklog *b, Nic *n) {
        for (Nic **p = &b->head, *prev = NULL; *p; prev = *p, p = &(*p)->held_next)
                if (*p == n) {
                        nic_unref(backlog_take(b, p, prev));
                        return;
                }
}

void bus_backlog_forget(Manager *m, Nic *n) {
        BusBacklog *b = &m->backlog;

        b->n_forgotten++;
        n->held = held_signals_free(n->held);
        if (n->held_queued)
                backlog_unlink(b, n);
}

bool bus_backlog_pending(const Manager *m) {
        return m->backlog.head;
}

void bus_backlog_flush_guest(Manager *m, Guest *g) {
        BusBacklog *b = &m->backlog;

        g->held = held_signals_free(g->held);
        /* Unlinked where they stand (flushing does not touch the list): one pass, however many. */
        for (Nic **p = &b->head, *prev = NULL; *p;) {
                Nic *n = *p;
                if (n->guest != g) {
                        prev = n;
                        p = &n->held_next;
                        continue;
                }
                backlog_take(b, p, prev);
                bus_nic_flush_held(n);
                nic_unref(n);
        }
}

void bus_backlog_hold_guest(Manager *m) {
        m->backlog.n_sets++;
        backlog_arm(m);
}

void bus_backlog_count_dropped(Manager *m) {
        m->backlog.n_dropped++;
}

static int on_backlog_timer(sd_event_source *s, uint64_t usec, void *userdata) {
        Manager *m = userdata;
        BusBacklog *b = &m->backlog;
        bool guests_held = false;

        if (!bus_backlog_check(m)) {
                while (b->head && bus_queued(m) < BUS_BACKLOG_HIGH) {
                        Nic *n = backlog_pop(b);
                        bus_nic_flush_held(n);
                        nic_unref(n);
                }
                /* Then the guests' properties (Nics after the NICs' InterfacesAdded/Removed). */
                for (Guest *g = m->guests; g; g = g->next)
                        if (g->held && (b->head || bus_queued(m) >= BUS_BACKLOG_HIGH))
                                guests_held = true;
                        else if (g->held)
                                bus_guest_flush_held(g);
        } else
                for (Guest *g = m->guests; g && !guests_held; g = g->next)
                        guests_held = g->held != NULL;
        /* While the bus lags this runs every 10 ms even with nothing held: to see it catch up. */
        if (b->head || b->active || guests_held)
                backlog_arm(m);
        return 0;
}

void bus_backlog_done(Manager *m) {
        BusBacklog *b = &m->backlog;

        for (Nic *n; (n = backlog_pop(b));) {
                n->held = held_signals_free(n->held);
                nic_unref(n);
        }
        b->timer = sd_event_source_disable_unref(b->timer);
        b->active = false;
}
