/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* test-nic.c: a NIC's state machine, driven through the real QMP client by a scripted peer. */
#include <pthread.h>
#include <systemd/sd-event.h>
#include <unistd.h>

#include "fake-qemu.h"
#include "jobqueue.h"
#include "syncjob.h"
#include "tests.h"
#include "worker.h"

static Nic *env_nic(FakeEnv *env, const char *id) {
        return guest_find_nic(env->guest, id);
}

static bool nic0_idle_published(void *data) {
        FakeEnv *env = data;
        Nic *n = env_nic(env, "net0");
        return n && n->state == NIC_STATE_IDLE && n->published && n->filter;
}

static bool nic0_idle(void *data) {
        FakeEnv *env = data;
        Nic *n = env_nic(env, "net0");
        return n && n->state == NIC_STATE_IDLE;
}

/* Greets, and answers the connect's full query with one NIC net0 whose MAC is mac. */
static int env_new(FakeEnv *env) {
        int r = fake_env_new(env, NULL);
        if (r < 0 || (r = fake_env_serve_connect(env, "52:54:00:12:34:56")) < 0)
                return r;
        return fake_qemu_pump_until(env->qemu, nic0_idle_published, env, 500) ? 0 : -ETIMEDOUT;
}

/* The guest's event, our query, its reply: IDLE -> QUERYING -> SYNCING -> IDLE. */
static int event_and_answer(FakeEnv *env, const char *mac) {
        int r = fake_qemu_event(env->qemu, "NIC_RX_FILTER_CHANGED",
                "{\"name\": \"net0\", \"path\": \"/machine/peripheral/net0/virtio-backend\"}");
        if (r < 0)
                return r;
        if (!fake_qemu_pump_until(env->qemu, fake_env_has_query, env, 500))
                return -ETIMEDOUT;
        char reply[1200];
        snprintf(reply, sizeof(reply), "[%s]", fake_filter("net0", mac));
        return fake_qemu_answer(env->qemu, reply);
}

static bool nic0_mac_is_beef(void *data) {
        Nic *n = env_nic(data, "net0");
        char mac[ETHER_ADDR_STRLEN];
        return n && n->filter && n->state == NIC_STATE_IDLE &&
                strcmp(ether_addr_format(&n->filter->main_mac, mac), "52:54:00:00:be:ef") == 0;
}

TEST(connect_discovers_publishes_and_syncs) {
        FakeEnv env;
        ASSERT_OK(env_new(&env));
        Nic *n = env_nic(&env, "net0");
        ASSERT_TRUE(n->published);
        ASSERT_STR_EQ(n->qom_path, "/machine/peripheral/net0");
        ASSERT_INT_EQ(env.qemu->n_info_network, 1);
        ASSERT_INT_EQ(n->n_jobs, 1);
        ASSERT_INT_EQ(env.guest->state, GUEST_STATE_READY);
        fake_env_done(&env);
}

TEST(event_queries_and_syncs) {
        FakeEnv env;
        ASSERT_OK(env_new(&env));
        Nic *n = env_nic(&env, "net0");
        ASSERT_OK(
                fake_qemu_event(env.qemu, "NIC_RX_FILTER_CHANGED", "{\"name\": \"net0\", \"path\": \"x\"}"));
        ASSERT_TRUE(fake_qemu_pump_until(env.qemu, fake_env_has_query, &env, 500));
        ASSERT_INT_EQ(n->state, NIC_STATE_QUERYING);
        ASSERT_STR_EQ(fake_qemu_peek(env.qemu), "net0");

        /* An event while the query is out folds into one more query after it. */
        ASSERT_OK(
                fake_qemu_event(env.qemu, "NIC_RX_FILTER_CHANGED", "{\"name\": \"net0\", \"path\": \"x\"}"));
        fake_qemu_pump(env.qemu);
        ASSERT_TRUE(n->want_query);
        ASSERT_INT_EQ(env.qemu->n_nic_queries, 1);

        char reply[1200];
        snprintf(reply, sizeof(reply), "[%s]", fake_filter("net0", "52:54:00:00:be:ef"));
        ASSERT_OK(fake_qemu_answer(env.qemu, reply));
        ASSERT_TRUE(fake_qemu_pump_until(env.qemu, fake_env_has_query, &env, 500));
        ASSERT_INT_EQ(env.qemu->n_nic_queries, 2);
        ASSERT_OK(fake_qemu_answer(env.qemu, reply));
        ASSERT_TRUE(fake_qemu_pump_until(env.qemu, nic0_mac_is_beef, &env, 500));
        ASSERT_INT_EQ(n->n_jobs, 3);
        ASSERT_INT_EQ(n->changes, 2); /* the first filter, then the MAC */
        ASSERT_INT_EQ(env.qemu->n_info_network, 1); /* discovery once per connection */
        fake_env_done(&env);
}

/* Defect 2: QEMU exits right after its event. Our query's write fails inside qmp_client_send(), whose
 * failure runs the reply handler before qmp_client_send() returns. The NIC must not stay busy: after
 * the reconnect it is discovered, synced and queried again. */
TEST(failed_write_inside_send_does_not_leave_the_nic_busy) {
        FakeEnv env;
        ASSERT_OK(env_new(&env));
        Nic *n = env_nic(&env, "net0");

        ASSERT_OK(
                fake_qemu_event(env.qemu, "NIC_RX_FILTER_CHANGED", "{\"name\": \"net0\", \"path\": \"x\"}"));
        fake_qemu_hangup(env.qemu);
        for (unsigned i = 0; i < 50 && env.guest->state != GUEST_STATE_DISCONNECTED; i++)
                fake_qemu_pump(env.qemu);
        ASSERT_INT_EQ(env.guest->state, GUEST_STATE_DISCONNECTED);
        ASSERT_INT_EQ(n->state, NIC_STATE_IDLE);

        unsigned queries = env.qemu->n_nic_queries;
        fire_timer(env.guest->reconnect_timer);
        ASSERT_OK(fake_env_serve_connect(&env, "52:54:00:00:be:ef"));
        ASSERT_TRUE(fake_qemu_pump_until(env.qemu, nic0_mac_is_beef, &env, 500));
        ASSERT_OK(event_and_answer(&env, "52:54:00:00:be:ef"));
        ASSERT_TRUE(fake_qemu_pump_until(env.qemu, nic0_idle, &env, 500));
        printf("# queries after the reconnect: %u\n", env.qemu->n_nic_queries - queries);
        ASSERT_INT_EQ(env.qemu->n_nic_queries - queries, 1);
        fake_env_done(&env);
}

/* The state line of a query is written after the send; when the send fails inside (its handler ends the
 * query first), the debug log must still say "-> querying" before "querying -> idle". */
TEST(state_lines_keep_their_order_when_the_query_fails_inside_the_send) {
        FakeEnv env;
        char path[] = "/tmp/test-nic-log-XXXXXX", text[16384];
        int log_fd = mkstemp(path), saved_stderr = dup(STDERR_FILENO), saved_level = log_max_level;

        ASSERT_TRUE(log_fd >= 0 && saved_stderr >= 0);
        ASSERT_OK(env_new(&env));
        Nic *n = env_nic(&env, "net0");
        ASSERT_TRUE(dup2(log_fd, STDERR_FILENO) >= 0);
        log_max_level = LOG_DEBUG;
        ASSERT_OK(
                fake_qemu_event(env.qemu, "NIC_RX_FILTER_CHANGED", "{\"name\": \"net0\", \"path\": \"x\"}"));
        fake_qemu_hangup(env.qemu);
        for (unsigned i = 0; i < 50 && env.guest->state != GUEST_STATE_DISCONNECTED; i++)
                fake_qemu_pump(env.qemu);
        log_max_level = saved_level;
        fflush(stderr);
        dup2(saved_stderr, STDERR_FILENO);
        close(saved_stderr);
        ASSERT_INT_EQ(n->state, NIC_STATE_IDLE);

        ssize_t len = pread(log_fd, text, sizeof(text) - 1, 0);
        close(log_fd);
        unlink(path);
        ASSERT_TRUE(len > 0);
        text[len] = '\0';
        const char *sent = strstr(text, "state idle -> querying (query-rx-filter)");
        const char *ended = strstr(text, "state querying -> idle");
        ASSERT_TRUE(sent && ended);
        ASSERT_TRUE(sent < ended);
        fake_env_done(&env);
}

/* Defect 4: a disconnect in the middle of discovery fails its commands first. A NIC without id= must not
 * be published with a QOM path discovery never confirmed; the reconnect's discovery publishes it. */
static bool anon_discovering(void *data) {
        FakeEnv *env = data;
        Nic *n = env_nic(env, "virtio-net-pci.0");
        return n && n->state == NIC_STATE_DISCOVERING && env->qemu->n_qom_list > 0;
}

static bool anon_published(void *data) {
        Nic *n = env_nic(data, "virtio-net-pci.0");
        return n && n->published && n->state == NIC_STATE_IDLE;
}

TEST(disconnect_mid_discovery_publishes_nothing) {
        FakeEnv env;
        char reply[1200];

        memset(&env, 0, sizeof(env));
        ASSERT_OK(sd_event_new(&env.event));
        ASSERT_OK(fake_manager_new(env.event, env.runtime_dir, &env.manager));
        ASSERT_OK(fake_qemu_new(env.event, &env.qemu));
        env.qemu->info_network =
                "virtio-net-pci.0: index=0,type=nic,model=virtio-net-pci,macaddr=52:54:00:12:34:56\r\n"
                " \\ hostnet0: index=0,type=user,net=10.0.2.0,restrict=off\r\n";
        ASSERT_OK(
                manager_attach_guest(env.manager, "vm", env.qemu->path, GUEST_SOURCE_BUS, NULL, &env.guest));
        ASSERT_OK(fake_qemu_accept(env.qemu));
        ASSERT_TRUE(fake_qemu_pump_until(env.qemu, fake_env_has_query, &env, 500));
        snprintf(reply, sizeof(reply), "[%s]", fake_filter("virtio-net-pci.0", "52:54:00:12:34:56"));
        /* Answer up to qom-list, then hold: the monitor goes away with discovery half done. */
        env.qemu->hold_discovery = false;
        ASSERT_OK(fake_qemu_answer(env.qemu, reply));
        for (unsigned i = 0; i < 500 && !anon_discovering(&env); i++) {
                fake_qemu_pump(env.qemu);
                env.qemu->hold_discovery = env.qemu->n_qom_list > 0;
        }
        ASSERT_TRUE(anon_discovering(&env));
        fake_qemu_hangup(env.qemu);
        for (unsigned i = 0; i < 50 && env.guest->state != GUEST_STATE_DISCONNECTED; i++)
                fake_qemu_pump(env.qemu);

        Nic *n = env_nic(&env, "virtio-net-pci.0");
        ASSERT_INT_EQ(env.guest->state, GUEST_STATE_DISCONNECTED);
        ASSERT_INT_EQ(n->state, NIC_STATE_IDLE);
        ASSERT_FALSE(n->published);

        env.qemu->hold_discovery = false;
        fire_timer(env.guest->reconnect_timer);
        ASSERT_OK(fake_qemu_accept(env.qemu));
        ASSERT_TRUE(fake_qemu_pump_until(env.qemu, fake_env_has_query, &env, 500));
        ASSERT_OK(fake_qemu_answer(env.qemu, reply));
        ASSERT_TRUE(fake_qemu_pump_until(env.qemu, anon_published, &env, 500));
        ASSERT_STR_EQ(n->qom_path, "/machine/peripheral-anon/device[0]");
        ASSERT_TRUE(guest_find_nic_by_qom_path(env.guest, "/machine/peripheral-anon/device[0]") == n);
        fake_env_done(&env);
}

/* Defect 9: a full reply (Resync, RESET) does not run discovery again on the same connection; a NIC
 * busy across a reconnect is discovered once its work is done. */
static bool full_reply_synced(void *data) {
        FakeEnv *env = data;
        Nic *n = env_nic(env, "net0");
        return n->n_jobs >= 2 && n->state == NIC_STATE_IDLE;
}

TEST(full_reply_discovers_once_per_connection) {
        FakeEnv env;
        char reply[1200];
        ASSERT_OK(env_new(&env));
        Nic *n = env_nic(&env, "net0");

        ASSERT_OK(guest_query_all_nics(env.guest, "resync"));
        ASSERT_TRUE(fake_qemu_pump_until(env.qemu, fake_env_has_query, &env, 500));
        snprintf(reply, sizeof(reply), "[%s]", fake_filter("net0", "52:54:00:12:34:56"));
        ASSERT_OK(fake_qemu_answer(env.qemu, reply));
        ASSERT_TRUE(fake_qemu_pump_until(env.qemu, full_reply_synced, &env, 500));
        ASSERT_INT_EQ(env.qemu->n_info_network, 1);

        /* Busy (its query deferred by the rate limit) while the monitor goes and comes back. */
        env.manager->config.max_queries_per_second = 1;
        n->query_limit = (RateLimit){ .tokens = 0, .usec = env.manager->clock_override_usec };
        ASSERT_OK(
                fake_qemu_event(env.qemu, "NIC_RX_FILTER_CHANGED", "{\"name\": \"net0\", \"path\": \"x\"}"));
        for (unsigned i = 0; i < 50 && n->state != NIC_STATE_DEFERRED; i++)
                fake_qemu_pump(env.qemu);
        ASSERT_INT_EQ(n->state, NIC_STATE_DEFERRED);
        fake_qemu_hangup(env.qemu);
        for (unsigned i = 0; i < 50 && env.guest->state != GUEST_STATE_DISCONNECTED; i++)
                fake_qemu_pump(env.qemu);
        fire_timer(env.guest->reconnect_timer);
        ASSERT_OK(fake_env_serve_connect(&env, "52:54:00:00:be:ef"));
        for (unsigned i = 0; i < 20; i++)
                fake_qemu_pump(env.qemu);
        ASSERT_INT_EQ(n->state, NIC_STATE_DEFERRED);
        ASSERT_TRUE(n->want_query);

        fire_timer(n->defer_timer);
        ASSERT_TRUE(fake_qemu_pump_until(env.qemu, fake_env_has_query, &env, 500));
        snprintf(reply, sizeof(reply), "[%s]", fake_filter("net0", "52:54:00:00:be:ef"));
        ASSERT_OK(fake_qemu_answer(env.qemu, reply));
        ASSERT_TRUE(fake_qemu_pump_until(env.qemu, nic0_mac_is_beef, &env, 500));
        ASSERT_INT_EQ(env.qemu->n_info_network, 2); /* the new connection was discovered */
        fake_env_done(&env);
}

/* Defect 6: with the default MaxQueriesPerSecond=20 a burst of 40 events (a guest running 20 `ip`
 * commands) goes through without waiting, on a clock that does not move. */
TEST(burst_of_40_events_is_not_deferred) {
        FakeEnv env;
        ASSERT_OK(env_new(&env));
        Nic *n = env_nic(&env, "net0");
        unsigned deferred = 0;

        ASSERT_INT_EQ(env.manager->config.max_queries_per_second, 20);
        for (unsigned i = 0; i < 40; i++) {
                ASSERT_OK(fake_qemu_event(
                        env.qemu, "NIC_RX_FILTER_CHANGED", "{\"name\": \"net0\", \"path\": \"x\"}"));
                for (unsigned k = 0;
                        k < 50 && n->state != NIC_STATE_QUERYING && n->state != NIC_STATE_DEFERRED; k++)
                        fake_qemu_pump(env.qemu);
                if (n->state == NIC_STATE_DEFERRED) {
                        deferred++;
                        fire_timer(n->defer_timer);
                }
                ASSERT_TRUE(fake_qemu_pump_until(env.qemu, fake_env_has_query, &env, 500));
                char reply[1200];
                snprintf(reply, sizeof(reply), "[%s]", fake_filter("net0", "52:54:00:12:34:56"));
                ASSERT_OK(fake_qemu_answer(env.qemu, reply));
                ASSERT_TRUE(fake_qemu_pump_until(env.qemu, nic0_idle, &env, 500));
        }
        printf("# 40 events: %u deferred by the rate limit\n", deferred);
        ASSERT_INT_EQ(deferred, 0);

        /* A flood still is: the bucket holds NIC_QUERY_BURST. */
        for (unsigned i = 0; i < NIC_QUERY_BURST; i++)
                (void)rate_limit_take(
                        &n->query_limit, 20, NIC_QUERY_BURST, env.manager->clock_override_usec);
        ASSERT_OK(
                fake_qemu_event(env.qemu, "NIC_RX_FILTER_CHANGED", "{\"name\": \"net0\", \"path\": \"x\"}"));
        for (unsigned k = 0; k < 50 && n->state == NIC_STATE_IDLE; k++)
                fake_qemu_pump(env.qemu);
        ASSERT_INT_EQ(n->state, NIC_STATE_DEFERRED);
        /* Deferred, never dropped: the clock moves on and the query goes out. */
        env.manager->clock_override_usec += 1000000;
        fire_timer(n->defer_timer);
        ASSERT_TRUE(fake_qemu_pump_until(env.qemu, fake_env_has_query, &env, 500));
        ASSERT_INT_EQ(n->state, NIC_STATE_QUERYING);
        fake_env_done(&env);
}

/* The NIC goes while its query is out: the query is forgotten, the NIC leaves the bus at once. */
TEST(device_deleted_while_querying) {
        FakeEnv env;
        ASSERT_OK(env_new(&env));
        Nic *n = nic_ref(env_nic(&env, "net0"));
        ASSERT_OK(
                fake_qemu_event(env.qemu, "NIC_RX_FILTER_CHANGED", "{\"name\": \"net0\", \"path\": \"x\"}"));
        ASSERT_TRUE(fake_qemu_pump_until(env.qemu, fake_env_has_query, &env, 500));
        ASSERT_INT_EQ(n->state, NIC_STATE_QUERYING);
        ASSERT_OK(fake_qemu_event(env.qemu, "DEVICE_DELETED",
                "{\"device\": \"net0\", \"path\": \"/machine/peripheral/net0\"}"));
        for (unsigned k = 0; k < 50 && !n->removed; k++)
                fake_qemu_pump(env.qemu);
        ASSERT_TRUE(n->removed);
        ASSERT_INT_EQ(n->state, NIC_STATE_IDLE);
        ASSERT_TRUE(env_nic(&env, "net0") == NULL);
        ASSERT_INT_EQ(env.guest->n_nics_working, 0);
        /* The late reply changes nothing. */
        char reply[1200];
        snprintf(reply, sizeof(reply), "[%s]", fake_filter("net0", "52:54:00:00:be:ef"));
        ASSERT_OK(fake_qemu_answer(env.qemu, reply));
        for (unsigned k = 0; k < 10; k++)
                fake_qemu_pump(env.qemu);
        ASSERT_INT_EQ(n->state, NIC_STATE_IDLE);
        ASSERT_INT_EQ(n->n_jobs, 1);
        nic_unref(n); /* before the manager: it outlives every NIC */
        fake_env_done(&env);
}

/* A reply kept for a worker must not take more than one NIC's filter can: 700 empty objects under an
 * unknown key (616 KiB for json-c, 2 KiB of text) are refused before any job, the connection stays, and
 * the next sane reply syncs. Without the check the job would start (the key is ignored). */
TEST(reply_that_took_more_than_a_filter_can_is_refused) {
        FakeEnv env;
        ASSERT_OK(env_new(&env));
        Nic *n = env_nic(&env, "net0");
        unsigned jobs = n->n_jobs;

        ASSERT_OK(
                fake_qemu_event(env.qemu, "NIC_RX_FILTER_CHANGED", "{\"name\": \"net0\", \"path\": \"x\"}"));
        ASSERT_TRUE(fake_qemu_pump_until(env.qemu, fake_env_has_query, &env, 500));
        char reply[4096];
        int len = snprintf(reply, sizeof(reply), "[%s", fake_filter("net0", "52:54:00:00:be:ef"));
        len--; /* reopen the object */
        len += snprintf(reply + len, sizeof(reply) - (size_t)len, ", \"junk\": [");
        for (int i = 0; i < 700; i++)
                len += snprintf(reply + len, sizeof(reply) - (size_t)len, "%s{}", i ? "," : "");
        snprintf(reply + len, sizeof(reply) - (size_t)len, "]}]");
        ASSERT_OK(fake_qemu_answer(env.qemu, reply));
        ASSERT_TRUE(fake_qemu_pump_until(env.qemu, nic0_idle, &env, 500));
        ASSERT_INT_EQ(n->n_jobs, jobs);
        ASSERT_INT_EQ(n->sync_state, NIC_SYNC_FAILED);
        ASSERT_STR_EQ(n->last_error, "query-rx-filter reply too large");
        ASSERT_INT_EQ(env.guest->state, GUEST_STATE_READY);

        ASSERT_OK(event_and_answer(&env, "52:54:00:00:be:ef"));
        ASSERT_TRUE(fake_qemu_pump_until(env.qemu, nic0_mac_is_beef, &env, 500));
        ASSERT_INT_EQ(n->n_jobs, jobs + 1);
        fake_env_done(&env);
}

/* A query QEMU can't answer for this NIC (not virtio-net) stops querying it. */
TEST(unsupported_nic_is_not_queried_again) {
        FakeEnv env;
        ASSERT_OK(env_new(&env));
        Nic *n = env_nic(&env, "net0");
        ASSERT_OK(
                fake_qemu_event(env.qemu, "NIC_RX_FILTER_CHANGED", "{\"name\": \"net0\", \"path\": \"x\"}"));
        ASSERT_TRUE(fake_qemu_pump_until(env.qemu, fake_env_has_query, &env, 500));
        ASSERT_OK(fake_qemu_answer_error(env.qemu, "net client(net0) doesn't support rx-filter querying"));
        ASSERT_TRUE(fake_qemu_pump_until(env.qemu, nic0_idle, &env, 500));
        ASSERT_INT_EQ(n->sync_state, NIC_SYNC_UNSUPPORTED);
        ASSERT_OK(
                fake_qemu_event(env.qemu, "NIC_RX_FILTER_CHANGED", "{\"name\": \"net0\", \"path\": \"x\"}"));
        for (unsigned k = 0; k < 10; k++)
                fake_qemu_pump(env.qemu);
        ASSERT_INT_EQ(n->state, NIC_STATE_IDLE);
        ASSERT_TRUE(fake_qemu_peek(env.qemu) == NULL);
        fake_env_done(&env);
}

/* Jobs that hold the worker pool until their gate opens: they stand for other NICs' jobs in flight. A
 * sync job's completion admits parked work; so does theirs. */
typedef struct Gate {
        pthread_mutex_t lock;
        pthread_cond_t cond;
        bool open;
} Gate;

typedef struct Blocker {
        WorkerJob job;
        Gate *gate;
        Manager *manager;
} Blocker;

static void blocker_run(WorkerJob *job) {
        Gate *gate = ((Blocker *)job)->gate;
        pthread_mutex_lock(&gate->lock);
        while (!gate->open)
                pthread_cond_wait(&gate->cond, &gate->lock);
        pthread_mutex_unlock(&gate->lock);
}

static void blocker_complete(WorkerJob *job, int error) {
        Blocker *b = (Blocker *)job;
        if (error == 0)
                job_queue_admit(b->manager);
        free(b);
}

static int block_pool(FakeEnv *env, Gate *gate, unsigned n) {
        for (unsigned i = 0; i < n; i++) {
                Blocker *b = calloc(1, sizeof(Blocker));
                if (!b)
                        return -ENOMEM;
                *b = (Blocker){ .job = { .run = blocker_run, .complete = blocker_complete },
                        .gate = gate,
                        .manager = env->manager };
                int r = worker_pool_submit(env->manager->workers, &b->job);
                if (r < 0) {
                        free(b);
                        return r;
                }
        }
        return 0;
}

static void gate_open(Gate *gate) {
        pthread_mutex_lock(&gate->lock);
        gate->open = true;
        pthread_cond_broadcast(&gate->cond);
        pthread_mutex_unlock(&gate->lock);
}

static bool nic0_parked(void *data) {
        Nic *n = env_nic(data, "net0");
        return n && n->state == NIC_STATE_PARKED;
}

static bool pool_idle(void *data) {
        return worker_pool_outstanding(((FakeEnv *)data)->manager->workers) == 0;
}

/* JOBS_IN_FLIGHT_MAX jobs out: the reply waits in PARKED (holding only the reply); an event meanwhile
 * only asks for one more query; room makes it SYNCING, then the asked query goes out. */
TEST(job_parked_until_the_pool_has_room) {
        FakeEnv env;
        Gate gate = { PTHREAD_MUTEX_INITIALIZER, PTHREAD_COND_INITIALIZER, false };
        char reply[1200];
        ASSERT_OK(env_new(&env));
        Nic *n = env_nic(&env, "net0");
        uint64_t jobs = n->n_jobs;

        ASSERT_OK(block_pool(&env, &gate, JOBS_IN_FLIGHT_MAX));
        ASSERT_OK(event_and_answer(&env, "52:54:00:00:be:ef"));
        ASSERT_TRUE(fake_qemu_pump_until(env.qemu, nic0_parked, &env, 500));
        ASSERT_TRUE(n->parked_info != NULL);
        ASSERT_INT_EQ(env.guest->n_nics_working, 1);

        ASSERT_OK(
                fake_qemu_event(env.qemu, "NIC_RX_FILTER_CHANGED", "{\"name\": \"net0\", \"path\": \"x\"}"));
        for (unsigned k = 0; k < 20; k++)
                fake_qemu_pump(env.qemu);
        ASSERT_INT_EQ(n->state, NIC_STATE_PARKED);
        ASSERT_TRUE(n->want_query);
        ASSERT_TRUE(fake_qemu_peek(env.qemu) == NULL);
        ASSERT_INT_EQ(n->n_jobs, jobs);

        gate_open(&gate);
        ASSERT_TRUE(fake_qemu_pump_until(env.qemu, fake_env_has_query, &env, 2000));
        ASSERT_INT_EQ(n->n_jobs, jobs + 1);
        ASSERT_INT_EQ(n->state, NIC_STATE_QUERYING);
        ASSERT_TRUE(n->parked_info == NULL);
        snprintf(reply, sizeof(reply), "[%s]", fake_filter("net0", "52:54:00:00:be:ef"));
        ASSERT_OK(fake_qemu_answer(env.qemu, reply));
        ASSERT_TRUE(fake_qemu_pump_until(env.qemu, nic0_mac_is_beef, &env, 500));
        ASSERT_TRUE(fake_qemu_pump_until(env.qemu, pool_idle, &env, 2000));
        ASSERT_INT_EQ(n->n_jobs, jobs + 2);
        ASSERT_INT_EQ(env.guest->n_nics_working, 0);
        fake_env_done(&env);
}

static bool nic0_state_is(FakeEnv *env, NicState state) {
        Nic *n = env_nic(env, "net0");
        return n && n->state == state;
}

static bool nic0_reverting(void *data) {
        return nic0_state_is(data, NIC_STATE_REVERTING);
}

static bool guest_released(void *data) {
        FakeEnv *env = data;
        return env->guest->n_nics_working == 0 && nic0_state_is(env, NIC_STATE_IDLE);
}

/* The guest stops (QEMU exits) with something of ours on a device: the NIC reverts. The revert waits
 * in PARKED while the pool is full, is REVERTING while it runs, needs no QEMU (the device is the one
 * the record names: gone here, so its record is forgotten), and keeps the guest's namespace until it
 * is done. A query asked meanwhile is not sent to the monitor that is gone. */
TEST(revert_on_guest_stop_parks_then_reverts) {
        FakeEnv env;
        Gate full = { PTHREAD_MUTEX_INITIALIZER, PTHREAD_COND_INITIALIZER, false };
        Gate last = { PTHREAD_MUTEX_INITIALIZER, PTHREAD_COND_INITIALIZER, false };
        ASSERT_OK(env_new(&env));
        Nic *n = env_nic(&env, "net0");

        /* As after a sync of a macvtap that has since been deleted. */
        n->ownership = calloc(1, sizeof(HostOwnership));
        ASSERT_TRUE(n->ownership != NULL);
        *n->ownership = (HostOwnership){ .valid = true, .ifindex = 0x7ffffff0, .mac_set = true };
        strcpy(n->ownership->ifname, "gnt-gone0");
        free(n->host_interface);
        n->host_interface = strdup("gnt-gone0");
        n->host_kind = HOSTDEV_KIND_MACVTAP;

        ASSERT_OK(block_pool(&env, &full, JOBS_IN_FLIGHT_MAX));
        fake_qemu_hangup(env.qemu);
        for (unsigned i = 0; i < 50 && env.guest->state != GUEST_STATE_DISCONNECTED; i++)
                fake_qemu_pump(env.qemu);
        ASSERT_INT_EQ(env.guest->state, GUEST_STATE_DISCONNECTED);
        ASSERT_INT_EQ(n->state, NIC_STATE_PARKED);
        ASSERT_INT_EQ(n->parked_mode, SYNC_JOB_REVERT);
        ASSERT_INT_EQ(env.guest->n_nics_working, 1);
        nic_resync(n, "resync");
        ASSERT_INT_EQ(n->state, NIC_STATE_PARKED);

        /* Room, but the worker is busy: the revert is submitted and REVERTING until it ran. */
        ASSERT_OK(block_pool(&env, &last, 1));
        gate_open(&full);
        ASSERT_TRUE(fake_qemu_pump_until(env.qemu, nic0_reverting, &env, 2000));
        ASSERT_INT_EQ(env.guest->n_nics_working, 1);
        ASSERT_TRUE(n->ownership != NULL);

        gate_open(&last);
        ASSERT_TRUE(fake_qemu_pump_until(env.qemu, guest_released, &env, 2000));
        ASSERT_TRUE(n->ownership == NULL);
        ASSERT_TRUE(fake_qemu_peek(env.qemu) == NULL);
        ASSERT_INT_EQ(env.qemu->n_nic_queries, 0);
        fake_env_done(&env);
}
