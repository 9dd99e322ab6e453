/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* fuzz-config.c: arbitrary file contents through daemon_config_load() and guest_config_load().
 *
 * The input is written to a file reused for every run (a memfd, opened by path as the daemon opens its
 * files). Accepted configurations must hold what config.h promises; a refused main file must leave the
 * configuration as it was. */
#include <assert.h>
#include <fcntl.h>
#include <limits.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

#include "config.h"
#include "log.h"

static int file_fd = -1;
static char file_path[64];

static void check_daemon_config(const DaemonConfig *c) {
        assert(c->qmp_directory && c->qmp_directory[0] == '/' && strlen(c->qmp_directory) < PATH_MAX);
        assert(c->runtime_directory && c->runtime_directory[0] == '/');
        assert(c->workers <= 1024);
        assert(c->max_queries_per_second <= 100000);
        assert((c->default_trust & ~(unsigned)TRUST_ALL) == 0);
        assert(vlan_policy_to_string(c->vlan_policy));
        assert(unicast_policy_to_string(c->unicast_policy));
        assert(c->reconcile_interval_usec <= UINT64_C(365) * 24 * 3600 * 1000000);
}

static void check_guest_config(const GuestConfig *g) {
        assert(g->qmp_socket && g->qmp_socket[0] == '/' && strlen(g->qmp_socket) < 108);
        assert(g->name && !guest_name_invalid_reason(g->name));
        assert(!g->netns || g->netns[0] == '/');
        assert(g->trust == -1 || (g->trust >= 0 && (g->trust & ~TRUST_ALL) == 0));
        assert(g->source);
        assert(g->n_nics == 0 || g->nics);
        for (size_t i = 0; i < g->n_nics; i++) {
                const NicConfig *n = &g->nics[i];
                assert(n->id && n->id[0] != '\0');
                assert(guest_config_find_nic(g, n->id) == n); /* repeated sections were merged */
                assert(!n->host_interface || !ifname_invalid_reason(n->host_interface));
                assert(n->trust == -1 || (n->trust >= 0 && (n->trust & ~TRUST_ALL) == 0));
        }
}

static void setup_once(void) {
        log_max_level = getenv("FUZZ_LOG") ? LOG_DEBUG : -1;
        file_fd = memfd_create("fuzz-config.conf", MFD_CLOEXEC);
        assert(file_fd >= 0);
        snprintf(file_path, sizeof(file_path), "/proc/self/fd/%d", file_fd);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
        DaemonConfig c, before;
        GuestConfig *g = NULL;
        int r;

        if (file_fd < 0)
                setup_once();
        assert(ftruncate(file_fd, 0) == 0);
        for (size_t done = 0; done < size;) {
                ssize_t n = pwrite(file_fd, data + done, size - done, (off_t)done);
                assert(n > 0);
                done += (size_t)n;
        }

        daemon_config_init(&c);
        before = c;
        before.qmp_directory = strdup(c.qmp_directory);
        before.runtime_directory = strdup(c.runtime_directory);
        assert(before.qmp_directory && before.runtime_directory);
        r = daemon_config_load(&c, file_path, true);
        assert(r == 0 || r == -EINVAL || r == -ENOMEM);
        check_daemon_config(&c);
        if (r < 0) {
                assert(strcmp(c.qmp_directory, before.qmp_directory) == 0);
                assert(strcmp(c.runtime_directory, before.runtime_directory) == 0);
                assert(c.workers == before.workers && c.default_trust == before.default_trust &&
                        c.vlan_policy == before.vlan_policy && c.unicast_policy == before.unicast_policy &&
                        c.reconcile_interval_usec == before.reconcile_interval_usec &&
                        c.emit_signals == before.emit_signals &&
                        c.max_queries_per_second == before.max_queries_per_second &&
                        c.revert_on_stop == before.revert_on_stop);
        }
        daemon_config_done(&c);
        daemon_config_done(&before);

        r = guest_config_load(file_path, &g);
        assert(r == 0 || r == -EINVAL || r == -ENOMEM);
        if (r == 0)
                check_guest_config(g);
        else
                assert(!g);
        guest_config_free(g);
        return 0;
}
