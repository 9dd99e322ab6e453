/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* manager.c: the guest registry: drop-ins, the watched QMP directory, attach and detach. */
#include "manager.h"

#include <dirent.h>
#include <string.h>
#include <sys/inotify.h>
#include <sys/stat.h>
#include <time.h>

#include "bus.h"
#include "guest.h"
#include "jobqueue.h"
#include "log.h"
#include "nic.h"
#include "time-util.h"

#define QMP_SOCKET_SUFFIX ".sock"

int manager_new(sd_event *event, DaemonConfig *config, const char *guests_dir, Manager **ret) {
        _cleanup_(manager_freep) Manager *m = calloc(1, sizeof(Manager));
        int r;

        if (!m)
                return -ENOMEM;
        m->event = sd_event_ref(event);
        m->config = *config;
        *config = (DaemonConfig){}; /* the strings are ours now */
        m->guests_dir = strdup(guests_dir);
        _cleanup_free_ char *baseline_dir = NULL;
        if (!m->guests_dir || asprintf(&baseline_dir, "%s/baselines", m->config.runtime_directory) < 0 ||
                host_state_dir_new(baseline_dir, &m->baselines) < 0)
                return -ENOMEM;

        /* Where baselines survive a daemon restart (systemd creates RuntimeDirectory= for us). */
        if ((mkdir(m->config.runtime_directory, 0755) < 0 && errno != EEXIST) ||
                (mkdir(baseline_dir, 0700) < 0 && errno != EEXIST))
                return log_error_errno(errno, "Failed to create %s: %m", baseline_dir);

        r = worker_pool_new(event, m->config.workers, &m->workers);
        if (r < 0)
                return log_error_errno(r, "Failed to start the worker pool: %m");
        r = host_context_new(NULL, &m->host);
        if (r < 0)
                return log_error_errno(r, "Failed to open the host's netlink and ioctl sockets: %m");
        r = host_namespace_new_self(&m->host_ns);
        if (r < 0)
                return log_oom();
        r = host_namespace_prefill(m->host_ns, worker_pool_threads(m->workers));
        if (r < 0)
                return log_error_errno(r, "Failed to open the host's netlink and ioctl sockets: %m");
        r = host_claims_new(&m->claims);
        if (r < 0)
                return log_oom();

        *ret = TAKE_PTR(m);
        return 0;
}

Manager *manager_free(Manager *m) {
        if (!m)
                return NULL;
        m->shutting_down = true;
        m->qmp_dir_watch = sd_event_source_disable_unref(m->qmp_dir_watch);
        m->reconcile_timer = sd_event_source_disable_unref(m->reconcile_timer);
        while (m->guests)
                manager_detach_guest(m, m->guests);
        bus_backlog_done(m); /* its NICs hold references to their guests */
        /* Parked reverts still run (they undo what we did); other parked work is dropped. */
        job_queue_admit(m);
        manager_bus_disconnect(m);
        /* After the guests: cancelled jobs complete here and drop the last references. */
        m->workers = worker_pool_free(m->workers);
        for (WorkerJob *j; (j = m->spare_jobs);) {
                m->spare_jobs = j->next;
                free(j);
        }
        host_context_free(m->host);
        host_namespace_unref(m->host_ns);
        host_claims_free(m->claims);
        daemon_config_done(&m->config);
        strmap_done(&m->guests_by_name);
        free(m->guests_dir);
        host_state_dir_free(m->baselines);
        sd_event_unref(m->event);
        free(m);
        return NULL;
}

Guest *manager_find_guest(Manager *m, const char *name) {
        return strmap_get(&m->guests_by_name, name);
}

uint64_t manager_now(const Manager *m) {
        return m->clock_override_usec ? m->clock_override_usec : now_usec(CLOCK_MONOTONIC);
}

int manager_attach_guest(Manager *m, const char *name, const char *qmp_socket, GuestSource source,
        const GuestConfig *cfg, Guest **ret) {
        Guest *g;
        int r;

        if (manager_find_guest(m, name))
                return -EEXIST;
        r = guest_new(m, name, qmp_socket, source, cfg, &g);
        if (r < 0)
                return r;
        r = strmap_put(&m->guests_by_name, g->name, g);
        if (r < 0) {
                guest_unref(g);
                return r;
        }

        g->next = m->guests;
        if (m->guests)
                m->guests->prev = g;
        m->guests = g;
        m->n_guests++;
        bus_guest_emit_added(g);
        bus_manager_emit_changed(m, "Guests", NULL);

        r = guest_start(g);
        if (r < 0) {
                manager_detach_guest(m, g);
                return r;
        }
        if (ret)
                *ret = g;
        return 0;
}

static void manager_detach_guest_full(Manager *m, Guest *g, bool revert) {
        /* NICs go first, then the guest: each InterfacesRemoved while its object still exists. */
        guest_stop(g, revert && !m->shutting_down);
        bus_guest_emit_removed(g);

        strmap_remove(&m->guests_by_name, g->name);
        if (g->prev)
                g->prev->next = g->next;
        else
                m->guests = g->next;
        if (g->next)
                g->next->prev = g->prev;
        g->prev = g->next = NULL;
        m->n_guests--;
        g->manager = NULL;
        bus_manager_emit_changed(m, "Guests", NULL);
        guest_unref(g);
}

void manager_detach_guest(Manager *m, Guest *g) {
        manager_detach_guest_full(m, g, true);
}

/* ---- reconcile ------------------------------------------------------------------------------------ */

static bool manager_has_trusted_nic(Manager *m) {
        for (Guest *g = m->guests; g; g = g->next)
                for (size_t i = 0; i < g->n_nics; i++)
                        if (nic_trust(g->nics[i]) != TRUST_NONE &&
                                g->nics[i]->host_kind == HOSTDEV_KIND_MACVTAP)
                                return true;
        return false;
}

/* ±10% jitter so that many daemons (or many reconciles) don't beat in step. */
static uint64_t reconcile_delay(Manager *m) {
        uint64_t base = m->config.reconcile_interval_usec;
        return base - base / 10 + (uint64_t)random() % (base / 5 + 1);
}

static int on_reconcile_timer(sd_event_source *s, uint64_t usec, void *userdata) {
        Manager *m = userdata;
        unsigned n = 0;

        for (Guest *g = m->guests; g; g = g->next)
                for (size_t i = 0; i < g->n_nics; i++)
                        n += nic_reconcile(g->nics[i]);
        log_debug("reconcile: %u trusted NIC(s) checked against their host devices", n);

        if (!manager_has_trusted_nic(m))
                return sd_event_source_set_enabled(s, SD_EVENT_OFF);
        /* sd-event turned this one-shot source off before calling us: arm it again. */
        (void)sd_event_source_set_time_relative(s, reconcile_delay(m));
        return sd_event_source_set_enabled(s, SD_EVENT_ONESHOT);
}

static void manager_reconcile_set(Manager *m, bool want) {
        int r;

        if (m->shutting_down || m->config.reconcile_interval_usec == 0)
                return;

        if (!m->reconcile_timer) {
                if (!want)
                        return;
                r = sd_event_add_time_relative(m->event, &m->reconcile_timer, CLOCK_MONOTONIC,
                        reconcile_delay(m), m->config.reconcile_interval_usec / 20, on_reconcile_timer, m);
                if (r < 0)
                        log_warning_errno(r, "Failed to arm the reconcile timer: %m");
                return;
        }

        int enabled = SD_EVENT_OFF;
        (void)sd_event_source_get_enabled(m->reconcile_timer, &enabled);
        if (want && enabled == SD_EVENT_OFF) {
                (void)sd_event_source_set_time_relative(m->reconcile_timer, reconcile_delay(m));
                (void)sd_event_source_set_enabled(m->reconcile_timer, SD_EVENT_ONESHOT);
        } else if (!want && enabled != SD_EVENT_OFF)
                (void)sd_event_source_set_enabled(m->reconcile_timer, SD_EVENT_OFF);
}

void manager_reconcile_update(Manager *m) {
        manager_reconcile_set(m, manager_has_trusted_nic(m));
}

void manager_reconcile_arm(Manager *m) {
        manager_reconcile_set(m, true);
}

static int manager_load_dropins(Manager *m) {
        GuestConfig **configs = NULL;
        size_t n = 0;
        int r;

        r = guest_configs_load_dir(m->guests_dir, &configs, &n);
        if (r < 0)
                return log_error_errno(r, "Failed to read guest drop-ins from %s: %m", m->guests_dir);

        for (size_t i = 0; i < n; i++) {
                r = manager_attach_guest(
                        m, configs[i]->name, configs[i]->qmp_socket, GUEST_SOURCE_CONFIG, configs[i], NULL);
                if (r < 0)
                        log_error_errno(r, "Failed to attach guest %s from %s: %m", configs[i]->name,
                                configs[i]->source ? configs[i]->source : m->guests_dir);
                guest_config_free(configs[i]);
        }
        free(configs);
        return 0;
}

/* "NAME.sock" → NAME, or NULL when the file name is not a guest socket. */
static char *guest_name_from_socket(const char *filename) {
        size_t len = strlen(filename), suffix = strlen(QMP_SOCKET_SUFFIX);

        if (len <= suffix || strcmp(filename + len - suffix, QMP_SOCKET_SUFFIX) != 0 || filename[0] == '.')
                return NULL;
        return strndup(filename, len - suffix);
}

static void manager_socket_appeared(Manager *m, const char *filename) {
        _cleanup_free_ char *name = guest_name_from_socket(filename), *path = NULL;
        struct stat st;

        if (!name || asprintf(&path, "%s/%s", m->config.qmp_directory, filename) < 0)
                return;
        if (stat(path, &st) < 0 || !S_ISSOCK(st.st_mode))
                return;
        /* Whoever may create sockets here names a guest, published on the bus (which wants UTF-8). */
        const char *reason = guest_name_invalid_reason(name);
        if (reason) {
                log_warning("Ignoring %s/%s: not a valid guest name: %s", m->config.qmp_directory, filename,
                        reason);
                return;
        }

        Guest *g = manager_find_guest(m, name);
        if (g) {
                /* A drop-in may name a socket of this directory (for its NIC settings): same guest. */
                if (strcmp(g->qmp_socket, path) == 0)
                        guest_socket_appeared(g);
                else
                        log_guest(g, LOG_NOTICE, "ignoring %s: a guest of that name is already attached",
                                path);
                return;
        }
        int r = manager_attach_guest(m, name, path, GUEST_SOURCE_DIRECTORY, NULL, NULL);
        if (r < 0)
                log_error_errno(r, "Failed to attach guest %s from %s: %m", name, path);
}

bool manager_watches_socket(Manager *m, const char *path) {
        const char *dir = m->config.qmp_directory;
        size_t len = strlen(dir);

        return strncmp(path, dir, len) == 0 && path[len] == '/' && !strchr(path + len + 1, '/');
}

static void manager_socket_vanished(Manager *m, const char *filename) {
        _cleanup_free_ char *name = guest_name_from_socket(filename);
        if (!name)
                return;
        Guest *g = manager_find_guest(m, name);
        if (g && g->source == GUEST_SOURCE_DIRECTORY)
                manager_detach_guest_full(m, g, m->config.revert_on_stop); /* the guest stopped */
}

/* Makes the directory-attached guests match the sockets there: what inotify says, after it lost events. */
static int manager_rescan_qmp_dir(Manager *m) {
        const char *dir = m->config.qmp_directory;

        for (Guest *g = m->guests, *next; g; g = next) {
                struct stat st;
                next = g->next;
                if (g->source == GUEST_SOURCE_DIRECTORY &&
                        (stat(g->qmp_socket, &st) < 0 || !S_ISSOCK(st.st_mode)))
                        manager_detach_guest_full(m, g, m->config.revert_on_stop);
        }

        _cleanup_(closedirp) DIR *d = opendir(dir);
        if (!d)
                return log_error_errno(errno, "Failed to read the QMP directory %s: %m", dir);
        for (struct dirent *de; (de = readdir(d));)
                manager_socket_appeared(m, de->d_name);
        return 0;
}

static int on_qmp_dir_event(sd_event_source *s, const struct inotify_event *event, void *userdata) {
        Manager *m = userdata;

        if (event->mask & IN_Q_OVERFLOW) {
                log_warning("inotify queue overflow on %s, rescanning", m->config.qmp_directory);
                (void)manager_rescan_qmp_dir(m);
                return 0;
        }
        if (event->len == 0)
                return 0;
        if (event->mask & (IN_CREATE | IN_MOVED_TO))
                manager_socket_appeared(m, event->name);
        else if (event->mask & (IN_DELETE | IN_MOVED_FROM))
                manager_socket_vanished(m, event->name);
        return 0;
}

static int manager_watch_qmp_dir(Manager *m) {
        const char *dir = m->config.qmp_directory;
        int r;

        /* QEMU runs as other users and must be able to create its socket here, whatever our umask. */
        if (mkdir(dir, 0755) < 0) {
                if (errno != EEXIST)
                        return log_error_errno(errno, "Failed to create the QMP directory %s: %m", dir);
        } else if (chmod(dir, 0755) < 0)
                return log_error_errno(errno, "Failed to make the QMP directory %s accessible: %m", dir);

        r = sd_event_add_inotify(m->event, &m->qmp_dir_watch, dir,
                IN_CREATE | IN_DELETE | IN_MOVED_TO | IN_MOVED_FROM | IN_ONLYDIR, on_qmp_dir_event, m);
        if (r < 0)
                return log_error_errno(r, "Failed to watch the QMP directory %s: %m", dir);

        /* Sockets that exist before the watch started. */
        return manager_rescan_qmp_dir(m);
}

int manager_start(Manager *m) {
        int r;

        r = manager_load_dropins(m);
        if (r < 0)
                return r;
        return manager_watch_qmp_dir(m);
}
