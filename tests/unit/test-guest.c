/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* test-guest.c: a guest's state machine and its full query, driven by a scripted QMP peer. */
#include <inttypes.h>
#include <sched.h>
#include <signal.h>
#include <sys/prctl.h>
#include <sys/resource.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "fake-qemu.h"
#include "tests.h"

static bool all_idle(void *data) {
        FakeEnv *env = data;
        return env->guest->n_nics_working == 0;
}

static bool nic0_synced(void *data) {
        FakeEnv *env = data;
        Nic *n = guest_find_nic(env->guest, "net0");
        return n && n->filter && env->guest->n_nics_working == 0;
}

/* Connected and the connect's full query answered with net0. */
static int env_new(FakeEnv *env) {
        int r = fake_env_new(env, NULL);
        if (r < 0 || (r = fake_env_serve_connect(env, "52:54:00:12:34:56")) < 0)
                return r;
        return fake_qemu_pump_until(env->qemu, nic0_synced, env, 500) ? 0 : -ETIMEDOUT;
}

static bool is_ready(void *data) {
        return ((FakeEnv *)data)->guest->state == GUEST_STATE_READY;
}

static bool is_negotiating(void *data) {
        return ((FakeEnv *)data)->guest->state == GUEST_STATE_NEGOTIATING;
}

static bool is_disconnected(void *data) {
        return ((FakeEnv *)data)->guest->state == GUEST_STATE_DISCONNECTED;
}

static const char *nic0_mac(FakeEnv *env, char buf[static ETHER_ADDR_STRLEN]) {
        Nic *n = guest_find_nic(env->guest, "net0");
        return n && n->filter ? ether_addr_format(&n->filter->main_mac, buf) : "";
}

TEST(states_connecting_negotiating_ready_disconnected) {
        FakeEnv env;
        char reply[1200];

        ASSERT_OK(fake_env_new(&env, NULL));
        ASSERT_INT_EQ(env.guest->state, GUEST_STATE_CONNECTING);
        ASSERT_STR_EQ(guest_state_to_bus_string(env.guest->state), "connecting");
        ASSERT_OK(fake_qemu_accept(env.qemu));
        ASSERT_TRUE(fake_qemu_pump_until(env.qemu, is_negotiating, &env, 500));
        ASSERT_STR_EQ(guest_state_to_bus_string(env.guest->state), "connected");
        ASSERT_TRUE(guest_is_connected(env.guest));
        ASSERT_TRUE(fake_qemu_pump_until(env.qemu, fake_env_has_query, &env, 500));
        snprintf(reply, sizeof(reply), "[%s]", fake_filter("net0", "52:54:00:12:34:56"));
        ASSERT_OK(fake_qemu_answer(env.qemu, reply));
        ASSERT_TRUE(fake_qemu_pump_until(env.qemu, is_ready, &env, 500));
        ASSERT_STR_EQ(guest_state_to_bus_string(env.guest->state), "connected");

        fake_qemu_hangup(env.qemu);
        ASSERT_TRUE(fake_qemu_pump_until(env.qemu, is_disconnected, &env, 500));
        ASSERT_FALSE(guest_is_connected(env.guest));
        ASSERT_ERROR(guest_query_all_nics(env.guest, "resync"), ENOTCONN);
        ASSERT_TRUE(env.guest->reconnect_timer != NULL);
        fake_env_done(&env);
}

/* Defect 1: after an incoming migration or a restore the filter arrives in the migration stream without
 * any event. RESUME, and MIGRATION "completed", refresh every NIC. */
static void check_refresh_on(const char *event, const char *data, bool refreshes) {
        FakeEnv env;
        char reply[1200], mac[ETHER_ADDR_STRLEN];

        if (env_new(&env) < 0)
                TEST_FAIL("setup failed");
        unsigned full = env.qemu->n_full_queries;
        ASSERT_OK(fake_qemu_event(env.qemu, event, data));
        for (unsigned i = 0; i < 20 && !fake_env_has_query(&env); i++)
                fake_qemu_pump(env.qemu);
        printf("# %s %s: %u full queries\n", event, data, env.qemu->n_full_queries - full);
        if (!refreshes) {
                ASSERT_INT_EQ(env.qemu->n_full_queries - full, 0);
                fake_env_done(&env);
                return;
        }
        ASSERT_INT_EQ(env.qemu->n_full_queries - full, 1);
        ASSERT_STR_EQ(fake_qemu_peek(env.qemu), "");
        snprintf(reply, sizeof(reply), "[%s]", fake_filter("net0", "52:54:00:00:be:ef"));
        Nic *n = guest_find_nic(env.guest, "net0");
        ASSERT_OK(fake_qemu_answer(env.qemu, reply));
        for (unsigned i = 0; i < 500 && !(n->n_jobs == 2 && all_idle(&env)); i++)
                fake_qemu_pump(env.qemu);
        ASSERT_INT_EQ(n->n_jobs, 2);
        ASSERT_STR_EQ(nic0_mac(&env, mac), "52:54:00:00:be:ef");
        fake_env_done(&env);
}

TEST(resume_refreshes_every_nic) {
        check_refresh_on("RESUME", "{}", true);
}

TEST(migration_completed_refreshes_every_nic) {
        check_refresh_on("MIGRATION", "{\"status\": \"completed\"}", true);
}

TEST(migration_active_does_not_refresh) {
        check_refresh_on("MIGRATION", "{\"status\": \"active\"}", false);
}

/* Defect 3: a full query that fails or times out is retried with backoff until one is answered. */
TEST(failed_full_query_is_retried) {
        FakeEnv env;
        char reply[1200];

        ASSERT_OK(fake_env_new(&env, NULL));
        ASSERT_OK(fake_qemu_accept(env.qemu));
        ASSERT_TRUE(fake_qemu_pump_until(env.qemu, fake_env_has_query, &env, 500));
        ASSERT_OK(fake_qemu_answer_error(env.qemu, "temporarily busy"));
        for (unsigned i = 0; i < 20 && !env.guest->full_query_timer; i++)
                fake_qemu_pump(env.qemu);
        ASSERT_TRUE(env.guest->full_query_timer != NULL);
        ASSERT_INT_EQ(env.guest->n_nics, 0);
        ASSERT_INT_EQ(env.guest->state, GUEST_STATE_NEGOTIATING);

        /* The retry: a monitor that never answers it times out, and is asked again. */
        env.guest->query_timeout_usec = 1000;
        fire_timer(env.guest->full_query_timer);
        ASSERT_TRUE(fake_qemu_pump_until(env.qemu, fake_env_has_query, &env, 500));
        ASSERT_INT_EQ(env.qemu->n_full_queries, 2);
        for (unsigned i = 0; i < 500 && !env.guest->full_query_timer; i++)
                fake_qemu_pump(env.qemu);
        ASSERT_TRUE(env.guest->full_query_timer != NULL);
        fake_qemu_answer(env.qemu, "[]"); /* too late: its handler already ran */

        env.guest->query_timeout_usec = 0;
        fire_timer(env.guest->full_query_timer);
        ASSERT_TRUE(fake_qemu_pump_until(env.qemu, fake_env_has_query, &env, 500));
        ASSERT_INT_EQ(env.qemu->n_full_queries, 3);
        snprintf(reply, sizeof(reply), "[%s]", fake_filter("net0", "52:54:00:12:34:56"));
        ASSERT_OK(fake_qemu_answer(env.qemu, reply));
        ASSERT_TRUE(fake_qemu_pump_until(env.qemu, is_ready, &env, 500));
        ASSERT_TRUE(fake_qemu_pump_until(env.qemu, all_idle, &env, 500));
        ASSERT_INT_EQ(env.guest->n_nics, 1);
        ASSERT_TRUE(env.guest->full_query_timer == NULL);
        fake_env_done(&env);
}

/* Found in review: a full query deferred by the rate limit took a token again when its timer fired, and
 * the timer fires on time, when less than one token has accrued: deferred again, for as long as events
 * kept coming. The deferral's token is the query's. The clock is the manager's, held still. */
TEST(rate_limited_full_query_is_sent_when_its_timer_fires) {
        FakeEnv env;
        char reply[1200];

        ASSERT_OK(env_new(&env));
        Manager *m = env.guest->manager;
        m->config.max_queries_per_second = 20;
        m->clock_override_usec = 1000000000;
        env.guest->full_query_limit = (RateLimit){ .tokens = 0, .usec = m->clock_override_usec };
        unsigned full = env.qemu->n_full_queries;

        ASSERT_OK(fake_qemu_event(env.qemu, "RESET", "{\"guest\": true, \"reason\": \"guest-reset\"}"));
        for (unsigned i = 0; i < 50 && !env.guest->full_query_timer; i++)
                fake_qemu_pump(env.qemu);
        ASSERT_TRUE(env.guest->full_query_timer != NULL);
        ASSERT_INT_EQ(env.qemu->n_full_queries - full, 0);

        /* Due after one token's time (1 s / 20 + 1 µs); the timer fires exactly then. */
        m->clock_override_usec += 50001;
        fire_timer(env.guest->full_query_timer);
        ASSERT_TRUE(fake_qemu_pump_until(env.qemu, fake_env_has_query, &env, 500));
        ASSERT_INT_EQ(env.qemu->n_full_queries - full, 1);
        ASSERT_TRUE(env.guest->full_query_timer == NULL);

        snprintf(reply, sizeof(reply), "[%s]", fake_filter("net0", "52:54:00:12:34:56"));
        ASSERT_OK(fake_qemu_answer(env.qemu, reply));
        ASSERT_TRUE(fake_qemu_pump_until(env.qemu, all_idle, &env, 500));
        ASSERT_TRUE(env.guest->full_query_pending == NULL);
        fake_env_done(&env);
}

/* Found in review: a relayed event becomes a bus signal for every subscriber, and a monitor could send
 * 500 KB ones, as many as it liked (1.4 GB of queued signals while the bus lagged). One that took more
 * than 16 KiB to parse is dropped, and at most MaxQueriesPerSecond= a second (a burst of 128) are
 * relayed. */
TEST(relayed_events_are_bounded_in_size_and_rate) {
        FakeEnv env;
        ASSERT_OK(env_new(&env));
        Manager *m = env.guest->manager;
        m->config.max_queries_per_second = 32;
        m->clock_override_usec = 1000000000;
        size_t big_len = 20000;
        char *big = malloc(big_len + 128);
        ASSERT_TRUE(big != NULL);
        int n = snprintf(big, 128, "{\"netdev-id\": \"n0\", \"addr\": {\"type\": \"unix\", \"path\": [");
        for (size_t i = 0; i < big_len / 2; i++)
                big[n++] = i ? ',' : ' ', big[n++] = '1';
        strcpy(big + n, "]}}");

        ASSERT_OK(fake_qemu_event(env.qemu, "NETDEV_STREAM_CONNECTED", big));
        free(big);
        for (unsigned i = 0; i < 50 && env.guest->n_net_events_dropped == 0; i++)
                fake_qemu_pump(env.qemu);
        ASSERT_INT_EQ(env.guest->n_net_events_dropped, 1);
        ASSERT_INT_EQ(env.guest->n_net_events_relayed, 0);

        const char *small = "{\"netdev-id\": \"n0\", \"addr\": {\"type\": \"unix\", \"path\": \"/run/s\"}}";
        for (unsigned i = 0; i < 200; i++)
                ASSERT_OK(fake_qemu_event(env.qemu, "NETDEV_STREAM_CONNECTED", small));
        for (unsigned i = 0;
                i < 500 && env.guest->n_net_events_relayed + env.guest->n_net_events_dropped < 201; i++)
                fake_qemu_pump(env.qemu);
        printf("# 200 events in one instant: %" PRIu64 " relayed, %" PRIu64 " dropped\n",
                env.guest->n_net_events_relayed, env.guest->n_net_events_dropped);
        ASSERT_INT_EQ(env.guest->n_net_events_relayed, 128);
        ASSERT_INT_EQ(env.guest->n_net_events_dropped, 1 + 72);

        m->clock_override_usec += 1000000; /* a second later: 32 more */
        for (unsigned i = 0; i < 40; i++)
                ASSERT_OK(fake_qemu_event(env.qemu, "NETDEV_STREAM_CONNECTED", small));
        for (unsigned i = 0;
                i < 500 && env.guest->n_net_events_relayed + env.guest->n_net_events_dropped < 241; i++)
                fake_qemu_pump(env.qemu);
        ASSERT_INT_EQ(env.guest->n_net_events_relayed, 128 + 32);
        ASSERT_INT_EQ(env.guest->n_net_events_dropped, 73 + 8);
        fake_env_done(&env);
}

static uint64_t now_usec(void) {
        struct timespec ts;
        clock_gettime(CLOCK_MONOTONIC, &ts);
        return (uint64_t)ts.tv_sec * 1000000ULL + (uint64_t)ts.tv_nsec / 1000ULL;
}

static long rss_kib(void) {
        struct rusage ru;
        getrusage(RUSAGE_SELF, &ru);
        return ru.ru_maxrss;
}

/* Issue 11 item 5: a RESET flood from a monitor: at most one full query outstanding, the repeats fold
 * into one follow-up. */
TEST(reset_flood_costs_one_query_and_one_follow_up) {
        FakeEnv env;
        char reply[1200];
        ASSERT_OK(env_new(&env));
        unsigned full = env.qemu->n_full_queries;
        long rss0 = rss_kib();

        for (unsigned i = 0; i < 20000; i++) {
                ASSERT_OK(fake_qemu_event(
                        env.qemu, "RESET", "{\"guest\": true, \"reason\": \"guest-reset\"}"));
                if (i % 256 == 0)
                        fake_qemu_pump(env.qemu);
        }
        for (unsigned i = 0; i < 200; i++)
                fake_qemu_pump(env.qemu);
        printf("# 20000 RESET events: %u full queries sent, %zu commands pending, max RSS %ld -> %ld KiB\n",
                env.qemu->n_full_queries - full, qmp_client_pending(env.guest->qmp), rss0, rss_kib());
        ASSERT_INT_EQ(env.qemu->n_full_queries - full, 1);
        ASSERT_STR_EQ(env.guest->full_query_pending, "reset");

        snprintf(reply, sizeof(reply), "[%s]", fake_filter("net0", "52:54:00:12:34:56"));
        ASSERT_OK(fake_qemu_answer(env.qemu, reply));
        ASSERT_TRUE(fake_qemu_pump_until(env.qemu, fake_env_has_query, &env, 500));
        ASSERT_INT_EQ(env.qemu->n_full_queries - full, 2);
        ASSERT_OK(fake_qemu_answer(env.qemu, reply));
        for (unsigned i = 0; i < 20; i++)
                fake_qemu_pump(env.qemu);
        ASSERT_INT_EQ(env.qemu->n_full_queries - full, 2);
        ASSERT_TRUE(env.guest->full_query_pending == NULL);
        fake_env_done(&env);
}

/* Issue 11 item 6: a full reply listing 20,000 NICs (under the 1 MiB message cap, and json-c's 21 MiB for
 * it under QMP_PARSE_COST_MAX) makes GUEST_NICS_MAX of them; lookups are hashed; stopping the guest
 * removes them all at once. */
TEST(nics_per_guest_are_capped) {
        FakeEnv env;
        const size_t n_entries = 20000;
        ASSERT_OK(env_new(&env));

        char *reply = malloc(n_entries * 20 + 64);
        ASSERT_TRUE(reply);
        size_t len = 0;
        reply[len++] = '[';
        for (size_t i = 0; i < n_entries; i++)
                len += (size_t)sprintf(reply + len, "{\"name\":\"n%zu\"},", i);
        len += (size_t)sprintf(reply + len, "{\"name\":\"net0\"}"); /* known: keeps its place */
        reply[len++] = ']';
        reply[len] = '\0';
        printf("# full reply of %zu NICs: %zu bytes\n", n_entries, len);

        long rss0 = rss_kib();
        uint64_t t0 = now_usec();
        ASSERT_OK(guest_query_all_nics(env.guest, "resync"));
        ASSERT_TRUE(fake_qemu_pump_until(env.qemu, fake_env_has_query, &env, 500));
        ASSERT_OK(fake_qemu_answer(env.qemu, reply));
        free(reply);
        for (unsigned i = 0; i < 200 && env.guest->n_nics < GUEST_NICS_MAX; i++)
                fake_qemu_pump(env.qemu);
        uint64_t t1 = now_usec();
        printf("# processed in %llu ms: %zu NICs, max RSS %ld -> %ld KiB\n",
                (unsigned long long)(t1 - t0) / 1000, env.guest->n_nics, rss0, rss_kib());
        ASSERT_INT_EQ(env.guest->n_nics, GUEST_NICS_MAX);
        ASSERT_TRUE(guest_find_nic(env.guest, "net0") != NULL);
        ASSERT_TRUE(guest_find_nic(env.guest, "n62") != NULL);
        ASSERT_TRUE(guest_find_nic(env.guest, "n63") == NULL);
        ASSERT_TRUE(guest_find_nic_by_qom_path(env.guest, "/machine/peripheral/n10") ==
                guest_find_nic(env.guest, "n10"));

        t0 = now_usec();
        manager_detach_guest(env.manager, env.guest);
        printf("# detach: %llu ms\n", (unsigned long long)(now_usec() - t0) / 1000);
        ASSERT_INT_EQ(env.manager->n_guests, 0);
        fake_env_done(&env);
}

/* Issue 11 item 9: a stopped guest's network namespace (and the sockets opened in it) is released once
 * its reverts are done, not held until the next connect. */
TEST(stopped_guest_releases_its_namespace) {
        FakeEnv env;
        char path[64], reply[1200];
        int pipefd[2];

        ASSERT_OK(pipe(pipefd));
        pid_t pid = fork();
        ASSERT_TRUE(pid >= 0);
        if (pid == 0) {
                (void)prctl(PR_SET_PDEATHSIG, SIGKILL); /* gone with the test, even when it fails */
                char c = unshare(CLONE_NEWNET) == 0 ? 'y' : 'n';
                (void)write(pipefd[1], &c, 1);
                pause();
                _exit(0);
        }
        char c = 'n';
        (void)read(pipefd[0], &c, 1);
        close(pipefd[0]);
        close(pipefd[1]);
        if (c != 'y') {
                kill(pid, SIGKILL);
                waitpid(pid, NULL, 0);
                TEST_SKIP("cannot create a network namespace");
        }
        snprintf(path, sizeof(path), "/proc/%d/ns/net", (int)pid);
        GuestConfig cfg = { .trust = -1, .netns = path, .nics = NULL, .n_nics = 0 };

        ASSERT_OK(fake_env_new(&env, &cfg));
        ASSERT_OK(fake_qemu_accept(env.qemu));
        ASSERT_TRUE(fake_qemu_pump_until(env.qemu, fake_env_has_query, &env, 500));
        snprintf(reply, sizeof(reply), "[%s]", fake_filter("net0", "52:54:00:12:34:56"));
        ASSERT_OK(fake_qemu_answer(env.qemu, reply));
        ASSERT_TRUE(fake_qemu_pump_until(env.qemu, all_idle, &env, 500));
        ASSERT_TRUE(env.guest->netns != NULL);

        fake_qemu_hangup(env.qemu);
        ASSERT_TRUE(fake_qemu_pump_until(env.qemu, is_disconnected, &env, 500));
        ASSERT_TRUE(fake_qemu_pump_until(env.qemu, all_idle, &env, 500));
        ASSERT_TRUE(env.guest->netns == NULL);

        /* The next connect opens it again. */
        fire_timer(env.guest->reconnect_timer);
        ASSERT_OK(fake_qemu_accept(env.qemu));
        ASSERT_TRUE(fake_qemu_pump_until(env.qemu, is_negotiating, &env, 500));
        ASSERT_TRUE(env.guest->netns != NULL);
        fake_env_done(&env);
        kill(pid, SIGKILL);
        waitpid(pid, NULL, 0);
}

/* Defect 7: sd-event turns a one-shot timer off before its handler; the reconcile timer must arm itself
 * again, not count on a sync completion to do it. */
TEST(reconcile_timer_keeps_firing) {
        FakeEnv env;
        ASSERT_OK(env_new(&env));
        Nic *n = guest_find_nic(env.guest, "net0");
        env.manager->config.reconcile_interval_usec = 1000000;
        n->trust_override = TRUST_ALL;
        n->host_kind = HOSTDEV_KIND_MACVTAP; /* trusted macvtap, but no filter: nothing to reconcile */
        n->filter = mfree(n->filter);
        manager_reconcile_update(env.manager);
        ASSERT_TRUE(env.manager->reconcile_timer != NULL);

        for (unsigned round = 0; round < 3; round++) {
                int enabled = SD_EVENT_OFF;
                ASSERT_OK(sd_event_source_get_enabled(env.manager->reconcile_timer, &enabled));
                ASSERT_INT_EQ(enabled, SD_EVENT_ONESHOT);
                fire_timer(env.manager->reconcile_timer);
                fake_qemu_pump(env.qemu);
        }
        int enabled = SD_EVENT_OFF;
        ASSERT_OK(sd_event_source_get_enabled(env.manager->reconcile_timer, &enabled));
        ASSERT_INT_EQ(enabled, SD_EVENT_ONESHOT);
        fake_env_done(&env);
}
