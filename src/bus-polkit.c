/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* bus-polkit.c: asynchronous polkit authorization of privileged method calls.
 *
 * Like systemd's bus_verify_polkit_async(), but small: a PolkitQuery keeps a reference on the method
 * call and walks two asynchronous calls, GetConnectionUnixUser (root needs no polkit) and
 * CheckAuthorization. When authorized, the method handler runs again with the saved message; it finds
 * its query marked authorized and goes ahead. Otherwise the call is answered with the error here. */
#include "bus-polkit.h"

#include <assert.h>
#include <inttypes.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "bus.h"
#include "cleanup.h"
#include "log.h"

#define POLKIT_ALLOW_USER_INTERACTION 1u /* CheckAuthorizationFlags */
#define SENDER_UIDS_MAX               64 /* callers whose uid is remembered */

/* One action to check and its details (key, value, ..., NULL). */
typedef struct PolkitAction {
        char *action;
        char **details;
} PolkitAction;

typedef struct PolkitQuery {
        struct PolkitQuery *prev, *next;
        Manager *manager;
        sd_bus_message *message; /* the method call, answered when the query completes */
        sd_bus_message_handler_t handler;
        PolkitAction actions[BUS_POLKIT_CHECKS_MAX];
        size_t n_actions, current; /* actions[current] is being checked; all before it said yes */
        sd_bus_slot *slot; /* the call in flight */
        bool authorized; /* set while the handler runs again */
        bool linked; /* in queries, counted in n_queries */
        uid_t uid; /* the caller's, once known (UID_UNKNOWN before) */
        char cancellation_id[32]; /* ours, so that a check we stop waiting for is cancelled in polkitd */
} PolkitQuery;

#define UID_UNKNOWN ((uid_t)-1)

/* Queries in flight. Only the loop thread touches sd-bus, so only it touches this list. */
static PolkitQuery *queries;
static size_t n_queries;

/* The uids of the last callers, by unique bus name: the bus never gives a unique name twice, so an entry
 * stays true until the bus goes (bus_polkit_flush()). A caller known here is limited by its uid before
 * any query is made: however many connections one user opens, their calls do not fill the table that
 * everybody's (root's too) must pass through, and root's calls skip it. */
static struct {
        sd_bus *bus;
        char *sender;
        uid_t uid;
} sender_uids[SENDER_UIDS_MAX];
static size_t sender_uids_next; /* the oldest entry, replaced next */

static bool sender_uid_get(sd_bus *bus, const char *sender, uid_t *ret) {
        for (size_t i = 0; i < SENDER_UIDS_MAX; i++)
                if (sender_uids[i].sender && sender_uids[i].bus == bus &&
                        strcmp(sender_uids[i].sender, sender) == 0) {
                        *ret = sender_uids[i].uid;
                        return true;
                }
        return false;
}

static void sender_uid_put(sd_bus *bus, const char *sender, uid_t uid) {
        uid_t known;
        if (sender_uid_get(bus, sender, &known))
                return;
        char *copy = strdup(sender);
        if (!copy)
                return; /* only a cache */
        free(sender_uids[sender_uids_next].sender);
        sender_uids[sender_uids_next].bus = bus;
        sender_uids[sender_uids_next].sender = copy;
        sender_uids[sender_uids_next].uid = uid;
        sender_uids_next = (sender_uids_next + 1) % SENDER_UIDS_MAX;
}

static void sender_uids_forget(sd_bus *bus) {
        for (size_t i = 0; i < SENDER_UIDS_MAX; i++)
                if (!bus || sender_uids[i].bus == bus) {
                        sender_uids[i].sender = mfree(sender_uids[i].sender);
                        sender_uids[i].bus = NULL;
                }
}

/* 0, or (*error set) < 0 when uid already has as many authorizations in progress as one user may. */
static int uid_over_limit(uid_t uid, sd_bus_error *error) {
        size_t n = 0;
        for (PolkitQuery *q = queries; q; q = q->next)
                if (q->uid == uid)
                        n++;
        if (n < BUS_POLKIT_QUERIES_PER_UID_MAX)
                return 0;
        return sd_bus_error_setf(error, SD_BUS_ERROR_LIMITS_EXCEEDED,
                "Too many authorizations in progress for uid %u (%d); wait for their answers.",
                (unsigned)uid, BUS_POLKIT_QUERIES_PER_UID_MAX);
}

static PolkitQuery *polkit_query_free(PolkitQuery *q) {
        if (!q)
                return NULL;
        if (q->prev)
                q->prev->next = q->next;
        else if (queries == q)
                queries = q->next;
        if (q->next)
                q->next->prev = q->prev;
        if (q->linked)
                n_queries--;
        sd_bus_slot_unref(q->slot);
        sd_bus_message_unref(q->message);
        for (size_t i = 0; i < q->n_actions; i++) {
                free(q->actions[i].action);
                for (char **d = q->actions[i].details; d && *d; d++)
                        free(*d);
                free(q->actions[i].details);
        }
        free(q);
        return NULL;
}
DEFINE_POINTER_CLEANUP_FUNC(PolkitQuery, polkit_query_free);

static PolkitQuery *polkit_query_find(sd_bus_message *message) {
        for (PolkitQuery *q = queries; q; q = q->next)
                if (q->message == message)
                        return q;
        return NULL;
}

/* "io.guestnetd.GuestNet1.manage-guests" → "manage guests", for messages a person reads. */
static void action_to_verb(const char *action, char *buf, size_t size) {
        const char *dot = strrchr(action, '.');
        snprintf(buf, size, "%s", dot ? dot + 1 : action);
        for (char *p = buf; *p; p++)
                if (*p == '-')
                        *p = ' ';
}

static const char *polkit_query_action(const PolkitQuery *q) {
        return q->actions[q->current].action;
}

static void polkit_query_reply_error(PolkitQuery *q, const char *name, const char *reason) {
        const char *action = polkit_query_action(q);
        char verb[64];
        int r;

        action_to_verb(action, verb, sizeof(verb));
        r = sd_bus_reply_method_errorf(q->message, name, "%s to %s (polkit action %s)%s%s.",
                strcmp(name, SD_BUS_ERROR_INTERACTIVE_AUTHORIZATION_REQUIRED) == 0
                        ? "Interactive authentication required"
                        : "Not authorized",
                verb, action, reason ? ": " : "", reason ? reason : "");
        if (r < 0)
                log_debug_errno(r, "Failed to answer a call denied by polkit: %m");
}

/* Authorized: run the handler again on the object as it is now. */
static void polkit_query_run(PolkitQuery *q) {
        _cleanup_(sd_bus_error_free) sd_bus_error error = SD_BUS_ERROR_NULL;
        void *userdata;
        int r;

        q->authorized = true;
        r = bus_object_resolve(q->manager, q->message, &userdata, &error);
        if (r >= 0)
                r = sd_bus_message_rewind(q->message, true);
        if (r >= 0)
                r = q->handler(q->message, userdata, &error);
        if (r < 0 || sd_bus_error_is_set(&error)) {
                r = sd_bus_reply_method_errno(q->message, r, &error);
                if (r < 0)
                        log_debug_errno(r, "Failed to send an error reply: %m");
        }
}

static int polkit_query_check_authorization(PolkitQuery *q);

static int on_check_authorization(sd_bus_message *reply, void *userdata, sd_bus_error *ret_error) {
        _cleanup_(polkit_query_freep) PolkitQuery *q = userdata;
        const sd_bus_error *e;
        int authorized, challenge, r;

        q->slot = sd_bus_slot_unref(q->slot);

        e = sd_bus_message_get_error(reply);
        if (e) {
                /* No polkitd, it failed, or nobody answered the authentication in time: the safe answer
                 * is no, and the caller is told which. */
                bool timed_out = sd_bus_error_has_name(e, SD_BUS_ERROR_NO_REPLY);
                if (timed_out) /* nobody waits for it any more: polkitd may close its dialog */
                        (void)sd_bus_call_method_async(sd_bus_message_get_bus(q->message), NULL,
                                "org.freedesktop.PolicyKit1", "/org/freedesktop/PolicyKit1/Authority",
                                "org.freedesktop.PolicyKit1.Authority", "CancelCheckAuthorization", NULL,
                                NULL, "s", q->cancellation_id);
                log_warning("polkit check for %s by uid %u failed, denying: %s", polkit_query_action(q),
                        (unsigned)q->uid, e->message ? e->message : e->name);
                polkit_query_reply_error(q, SD_BUS_ERROR_ACCESS_DENIED,
                        timed_out ? "the authorization was not answered in time"
                                  : "polkit is not available");
                return 0;
        }
        r = sd_bus_message_enter_container(reply, 'r', "bba{ss}");
        if (r >= 0)
                r = sd_bus_message_read(reply, "bb", &authorized, &challenge);
        if (r < 0) {
                log_warning_errno(
                        r, "polkit answered %s with a malformed reply, denying: %m", polkit_query_action(q));
                polkit_query_reply_error(q, SD_BUS_ERROR_ACCESS_DENIED, "malformed reply from polkit");
                return 0;
        }

        if (authorized && q->current + 1 < q->n_actions) {
                /* Every action must say yes: ask about the next one. */
                q->current++;
                r = polkit_query_check_authorization(q);
                if (r < 0) {
                        log_warning_errno(
                                r, "Failed to ask polkit about %s, denying: %m", polkit_query_action(q));
                        polkit_query_reply_error(q, SD_BUS_ERROR_ACCESS_DENIED, "polkit could not be asked");
                } else
                        TAKE_PTR(q); /* the next answer owns it */
        } else if (authorized)
                polkit_query_run(q);
        else if (challenge)
                polkit_query_reply_error(q, SD_BUS_ERROR_INTERACTIVE_AUTHORIZATION_REQUIRED, NULL);
        else
                polkit_query_reply_error(q, SD_BUS_ERROR_ACCESS_DENIED, NULL);
        return 0;
}

static int polkit_query_check_authorization(PolkitQuery *q) {
        _cleanup_(sd_bus_message_unrefp) sd_bus_message *pk = NULL;
        const PolkitAction *a = &q->actions[q->current];
        sd_bus *bus = sd_bus_message_get_bus(q->message);
        int r;

        r = sd_bus_message_new_method_call(bus, &pk, "org.freedesktop.PolicyKit1",
                "/org/freedesktop/PolicyKit1/Authority", "org.freedesktop.PolicyKit1.Authority",
                "CheckAuthorization");
        if (r < 0)
                return r;
        r = sd_bus_message_append(pk, "(sa{sv})s", "system-bus-name", 1, "name", "s",
                sd_bus_message_get_sender(q->message), a->action);
        if (r < 0)
                return r;
        r = sd_bus_message_open_container(pk, 'a', "{ss}");
        if (r < 0)
                return r;
        for (char **d = a->details; d && d[0] && d[1]; d += 2) {
                r = sd_bus_message_append(pk, "{ss}", d[0], d[1]);
                if (r < 0)
                        return r;
        }
        r = sd_bus_message_close_container(pk);
        if (r < 0)
                return r;
        r = sd_bus_message_append(pk, "us",
                sd_bus_message_get_allow_interactive_authorization(q->message) > 0
                        ? POLKIT_ALLOW_USER_INTERACTION
                        : 0u,
                q->cancellation_id);
        if (r < 0)
                return r;
        return sd_bus_call_async(bus, &q->slot, pk, on_check_authorization, q, 0);
}

static int on_connection_unix_user(sd_bus_message *reply, void *userdata, sd_bus_error *ret_error) {
        PolkitQuery *q = userdata;
        uint32_t uid;
        int r;

        q->slot = sd_bus_slot_unref(q->slot);

        /* The bus driver's answer comes from the connection's credentials (SO_PEERCRED), not from /proc,
         * so it cannot be raced. Root is authorized without polkit, as systemd does it. */
        if (!sd_bus_message_is_method_error(reply, NULL) && sd_bus_message_read(reply, "u", &uid) >= 0) {
                sender_uid_put(
                        sd_bus_message_get_bus(q->message), sd_bus_message_get_sender(q->message), uid);
                if (uid == 0) {
                        polkit_query_run(q);
                        polkit_query_free(q);
                        return 0;
                }
                _cleanup_(sd_bus_error_free) sd_bus_error error = SD_BUS_ERROR_NULL;
                if (uid_over_limit(uid, &error) < 0) {
                        r = sd_bus_reply_method_error(q->message, &error);
                        if (r < 0)
                                log_debug_errno(r, "Failed to answer a call over the limit: %m");
                        polkit_query_free(q);
                        return 0;
                }
                q->uid = uid;
        }

        r = polkit_query_check_authorization(q);
        if (r < 0) {
                log_warning_errno(r, "Failed to ask polkit about %s, denying: %m", polkit_query_action(q));
                polkit_query_reply_error(q, SD_BUS_ERROR_ACCESS_DENIED, "polkit could not be asked");
                polkit_query_free(q);
        }
        return 0;
}

static int polkit_action_init(PolkitAction *a, const char *action, const char *const *details) {
        size_t n = 0;

        while (details && details[n])
                n++;
        a->action = strdup(action);
        a->details = calloc(n + 1, sizeof(char *));
        if (!a->action || !a->details)
                return -ENOMEM;
        for (size_t i = 0; i < n; i++)
                if (!(a->details[i] = strdup(details[i])))
                        return -ENOMEM;
        return 0;
}

static size_t queries_of_sender(const char *sender) {
        size_t n = 0;
        for (PolkitQuery *q = queries; q; q = q->next)
                if (strcmp(sd_bus_message_get_sender(q->message), sender) == 0)
                        n++;
        return n;
}

int bus_polkit_verify_many_async(sd_bus_message *message, Manager *m, const BusPolkitCheck *checks,
        size_t n_checks, sd_bus_message_handler_t handler, sd_bus_error *error) {
        _cleanup_(polkit_query_freep) PolkitQuery *q = NULL;
        const char *sender;
        int r;

        assert(n_checks > 0 && n_checks <= BUS_POLKIT_CHECKS_MAX);

        q = polkit_query_find(message);
        if (q) {
                bool authorized = q->authorized;
                q = NULL; /* not ours to free: its callback owns it */
                if (authorized)
                        return 1;
                return sd_bus_error_set(error, SD_BUS_ERROR_FAILED, "Authorization already in progress.");
        }

        sender = sd_bus_message_get_sender(message);
        if (!sender)
                return sd_bus_error_set(error, SD_BUS_ERROR_ACCESS_DENIED, "Caller has no bus name.");

        /* A caller seen before is root (authorized at once) or limited by its uid, however many
         * connections it opens; only a new connection's first calls are limited by their sender. */
        uid_t uid;
        bool uid_known = sender_uid_get(sd_bus_message_get_bus(message), sender, &uid);
        if (uid_known && uid == 0)
                return 1;
        if (uid_known && (r = uid_over_limit(uid, error)) < 0)
                return r;
        if (!uid_known && queries_of_sender(sender) >= BUS_POLKIT_QUERIES_PER_SENDER_MAX)
                return sd_bus_error_setf(error, SD_BUS_ERROR_LIMITS_EXCEEDED,
                        "Too many authorizations in progress for %s (%d); wait for their answers.", sender,
                        BUS_POLKIT_QUERIES_PER_SENDER_MAX);
        /* Each query holds a call to the bus or polkitd; the bus caps the replies one connection may
         * await (128 on the system bus). */
        if (n_queries >= BUS_POLKIT_QUERIES_MAX)
                return sd_bus_error_setf(error, SD_BUS_ERROR_LIMITS_EXCEEDED,
                        "Too many authorizations in progress (%d); try again later.",
                        BUS_POLKIT_QUERIES_MAX);

        q = calloc(1, sizeof(PolkitQuery));
        if (!q)
                return -ENOMEM;
        for (size_t i = 0; i < n_checks; i++) {
                q->n_actions++;
                r = polkit_action_init(&q->actions[i], checks[i].action, checks[i].details);
                if (r < 0)
                        return r;
        }
        q->manager = m;
        q->handler = handler;
        q->message = sd_bus_message_ref(message);
        q->uid = uid_known ? uid : UID_UNKNOWN;
        static uint64_t n_checks_made;
        snprintf(q->cancellation_id, sizeof(q->cancellation_id), "guestnetd-%" PRIu64, ++n_checks_made);

        if (uid_known)
                r = polkit_query_check_authorization(q);
        else
                r = sd_bus_call_method_async(sd_bus_message_get_bus(message), &q->slot,
                        "org.freedesktop.DBus", "/org/freedesktop/DBus", "org.freedesktop.DBus",
                        "GetConnectionUnixUser", on_connection_unix_user, q, "s", sender);
        if (r < 0)
                return r;

        q->next = queries;
        if (queries)
                queries->prev = q;
        q->linked = true;
        queries = TAKE_PTR(q);
        n_queries++;
        return 0;
}

int bus_polkit_verify_async(sd_bus_message *message, Manager *m, const char *action,
        const char *const *details, sd_bus_message_handler_t handler, sd_bus_error *error) {
        return bus_polkit_verify_many_async(
                message, m, &(BusPolkitCheck){ action, details }, 1, handler, error);
}

void bus_polkit_flush(sd_bus *bus) {
        PolkitQuery *next;

        for (PolkitQuery *q = queries; q; q = next) {
                next = q->next;
                if (bus && sd_bus_message_get_bus(q->message) != bus)
                        continue;
                (void)sd_bus_reply_method_errorf(q->message, SD_BUS_ERROR_FAILED,
                        "guestnetd is shutting down; the call was not carried out.");
                polkit_query_free(q);
        }
        sender_uids_forget(bus);
}
