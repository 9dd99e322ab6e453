/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* bus-polkit.h: asynchronous polkit authorization of privileged method calls. */
#pragma once

#include <systemd/sd-bus.h>

typedef struct Manager Manager;

#define BUS_POLKIT_CHECKS_MAX 2 /* actions one call may need, all of which must say yes */
/* Authorizations in flight. Each holds one call to the bus or polkitd, and the system bus lets a
 * connection await at most 128 replies: stay well below, and keep one caller from taking them all. */
#define BUS_POLKIT_QUERIES_MAX            64
#define BUS_POLKIT_QUERIES_PER_SENDER_MAX 8 /* a connection whose uid is not known yet */
#define BUS_POLKIT_QUERIES_PER_UID_MAX    8 /* one user, over all its connections */

typedef struct BusPolkitCheck {
        const char *action;
        const char *const *details; /* key, value, ..., NULL; may be NULL */
} BusPolkitCheck;

/* Call from a method handler before it changes anything. Returns
 *   1  authorized: go ahead (the caller is root, or polkit said yes and the handler is being run again);
 *   0  a query is on its way: return 1 from the handler, the reply is sent when the query completes;
 *   <0 error set in *error.
 * On the first call the caller's uid is asked for (root is authorized without polkit, as in systemd),
 * then polkit's CheckAuthorization with the caller's system-bus-name subject, the action, details
 * (NULL-terminated key, value, ... list; may be NULL) and the message's allow-interactive flag.
 * When authorized, the handler is called again with the same message and a freshly looked up userdata
 * (bus_object_resolve()), so it re-validates its arguments and the object against the current state.
 * A challenge becomes InteractiveAuthorizationRequired; a "no", an error or no polkit, AccessDenied.
 * Nothing blocks: both calls are asynchronous. More than BUS_POLKIT_QUERIES_MAX queries in flight,
 * BUS_POLKIT_QUERIES_PER_UID_MAX from one user (over all its connections), or, until a connection's uid
 * is known, BUS_POLKIT_QUERIES_PER_SENDER_MAX from it, are refused with LimitsExceeded. A connection's
 * uid is remembered (the last 64 callers): root's later calls are authorized without any query. */
int bus_polkit_verify_async(sd_bus_message *message, Manager *m, const char *action,
        const char *const *details, sd_bus_message_handler_t handler, sd_bus_error *error);
/* The same for several actions (at most BUS_POLKIT_CHECKS_MAX), asked in order: the handler runs
 * again only when every one said yes; the first that does not answers the call. */
int bus_polkit_verify_many_async(sd_bus_message *message, Manager *m, const BusPolkitCheck *checks,
        size_t n_checks, sd_bus_message_handler_t handler, sd_bus_error *error);

/* Answers every call still waiting for polkit on this bus (NULL: on any bus) because the daemon is
 * going away, and frees them: the pending queries hold the messages, which hold the bus. */
void bus_polkit_flush(sd_bus *bus);
