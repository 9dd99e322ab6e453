/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* fake-qemu.c: the scripted QMP peer of test-nic and test-guest. */
#include "fake-qemu.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

int fake_qemu_new(sd_event *event, FakeQemu **ret) {
        FakeQemu *q = calloc(1, sizeof(FakeQemu));
        if (!q)
                return -ENOMEM;
        q->event = event;
        q->fd = -1;
        q->info_network = "net0: index=0,type=nic,model=virtio-net-pci,macaddr=52:54:00:12:34:56\r\n"
                          " \\ hostnet0: index=0,type=user,net=10.0.2.0,restrict=off\r\n";
        snprintf(q->dir, sizeof(q->dir), "/tmp/test-fakeqemu-XXXXXX");
        if (!mkdtemp(q->dir)) {
                free(q);
                return -errno;
        }
        snprintf(q->path, sizeof(q->path), "%s/qmp.sock", q->dir);
        struct sockaddr_un sa = { .sun_family = AF_UNIX };
        strcpy(sa.sun_path, q->path);
        q->listen_fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);
        if (q->listen_fd < 0 || bind(q->listen_fd, (struct sockaddr *)&sa, sizeof(sa)) < 0 ||
                listen(q->listen_fd, 4) < 0) {
                int r = -errno;
                fake_qemu_free(q);
                return r;
        }
        *ret = q;
        return 0;
}

FakeQemu *fake_qemu_free(FakeQemu *q) {
        if (!q)
                return NULL;
        if (q->fd >= 0)
                close(q->fd);
        if (q->listen_fd >= 0)
                close(q->listen_fd);
        unlink(q->path);
        rmdir(q->dir);
        free(q);
        return NULL;
}

int fake_qemu_send(FakeQemu *q, const char *text) {
        size_t len = strlen(text);
        while (len > 0) {
                ssize_t n = send(q->fd, text, len, MSG_NOSIGNAL);
                if (n < 0) {
                        if (errno == EAGAIN || errno == EINTR) {
                                (void)sd_event_run(q->event, 1000);
                                continue;
                        }
                        return -errno;
                }
                text += n;
                len -= (size_t)n;
        }
        return send(q->fd, "\r\n", 2, MSG_NOSIGNAL) == 2 ? 0 : -EIO;
}

int fake_qemu_event(FakeQemu *q, const char *name, const char *data_json) {
        size_t size = strlen(name) + (data_json ? strlen(data_json) : 2) + 96;
        char *buf = malloc(size);
        if (!buf)
                return -ENOMEM;
        snprintf(buf, size,
                "{\"event\": \"%s\", \"data\": %s, \"timestamp\": {\"seconds\": 1, \"microseconds\": 2}}",
                name, data_json ? data_json : "{}");
        int r = fake_qemu_send(q, buf);
        free(buf);
        return r;
}

static int reply(FakeQemu *q, int64_t id, const char *result_json) {
        size_t size = strlen(result_json) + 64;
        char *buf = malloc(size);
        if (!buf)
                return -ENOMEM;
        snprintf(buf, size, "{\"return\": %s, \"id\": %lld}", result_json, (long long)id);
        int r = fake_qemu_send(q, buf);
        free(buf);
        return r;
}

static int reply_error(FakeQemu *q, int64_t id, const char *desc) {
        char buf[512];
        snprintf(buf, sizeof(buf),
                "{\"error\": {\"class\": \"GenericError\", \"desc\": \"%s\"}, \"id\": %lld}", desc,
                (long long)id);
        return fake_qemu_send(q, buf);
}

/* One command from the client: discovery answered at once, queries queued for the test. */
static void serve_command(FakeQemu *q, json_object *cmd) {
        json_object *execute, *id, *args, *o;
        const char *name = NULL;

        if (!json_object_object_get_ex(cmd, "execute", &execute) ||
                !json_object_object_get_ex(cmd, "id", &id))
                return;
        const char *what = json_object_get_string(execute);
        int64_t cid = json_object_get_int64(id);
        bool has_args = json_object_object_get_ex(cmd, "arguments", &args);

        if (strcmp(what, "qmp_capabilities") == 0 || strcmp(what, "query-version") == 0)
                (void)reply(q, cid,
                        strcmp(what, "query-version") == 0
                                ? "{\"qemu\": {\"major\": 7, \"minor\": 2, \"micro\": 0}, \"package\": \"\"}"
                                : "{}");
        else if (strcmp(what, "query-name") == 0)
                (void)reply(q, cid, "{\"name\": \"fake\"}");
        else if (strcmp(what, "query-uuid") == 0)
                (void)reply(q, cid, "{\"UUID\": \"9f0d7a1e-5b1c-4c3e-8d2b-1a2b3c4d5e6f\"}");
        else if (strcmp(what, "query-rx-filter") == 0) {
                if (has_args && json_object_object_get_ex(args, "name", &o))
                        name = json_object_get_string(o);
                if (name)
                        q->n_nic_queries++;
                else
                        q->n_full_queries++;
                if (q->n_queries < FAKE_QUERIES_MAX) {
                        q->queries[q->n_queries].id = cid;
                        snprintf(q->queries[q->n_queries].name, sizeof(q->queries[0].name), "%s",
                                name ? name : "");
                        q->n_queries++;
                }
        } else if (strcmp(what, "human-monitor-command") == 0) {
                q->n_info_network++;
                if (!q->hold_discovery) {
                        json_object *text = json_object_new_string(q->info_network);
                        (void)reply(q, cid, json_object_to_json_string(text));
                        json_object_put(text);
                }
        } else if (strcmp(what, "qom-get") == 0) {
                const char *path =
                        json_object_object_get_ex(args, "path", &o) ? json_object_get_string(o) : "";
                const char *prop =
                        json_object_object_get_ex(args, "property", &o) ? json_object_get_string(o) : "";
                if (q->hold_discovery)
                        return;
                if (strcmp(prop, "mac") == 0)
                        (void)reply(q, cid, "\"52:54:00:12:34:56\"");
                else if (strncmp(path, "/machine/peripheral/net", 23) == 0 ||
                        strcmp(path, "/machine/peripheral-anon/device[0]") == 0)
                        (void)reply(q, cid, "\"hostnet0\"");
                else
                        (void)reply_error(q, cid, "Device not found");
        } else if (strcmp(what, "qom-list") == 0) {
                q->n_qom_list++;
                if (!q->hold_discovery)
                        (void)reply(
                                q, cid, "[{\"name\": \"device[0]\", \"type\": \"child<virtio-net-pci>\"}]");
        } else
                (void)reply_error(q, cid, "unknown command");
}

static void read_commands(FakeQemu *q) {
        if (q->fd < 0)
                return;
        for (;;) {
                ssize_t n = recv(q->fd, q->in + q->in_len, sizeof(q->in) - q->in_len - 1, MSG_DONTWAIT);
                if (n <= 0)
                        break;
                q->in_len += (size_t)n;
        }
        q->in[q->in_len] = '\0';
        char *line = q->in, *nl;
        while ((nl = strchr(line, '\n'))) {
                *nl = '\0';
                json_object *cmd = json_tokener_parse(line);
                if (cmd) {
                        serve_command(q, cmd);
                        json_object_put(cmd);
                }
                line = nl + 1;
        }
        q->in_len = strlen(line);
        memmove(q->in, line, q->in_len + 1);
}

void fake_qemu_pump(FakeQemu *q) {
        (void)sd_event_run(q->event, 2000);
        read_commands(q);
}

bool fake_qemu_pump_until(FakeQemu *q, bool (*pred)(void *data), void *data, unsigned rounds) {
        for (unsigned i = 0; i < rounds; i++) {
                if (pred(data))
                        return true;
                fake_qemu_pump(q);
        }
        return pred(data);
}

int fake_qemu_accept(FakeQemu *q) {
        for (unsigned i = 0; i < 500 && q->fd < 0; i++) {
                q->fd = accept4(q->listen_fd, NULL, NULL, SOCK_CLOEXEC | SOCK_NONBLOCK);
                if (q->fd < 0)
                        (void)sd_event_run(q->event, 2000);
        }
        if (q->fd < 0)
                return -ETIMEDOUT;
        q->in_len = 0;
        q->n_queries = 0;
        return fake_qemu_send(q,
                "{\"QMP\": {\"version\": {\"qemu\": {\"major\": 7, \"minor\": 2, \"micro\": 0}}, "
                "\"capabilities\": []}}");
}

void fake_qemu_hangup(FakeQemu *q) {
        if (q->fd >= 0)
                close(q->fd);
        q->fd = -1;
        q->n_queries = 0;
}

const char *fake_qemu_peek(FakeQemu *q) {
        return q->n_queries > 0 ? q->queries[0].name : NULL;
}

static int64_t take_query(FakeQemu *q) {
        if (q->n_queries == 0)
                return -1;
        int64_t id = q->queries[0].id;
        memmove(q->queries, q->queries + 1, (q->n_queries - 1) * sizeof(q->queries[0]));
        q->n_queries--;
        return id;
}

int fake_qemu_answer(FakeQemu *q, const char *result_json) {
        int64_t id = take_query(q);
        return id < 0 ? -ENOENT : reply(q, id, result_json);
}

int fake_qemu_answer_error(FakeQemu *q, const char *desc) {
        int64_t id = take_query(q);
        return id < 0 ? -ENOENT : reply_error(q, id, desc);
}

const char *fake_filter(const char *name, const char *mac) {
        static char buf[1024];
        snprintf(buf, sizeof(buf),
                "{\"name\": \"%s\", \"main-mac\": \"%s\", \"promiscuous\": false, \"broadcast-allowed\": "
                "false, "
                "\"unicast\": \"normal\", \"multicast\": \"normal\", \"vlan\": \"normal\", "
                "\"unicast-overflow\": false, \"multicast-overflow\": false, \"unicast-table\": [], "
                "\"multicast-table\": [\"33:33:00:00:00:01\"], \"vlan-table\": [0]}",
                name, mac);
        return buf;
}

int fake_manager_new(sd_event *event, char runtime_dir[static 64], Manager **ret) {
        DaemonConfig config;
        int r;

        snprintf(runtime_dir, 64, "/tmp/test-manager-XXXXXX");
        if (!mkdtemp(runtime_dir))
                return -errno;
        daemon_config_init(&config);
        free(config.runtime_directory);
        free(config.qmp_directory);
        config.runtime_directory = strdup(runtime_dir);
        if (asprintf(&config.qmp_directory, "%s/qmp", runtime_dir) < 0 || !config.runtime_directory)
                return -ENOMEM;
        config.workers = 1;
        r = manager_new(event, &config, runtime_dir, ret);
        daemon_config_done(&config);
        if (r < 0)
                return r;
        (*ret)->clock_override_usec = 1000000000ULL;
        return 0;
}

void fake_manager_cleanup(const char *runtime_dir) {
        char cmd[128];
        snprintf(cmd, sizeof(cmd), "rm -rf '%s'", runtime_dir);
        (void)system(cmd);
}

void fire_timer(sd_event_source *s) {
        if (s)
                (void)sd_event_source_set_time(s, 1);
}

int fake_env_new(FakeEnv *env, const GuestConfig *cfg) {
        int r;

        memset(env, 0, sizeof(*env));
        if ((r = sd_event_new(&env->event)) < 0 ||
                (r = fake_manager_new(env->event, env->runtime_dir, &env->manager)) < 0 ||
                (r = fake_qemu_new(env->event, &env->qemu)) < 0)
                return r;
        return manager_attach_guest(env->manager, "vm", env->qemu->path, GUEST_SOURCE_BUS, cfg, &env->guest);
}

int fake_env_serve_connect(FakeEnv *env, const char *mac) {
        char reply[1200];
        int r = fake_qemu_accept(env->qemu);
        if (r < 0)
                return r;
        if (!fake_qemu_pump_until(env->qemu, fake_env_has_query, env, 500))
                return -ETIMEDOUT;
        if (strcmp(fake_qemu_peek(env->qemu), "") != 0)
                return -EPROTO;
        snprintf(reply, sizeof(reply), "[%s]", fake_filter("net0", mac));
        return fake_qemu_answer(env->qemu, reply);
}

void fake_env_done(FakeEnv *env) {
        manager_free(env->manager);
        fake_qemu_free(env->qemu);
        sd_event_unref(env->event);
        fake_manager_cleanup(env->runtime_dir);
}

bool fake_env_has_query(void *env) {
        return fake_qemu_peek(((FakeEnv *)env)->qemu) != NULL;
}
