/* guest.h: one QEMU guest: its QMP connection, reconnects, discovery and its NICs. */
#pragma once

#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>
#include <systemd/sd-event.h>

#include "config.h"
#include "hostdev.h"
#include "log.h"
#include "qmp.h"

typedef struct Manager Manager;
typedef struct Nic Nic;

typedef enum GuestState {
        GUEST_STATE_CONNECTING,
        GUEST_STATE_CONNECTED,
        GUEST_STATE_DISCONNECTED,
        _GUEST_STATE_MAX,
} GuestState;

enum GuestSource {
        GUEST_SOURCE_CONFIG, /* guests.d drop-in */
        GUEST_SOURCE_DIRECTORY, /* NAME.sock in the watched QMP directory */
        GUEST_SOURCE_BUS, /* Manager.AttachGuest */
};
typedef enum GuestSource GuestSource;

#define GUEST_RECONNECT_MIN_USEC (100 * 1000ULL)
#define GUEST_RECONNECT_MAX_USEC (10 * 1000000ULL)

typedef struct Guest {
        unsigned n_ref;
        Manager *manager; /* NULL once detached */
        struct Guest *prev, *next;

        char *name;
        char *qmp_socket;
        GuestSource source;
        GuestConfig *config; /* own copy of the drop-in's NIC settings, or NULL */

        QmpClient *qmp;
        GuestState state;
        /* Bumped on every disconnect; jobs carry the value they started with and drop their result if
         * it moved. Atomic because workers read it. */
        _Atomic uint64_t generation;

        char *uuid, *qemu_name, *qemu_version;
        HostNamespace *netns; /* where its host devices live; NULL: the daemon's own namespace */

        Nic **nics;
        size_t n_nics;

        sd_event_source *reconnect_timer;
        uint64_t backoff_usec;
        bool waiting_for_socket; /* no polling: the QMP directory watch calls guest_socket_appeared() */
} Guest;

#define log_guest(g, level, fmt, ...) log_full((level), "guest %s: " fmt, (g)->name, ##__VA_ARGS__)
#define log_guest_errno(g, level, error, fmt, ...) \
        log_full_errno((level), (error), "guest %s: " fmt, (g)->name, ##__VA_ARGS__)

int guest_new(Manager *m, const char *name, const char *qmp_socket, GuestSource source,
        const GuestConfig *cfg, Guest **ret);
Guest *guest_ref(Guest *g);
Guest *guest_unref(Guest *g);
DEFINE_POINTER_CLEANUP_FUNC(Guest, guest_unref);

/* Starts connecting (and reconnecting with backoff). */
int guest_start(Guest *g);
/* Closes the connection, drops the NICs and timers: the guest is detached. revert: undo our host
 * changes on its devices (not at daemon shutdown: the guest keeps running without us). */
void guest_stop(Guest *g, bool revert);
/* The guest's socket appeared in the watched QMP directory: connect now if we were waiting for it. */
void guest_socket_appeared(Guest *g);

Nic *guest_find_nic(Guest *g, const char *id);
Nic *guest_find_nic_by_qom_path(Guest *g, const char *qom_path);
/* Drops a NIC (unplugged, gone, guest detached); revert: undo our changes on its host device. */
void guest_remove_nic(Guest *g, Nic *n, bool revert);

/* A query-rx-filter without a name: (re)discovers every NIC, re-arms their events and syncs them;
 * reason ("resync", "reset") is what MacChanged will say. */
int guest_query_all_nics(Guest *g, const char *reason);
/* Trust mask for a NIC of this guest: the NIC's Trust=, else the guest's, else DefaultTrust=. */
unsigned guest_nic_trust(Guest *g, const char *nic_id);

/* Dispatches a QMP event through the sorted table in qmp-events.c. */
void qmp_event_dispatch(Guest *g, const char *event, json_object *data, uint64_t timestamp_usec);

typedef void (*qmp_event_func_t)(Guest *g, const char *event, json_object *data, uint64_t timestamp_usec);
typedef struct QmpEventHandler {
        const char *name;
        qmp_event_func_t func;
} QmpEventHandler;
/* The table, exposed so a test can check it is sorted (bsearch depends on it). */
const QmpEventHandler *qmp_event_table(size_t *ret_n);

const char *guest_state_to_string(GuestState s);
