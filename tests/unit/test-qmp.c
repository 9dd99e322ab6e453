/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* test-qmp.c: QMP framing, greeting, id-matched replies, timeouts, events and disconnects. */
#include <json-c/json.h>
#include <signal.h>
#include <stdarg.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <sys/wait.h>

#include "jsoncost.h"
#include "qmp.h"
#include "tests.h"

typedef struct Peer {
        char dir[64], path[128];
        int listen_fd, fd;
} Peer;

typedef struct Recorder {
        int ready, disconnected, last_error;
        char reason[256];
        int events;
        char last_event[64];
        uint64_t last_timestamp;
        int replies, reply_errors, last_reply_error;
        char last_result[256], last_desc[256];
} Recorder;

static void on_state(QmpClient *c, QmpState state, int error, const char *reason, void *userdata) {
        Recorder *rec = userdata;
        if (state == QMP_STATE_READY)
                rec->ready++;
        else if (state == QMP_STATE_DISCONNECTED) {
                rec->disconnected++;
                rec->last_error = error;
                snprintf(rec->reason, sizeof(rec->reason), "%s", reason ? reason : "");
        }
}

static void on_event(QmpClient *c, const char *event, json_object *data, uint64_t ts, void *userdata) {
        Recorder *rec = userdata;
        rec->events++;
        rec->last_timestamp = ts;
        snprintf(rec->last_event, sizeof(rec->last_event), "%s", event);
}

static void on_reply(QmpClient *c, json_object *result, const QmpError *err, void *userdata) {
        Recorder *rec = userdata;
        rec->replies++;
        if (err) {
                rec->reply_errors++;
                rec->last_reply_error = err->error;
                snprintf(rec->last_desc, sizeof(rec->last_desc), "%s", err->desc ? err->desc : "");
        } else
                snprintf(rec->last_result, sizeof(rec->last_result), "%s",
                        json_object_to_json_string_ext(result, JSON_C_TO_STRING_PLAIN));
}

static int peer_listen(Peer *p) {
        snprintf(p->dir, sizeof(p->dir), "/tmp/test-qmp-XXXXXX");
        if (!mkdtemp(p->dir))
                return -errno;
        snprintf(p->path, sizeof(p->path), "%s/qmp.sock", p->dir);
        struct sockaddr_un sa = { .sun_family = AF_UNIX };
        strcpy(sa.sun_path, p->path);
        p->listen_fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
        p->fd = -1;
        if (p->listen_fd < 0 || bind(p->listen_fd, (struct sockaddr *)&sa, sizeof(sa)) < 0 ||
                listen(p->listen_fd, 4) < 0)
                return -errno;
        return 0;
}

static void peer_close(Peer *p) {
        if (p->fd >= 0)
                close(p->fd);
        if (p->listen_fd >= 0)
                close(p->listen_fd);
        unlink(p->path);
        rmdir(p->dir);
}

static void peer_write(Peer *p, const char *s) {
        size_t len = strlen(s);
        while (len > 0) {
                ssize_t n = write(p->fd, s, len);
                if (n <= 0)
                        return;
                s += n;
                len -= (size_t)n;
        }
}

/* Reads one line the client sent (blocking, with a poll timeout via SO_RCVTIMEO). */
static int peer_read_line(Peer *p, char *buf, size_t size) {
        size_t len = 0;
        while (len + 1 < size) {
                ssize_t n = read(p->fd, buf + len, 1);
                if (n <= 0)
                        return -1;
                if (buf[len] == '\n')
                        break;
                len++;
        }
        buf[len] = '\0';
        return (int)len;
}

static void run_loop(sd_event *e, unsigned iterations) {
        for (unsigned i = 0; i < iterations; i++)
                (void)sd_event_run(e, 20 * 1000);
}

/* Connects a client, serves the greeting and the capabilities reply: the client is READY. */
static int setup(sd_event **e, Peer *p, Recorder *rec, QmpClient **c) {
        char line[512];
        int r;

        memset(rec, 0, sizeof(*rec));
        if ((r = sd_event_new(e)) < 0 || (r = peer_listen(p)) < 0)
                return r;
        if ((r = qmp_client_new(*e, p->path, on_state, on_event, rec, c)) < 0)
                return r;
        if ((r = qmp_client_connect(*c)) < 0)
                return r;
        p->fd = accept4(p->listen_fd, NULL, NULL, SOCK_CLOEXEC);
        if (p->fd < 0)
                return -errno;
        struct timeval tv = { .tv_sec = 2 };
        setsockopt(p->fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv));
        peer_write(p,
                "{\"QMP\": {\"version\": {\"qemu\": {\"major\": 7, \"minor\": 2, \"micro\": 0}, "
                "\"package\": \"\"}, "
                "\"capabilities\": [\"oob\"]}}\r\n");
        run_loop(*e, 3);
        if (peer_read_line(p, line, sizeof(line)) < 0 || !strstr(line, "qmp_capabilities"))
                return -EPROTO;
        peer_write(p, "{\"return\": {}, \"id\": 1}\r\n");
        run_loop(*e, 3);
        return rec->ready == 1 ? 0 : -EPROTO;
}

static void teardown(sd_event *e, Peer *p, QmpClient *c) {
        qmp_client_free(c);
        peer_close(p);
        sd_event_unref(e);
}

TEST(greeting_and_capabilities) {
        sd_event *e;
        Peer p;
        Recorder rec;
        QmpClient *c;

        ASSERT_OK(setup(&e, &p, &rec, &c));
        ASSERT_INT_EQ(qmp_client_get_state(c), QMP_STATE_READY);
        ASSERT_INT_EQ(qmp_client_get_peer_pid(c), getpid());
        teardown(e, &p, c);
}

TEST(command_before_ready_is_refused) {
        sd_event *e;
        Recorder rec = { 0 };
        QmpClient *c;

        ASSERT_OK(sd_event_new(&e));
        ASSERT_OK(qmp_client_new(e, "/nonexistent/qmp.sock", on_state, on_event, &rec, &c));
        ASSERT_ERROR(qmp_client_send(c, "query-name", NULL, 0, on_reply, &rec), ENOTCONN);
        ASSERT_ERROR(qmp_client_connect(c), ENOENT);
        ASSERT_INT_EQ(rec.replies, 0);
        qmp_client_free(c);
        sd_event_unref(e);
}

TEST(replies_matched_by_id_out_of_order) {
        sd_event *e;
        Peer p;
        Recorder rec;
        QmpClient *c;
        char line[512];
        Recorder r1 = { 0 }, r2 = { 0 };

        ASSERT_OK(setup(&e, &p, &rec, &c));
        int64_t id1 = qmp_client_send(c, "query-name", NULL, 0, on_reply, &r1);
        int64_t id2 = qmp_client_send(c, "query-uuid", NULL, 0, on_reply, &r2);
        ASSERT_TRUE(id1 > 0 && id2 > id1);
        ASSERT_TRUE(peer_read_line(&p, line, sizeof(line)) > 0);
        ASSERT_STR_CONTAINS(line, "\"execute\":\"query-name\"");
        ASSERT_TRUE(peer_read_line(&p, line, sizeof(line)) > 0);
        ASSERT_STR_CONTAINS(line, "\"execute\":\"query-uuid\"");
        ASSERT_INT_EQ(qmp_client_pending(c), 2);

        char reply[256];
        snprintf(reply, sizeof(reply), "{\"return\": {\"UUID\": \"u\"}, \"id\": %lld}\r\n", (long long)id2);
        peer_write(&p, reply);
        snprintf(reply, sizeof(reply), "{\"return\": {\"name\": \"n\"}, \"id\": %lld}\r\n", (long long)id1);
        peer_write(&p, reply);
        run_loop(e, 3);
        ASSERT_INT_EQ(r1.replies, 1);
        ASSERT_INT_EQ(r2.replies, 1);
        ASSERT_STR_EQ(r1.last_result, "{\"name\":\"n\"}");
        ASSERT_STR_EQ(r2.last_result, "{\"UUID\":\"u\"}");
        ASSERT_INT_EQ(qmp_client_pending(c), 0);
        teardown(e, &p, c);
}

/* Commands are written as text, not through a json-c object: what the monitor reads must still be one
 * JSON object per line with exactly our fields, arguments escaped as json-c escapes them. */
TEST(commands_reach_the_monitor_as_exact_json) {
        sd_event *e;
        Peer p;
        Recorder rec, r1 = { 0 }, r2 = { 0 };
        QmpClient *c;
        char line[512];

        ASSERT_OK(setup(&e, &p, &rec, &c));
        json_object *args = json_object_new_object();
        json_object_object_add(args, "name", json_object_new_string("net\"0\\\n"));
        int64_t id1 = qmp_client_send(c, "query-rx-filter", args, 0, on_reply, &r1);
        int64_t id2 = qmp_client_send_text(c, "query-name", NULL, 0, on_reply, &r2);
        ASSERT_TRUE(id1 > 0 && id2 == id1 + 1);
        ASSERT_ERROR(qmp_client_send_text(c, "query\"name", NULL, 0, on_reply, &r2), EINVAL);
        ASSERT_ERROR(qmp_client_send_text(c, "", NULL, 0, on_reply, &r2), EINVAL);
        ASSERT_INT_EQ(qmp_client_pending(c), 2);

        int64_t ids[2] = { id1, id2 };
        for (int i = 0; i < 2; i++) {
                ASSERT_TRUE(peer_read_line(&p, line, sizeof(line)) > 0);
                ASSERT_TRUE(strlen(line) >= 1 && line[strlen(line) - 1] == '\r');
                line[strlen(line) - 1] = '\0';
                /* Byte for byte what json-c writes for the same command, nothing after it. */
                char expected[256];
                snprintf(expected, sizeof(expected),
                        i == 0 ? "{\"execute\":\"query-rx-filter\",\"arguments\":{\"name\":"
                                 "\"net\\\"0\\\\\\n\"},\"id\":%lld}"
                               : "{\"execute\":\"query-name\",\"id\":%lld}",
                        (long long)ids[i]);
                ASSERT_STR_EQ(line, expected);
                json_object *msg = json_tokener_parse(line);
                ASSERT_TRUE(msg && json_object_is_type(msg, json_type_object));
                json_object *execute, *id, *arguments, *name;
                ASSERT_TRUE(json_object_object_get_ex(msg, "execute", &execute));
                ASSERT_TRUE(json_object_object_get_ex(msg, "id", &id));
                ASSERT_INT_EQ(json_object_get_int64(id), ids[i]);
                if (i == 0) {
                        ASSERT_STR_EQ(json_object_get_string(execute), "query-rx-filter");
                        ASSERT_INT_EQ(json_object_object_length(msg), 3);
                        ASSERT_TRUE(json_object_object_get_ex(msg, "arguments", &arguments));
                        ASSERT_TRUE(json_object_object_get_ex(arguments, "name", &name));
                        ASSERT_STR_EQ(json_object_get_string(name), "net\"0\\\n");
                } else {
                        ASSERT_STR_EQ(json_object_get_string(execute), "query-name");
                        ASSERT_INT_EQ(json_object_object_length(msg), 2);
                }
                json_object_put(msg);
        }
        teardown(e, &p, c);
}

TEST(error_reply_carries_class_and_desc) {
        sd_event *e;
        Peer p;
        Recorder rec, r1 = { 0 };
        QmpClient *c;

        ASSERT_OK(setup(&e, &p, &rec, &c));
        int64_t id = qmp_client_send(c, "query-rx-filter", NULL, 0, on_reply, &r1);
        char reply[256];
        snprintf(reply, sizeof(reply),
                "{\"error\": {\"class\": \"GenericError\", \"desc\": \"invalid net client name: net9\"}, "
                "\"id\": %lld}\r\n",
                (long long)id);
        peer_write(&p, reply);
        run_loop(e, 3);
        ASSERT_INT_EQ(r1.reply_errors, 1);
        ASSERT_INT_EQ(r1.last_reply_error, -EIO);
        ASSERT_STR_EQ(r1.last_desc, "invalid net client name: net9");
        teardown(e, &p, c);
}

TEST(split_messages_and_many_per_read) {
        sd_event *e;
        Peer p;
        Recorder rec;
        QmpClient *c;
        const char *ev =
                "{\"event\": \"RESET\", \"data\": {\"guest\": true}, \"timestamp\": {\"seconds\": 12, "
                "\"microseconds\": 345}}\r\n";

        ASSERT_OK(setup(&e, &p, &rec, &c));
        /* One byte at a time: the tokenizer must carry state across reads. */
        for (const char *s = ev; *s; s++)
                ASSERT_OK(qmp_client_feed(c, s, 1));
        ASSERT_INT_EQ(rec.events, 1);
        ASSERT_STR_EQ(rec.last_event, "RESET");
        ASSERT_INT_EQ(rec.last_timestamp, 12000345);

        /* Fifty messages in one buffer, no separators between some of them. */
        char big[16384] = "";
        for (int i = 0; i < 50; i++)
                strcat(big, i % 2 ? "{\"event\":\"A\"}" : "{\"event\":\"B\"}\r\n");
        ASSERT_OK(qmp_client_feed(c, big, strlen(big)));
        ASSERT_INT_EQ(rec.events, 51);
        ASSERT_STR_EQ(rec.last_event, "A");
        ASSERT_INT_EQ(rec.disconnected, 0);

        /* And across real socket reads. */
        peer_write(&p, "{\"event\": \"SPL");
        run_loop(e, 2);
        ASSERT_INT_EQ(rec.events, 51);
        peer_write(&p, "IT\"}\r\n{\"event\": \"TWO\"}\r\n");
        run_loop(e, 2);
        ASSERT_INT_EQ(rec.events, 53);
        ASSERT_STR_EQ(rec.last_event, "TWO");
        teardown(e, &p, c);
}

/* A short read ends a wakeup's reads: what the peer writes later still arrives (a new edge), and an end
 * of stream written together with the last message is seen without another write. */
TEST(short_reads_lose_neither_later_messages_nor_a_close_that_came_with_data) {
        sd_event *e;
        Peer p;
        Recorder rec;
        QmpClient *c;

        ASSERT_OK(setup(&e, &p, &rec, &c));
        for (int i = 0; i < 3; i++) {
                peer_write(&p,
                        "{\"event\": \"RESET\", \"timestamp\": {\"seconds\": 1, \"microseconds\": 2}}\r\n");
                run_loop(e, 3);
                ASSERT_INT_EQ(rec.events, i + 1);
        }
        peer_write(&p, "{\"event\": \"STOP\", \"timestamp\": {\"seconds\": 1, \"microseconds\": 2}}\r\n");
        peer_close(&p); /* the close goes with the data: one wakeup sees both */
        run_loop(e, 3);
        ASSERT_INT_EQ(rec.events, 4);
        ASSERT_STR_EQ(rec.last_event, "STOP");
        ASSERT_INT_EQ(rec.disconnected, 1);
        ASSERT_INT_EQ(rec.last_error, -ECONNRESET);
        qmp_client_free(c);
        sd_event_unref(e);
}

TEST(garbage_disconnects_and_fails_pending) {
        sd_event *e;
        Peer p;
        Recorder rec, r1 = { 0 };
        QmpClient *c;

        ASSERT_OK(setup(&e, &p, &rec, &c));
        ASSERT_TRUE(qmp_client_send(c, "query-name", NULL, 0, on_reply, &r1) > 0);
        peer_write(&p, "{\"event\": nonsense}\r\n");
        run_loop(e, 3);
        ASSERT_INT_EQ(rec.disconnected, 1);
        ASSERT_INT_EQ(rec.last_error, -EBADMSG);
        ASSERT_STR_CONTAINS(rec.reason, "malformed JSON");
        ASSERT_INT_EQ(r1.replies, 1);
        ASSERT_INT_EQ(r1.last_reply_error, -ECONNRESET);
        ASSERT_INT_EQ(qmp_client_get_state(c), QMP_STATE_DISCONNECTED);
        teardown(e, &p, c);
}

TEST(non_object_message_disconnects) {
        sd_event *e;
        Peer p;
        Recorder rec;
        QmpClient *c;

        ASSERT_OK(setup(&e, &p, &rec, &c));
        ASSERT_ERROR(qmp_client_feed(c, "[1, 2]\r\n", 8), EBADMSG);
        ASSERT_INT_EQ(rec.disconnected, 1);
        ASSERT_STR_CONTAINS(rec.reason, "not an object");
        teardown(e, &p, c);
}

TEST(oversize_message_rejected_without_buffering) {
        sd_event *e;
        Peer p;
        Recorder rec;
        QmpClient *c;

        ASSERT_OK(setup(&e, &p, &rec, &c));
        const char *head = "{\"event\": \"X\", \"data\": {\"s\": \"";
        ASSERT_OK(qmp_client_feed(c, head, strlen(head)));
        size_t chunk = 64 * 1024;
        char *filler = malloc(chunk);
        memset(filler, 'a', chunk);
        int r = 0;
        size_t fed = strlen(head);
        while (r == 0 && fed < 3 * QMP_MESSAGE_MAX) {
                r = qmp_client_feed(c, filler, chunk);
                fed += chunk;
        }
        free(filler);
        ASSERT_INT_EQ(r, -EMSGSIZE);
        ASSERT_TRUE(fed <= QMP_MESSAGE_MAX + chunk + strlen(head));
        ASSERT_INT_EQ(rec.events, 0);
        ASSERT_STR_CONTAINS(rec.reason, "exceeds");
        teardown(e, &p, c);
}

/* Well-formed and under the 1 MiB cap, but 1 MiB of "{}," would take json-c 274 MiB: the message is
 * refused once its estimate passes QMP_PARSE_COST_MAX, about 90 KiB into it, before json-c builds more. */
TEST(message_that_would_take_too_much_memory_to_parse_is_refused) {
        sd_event *e;
        Peer p;
        Recorder rec;
        QmpClient *c;

        ASSERT_OK(setup(&e, &p, &rec, &c));
        const char *head = "{\"event\": \"X\", \"data\": [";
        ASSERT_OK(qmp_client_feed(c, head, strlen(head)));
        size_t chunk = 16 * 1024;
        char *objects = malloc(chunk);
        for (size_t i = 0; i + 3 <= chunk; i += 3)
                memcpy(objects + i, "{},", 3);
        int r = 0;
        size_t fed = strlen(head);
        while (r == 0 && fed < QMP_MESSAGE_MAX) {
                r = qmp_client_feed(c, objects, chunk - chunk % 3);
                fed += chunk - chunk % 3;
        }
        free(objects);
        ASSERT_INT_EQ(r, -EMSGSIZE);
        printf("# refused after %zu bytes\n", fed);
        ASSERT_TRUE(fed <= 3 * (QMP_PARSE_COST_MAX / JSON_COST_OBJECT) + chunk);
        ASSERT_INT_EQ(rec.events, 0);
        ASSERT_INT_EQ(rec.disconnected, 1);
        ASSERT_STR_CONTAINS(rec.reason, "to parse");
        teardown(e, &p, c);
}

/* A single-quoted string or a comment holding a '"' (json-c takes both unless strict) would hide the
 * objects after it from the estimate: 1 MiB of them took 257 MiB through qmp_client_feed() before the
 * scan refused these bytes (found in review). Refused at the quote or slash, the connection closed. */
TEST(single_quotes_and_comments_are_refused) {
        const char *const hostile[] = {
                "{\"event\": \"X\", \"data\": ['\"', {}, {}, '\"']}",
                "{\"event\": \"X\", \"data\": [/*\"*/ {}, {} /*\"*/]}",
                "{\"event\": \"X\", \"data\": [//\"\n{}]}",
        };
        for (size_t i = 0; i < sizeof(hostile) / sizeof(hostile[0]); i++) {
                sd_event *e;
                Peer p;
                Recorder rec;
                QmpClient *c;

                ASSERT_OK(setup(&e, &p, &rec, &c));
                ASSERT_ERROR(qmp_client_feed(c, hostile[i], strlen(hostile[i])), EBADMSG);
                ASSERT_INT_EQ(rec.events, 0);
                ASSERT_INT_EQ(rec.disconnected, 1);
                ASSERT_STR_CONTAINS(rec.reason, "single quote or '/' outside a string");
                teardown(e, &p, c);
        }
}

/* The scan and json-c agree on where each message ends, fed one byte at a time: escaped quotes and
 * backslashes, "\u0022", brackets inside strings, whitespace between messages. */
TEST(messages_fed_byte_by_byte_end_where_json_c_ends_them) {
        sd_event *e;
        Peer p;
        Recorder rec;
        QmpClient *c;

        ASSERT_OK(setup(&e, &p, &rec, &c));
        const char *m =
                " {\"event\":\"A\",\"data\":{\"s\":\"\\\\\\\\\\\"}]\\u0022{\\\\\",\"t\":\"\\\\\"}}\r\n"
                "{\"event\":\"B\"}\t{\"event\":\"C\",\"data\":[\"]\",{}]}";
        for (size_t i = 0; m[i]; i++)
                ASSERT_OK(qmp_client_feed(c, m + i, 1));
        ASSERT_INT_EQ(rec.events, 3);
        ASSERT_STR_EQ(rec.last_event, "C");
        ASSERT_INT_EQ(rec.disconnected, 0);
        teardown(e, &p, c);
}

/* QEMU's largest real answer passes: query-rx-filter of 64 NICs with 4,096 VLANs each (1 MiB of text
 * would not hold more VLANs for them). */
TEST(the_largest_real_reply_is_accepted) {
        sd_event *e;
        Peer p;
        Recorder rec;
        QmpClient *c;

        ASSERT_OK(setup(&e, &p, &rec, &c));
        size_t size = QMP_MESSAGE_MAX, len = 0;
        char *msg = malloc(size);
        ASSERT_TRUE(msg);
        len += (size_t)snprintf(msg + len, size - len, "{\"event\": \"BIG\", \"data\": {\"nics\": [");
        for (int nic = 0; nic < 64 && len < size - 40000; nic++) {
                len += (size_t)snprintf(msg + len, size - len, "%s{\"name\": \"net%d\", \"vlan-table\": [",
                        nic ? ", " : "", nic);
                for (int vid = 0; vid < 4096 && len < size - 64; vid++)
                        len += (size_t)snprintf(msg + len, size - len, "%s%d", vid ? "," : "", vid);
                len += (size_t)snprintf(msg + len, size - len, "]}");
        }
        len += (size_t)snprintf(msg + len, size - len, "]}}");
        ASSERT_TRUE(len < QMP_MESSAGE_MAX);
        int r = qmp_client_feed(c, msg, len);
        free(msg);
        ASSERT_OK(r);
        ASSERT_INT_EQ(rec.events, 1);
        ASSERT_STR_EQ(rec.last_event, "BIG");
        teardown(e, &p, c);
}

TEST(message_just_under_cap_accepted) {
        sd_event *e;
        Peer p;
        Recorder rec;
        QmpClient *c;

        ASSERT_OK(setup(&e, &p, &rec, &c));
        const char *head = "{\"event\": \"BIG\", \"data\": {\"s\": \"", *tail = "\"}}";
        size_t n = QMP_MESSAGE_MAX - strlen(head) - strlen(tail);
        char *msg = malloc(QMP_MESSAGE_MAX + 1);
        ASSERT_TRUE(msg);
        memcpy(msg, head, strlen(head));
        memset(msg + strlen(head), 'a', n);
        memcpy(msg + strlen(head) + n, tail, strlen(tail) + 1);
        ASSERT_INT_EQ(strlen(msg), QMP_MESSAGE_MAX);
        int r = qmp_client_feed(c, msg, QMP_MESSAGE_MAX);
        free(msg);
        ASSERT_OK(r);
        ASSERT_INT_EQ(rec.events, 1);
        ASSERT_STR_EQ(rec.last_event, "BIG");
        teardown(e, &p, c);
}

TEST(deep_nesting_rejected) {
        sd_event *e;
        Peer p;
        Recorder rec;
        QmpClient *c;
        char deep[256] = "{\"event\":\"D\",\"data\":";

        ASSERT_OK(setup(&e, &p, &rec, &c));
        for (int i = 0; i < 40; i++)
                strcat(deep, "[");
        ASSERT_ERROR(qmp_client_feed(c, deep, strlen(deep)), EBADMSG);
        ASSERT_INT_EQ(rec.disconnected, 1);
        teardown(e, &p, c);
}

TEST(timeout_fails_command_and_late_reply_is_ignored) {
        sd_event *e;
        Peer p;
        Recorder rec, r1 = { 0 };
        QmpClient *c;

        ASSERT_OK(setup(&e, &p, &rec, &c));
        int64_t id = qmp_client_send(c, "query-rx-filter", NULL, 50 * 1000, on_reply, &r1);
        ASSERT_TRUE(id > 0);
        for (int i = 0; i < 50 && r1.replies == 0; i++)
                run_loop(e, 1);
        ASSERT_INT_EQ(r1.replies, 1);
        ASSERT_INT_EQ(r1.last_reply_error, -ETIMEDOUT);
        ASSERT_STR_CONTAINS(r1.last_desc, "query-rx-filter");
        char reply[128];
        snprintf(reply, sizeof(reply), "{\"return\": [], \"id\": %lld}\r\n", (long long)id);
        peer_write(&p, reply);
        run_loop(e, 3);
        ASSERT_INT_EQ(r1.replies, 1);
        ASSERT_INT_EQ(rec.disconnected, 0);
        teardown(e, &p, c);
}

TEST(peer_close_fails_pending_with_connreset) {
        sd_event *e;
        Peer p;
        Recorder rec, r1 = { 0 }, r2 = { 0 };
        QmpClient *c;

        ASSERT_OK(setup(&e, &p, &rec, &c));
        ASSERT_TRUE(qmp_client_send(c, "query-name", NULL, 0, on_reply, &r1) > 0);
        ASSERT_TRUE(qmp_client_send(c, "query-uuid", NULL, 0, on_reply, &r2) > 0);
        close(p.fd);
        p.fd = -1;
        run_loop(e, 3);
        ASSERT_INT_EQ(rec.disconnected, 1);
        ASSERT_STR_CONTAINS(rec.reason, "closed");
        ASSERT_INT_EQ(r1.last_reply_error, -ECONNRESET);
        ASSERT_INT_EQ(r2.last_reply_error, -ECONNRESET);
        ASSERT_INT_EQ(qmp_client_pending(c), 0);
        /* Reconnect works on the same client. */
        ASSERT_OK(qmp_client_connect(c));
        p.fd = accept4(p.listen_fd, NULL, NULL, SOCK_CLOEXEC);
        ASSERT_TRUE(p.fd >= 0);
        teardown(e, &p, c);
}

TEST(free_cancels_pending) {
        sd_event *e;
        Peer p;
        Recorder rec, r1 = { 0 };
        QmpClient *c;

        ASSERT_OK(setup(&e, &p, &rec, &c));
        ASSERT_TRUE(qmp_client_send(c, "query-name", NULL, 0, on_reply, &r1) > 0);
        c = qmp_client_free(c);
        ASSERT_INT_EQ(r1.replies, 1);
        ASSERT_INT_EQ(r1.last_reply_error, -ECANCELED);
        ASSERT_INT_EQ(rec.disconnected, 0);
        teardown(e, &p, c);
}

TEST(missing_greeting_times_out_differently_than_wrong_greeting) {
        sd_event *e;
        Peer p;
        Recorder rec = { 0 };
        QmpClient *c;

        ASSERT_OK(sd_event_new(&e));
        ASSERT_OK(peer_listen(&p));
        ASSERT_OK(qmp_client_new(e, p.path, on_state, on_event, &rec, &c));
        ASSERT_OK(qmp_client_connect(c));
        p.fd = accept4(p.listen_fd, NULL, NULL, SOCK_CLOEXEC);
        peer_write(&p, "{\"return\": {}}\r\n");
        run_loop(e, 3);
        ASSERT_INT_EQ(rec.disconnected, 1);
        ASSERT_STR_CONTAINS(rec.reason, "greeting");
        teardown(e, &p, c);
}

/* A monitor that takes our commands but never answers: past QMP_PENDING_MAX the connection goes, and
 * every pending handler learns it; memory stays bounded whatever the guest's event rate. */
TEST(pending_commands_are_capped) {
        sd_event *e;
        Peer p;
        Recorder rec, replies = { 0 };
        QmpClient *c;

        ASSERT_OK(setup(&e, &p, &rec, &c));
        for (int i = 0; i < QMP_PENDING_MAX; i++)
                ASSERT_TRUE(qmp_client_send(c, "query-name", NULL, 0, on_reply, &replies) > 0);
        ASSERT_INT_EQ(qmp_client_pending(c), QMP_PENDING_MAX);
        ASSERT_ERROR(qmp_client_send(c, "query-name", NULL, 0, on_reply, &replies), ENOBUFS);
        ASSERT_INT_EQ(rec.disconnected, 1);
        ASSERT_INT_EQ(rec.last_error, -ENOBUFS);
        ASSERT_STR_CONTAINS(rec.reason, "does not keep up: 512 commands without a reply");
        ASSERT_INT_EQ(replies.replies, QMP_PENDING_MAX);
        ASSERT_INT_EQ(replies.last_reply_error, -ECONNRESET);
        ASSERT_INT_EQ(qmp_client_pending(c), 0);
        teardown(e, &p, c);
}

/* A monitor that never reads: what the socket does not take stays in our buffer, up to QMP_OUTPUT_MAX. */
TEST(unread_output_is_capped) {
        sd_event *e;
        Peer p;
        Recorder rec, replies = { 0 };
        QmpClient *c;
        char big[4096];
        int64_t r = 0;
        int sent = 0;

        memset(big, 'x', sizeof(big) - 1);
        big[sizeof(big) - 1] = '\0';
        ASSERT_OK(setup(&e, &p, &rec, &c));
        for (; sent < QMP_PENDING_MAX; sent++) {
                json_object *args = json_object_new_object();
                json_object_object_add(args, "pad", json_object_new_string(big));
                r = qmp_client_send(c, "human-monitor-command", args, 0, on_reply, &replies);
                if (r < 0)
                        break;
        }
        printf("# monitor stopped reading: closed after %d commands of 4 KiB\n", sent);
        ASSERT_ERROR(r, ENOBUFS);
        ASSERT_TRUE(sent < QMP_PENDING_MAX);
        ASSERT_STR_CONTAINS(rec.reason, "256 KiB of commands it does not read");
        ASSERT_INT_EQ(replies.replies, sent);
        teardown(e, &p, c);
}

/* A listener that is neither root nor the owner of the socket file is not trusted as the guest's QEMU. */
TEST(peer_neither_root_nor_socket_owner_is_refused) {
        sd_event *e;
        Peer p;
        Recorder rec = { 0 };
        QmpClient *c;
        int ready[2];
        char byte;

        ASSERT_OK(sd_event_new(&e));
        ASSERT_OK(pipe(ready));
        snprintf(p.dir, sizeof(p.dir), "/tmp/test-qmp-XXXXXX");
        ASSERT_TRUE(mkdtemp(p.dir));
        snprintf(p.path, sizeof(p.path), "%s/qmp.sock", p.dir);
        p.listen_fd = p.fd = -1;
        pid_t pid = fork();
        ASSERT_TRUE(pid >= 0);
        if (pid == 0) {
                struct sockaddr_un sa = { .sun_family = AF_UNIX };
                strcpy(sa.sun_path, p.path);
                int fd = socket(AF_UNIX, SOCK_STREAM, 0);
                /* The file is root's; the listener becomes nobody before listen() (SO_PEERCRED's time). */
                if (fd < 0 || bind(fd, (struct sockaddr *)&sa, sizeof(sa)) < 0 || setgid(65534) < 0 ||
                        setuid(65534) < 0 || listen(fd, 1) < 0)
                        _exit(1);
                (void)write(ready[1], "x", 1);
                int conn = accept(fd, NULL, NULL);
                (void)read(conn, &byte, 1);
                _exit(0);
        }
        close(ready[1]);
        ASSERT_INT_EQ(read(ready[0], &byte, 1), 1);
        close(ready[0]);
        ASSERT_OK(qmp_client_new(e, p.path, on_state, on_event, &rec, &c));
        ASSERT_OK(qmp_client_connect(c));
        run_loop(e, 3);
        ASSERT_INT_EQ(rec.disconnected, 1);
        ASSERT_INT_EQ(rec.last_error, -EPERM);
        ASSERT_STR_CONTAINS(
                rec.reason, "runs as uid 65534, which is neither root nor the owner of its socket");
        ASSERT_INT_EQ(qmp_client_get_peer_pid(c), 0);
        qmp_client_free(c);
        (void)kill(pid, SIGKILL);
        (void)waitpid(pid, NULL, 0);
        peer_close(&p);
        sd_event_unref(e);
}
