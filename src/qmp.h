/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* qmp.h: one QMP connection on sd-event: greeting, capabilities, commands with ids and timeouts, events. */
#pragma once

#include <json-c/json.h>
#include <stdint.h>
#include <sys/types.h>
#include <systemd/sd-event.h>

#include "cleanup.h"

#define QMP_MESSAGE_MAX    (1024 * 1024) /* longest message we accept from a monitor */
#define QMP_JSON_DEPTH_MAX 32 /* deeper nesting is not QMP */
/* Memory json-c may take to parse one message, estimated before it sees the bytes (jsoncost.h). The
 * largest real answer within QMP_MESSAGE_MAX, query-rx-filter listing NICs with 4,096 VLANs each (about
 * 50 of them fit), takes about 17 MiB; the text cap alone would allow 274 MiB (1 MiB of "{},"). */
#define QMP_PARSE_COST_MAX  (24u * 1024 * 1024)
#define QMP_TIMEOUT_DEFAULT (5 * 1000000ULL)
/* A monitor that stops reading must not make us buffer without end: past either bound the
 * connection is closed (and retried with backoff). A guest has at most a few dozen NICs, each with
 * at most one command outstanding. */
#define QMP_PENDING_MAX 512 /* commands awaiting a reply */
#define QMP_OUTPUT_MAX  (256 * 1024) /* bytes written but not yet taken by the monitor */

typedef struct QmpClient QmpClient;

typedef enum QmpState {
        QMP_STATE_DISCONNECTED,
        QMP_STATE_CONNECTING, /* socket connecting, or waiting for the greeting / capabilities reply */
        QMP_STATE_READY,
} QmpState;

/* A failed command: error is a negative errno (-EIO for a QMP error reply, -ETIMEDOUT, -ECONNRESET
 * when the connection went away, -ECANCELED when the client is freed); for QMP errors qmp_class and
 * desc are QEMU's ("GenericError", "invalid net client name: net9"). */
typedef struct QmpError {
        int error;
        const char *qmp_class;
        const char *desc;
} QmpError;

/* Called exactly once per command: with result = the "return" value (borrowed; take a reference to
 * keep it) and err = NULL, or with result = NULL and err set. */
typedef void (*qmp_reply_handler_t)(QmpClient *c, json_object *result, const QmpError *err, void *userdata);
/* An asynchronous event: data (borrowed, may be NULL), timestamp in µs since the epoch. */
typedef void (*qmp_event_handler_t)(
        QmpClient *c, const char *event, json_object *data, uint64_t timestamp_usec, void *userdata);
/* READY after capabilities; DISCONNECTED with a negative errno and a sentence saying why. */
typedef void (*qmp_state_handler_t)(
        QmpClient *c, QmpState state, int error, const char *reason, void *userdata);

int qmp_client_new(sd_event *event, const char *socket_path, qmp_state_handler_t on_state,
        qmp_event_handler_t on_event, void *userdata, QmpClient **ret);
/* Fails every pending command with -ECANCELED (handlers run), closes the socket. Accepts NULL. Must
 * not be called from a reply, event or state handler of the same client: the parser is still using it. */
QmpClient *qmp_client_free(QmpClient *c);
DEFINE_POINTER_CLEANUP_FUNC(QmpClient, qmp_client_free);

/* Starts a non-blocking connect. Completion and failure are reported through on_state. */
int qmp_client_connect(QmpClient *c);
/* Closes the connection: pending commands fail with -ECONNRESET, on_state(DISCONNECTED) is called
 * with error and reason. No-op when already disconnected. */
void qmp_client_disconnect(QmpClient *c, int error, const char *reason);

/* Queues a command; arguments (may be NULL) is consumed. Past QMP_PENDING_MAX or QMP_OUTPUT_MAX the
 * connection is closed (pending handlers run) and -ENOBUFS returned. timeout_usec 0 = QMP_TIMEOUT_DEFAULT.
 * The handler may be NULL. Returns the command id (> 0): the handler will then run exactly once, possibly
 * before this returns (a failed write disconnects). A negative errno (-ENOTCONN unless READY, or
 * greeted for qmp_capabilities) means nothing was queued and the handler never runs. */
int64_t qmp_client_send(QmpClient *c, const char *command, json_object *arguments, uint64_t timeout_usec,
        qmp_reply_handler_t handler, void *userdata);
/* The same with the arguments as JSON text (NULL: none), which must be a serialized object (json-c's
 * output): for a command sent on every change, whose arguments never change. The command name must be
 * plain (lower-case letters, digits, '-', '_'), else -EINVAL. */
int64_t qmp_client_send_text(QmpClient *c, const char *command, const char *arguments, uint64_t timeout_usec,
        qmp_reply_handler_t handler, void *userdata);

QmpState qmp_client_get_state(const QmpClient *c);
const char *qmp_client_get_path(const QmpClient *c);
/* The peer's pid from SO_PEERCRED, or 0 when unknown/not connected. The peer must run as root or as
 * the owner of the socket file, else the connection is refused: a socket in a place we watch is only
 * trusted as far as whoever made it. */
pid_t qmp_client_get_peer_pid(const QmpClient *c);
/* In a reply or event handler: what json-c took to parse the message, as jsoncost.h estimates it. */
size_t qmp_client_get_message_cost(const QmpClient *c);
/* Number of commands awaiting a reply. */
size_t qmp_client_pending(const QmpClient *c);

/* Feeding raw bytes, for tests and fuzzers: runs the stream parser exactly as a socket read would.
 * Returns 0, or a negative errno after disconnecting with the reason. */
int qmp_client_feed(QmpClient *c, const char *data, size_t size);
