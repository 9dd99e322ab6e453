/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* main.c: guestnetd: arguments, configuration, the sd-event loop, signals, sd_notify and the watchdog. */
#include <getopt.h>
#include <signal.h>
#include <stdio.h>
#include <string.h>
#include <sys/resource.h>
#include <systemd/sd-daemon.h>
#include <systemd/sd-event.h>

#include "bus-introspect.h"
#include "bus.h"
#include "config.h"
#include "log.h"
#include "manager.h"
#include "schedslice.h"
#include "version.h"

typedef struct Arguments {
        const char *config_file;
        bool config_file_explicit;
        const char *guests_dir;
        const char *qmp_dir;
        int workers; /* -1: from the configuration */
        int log_level;
} Arguments;

static void help(void) {
        printf("guestnetd [OPTIONS...]\n\n"
               "Watches QEMU guests over QMP and keeps each NIC's RX filter in view and in sync with its "
               "host device.\n\n"
               "  -h --help               Show this help and exit\n"
               "     --version            Print the version and exit\n"
               "     --config=FILE        Configuration file (default: " CONFIG_FILE_DEFAULT ")\n"
               "     --guests-dir=DIR     Guest drop-in directory (default: " GUESTS_DIR_DEFAULT ")\n"
               "     --qmp-dir=DIR        Watched QMP socket directory (default: " QMP_DIR_DEFAULT ")\n"
               "     --workers=N          Worker threads (default: Workers= or the number of CPUs)\n"
               "     --log-level=LEVEL    err, warning, notice, info or debug (default: info)\n"
               "     --bus-introspect=IFACE\n"
               "                          Print the introspection XML of a D-Bus interface and exit\n"
               "                          (\"list\" lists the interfaces)\n");
}

/* --bus-introspect=IFACE|list: the XML comes from the compiled vtables, so no bus is needed. */
static int bus_introspect(const char *name) {
        const BusInterface *ifaces;
        size_t n;
        int r;

        ifaces = bus_interfaces(&n);
        if (strcmp(name, "list") == 0) {
                for (size_t i = 0; i < n; i++)
                        puts(ifaces[i].name);
                return 0;
        }
        const BusInterface *iface = bus_interface_find(name);
        if (!iface) {
                char allowed[256] = "";
                for (size_t i = 0; i < n; i++) {
                        strncat(allowed, ifaces[i].name, sizeof(allowed) - strlen(allowed) - 1);
                        strncat(allowed, ", ", sizeof(allowed) - strlen(allowed) - 1);
                }
                return log_error_errno(EINVAL, "--bus-introspect= must be one of %slist: %s", allowed, name);
        }
        r = bus_introspect_write(stdout, iface->name, iface->vtable);
        if (r < 0)
                return log_error_errno(r, "Failed to write the introspection of %s: %m", iface->name);
        if (fflush(stdout) != 0)
                return log_error_errno(errno, "Failed to write to stdout: %m");
        return 0;
}

/* Returns 1 to run, 0 to exit successfully, negative on bad usage. */
static int parse_argv(int argc, char **argv, Arguments *args) {
        enum {
                ARG_VERSION = 0x100,
                ARG_CONFIG,
                ARG_GUESTS_DIR,
                ARG_QMP_DIR,
                ARG_WORKERS,
                ARG_LOG_LEVEL,
                ARG_BUS_INTROSPECT
        };
        static const struct option options[] = {
                { "help", no_argument, NULL, 'h' },
                { "version", no_argument, NULL, ARG_VERSION },
                { "config", required_argument, NULL, ARG_CONFIG },
                { "guests-dir", required_argument, NULL, ARG_GUESTS_DIR },
                { "qmp-dir", required_argument, NULL, ARG_QMP_DIR },
                { "workers", required_argument, NULL, ARG_WORKERS },
                { "log-level", required_argument, NULL, ARG_LOG_LEVEL },
                { "bus-introspect", required_argument, NULL, ARG_BUS_INTROSPECT },
                {},
        };
        int c, r;

        while ((c = getopt_long(argc, argv, "h", options, NULL)) >= 0) {
                switch (c) {
                case 'h':
                        help();
                        return 0;
                case ARG_VERSION:
                        printf("guestnetd " GUESTNETD_VERSION "\n");
                        return 0;
                case ARG_CONFIG:
                        args->config_file = optarg;
                        args->config_file_explicit = true;
                        break;
                case ARG_GUESTS_DIR:
                        args->guests_dir = optarg;
                        break;
                case ARG_QMP_DIR:
                        if (optarg[0] != '/')
                                return log_error_errno(
                                        EINVAL, "--qmp-dir= must be an absolute path: %s", optarg);
                        args->qmp_dir = optarg;
                        break;
                case ARG_WORKERS: {
                        char *end;
                        long n = strtol(optarg, &end, 10);
                        if (*optarg == '\0' || *end != '\0' || n < 0 || n > 1024)
                                return log_error_errno(
                                        EINVAL, "--workers= must be 0..1024 (0 = CPU count): %s", optarg);
                        args->workers = (int)n;
                        break;
                }
                case ARG_LOG_LEVEL:
                        args->log_level = log_level_from_string(optarg);
                        if (args->log_level < 0)
                                return log_error_errno(EINVAL,
                                        "--log-level= must be one of err, warning, notice, info, debug: %s",
                                        optarg);
                        log_max_level = args->log_level;
                        break;
                case ARG_BUS_INTROSPECT:
                        r = bus_introspect(optarg);
                        return r < 0 ? r : 0;
                case '?':
                        return -EINVAL;
                default:
                        return -EINVAL;
                }
        }
        if (optind < argc)
                return log_error_errno(EINVAL, "Unexpected argument: %s", argv[optind]);
        return 1;
}

static int on_exit_signal(sd_event_source *s, const struct signalfd_siginfo *si, void *userdata) {
        log_info("Received %s, shutting down.", strsignal((int)si->ssi_signo));
        (void)sd_notify(false, "STOPPING=1\nSTATUS=Shutting down...");
        return sd_event_exit(sd_event_source_get_event(s), 0);
}

/* Each guest's monitor and each trusted NIC's ownership record is an open fd: take the whole hard limit
 * (the soft default of 1,024 protects select() users; sd-event uses epoll, and nothing here forks). */
static void rlimit_nofile_raise(void) {
        struct rlimit rl;

        if (getrlimit(RLIMIT_NOFILE, &rl) < 0 || rl.rlim_cur >= rl.rlim_max)
                return;
        rl.rlim_cur = rl.rlim_max;
        if (setrlimit(RLIMIT_NOFILE, &rl) < 0)
                log_warning_errno(-errno, "Cannot raise the open files limit to %llu: %m",
                        (unsigned long long)rl.rlim_max);
}

/* CPUSchedulingSliceUSec=: a scheduling request, so a kernel or policy that cannot honour it is reported
 * and the daemon runs on with the kernel's default. */
static void sched_slice_apply(unsigned usec) {
        uint64_t nsec = 0;

        if (usec == 0)
                return;
        int r = sched_slice_set(usec, &nsec);
        if (r == -EOPNOTSUPP)
                log_info("CPUSchedulingSliceUSec=%u: this kernel keeps no slice per task "
                         "(Linux 6.12 and later do), using its default",
                        usec);
        else if (r == -EMEDIUMTYPE)
                log_info("CPUSchedulingSliceUSec=%u: the scheduling policy "
                         "is not SCHED_OTHER or SCHED_BATCH, left as it is",
                        usec);
        else if (r == -EPERM)
                log_warning("CPUSchedulingSliceUSec=%u cannot be set: sched_setattr() refused "
                            "(a system call filter without it, or missing privilege); "
                            "running with the kernel's default",
                        usec);
        else if (r < 0)
                log_warning_errno(r, "CPUSchedulingSliceUSec=%u cannot be set: %m", usec);
        else
                log_debug("Threads ask for a scheduler slice of %llu µs", (unsigned long long)(nsec / 1000));
}

static int run(int argc, char **argv) {
        Arguments args = {
                .config_file = CONFIG_FILE_DEFAULT,
                .guests_dir = GUESTS_DIR_DEFAULT,
                .workers = -1,
                .log_level = -1,
        };
        _cleanup_(daemon_config_done) DaemonConfig config;
        _cleanup_(sd_event_unrefp) sd_event *event = NULL;
        _cleanup_(manager_freep) Manager *m = NULL;
        int r;

        daemon_config_init(&config);
        r = parse_argv(argc, argv, &args);
        if (r <= 0)
                return r;

        r = daemon_config_load(&config, args.config_file, args.config_file_explicit);
        if (r < 0)
                return r;
        log_set_ratelimit(config.log_ratelimit_interval_usec, config.log_ratelimit_burst);
        if (args.qmp_dir) {
                free(config.qmp_directory);
                config.qmp_directory = strdup(args.qmp_dir);
                if (!config.qmp_directory)
                        return log_oom();
        }
        if (args.workers >= 0)
                config.workers = (unsigned)args.workers;

        /* Signals arrive through sd-event; block them first so worker threads inherit the mask. */
        sigset_t mask;
        sigemptyset(&mask);
        sigaddset(&mask, SIGTERM);
        sigaddset(&mask, SIGINT);
        sigprocmask(SIG_BLOCK, &mask, NULL);
        signal(SIGPIPE, SIG_IGN);
        rlimit_nofile_raise();

        /* Before any thread is made: the workers inherit the slice. */
        sched_slice_apply(config.sched_slice_usec);

        /* A loop of our own, not the thread's default: sd_event_prepare() checks a default loop's thread
         * with gettid(), a system call on every iteration of the loop. */
        r = sd_event_new(&event);
        if (r < 0)
                return log_error_errno(r, "Failed to allocate the event loop: %m");
        r = sd_event_add_signal(event, NULL, SIGTERM, on_exit_signal, NULL);
        if (r >= 0)
                r = sd_event_add_signal(event, NULL, SIGINT, on_exit_signal, NULL);
        if (r < 0)
                return log_error_errno(r, "Failed to watch signals: %m");
        r = sd_event_set_watchdog(event, true);
        if (r < 0)
                return log_error_errno(r, "Failed to enable the watchdog: %m");

        r = manager_new(event, &config, args.guests_dir, &m);
        if (r < 0)
                return r;
        /* Without a bus the host sync still works; publishing is what is lost, so say it loudly. */
        r = manager_bus_connect(m);
        if (r == -EEXIST)
                return r; /* another instance: leave its guests and baselines alone */
        if (r < 0)
                log_warning_errno(r, "Not publishing on the system bus (%s): %m",
                        getenv("DBUS_SYSTEM_BUS_ADDRESS") ?: "default address");
        r = manager_start(m);
        if (r < 0)
                return r;

        log_info("guestnetd " GUESTNETD_VERSION " running: %zu guest(s), %u worker(s), QMP directory %s",
                m->n_guests, worker_pool_threads(m->workers), m->config.qmp_directory);
        (void)sd_notifyf(false, "READY=1\nSTATUS=Watching %zu guest(s)", m->n_guests);

        r = sd_event_loop(event);
        if (r < 0)
                return log_error_errno(r, "Event loop failed: %m");
        return 0;
}

int main(int argc, char **argv) {
        int r = run(argc, argv);
        return r < 0 ? EXIT_FAILURE : EXIT_SUCCESS;
}
