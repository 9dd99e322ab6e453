/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* qmp.c: QMP client: non-blocking unix socket, incremental json-c tokenizer, id-matched replies. */
#include "qmp.h"

#include <inttypes.h>
#include <stdarg.h>
#include <stdbool.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>

#include "jsoncost.h"
#include "log.h"
#include "textbuf.h"

#define QMP_READ_CHUNK       (64 * 1024)
#define QMP_READS_PER_WAKEUP 16 /* then yield to other sources: one chatty monitor can't starve the loop */
#define QMP_GREETING_TIMEOUT (5 * 1000000ULL)

typedef struct QmpCommand QmpCommand;
struct QmpCommand {
        QmpClient *client;
        int64_t id;
        qmp_reply_handler_t handler;
        void *userdata;
        sd_event_source *timeout;
        QmpCommand *prev, *next;
        char name[]; /* for messages */
};

struct QmpClient {
        sd_event *event;
        char *path;
        int fd;
        sd_event_source *io;
        uint32_t io_events; /* as last registered */
        sd_event_source *greeting_timeout;
        sd_event_source *read_more; /* defer: continue reading a monitor that had its share */
        QmpState state;
        bool greeted;
        pid_t peer_pid;

        json_tokener *tokener;
        size_t message_bytes; /* bytes of the message being parsed so far */
        JsonCost message_cost; /* what json-c will take for it */

        char *out;
        size_t out_size, out_offset, out_allocated;

        int64_t next_id;
        QmpCommand *pending_head, *pending_tail;
        size_t n_pending;

        qmp_state_handler_t on_state;
        qmp_event_handler_t on_event;
        void *userdata;
};

/* Edge-triggered: with a thousand busy monitors, level-triggered epoll re-polls every ready socket
 * before each dispatch (O(n) per event). We read until the socket is drained instead (client_read()), or
 * continue from a defer source when a chatty monitor used up its share. EPOLLRDHUP tells a wakeup whose
 * data came with the end of the stream. */
static int client_update_io_events(QmpClient *c) {
        uint32_t events = EPOLLIN | EPOLLRDHUP | EPOLLET;

        if (!c->io)
                return 0;
        if (c->peer_pid < 0)
                events = EPOLLOUT; /* connect() in progress */
        else if (c->out_offset < c->out_size)
                events |= EPOLLOUT;
        /* sd-event re-registers an edge-triggered source on every call (an epoll_ctl per command sent);
         * nothing here needs the edge re-armed: reads go on to EAGAIN or continue from read_more. */
        if (events == c->io_events)
                return 0;
        int r = sd_event_source_set_io_events(c->io, events);
        if (r >= 0)
                c->io_events = events;
        return r;
}

static void command_unlink(QmpCommand *cmd) {
        QmpClient *c = cmd->client;

        if (cmd->prev)
                cmd->prev->next = cmd->next;
        else
                c->pending_head = cmd->next;
        if (cmd->next)
                cmd->next->prev = cmd->prev;
        else
                c->pending_tail = cmd->prev;
        cmd->prev = cmd->next = NULL;
        c->n_pending--;
}

/* Removes the command and runs its handler once; the handler may send more commands or disconnect. */
static void command_finish(QmpCommand *cmd, json_object *result, const QmpError *err) {
        command_unlink(cmd);
        cmd->timeout = sd_event_source_disable_unref(cmd->timeout);
        if (cmd->handler)
                cmd->handler(cmd->client, result, err, cmd->userdata);
        free(cmd);
}

static void fail_all_pending(QmpClient *c, int error, const char *reason) {
        while (c->pending_head) {
                QmpError err = { .error = error, .qmp_class = NULL, .desc = reason };
                command_finish(c->pending_head, NULL, &err);
        }
}

static void client_close_socket(QmpClient *c) {
        c->io = sd_event_source_disable_unref(c->io);
        c->greeting_timeout = sd_event_source_disable_unref(c->greeting_timeout);
        c->read_more = sd_event_source_disable_unref(c->read_more);
        c->fd = safe_close(c->fd);
        json_tokener_reset(c->tokener);
        c->message_bytes = 0;
        c->out_size = c->out_offset = 0;
        c->greeted = false;
        c->peer_pid = -1;
}

void qmp_client_disconnect(QmpClient *c, int error, const char *reason) {
        if (!c || c->state == QMP_STATE_DISCONNECTED)
                return;

        client_close_socket(c);
        c->state = QMP_STATE_DISCONNECTED;
        fail_all_pending(c, -ECONNRESET, reason);
        if (c->on_state)
                c->on_state(c, QMP_STATE_DISCONNECTED, error < 0 ? error : -error, reason, c->userdata);
}

/* Disconnects with a formatted reason; returns the error for `return protocol_error(...)`. */
_printf_(3, 4) static int client_fail(QmpClient *c, int error, const char *format, ...) {
        char reason[256];
        va_list ap;

        va_start(ap, format);
        (void)vsnprintf(reason, sizeof(reason), format, ap);
        va_end(ap);
        qmp_client_disconnect(c, error, reason);
        return error;
}

static int client_flush(QmpClient *c) {
        while (c->out_offset < c->out_size) {
                ssize_t n = send(c->fd, c->out + c->out_offset, c->out_size - c->out_offset,
                        MSG_DONTWAIT | MSG_NOSIGNAL);
                if (n < 0) {
                        if (errno == EAGAIN || errno == EINTR)
                                break;
                        return client_fail(c, -errno, "write to monitor failed: %s", strerror(errno));
                }
                c->out_offset += (size_t)n;
        }
        if (c->out_offset == c->out_size)
                c->out_offset = c->out_size = 0;
        return client_update_io_events(c);
}

/* Room for len more bytes at c->out + c->out_size. */
static int client_queue_output_reserve(QmpClient *c, size_t len) {
        if (c->out_offset > 0 && c->out_offset == c->out_size)
                c->out_offset = c->out_size = 0;
        if (c->out_size + len > c->out_allocated) {
                size_t n = (c->out_size + len) * 2;
                char *p = realloc(c->out, n);
                if (!p)
                        return -ENOMEM;
                c->out = p;
                c->out_allocated = n;
        }
        return 0;
}

static int on_command_timeout(sd_event_source *s, uint64_t usec, void *userdata) {
        QmpCommand *cmd = userdata;
        char desc[160];

        snprintf(desc, sizeof(desc), "%s: no reply from the monitor in time", cmd->name);
        QmpError err = { .error = -ETIMEDOUT, .qmp_class = NULL, .desc = desc };
        command_finish(cmd, NULL, &err);
        return 0;
}

/* A command name goes into the JSON as it is: ours are constants, never a peer's bytes. */
static bool command_name_is_plain(const char *command) {
        if (!command[0])
                return false;
        for (const char *p = command; *p; p++)
                if (!((*p >= 'a' && *p <= 'z') || (*p >= '0' && *p <= '9') || *p == '-' || *p == '_'))
                        return false;
        return true;
}

/* {"execute":COMMAND,"arguments":ARGUMENTS,"id":ID} written straight into the output buffer: one
 * query-rx-filter per guest change, and a json-c object built and serialized for it cost more than
 * the rest of the send. */
static int client_queue_command(QmpClient *c, const char *command, const char *arguments, int64_t id) {
        size_t max = strlen(command) + (arguments ? strlen(arguments) : 0) + 64;
        int r = client_queue_output_reserve(c, max);
        if (r < 0)
                return r;
        TextBuf t = { .buf = c->out + c->out_size, .size = max };
        text_append(&t, "{\"execute\":\"");
        text_append(&t, command);
        if (arguments) {
                text_append(&t, "\",\"arguments\":");
                text_append(&t, arguments);
                text_append(&t, ",\"id\":");
        } else
                text_append(&t, "\",\"id\":");
        text_append_i64(&t, id);
        text_append(&t, "}\r\n");
        if (!text_buf_fits(&t))
                return -ENOBUFS; /* cannot happen: max counts every byte */
        c->out_size += t.len;
        return 0;
}

int64_t qmp_client_send_text(QmpClient *c, const char *command, const char *arguments, uint64_t timeout_usec,
        qmp_reply_handler_t handler, void *userdata) {
        bool capabilities = strcmp(command, "qmp_capabilities") == 0;
        int r;

        if (!command_name_is_plain(command))
                return -EINVAL;
        if (c->fd < 0 || (c->state != QMP_STATE_READY && !(capabilities && c->greeted)))
                return -ENOTCONN;
        if (c->n_pending >= QMP_PENDING_MAX || c->out_size - c->out_offset >= QMP_OUTPUT_MAX) {
                bool replies = c->n_pending >= QMP_PENDING_MAX;
                (void)client_fail(c, -ENOBUFS, "the monitor does not keep up: %s",
                        replies ? "512 commands without a reply" : "256 KiB of commands it does not read");
                return -ENOBUFS;
        }

        size_t name_len = strlen(command);
        QmpCommand *cmd = calloc(1, sizeof(QmpCommand) + name_len + 1);
        if (!cmd)
                return -ENOMEM;
        memcpy(cmd->name, command, name_len + 1);
        cmd->client = c;
        cmd->id = ++c->next_id;
        cmd->handler = handler;
        cmd->userdata = userdata;

        /* The timer first: a command whose send failed must not go out. */
        r = sd_event_add_time_relative(c->event, &cmd->timeout, CLOCK_MONOTONIC,
                timeout_usec ? timeout_usec : QMP_TIMEOUT_DEFAULT, 0, on_command_timeout, cmd);
        if (r >= 0)
                r = client_queue_command(c, command, arguments, cmd->id);
        if (r < 0) {
                sd_event_source_disable_unref(cmd->timeout);
                free(cmd);
                return r;
        }

        cmd->prev = c->pending_tail;
        if (c->pending_tail)
                c->pending_tail->next = cmd;
        else
                c->pending_head = cmd;
        c->pending_tail = cmd;
        c->n_pending++;

        /* From here on the handler owns the outcome: a write failure disconnects, which fails this
         * command like every other pending one. */
        int64_t id = cmd->id;
        (void)client_flush(c);
        return id;
}

int64_t qmp_client_send(QmpClient *c, const char *command, json_object *arguments, uint64_t timeout_usec,
        qmp_reply_handler_t handler, void *userdata) {
        const char *text =
                arguments ? json_object_to_json_string_ext(arguments, JSON_C_TO_STRING_PLAIN) : NULL;
        int64_t r = arguments && !text
                ? -ENOMEM
                : qmp_client_send_text(c, command, text, timeout_usec, handler, userdata);
        json_object_put(arguments);
        return r;
}

static QmpCommand *find_pending(QmpClient *c, int64_t id) {
        /* Replies come in order, so the head almost always matches. */
        for (QmpCommand *cmd = c->pending_head; cmd; cmd = cmd->next)
                if (cmd->id == id)
                        return cmd;
        return NULL;
}

static void on_capabilities_reply(QmpClient *c, json_object *result, const QmpError *err, void *userdata) {
        if (err) {
                if (err->error != -ECONNRESET && err->error != -ECANCELED)
                        (void)client_fail(c, err->error < 0 ? err->error : -EPROTO,
                                "qmp_capabilities failed: %s",
                                err->desc ? err->desc : strerror(-err->error));
                return;
        }
        c->state = QMP_STATE_READY;
        if (c->on_state)
                c->on_state(c, QMP_STATE_READY, 0, NULL, c->userdata);
}

static int handle_greeting(QmpClient *c, json_object *msg) {
        json_object *qmp;

        if (!json_object_object_get_ex(msg, "QMP", &qmp) || !json_object_is_type(qmp, json_type_object))
                return client_fail(c, -EPROTO, "expected the QMP greeting, got another message");

        c->greeted = true;
        c->greeting_timeout = sd_event_source_disable_unref(c->greeting_timeout);
        int64_t r = qmp_client_send(c, "qmp_capabilities", NULL, 0, on_capabilities_reply, NULL);
        return r < 0 ? (int)r : 0;
}

static int handle_reply(QmpClient *c, json_object *msg) {
        json_object *id_obj, *ret_obj, *err_obj;

        if (!json_object_object_get_ex(msg, "id", &id_obj) || !json_object_is_type(id_obj, json_type_int)) {
                log_debug("QMP %s: reply without our id, ignoring", c->path);
                return 0;
        }
        QmpCommand *cmd = find_pending(c, json_object_get_int64(id_obj));
        if (!cmd) {
                /* A reply after its timeout: the handler already ran. */
                log_debug("QMP %s: reply to unknown or timed-out command %" PRId64 ", ignoring", c->path,
                        json_object_get_int64(id_obj));
                return 0;
        }

        if (json_object_object_get_ex(msg, "return", &ret_obj)) {
                command_finish(cmd, ret_obj, NULL);
                return 0;
        }

        json_object *cls = NULL, *desc = NULL;
        if (json_object_object_get_ex(msg, "error", &err_obj) &&
                json_object_is_type(err_obj, json_type_object)) {
                json_object_object_get_ex(err_obj, "class", &cls);
                json_object_object_get_ex(err_obj, "desc", &desc);
        }
        QmpError err = {
                .error = -EIO,
                .qmp_class = json_object_is_type(cls, json_type_string) ? json_object_get_string(cls) : "",
                .desc = json_object_is_type(desc, json_type_string) ? json_object_get_string(desc)
                                                                    : "malformed error reply",
        };
        command_finish(cmd, NULL, &err);
        return 0;
}

static int handle_event(QmpClient *c, json_object *msg, json_object *name) {
        json_object *data = NULL, *ts, *sec, *usec;
        uint64_t timestamp = 0;

        if (!json_object_is_type(name, json_type_string))
                return client_fail(c, -EBADMSG, "event name is not a string");

        (void)json_object_object_get_ex(msg, "data", &data);
        if (json_object_object_get_ex(msg, "timestamp", &ts) &&
                json_object_object_get_ex(ts, "seconds", &sec) &&
                json_object_object_get_ex(ts, "microseconds", &usec) &&
                json_object_is_type(sec, json_type_int) && json_object_is_type(usec, json_type_int) &&
                json_object_get_int64(sec) >= 0 && json_object_get_int64(usec) >= 0)
                timestamp = (uint64_t)json_object_get_int64(sec) * 1000000ULL +
                        (uint64_t)json_object_get_int64(usec);

        if (c->on_event)
                c->on_event(c, json_object_get_string(name), data, timestamp, c->userdata);
        return 0;
}

static int handle_message(QmpClient *c, json_object *msg) {
        json_object *event;

        if (!json_object_is_type(msg, json_type_object))
                return client_fail(c, -EBADMSG, "protocol error: message is a %s, not an object",
                        json_type_to_name(json_object_get_type(msg)));
        if (!c->greeted)
                return handle_greeting(c, msg);
        if (json_object_object_get_ex(msg, "event", &event))
                return handle_event(c, msg, event);
        if (json_object_object_get_ex(msg, "return", NULL) || json_object_object_get_ex(msg, "error", NULL))
                return handle_reply(c, msg);

        log_debug("QMP %s: ignoring a message that is neither event nor reply", c->path);
        return 0;
}

static bool is_json_space(char ch) {
        return ch == ' ' || ch == '\t' || ch == '\r' || ch == '\n';
}

int qmp_client_feed(QmpClient *c, const char *data, size_t size) {
        int r;

        while (size > 0 && c->fd >= 0) {
                if (c->message_bytes == 0) {
                        while (size > 0 && is_json_space(*data))
                                data++, size--;
                        if (size == 0)
                                break;
                        c->message_cost = (JsonCost){};
                }

                /* Never hand the tokenizer more than one byte past the cap, so an oversized message is
                 * rejected without buffering it; nor the byte that would make its objects take more than
                 * QMP_PARSE_COST_MAX (hence one message at a time). */
                size_t chunk = size;
                if (chunk > QMP_MESSAGE_MAX + 1 - c->message_bytes)
                        chunk = QMP_MESSAGE_MAX + 1 - c->message_bytes;
                chunk = json_cost_scan(&c->message_cost, data, chunk, QMP_PARSE_COST_MAX);
                if (c->message_cost.invalid)
                        return client_fail(c, -EBADMSG,
                                "malformed JSON from the monitor: a single quote or '/' outside a string "
                                "(%zu bytes into the message)",
                                c->message_bytes + chunk);
                if (c->message_cost.cost > QMP_PARSE_COST_MAX)
                        return client_fail(c, -EMSGSIZE,
                                "message from the monitor would take more than %u MiB to parse (%zu bytes "
                                "into it): refusing it",
                                QMP_PARSE_COST_MAX >> 20, c->message_bytes + chunk);

                json_object *msg = json_tokener_parse_ex(c->tokener, data, (int)chunk);
                enum json_tokener_error jerr = json_tokener_get_error(c->tokener);
                size_t used = msg ? json_tokener_get_parse_end(c->tokener) : chunk;

                if (!msg && jerr != json_tokener_continue)
                        return client_fail(c, -EBADMSG, "malformed JSON from the monitor: %s",
                                json_tokener_error_desc(jerr));

                c->message_bytes += used;
                data += used;
                size -= used;

                if (!msg) {
                        if (c->message_bytes > QMP_MESSAGE_MAX)
                                return client_fail(c, -EMSGSIZE, "message from the monitor exceeds %u bytes",
                                        (unsigned)QMP_MESSAGE_MAX);
                        continue;
                }

                c->message_bytes = 0;
                r = handle_message(c, msg);
                json_object_put(msg);
                if (r < 0)
                        return r;
        }
        return 0;
}

static int client_read(QmpClient *c, bool to_eagain);

static int on_read_more(sd_event_source *s, void *userdata) {
        (void)client_read(userdata, true);
        return 0;
}

/* The monitor still has data but had its share of this iteration: come back after the others. */
static int client_read_later(QmpClient *c) {
        if (!c->read_more) {
                int r = sd_event_add_defer(c->event, &c->read_more, on_read_more, c);
                if (r < 0)
                        return r;
        }
        return sd_event_source_set_enabled(c->read_more, SD_EVENT_ONESHOT);
}

/* Reads what the socket has. A short read drained it: any data or end of stream that arrives later
 * raises a new edge. Only an end of stream that came with this wakeup's data (to_eagain: EPOLLRDHUP or
 * EPOLLHUP in its events) raises none, so then, and when continuing from read_more, reads go on to
 * EAGAIN or 0. That saves a failing recv() per message on the common path. */
static int client_read(QmpClient *c, bool to_eagain) {
        char buf[QMP_READ_CHUNK];

        for (unsigned i = 0; c->fd >= 0; i++) {
                if (i == QMP_READS_PER_WAKEUP)
                        return client_read_later(c);
                ssize_t n = recv(c->fd, buf, sizeof(buf), MSG_DONTWAIT);
                if (n < 0) {
                        if (errno == EAGAIN || errno == EINTR)
                                return 0;
                        if (errno == ECONNRESET)
                                return client_fail(c, -ECONNRESET, "monitor closed the connection (reset)");
                        return client_fail(c, -errno, "read from monitor failed: %s", strerror(errno));
                }
                if (n == 0)
                        return client_fail(c, -ECONNRESET, "monitor closed the connection");
                int r = qmp_client_feed(c, buf, (size_t)n);
                if (r < 0)
                        return r;
                if ((size_t)n < sizeof(buf) && !to_eagain)
                        return 0;
        }
        return 0;
}

static int on_greeting_timeout(sd_event_source *s, uint64_t usec, void *userdata) {
        QmpClient *c = userdata;
        (void)client_fail(c, -ETIMEDOUT, "no QMP greeting within %llu s", QMP_GREETING_TIMEOUT / 1000000ULL);
        return 0;
}

/* Who listens on the socket: root, or the user who made the socket file (QEMU creates its own). */
static int record_peer(QmpClient *c) {
        struct ucred cred;
        socklen_t len = sizeof(cred);
        struct stat st;

        if (getsockopt(c->fd, SOL_SOCKET, SO_PEERCRED, &cred, &len) < 0)
                return client_fail(c, -errno, "cannot read the monitor's credentials: %s", strerror(errno));
        if (cred.uid != 0 && (stat(c->path, &st) < 0 || st.st_uid != cred.uid))
                return client_fail(c, -EPERM,
                        "the monitor runs as uid %u, which is neither root nor the owner of its socket",
                        (unsigned)cred.uid);
        c->peer_pid = cred.pid;
        return 0;
}

static int on_io(sd_event_source *s, int fd, uint32_t revents, void *userdata) {
        QmpClient *c = userdata;

        if (c->peer_pid < 0) {
                /* Non-blocking connect finished (or failed). */
                int error = 0;
                socklen_t len = sizeof(error);
                if (getsockopt(fd, SOL_SOCKET, SO_ERROR, &error, &len) < 0)
                        error = errno;
                if (error != 0)
                        return client_fail(c, -error, "connect to %s failed: %s", c->path, strerror(error)),
                               0;
                if (record_peer(c) >= 0)
                        (void)client_update_io_events(c);
                return 0;
        }

        if (revents & (EPOLLIN | EPOLLRDHUP)) {
                if (client_read(c, revents & (EPOLLRDHUP | EPOLLHUP | EPOLLERR)) < 0)
                        return 0;
        } else if (revents & (EPOLLHUP | EPOLLERR)) {
                (void)client_fail(c, -ECONNRESET, "monitor hung up");
                return 0;
        }
        if (c->fd >= 0 && (revents & EPOLLOUT))
                (void)client_flush(c);
        return 0;
}

int qmp_client_connect(QmpClient *c) {
        struct sockaddr_un sa = { .sun_family = AF_UNIX };
        int r;

        if (c->state != QMP_STATE_DISCONNECTED)
                return -EALREADY;
        if (strlen(c->path) >= sizeof(sa.sun_path))
                return -ENAMETOOLONG;
        strcpy(sa.sun_path, c->path);

        _cleanup_close_ int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
        if (fd < 0)
                return -errno;

        if (connect(fd, (struct sockaddr *)&sa, sizeof(sa)) < 0 && errno != EINPROGRESS && errno != EAGAIN)
                return -errno;

        /* Even a connect that completed at once is finished in on_io (the socket is writable): the
         * peer is checked there, outside our caller, which must not see the state change under it. */
        r = sd_event_add_io(c->event, &c->io, fd, EPOLLOUT, on_io, c);
        c->io_events = EPOLLOUT;
        if (r < 0)
                return r;
        r = sd_event_add_time_relative(c->event, &c->greeting_timeout, CLOCK_MONOTONIC, QMP_GREETING_TIMEOUT,
                0, on_greeting_timeout, c);
        if (r < 0) {
                c->io = sd_event_source_disable_unref(c->io);
                return r;
        }

        c->fd = TAKE_FD(fd);
        c->state = QMP_STATE_CONNECTING;
        c->peer_pid = -1;
        return 0;
}

int qmp_client_new(sd_event *event, const char *socket_path, qmp_state_handler_t on_state,
        qmp_event_handler_t on_event, void *userdata, QmpClient **ret) {
        _cleanup_(qmp_client_freep) QmpClient *c = NULL;

        c = calloc(1, sizeof(QmpClient));
        if (!c)
                return -ENOMEM;
        c->fd = -EBADF;
        c->peer_pid = -1;
        c->state = QMP_STATE_DISCONNECTED;
        c->event = sd_event_ref(event);
        c->path = strdup(socket_path);
        c->tokener = json_tokener_new_ex(QMP_JSON_DEPTH_MAX);
        if (!c->path || !c->tokener)
                return -ENOMEM;
        /* Not JSON_TOKENER_STRICT: strict mode treats the input as a single JSON text and rejects the
         * next message as trailing garbage. */
        json_tokener_set_flags(c->tokener, JSON_TOKENER_VALIDATE_UTF8);
        c->on_state = on_state;
        c->on_event = on_event;
        c->userdata = userdata;

        *ret = TAKE_PTR(c);
        return 0;
}

QmpClient *qmp_client_free(QmpClient *c) {
        if (!c)
                return NULL;
        client_close_socket(c);
        c->state = QMP_STATE_DISCONNECTED;
        fail_all_pending(c, -ECANCELED, "QMP client freed");
        if (c->tokener)
                json_tokener_free(c->tokener);
        free(c->out);
        free(c->path);
        sd_event_unref(c->event);
        free(c);
        return NULL;
}

QmpState qmp_client_get_state(const QmpClient *c) {
        return c->state;
}

const char *qmp_client_get_path(const QmpClient *c) {
        return c->path;
}

size_t qmp_client_get_message_cost(const QmpClient *c) {
        return c->message_cost.cost;
}

pid_t qmp_client_get_peer_pid(const QmpClient *c) {
        return c->peer_pid > 0 ? c->peer_pid : 0;
}

size_t qmp_client_pending(const QmpClient *c) {
        return c->n_pending;
}
