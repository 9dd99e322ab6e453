/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* fuzz-qmp-stream.c: arbitrary monitor bytes, cut at input-chosen points, through qmp_client_feed().
 *
 * Input: byte 0 = behaviour flags (below), byte 1 = seed of the chunk sizes, the rest = what the
 * monitor sends. Each input gets a fresh client connected to a listening socket made once per process,
 * so the client is in the state a real connection has: feed() parses only while connected. */
#include <assert.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#include "log.h"
#include "qmp.h"
#include "rxfilter.h"

enum {
        FLAG_QUERY_ON_READY = 1 << 0, /* as on every (re)connect: query-rx-filter without a name */
        FLAG_QUERY_ON_EVENT = 1 << 1, /* as for every handled event: a query with the NIC's name */
        FLAG_DISCONNECT_IN_REPLY = 1 << 2, /* a reply handler drops the connection mid-feed */
        FLAG_DISCONNECT_IN_EVENT = 1 << 3, /* so does an event handler */
        FLAG_RETRY_ON_ERROR = 1 << 4, /* an error reply queues another command */
        FLAG_RECONNECT = 1 << 5, /* after a disconnect, reconnect and feed the rest */
        /* bits 6-7: largest chunk, see chunk_max[] */
};

#define COMMANDS_MAX   64 /* per input: enough for every path, bounded so the output stays small */
#define RECONNECTS_MAX 4

typedef struct Run Run;

/* One command we sent: its handler must run exactly once, whatever the monitor does. */
typedef struct Command {
        Run *run;
        int calls;
} Command;

struct Run {
        unsigned flags;
        QmpClient *client;
        Command commands[COMMANDS_MAX];
        size_t n_commands;
        unsigned disconnects;
};

static sd_event *event;
static char socket_dir[] = "/tmp/fuzz-qmp-stream-XXXXXX";
static char socket_path[sizeof(socket_dir) + 16];
static int listen_fd = -1;

static void on_reply(QmpClient *c, json_object *result, const QmpError *err, void *userdata);

static void send_command(Run *run, const char *command, json_object *arguments) {
        if (run->n_commands >= COMMANDS_MAX) {
                json_object_put(arguments);
                return;
        }
        Command *cmd = &run->commands[run->n_commands];
        *cmd = (Command){ .run = run };
        int64_t id = qmp_client_send(run->client, command, arguments, 0, on_reply, cmd);
        if (id > 0)
                run->n_commands++;
        else
                assert(id == -ENOTCONN);
}

static void on_reply(QmpClient *c, json_object *result, const QmpError *err, void *userdata) {
        Command *cmd = userdata;
        Run *run = cmd->run;

        cmd->calls++;
        assert((result == NULL) != (err == NULL));
        if (err) {
                assert(err->error < 0);
                assert(!err->desc || strlen(err->desc) < SIZE_MAX);
                assert(!err->qmp_class || strlen(err->qmp_class) < SIZE_MAX);
                if (err->error == -EIO && (run->flags & FLAG_RETRY_ON_ERROR))
                        send_command(run, "query-rx-filter", NULL);
                return;
        }

        /* What the daemon does with a query-rx-filter reply. */
        if (json_object_is_type(result, json_type_array))
                for (size_t i = 0; i < json_object_array_length(result); i++) {
                        RxFilter f;
                        char *error = NULL;
                        if (rxfilter_from_json(json_object_array_get_idx(result, i), &f, &error) < 0)
                                assert(error);
                        free(error);
                }
        if (run->flags & FLAG_DISCONNECT_IN_REPLY)
                qmp_client_disconnect(c, -EPROTO, "fuzz: reply handler disconnects");
}

static void on_state(QmpClient *c, QmpState state, int error, const char *reason, void *userdata) {
        Run *run = userdata;

        if (state == QMP_STATE_DISCONNECTED) {
                assert(error < 0);
                assert(reason);
                assert(qmp_client_pending(c) == 0);
                run->disconnects++;
                return;
        }
        assert(state == QMP_STATE_READY);
        if (run->flags & FLAG_QUERY_ON_READY)
                send_command(run, "query-rx-filter", NULL);
}

static void on_event(QmpClient *c, const char *name, json_object *data, uint64_t timestamp, void *userdata) {
        Run *run = userdata;
        json_object *nic;

        assert(name);
        if (run->flags & FLAG_QUERY_ON_EVENT) {
                json_object *arguments = json_object_new_object();
                if (json_object_object_get_ex(data, "name", &nic) &&
                        json_object_is_type(nic, json_type_string))
                        json_object_object_add(arguments, "name", json_object_get(nic));
                send_command(run, "query-rx-filter", arguments);
        }
        if (run->flags & FLAG_DISCONNECT_IN_EVENT)
                qmp_client_disconnect(c, -EPROTO, "fuzz: event handler disconnects");
}

static void cleanup_socket(void) {
        if (listen_fd >= 0)
                close(listen_fd);
        unlink(socket_path);
        rmdir(socket_dir);
}

static void setup_once(void) {
        struct sockaddr_un sa = { .sun_family = AF_UNIX };

        log_max_level = getenv("FUZZ_LOG") ? LOG_DEBUG : -1;
        assert(sd_event_new(&event) >= 0);
        assert(mkdtemp(socket_dir));
        snprintf(socket_path, sizeof(socket_path), "%s/qmp.sock", socket_dir);
        strcpy(sa.sun_path, socket_path);
        listen_fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
        assert(listen_fd >= 0);
        assert(bind(listen_fd, (struct sockaddr *)&sa, sizeof(sa)) == 0);
        assert(listen(listen_fd, 8) == 0);
        atexit(cleanup_socket);
}

/* Connects the client and accepts the peer; the peer never reads, so commands just queue up. */
static int connect_client(QmpClient *c) {
        int r = qmp_client_connect(c);
        assert(r == 0);
        int fd = accept4(listen_fd, NULL, NULL, SOCK_CLOEXEC | SOCK_NONBLOCK);
        assert(fd >= 0);
        assert(qmp_client_get_state(c) == QMP_STATE_CONNECTING);
        return fd;
}

static uint32_t next_random(uint32_t *state) {
        /* xorshift32: the cut points only need to be a deterministic function of the input. */
        uint32_t x = *state;
        x ^= x << 13;
        x ^= x >> 17;
        x ^= x << 5;
        return *state = x;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
        static const size_t chunk_max[4] = { 1, 7, 300, SIZE_MAX };
        int peers[RECONNECTS_MAX + 1];
        size_t n_peers = 0;
        Run run = {};
        uint32_t seed;

        if (!event)
                setup_once();
        if (size < 2)
                return 0;
        run.flags = data[0];
        seed = 0x9e3779b9u ^ ((uint32_t)data[1] << 8 | data[1]);
        data += 2;
        size -= 2;

        assert(qmp_client_new(event, socket_path, on_state, on_event, &run, &run.client) == 0);
        peers[n_peers++] = connect_client(run.client);

        while (size > 0) {
                if (qmp_client_get_state(run.client) == QMP_STATE_DISCONNECTED) {
                        if (!(run.flags & FLAG_RECONNECT) || n_peers > RECONNECTS_MAX)
                                break;
                        peers[n_peers++] = connect_client(run.client);
                }

                size_t max = chunk_max[run.flags >> 6];
                size_t n = max == SIZE_MAX ? size : 1 + next_random(&seed) % max;
                if (n > size)
                        n = size;
                unsigned disconnects = run.disconnects;
                int r = qmp_client_feed(run.client, (const char *)data, n);
                if (r < 0) {
                        assert(qmp_client_get_state(run.client) == QMP_STATE_DISCONNECTED);
                        assert(run.disconnects == disconnects + 1);
                }
                assert(qmp_client_get_state(run.client) != QMP_STATE_DISCONNECTED ||
                        qmp_client_pending(run.client) == 0);
                data += n;
                size -= n;
        }

        run.client = qmp_client_free(run.client);
        for (size_t i = 0; i < run.n_commands; i++)
                assert(run.commands[i].calls == 1);
        for (size_t i = 0; i < n_peers; i++)
                close(peers[i]);
        return 0;
}
