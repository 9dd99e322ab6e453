/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* fake-qemu.h: a scripted QMP peer for unit tests: greets, answers discovery, hands queries to the test. */
#pragma once

#include <json-c/json.h>
#include <stdbool.h>
#include <systemd/sd-event.h>

#include "guest.h"
#include "manager.h"
#include "nic.h"

#define FAKE_QUERIES_MAX 4096

typedef struct FakeQemu {
        sd_event *event;
        char dir[64], path[128];
        int listen_fd, fd;
        char in[1 << 16];
        size_t in_len;

        /* query-rx-filter commands awaiting the test's answer, in arrival order (id and name, "" = all). */
        struct {
                int64_t id;
                char name[64];
        } queries[FAKE_QUERIES_MAX];
        size_t n_queries;
        unsigned n_full_queries, n_nic_queries, n_info_network, n_qom_list;
        bool hold_discovery; /* don't answer `info network` and qom-* (the test disconnects meanwhile) */
        const char *info_network; /* answer to `info network` */
} FakeQemu;

/* A listening socket in a fresh temporary directory. */
int fake_qemu_new(sd_event *event, FakeQemu **ret);
FakeQemu *fake_qemu_free(FakeQemu *q);

/* Accepts the client's connection and serves greeting and capabilities (runs the loop meanwhile). */
int fake_qemu_accept(FakeQemu *q);
/* Closes the connection (QEMU exited). */
void fake_qemu_hangup(FakeQemu *q);
/* Runs the loop once and serves what the client sent: discovery is answered, queries are queued. */
void fake_qemu_pump(FakeQemu *q);
/* Pumps until pred(data) holds or `rounds` iterations passed; returns pred's last value. */
bool fake_qemu_pump_until(FakeQemu *q, bool (*pred)(void *data), void *data, unsigned rounds);

int fake_qemu_send(FakeQemu *q, const char *text);
int fake_qemu_event(FakeQemu *q, const char *name, const char *data_json);
/* Answers the oldest queued query with `return` = result_json, or with a GenericError desc. */
int fake_qemu_answer(FakeQemu *q, const char *result_json);
int fake_qemu_answer_error(FakeQemu *q, const char *desc);
/* The queued query's name ("" for a full query), NULL when none is queued. */
const char *fake_qemu_peek(FakeQemu *q);

/* A valid RxFilterInfo for name with that MAC, as JSON text (static buffer). */
const char *fake_filter(const char *name, const char *mac);

/* A manager without a bus, its runtime directory under a temporary directory, and a guest attached to
 * q's socket (not yet accepted). Frozen clock for the rate limits. */
int fake_manager_new(sd_event *event, char runtime_dir[static 64], Manager **ret);
/* Removes the runtime directory made by fake_manager_new(). */
void fake_manager_cleanup(const char *runtime_dir);
/* Fires a timer now (a controllable clock for sd-event timers). */
void fire_timer(sd_event_source *s);

/* What a NIC or guest test drives: a loop, a manager, the scripted QEMU and the guest on its socket. */
typedef struct FakeEnv {
        sd_event *event;
        Manager *manager;
        FakeQemu *qemu;
        Guest *guest;
        char runtime_dir[64];
} FakeEnv;

/* A loop, a manager and a scripted QEMU, and guest "vm" attached to it (cfg may be NULL), not yet
 * connected. */
int fake_env_new(FakeEnv *env, const GuestConfig *cfg);
/* Accepts the guest's connection and answers its full query-rx-filter with net0 of that MAC (-EPROTO if
 * the first query is not the full one). */
int fake_env_serve_connect(FakeEnv *env, const char *mac);
/* Frees all of it, the manager first (it outlives every NIC). */
void fake_env_done(FakeEnv *env);
/* For fake_qemu_pump_until(): a query is waiting for the test's answer. */
bool fake_env_has_query(void *env);
