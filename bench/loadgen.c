/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* loadgen.c: guestnetd's load generator.
 *
 * Serves N simulated QEMU 7.2 monitors (DIR/gNNNN.sock, the daemon's watched --qmp-dir), each with M
 * virtio NICs, on one sd-event loop: greeting, qmp_capabilities, query-name/uuid/version, qom-get
 * netdev/mac, human-monitor-command "info network" and query-rx-filter (named and all) answering
 * with an evolving filter. QEMU's one-event-per-query rule is honoured: a NIC is armed at creation
 * and by every query-rx-filter naming it (or naming none); a change emits NIC_RX_FILTER_CHANGED
 * only while armed and disarms it; changes while disarmed are silent.
 *
 * Every change of NIC n bumps its sequence number `seq`; the filter is a pure function of (n, seq):
 * the unicast table always holds 02:00:SS:SS:SS:SS (seq, big endian; the default UnicastPolicy=ignore
 * never applies it to a host device), and --change= adds what the host sees:
 *   mcast  multicast table gets 33:33:SS:SS:SS:SS (SIOCDELMULTI + SIOCADDMULTI on a trusted macvtap)
 *   flags  promiscuous = seq & 1 (one RTM_SETLINK)
 *   mac    main-mac = 5a:II:SS:SS:SS:SS (RTM_SETLINK IFLA_ADDRESS, ~10 ms in the kernel)
 *   none   nothing else (the unicast table entry only)
 *   macflags  the first NIC changes its MAC continuously (in the background, untimed), every other NIC
 *          toggles promiscuous mode: does one NIC's slow MAC change hold up the others?
 * Trusted NICs (--ifname-prefix=mvt) are macvtaps PREFIX<global NIC index> whose character devices this
 * process holds open and reports by fd, as QEMU under libvirt does.
 * The same process subscribes to RxFilterChanged on the bus; a signal for NIC n carrying sequence s
 * completes every event of n sent with seq <= s: latency = signal received - event written.
 * At the end changes stop, every NIC must publish its final seq, and the last RxFilterChanged
 * of every NIC is compared field by field with the expected final filter, and with trusted NICs every
 * macvtap's MAC, promiscuous flag and user multicast entries with the filter of its final seq.
 *
 * Modes: latency (closed loop, one change in flight, --count samples, --gap-us between them),
 *        throughput (--rate changes/s in total, or 0: as fast as the one-event-per-query rule
 *        allows: each NIC changes again right after its query is answered),
 *        idle (no changes; counts the daemon's context switches over --idle seconds).
 * The result is one JSON object (--out, default stdout); --samples writes the latencies (µs). */
/* Truncated diagnostics are fine; gcc cannot see that the MACs printed here are 17 bytes. */
#pragma GCC diagnostic ignored "-Wformat-truncation"
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <inttypes.h>
#include <math.h>
#include <net/if.h>
#include <signal.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/sysmacros.h>
#include <sys/un.h>
#include <systemd/sd-bus.h>
#include <systemd/sd-event.h>
#include <time.h>
#include <unistd.h>

#define BUS_NAME   "io.guestnetd.GuestNet1"
#define NIC_IFACE  "io.guestnetd.GuestNet1.Nic"
#define PATH_GUEST "/io/guestnetd/GuestNet1/guest/"
#define RING       32

enum { MODE_LATENCY, MODE_THROUGHPUT, MODE_IDLE };
enum { CHANGE_NONE, CHANGE_MCAST, CHANGE_FLAGS, CHANGE_MAC, CHANGE_MACFLAGS };
static const char *const change_names[] = { "none", "mcast", "flags", "mac", "macflags" };
static const char *const mode_names[] = { "latency", "throughput", "idle" };

typedef struct Guest Guest;

typedef struct Nic {
        Guest *guest;
        unsigned idx; /* within the guest */
        unsigned gidx; /* global */
        uint32_t seq; /* current filter */
        bool armed;
        uint32_t pub_seq; /* last seq seen in an RxFilterChanged */
        bool have_pub;
        uint64_t signals;
        sd_bus_message *last; /* last RxFilterChanged, for the final check */
        /* events sent and not yet matched by a signal */
        int tap_fd; /* trusted: the macvtap's character device, held open as QEMU does (-1: none) */
        uint32_t ring_seq[RING];
        uint64_t ring_t[RING];
        unsigned ring_head, ring_len;
} Nic;

typedef struct Conn {
        Guest *guest;
        int fd;
        sd_event_source *src;
        char *in;
        size_t in_len, in_alloc, scan, start;
        int depth;
        bool in_str, esc, started;
        char *out;
        size_t out_len, out_off, out_alloc;
        bool negotiated;
        struct Conn *next;
} Conn;

struct Guest {
        unsigned idx;
        char name[16];
        char path[108];
        int lfd;
        sd_event_source *lsrc;
        Conn *conns;
        Nic *nics;
};

/* ---- options and state ------------------------------------------------------------------------ */
static struct {
        const char *dir;
        unsigned guests, nics;
        int mode, change;
        const char *ifname_fmt; /* "mvt": host interface PREFIX<global NIC index>; NULL: fd-passed,
                                   unresolvable */
        unsigned count, warmup_count, gap_us;
        double rate, duration, warmup, idle;
        double ready_timeout, settle_timeout;
        const char *out, *samples;
        const char *label;
        int daemon_pid, bus_pid;
} opt = {
        .guests = 1,
        .nics = 1,
        .mode = MODE_LATENCY,
        .change = CHANGE_MCAST,
        .count = 2000,
        .warmup_count = 100,
        .gap_us = 1000,
        .rate = 0,
        .duration = 10,
        .warmup = 2,
        .idle = 10,
        .ready_timeout = 180,
        .settle_timeout = 60,
        .label = "",
};

static sd_event *loop;
static sd_bus *bus;
static Guest *guests;
static Nic **all_nics;
static unsigned n_all;
static bool changing; /* changes allowed (throughput phases) */
static bool measuring;
static int phase; /* 0 wait ready, 1 warmup, 2 measure, 3 settle, 4 done */
static unsigned n_ready;
static int exit_code;

/* latency samples (ns) */
static uint64_t *lat;
static size_t n_lat, lat_alloc;
/* counters */
static uint64_t c_events, c_changes, c_queries, c_queries_all, c_signals, c_observed, c_bad_signals;
static uint64_t c_ring_overflow, c_lost_events;
static uint64_t m_events, m_changes, m_signals, m_observed, m_queries; /* at measure start */
static uint64_t e_events, e_changes, e_signals, e_observed, e_queries; /* at measure end */
/* latency mode */
static unsigned lat_next_nic;
static Nic *lat_waiting;
static sd_event_source *timer_src;
static double rate_carry;
static unsigned rate_next;

static uint64_t now_ns(void) {
        struct timespec ts;
        clock_gettime(CLOCK_MONOTONIC, &ts);
        return (uint64_t)ts.tv_sec * 1000000000ULL + (uint64_t)ts.tv_nsec;
}

static void die(const char *what, int r) {
        fprintf(stderr, "loadgen: %s: %s\n", what, strerror(r < 0 ? -r : r));
        exit(2);
}

/* ---- the daemon's /proc ------------------------------------------------------------------------ */
typedef struct ProcSample {
        double cpu_s; /* utime + stime */
        long rss_kb, hwm_kb;
        uint64_t ctxt_vol, ctxt_invol, sched_runs, sched_cpu_ns; /* summed over the tasks */
        unsigned threads;
        double t; /* monotonic s */
        double host_busy_s;
} ProcSample;

static long status_kb(const char *buf, const char *key) {
        const char *p = strstr(buf, key);
        return p ? strtol(p + strlen(key), NULL, 10) : -1;
}

/* Host-wide busy CPU time (s) from /proc/stat: other work on the machine shows up as busy time that
 * is neither the daemon's, the bus's nor ours. */
static double host_busy_s(void) {
        FILE *f = fopen("/proc/stat", "re");
        unsigned long long v[10] = {};
        if (!f)
                return 0;
        int k = fscanf(f, "cpu %llu %llu %llu %llu %llu %llu %llu %llu %llu %llu", &v[0], &v[1], &v[2],
                &v[3], &v[4], &v[5], &v[6], &v[7], &v[8], &v[9]);
        fclose(f);
        if (k < 8)
                return 0;
        /* user nice system [idle iowait] irq softirq steal */
        return (double)(v[0] + v[1] + v[2] + v[5] + v[6] + v[7]) / (double)sysconf(_SC_CLK_TCK);
}

static void proc_sample(int pid, ProcSample *s) {
        char path[384], buf[4096];
        memset(s, 0, sizeof(*s));
        s->t = now_ns() / 1e9;
        s->host_busy_s = host_busy_s();
        if (pid <= 0)
                return;
        snprintf(path, sizeof(path), "/proc/%d/stat", pid);
        FILE *f = fopen(path, "re");
        if (f) {
                size_t n = fread(buf, 1, sizeof(buf) - 1, f);
                buf[n] = 0;
                fclose(f);
                char *p = strrchr(buf, ')');
                unsigned long utime = 0, stime = 0;
                /* fields after ')': state(3) ... utime(14) stime(15) */
                if (p &&
                        sscanf(p + 2, "%*c %*d %*d %*d %*d %*d %*u %*u %*u %*u %*u %lu %lu", &utime,
                                &stime) == 2)
                        s->cpu_s = (double)(utime + stime) / (double)sysconf(_SC_CLK_TCK);
        }
        snprintf(path, sizeof(path), "/proc/%d/status", pid);
        f = fopen(path, "re");
        if (f) {
                size_t n = fread(buf, 1, sizeof(buf) - 1, f);
                buf[n] = 0;
                fclose(f);
                s->rss_kb = status_kb(buf, "VmRSS:");
                s->hwm_kb = status_kb(buf, "VmHWM:");
        }
        snprintf(path, sizeof(path), "/proc/%d/task", pid);
        DIR *d = opendir(path);
        if (!d)
                return;
        for (struct dirent *de; (de = readdir(d));) {
                if (de->d_name[0] == '.')
                        continue;
                s->threads++;
                snprintf(path, sizeof(path), "/proc/%d/task/%s/status", pid, de->d_name);
                f = fopen(path, "re");
                if (f) {
                        size_t n = fread(buf, 1, sizeof(buf) - 1, f);
                        buf[n] = 0;
                        fclose(f);
                        long v = status_kb(buf, "\nvoluntary_ctxt_switches:");
                        long nv = status_kb(buf, "nonvoluntary_ctxt_switches:");
                        s->ctxt_vol += v > 0 ? (uint64_t)v : 0;
                        s->ctxt_invol += nv > 0 ? (uint64_t)nv : 0;
                }
                snprintf(path, sizeof(path), "/proc/%d/task/%s/schedstat", pid, de->d_name);
                f = fopen(path, "re");
                if (f) {
                        unsigned long long a, b, c;
                        if (fscanf(f, "%llu %llu %llu", &a, &b, &c) == 3) {
                                s->sched_runs += c;
                                s->sched_cpu_ns += a;
                        }
                        fclose(f);
                }
        }
        closedir(d);
        /* schedstat's run time is in ns (utime+stime are in clock ticks): use it when present. */
        if (s->sched_cpu_ns > 0)
                s->cpu_s = (double)s->sched_cpu_ns / 1e9;
}

/* ---- the filter as a function of (nic, seq) ------------------------------------------------------- */
static void configured_mac(const Nic *n, char buf[18]) {
        snprintf(buf, 18, "52:54:00:%02x:%02x:%02x", (n->guest->idx >> 8) & 0xff, n->guest->idx & 0xff,
                n->idx);
}

/* What a change of NIC n changes: --change=, except with macflags, where the first NIC of all changes
 * its MAC continuously and every other NIC toggles promiscuous mode (only theirs are timed). */
static int nic_kind(const Nic *n) {
        if (opt.change == CHANGE_MACFLAGS)
                return n->gidx == 0 ? CHANGE_MAC : CHANGE_FLAGS;
        return opt.change;
}

/* With macflags, the MAC NIC changes in the background and is not timed. */
static bool background_nic(const Nic *n) {
        return opt.change == CHANGE_MACFLAGS && nic_kind(n) == CHANGE_MAC;
}

static void filter_mac(const Nic *n, uint32_t seq, char buf[18]) {
        if (nic_kind(n) == CHANGE_MAC && seq > 0)
                snprintf(buf, 18, "5a:%02x:%02x:%02x:%02x:%02x", n->gidx & 0xff, seq >> 24,
                        (seq >> 16) & 0xff, (seq >> 8) & 0xff, seq & 0xff);
        else
                configured_mac(n, buf);
}

static bool filter_promisc(const Nic *n, uint32_t seq) {
        return nic_kind(n) == CHANGE_FLAGS && (seq & 1);
}

static void seq_mac(const char *prefix, uint32_t seq, char buf[18]) {
        snprintf(buf, 18, "%s:%02x:%02x:%02x:%02x", prefix, seq >> 24, (seq >> 16) & 0xff, (seq >> 8) & 0xff,
                seq & 0xff);
}

/* Multicast table as QEMU returns it (reverse insertion order). Returns the count. */
static unsigned filter_mcast(const Nic *n, uint32_t seq, char out[3][18]) {
        unsigned k = 0;
        if (nic_kind(n) == CHANGE_MCAST)
                seq_mac("33:33", seq, out[k++]);
        strcpy(out[k++], "01:00:5e:00:00:01");
        strcpy(out[k++], "33:33:00:00:00:01");
        return k;
}

static size_t write_filter(char *buf, size_t size, const Nic *n, uint32_t seq) {
        char mac[18], uc[18], mc[3][18];
        filter_mac(n, seq, mac);
        seq_mac("02:00", seq, uc);
        unsigned k = filter_mcast(n, seq, mc);
        int len = snprintf(buf, size,
                "{\"promiscuous\": %s, \"name\": \"net%u\", \"main-mac\": \"%s\", \"unicast\": \"normal\", "
                "\"vlan\": \"normal\", \"vlan-table\": [0], \"unicast-table\": [\"%s\"], \"multicast\": "
                "\"normal\", "
                "\"multicast-overflow\": false, \"unicast-overflow\": false, \"multicast-table\": [",
                filter_promisc(n, seq) ? "true" : "false", n->idx, mac, uc);
        for (unsigned i = 0; i < k; i++)
                len += snprintf(buf + len, size - (size_t)len, "%s\"%s\"", i ? ", " : "", mc[i]);
        len += snprintf(buf + len, size - (size_t)len, "], \"broadcast-allowed\": false}");
        return (size_t)len;
}

/* ---- connections ------------------------------------------------------------------------------------ */
static void conn_free(Conn *c);

static int conn_flush(Conn *c) {
        while (c->out_off < c->out_len) {
                ssize_t k = write(c->fd, c->out + c->out_off, c->out_len - c->out_off);
                if (k < 0) {
                        if (errno == EAGAIN)
                                break;
                        if (errno == EINTR)
                                continue;
                        return -errno;
                }
                c->out_off += (size_t)k;
        }
        if (c->out_off == c->out_len)
                c->out_off = c->out_len = 0;
        return sd_event_source_set_io_events(c->src, EPOLLIN | (c->out_len ? EPOLLOUT : 0));
}

static void conn_queue(Conn *c, const char *text, size_t len) {
        if (c->out_len + len > c->out_alloc) {
                size_t a = (c->out_len + len) * 2 + 4096;
                char *p = realloc(c->out, a);
                if (!p)
                        die("realloc", ENOMEM);
                c->out = p;
                c->out_alloc = a;
        }
        memcpy(c->out + c->out_len, text, len);
        c->out_len += len;
}

static void guest_remove_conn(Guest *g, Conn *c) {
        for (Conn **p = &g->conns; *p; p = &(*p)->next)
                if (*p == c) {
                        *p = c->next;
                        return;
                }
}

/* Emits the event if armed; returns true if it went out. */
static bool nic_emit(Nic *n) {
        Guest *g = n->guest;
        if (!n->armed)
                return false;
        n->armed = false;
        struct timespec ts;
        clock_gettime(CLOCK_REALTIME, &ts);
        char buf[256];
        int len = snprintf(buf, sizeof(buf),
                "{\"timestamp\": {\"seconds\": %lld, \"microseconds\": %ld}, \"event\": "
                "\"NIC_RX_FILTER_CHANGED\", "
                "\"data\": {\"name\": \"net%u\", \"path\": "
                "\"/machine/peripheral/net%u/virtio-backend\"}}\r\n",
                (long long)ts.tv_sec, ts.tv_nsec / 1000, n->idx, n->idx);
        bool delivered = false;
        uint64_t t = now_ns();
        for (Conn *c = g->conns, *next; c; c = next) {
                next = c->next;
                if (!c->negotiated)
                        continue;
                conn_queue(c, buf, (size_t)len);
                if (conn_flush(c) < 0) {
                        conn_free(c);
                        continue;
                }
                delivered = true;
        }
        c_events++;
        if (!delivered) {
                c_lost_events++;
                return true;
        }
        if (n->ring_len == RING) {
                c_ring_overflow++;
                n->ring_head = (n->ring_head + 1) % RING;
                n->ring_len--;
        }
        unsigned slot = (n->ring_head + n->ring_len) % RING;
        n->ring_seq[slot] = n->seq;
        n->ring_t[slot] = t;
        n->ring_len++;
        return true;
}

static void nic_change(Nic *n) {
        n->seq++;
        c_changes++;
        (void)nic_emit(n);
}

static const char *json_find(const char *msg, size_t len, const char *key, size_t *vlen, bool string) {
        char pat[32];
        int pl = snprintf(pat, sizeof(pat), "\"%s\"", key);
        const char *end = msg + len;
        for (const char *p = memmem(msg, len, pat, (size_t)pl); p;
                p = memmem(p + 1, (size_t)(end - p - 1), pat, (size_t)pl)) {
                const char *q = p + pl;
                while (q < end && (*q == ' ' || *q == '\t' || *q == '\n' || *q == '\r'))
                        q++;
                if (q >= end || *q != ':')
                        continue;
                q++;
                while (q < end && (*q == ' ' || *q == '\t' || *q == '\n' || *q == '\r'))
                        q++;
                if (string) {
                        if (q >= end || *q != '"')
                                return NULL;
                        q++;
                        const char *e = q;
                        while (e < end && *e != '"')
                                e += *e == '\\' ? 2 : 1;
                        *vlen = (size_t)(e - q);
                        return q;
                }
                const char *e = q;
                while (e < end && *e != ',' && *e != '}' && *e != ' ')
                        e++;
                *vlen = (size_t)(e - q);
                return q;
        }
        return NULL;
}

static bool str_is(const char *s, size_t len, const char *lit) {
        return s && strlen(lit) == len && memcmp(s, lit, len) == 0;
}

static void reply(Conn *c, const char *id, size_t id_len, const char *ret, size_t ret_len) {
        conn_queue(c, "{\"return\": ", 11);
        conn_queue(c, ret, ret_len);
        if (id) {
                conn_queue(c, ", \"id\": ", 8);
                conn_queue(c, id, id_len);
        }
        conn_queue(c, "}\r\n", 3);
}

static void reply_error(Conn *c, const char *id, size_t id_len, const char *cls, const char *desc) {
        char buf[512];
        int len = snprintf(buf, sizeof(buf), "{\"error\": {\"class\": \"%s\", \"desc\": \"%s\"}", cls, desc);
        conn_queue(c, buf, (size_t)len);
        if (id) {
                conn_queue(c, ", \"id\": ", 8);
                conn_queue(c, id, id_len);
        }
        conn_queue(c, "}\r\n", 3);
}

static Nic *guest_nic(Guest *g, const char *name, size_t len) {
        if (!name || len < 4 || memcmp(name, "net", 3) != 0)
                return NULL;
        unsigned i = 0;
        for (size_t k = 3; k < len; k++) {
                if (name[k] < '0' || name[k] > '9')
                        return NULL;
                i = i * 10 + (unsigned)(name[k] - '0');
        }
        return i < opt.nics ? &g->nics[i] : NULL;
}

static void handle_command(Conn *c, const char *msg, size_t len) {
        Guest *g = c->guest;
        size_t elen = 0, idlen = 0, nlen = 0;
        const char *exe = json_find(msg, len, "execute", &elen, true);
        const char *id = json_find(msg, len, "id", &idlen, false);
        char buf[8192];

        if (!exe) {
                reply_error(c, id, idlen, "GenericError", "QMP input lacks member 'execute'");
                return;
        }
        if (!c->negotiated) {
                if (str_is(exe, elen, "qmp_capabilities")) {
                        c->negotiated = true;
                        reply(c, id, idlen, "{}", 2);
                } else
                        reply_error(c, id, idlen, "CommandNotFound",
                                "Expecting capabilities negotiation with 'qmp_capabilities'");
                return;
        }
        if (str_is(exe, elen, "query-rx-filter")) {
                const char *name = json_find(msg, len, "name", &nlen, true);
                if (!name) {
                        c_queries_all++;
                        size_t k = 0;
                        buf[k++] = '[';
                        for (unsigned i = 0; i < opt.nics; i++) {
                                if (i)
                                        k += (size_t)snprintf(buf + k, sizeof(buf) - k, ", ");
                                k += write_filter(buf + k, sizeof(buf) - k, &g->nics[i], g->nics[i].seq);
                                g->nics[i].armed = true;
                        }
                        buf[k++] = ']';
                        reply(c, id, idlen, buf, k);
                        return;
                }
                Nic *n = guest_nic(g, name, nlen);
                if (!n) {
                        char desc[128];
                        snprintf(desc, sizeof(desc), "invalid net client name: %.*s", (int)nlen, name);
                        reply_error(c, id, idlen, "GenericError", desc);
                        return;
                }
                c_queries++;
                buf[0] = '[';
                size_t k = 1 + write_filter(buf + 1, sizeof(buf) - 1, n, n->seq);
                buf[k++] = ']';
                n->armed = true;
                reply(c, id, idlen, buf, k);
                /* As fast as allowed: the guest changes its filter again right after the query (with
                 * macflags, the MAC NIC always does). */
                if (changing && ((opt.mode == MODE_THROUGHPUT && opt.rate <= 0) || background_nic(n)))
                        nic_change(n);
                return;
        }
        if (str_is(exe, elen, "qom-get")) {
                size_t plen = 0, prlen = 0;
                const char *path = json_find(msg, len, "path", &plen, true);
                const char *prop = json_find(msg, len, "property", &prlen, true);
                static const char pfx[] = "/machine/peripheral/";
                Nic *n = path && plen > sizeof(pfx) - 1 && memcmp(path, pfx, sizeof(pfx) - 1) == 0
                        ? guest_nic(g, path + sizeof(pfx) - 1, plen - (sizeof(pfx) - 1))
                        : NULL;
                if (!n) {
                        snprintf(buf, sizeof(buf), "Device '%.*s' not found", (int)plen, path ? path : "");
                        reply_error(c, id, idlen, "DeviceNotFound", buf);
                } else if (str_is(prop, prlen, "netdev")) {
                        int k = snprintf(buf, sizeof(buf), "\"hostnet%u\"", n->idx);
                        reply(c, id, idlen, buf, (size_t)k);
                } else if (str_is(prop, prlen, "mac")) {
                        char mac[18];
                        configured_mac(n, mac);
                        int k = snprintf(buf, sizeof(buf), "\"%s\"", mac);
                        reply(c, id, idlen, buf, (size_t)k);
                } else if (str_is(prop, prlen, "type"))
                        reply(c, id, idlen, "\"virtio-net-pci\"", 16);
                else {
                        snprintf(buf, sizeof(buf), "Property 'virtio-net-pci.%.*s' not found", (int)prlen,
                                prop ? prop : "");
                        reply_error(c, id, idlen, "GenericError", buf);
                }
                return;
        }
        if (str_is(exe, elen, "human-monitor-command")) {
                size_t clen = 0;
                const char *cl = json_find(msg, len, "command-line", &clen, true);
                if (str_is(cl, clen, "info network")) {
                        size_t k = 0;
                        buf[k++] = '"';
                        for (unsigned i = 0; i < opt.nics; i++) {
                                Nic *n = &g->nics[i];
                                char mac[18];
                                configured_mac(n, mac);
                                k += (size_t)snprintf(buf + k, sizeof(buf) - k,
                                        "net%u: index=0,type=nic,model=virtio-net-pci,macaddr=%s\\r\\n", i,
                                        mac);
                                if (n->tap_fd >= 0)
                                        /* As libvirt passes a macvtap: by fd; the daemon verifies it. */
                                        k += (size_t)snprintf(buf + k, sizeof(buf) - k,
                                                " \\\\ hostnet%u: index=0,type=tap,fd=%d\\r\\n", i,
                                                n->tap_fd);
                                else
                                        k += (size_t)snprintf(buf + k, sizeof(buf) - k,
                                                " \\\\ hostnet%u: index=0,type=tap,fd=4093\\r\\n", i);
                        }
                        buf[k++] = '"';
                        reply(c, id, idlen, buf, k);
                } else
                        reply(c, id, idlen, "\"unknown command\\r\\n\"", 21);
                return;
        }
        if (str_is(exe, elen, "query-name")) {
                int k = snprintf(buf, sizeof(buf), "{\"name\": \"%s\"}", g->name);
                reply(c, id, idlen, buf, (size_t)k);
                return;
        }
        if (str_is(exe, elen, "query-uuid")) {
                int k = snprintf(buf, sizeof(buf), "{\"UUID\": \"00000000-0000-4000-8000-%012x\"}", g->idx);
                reply(c, id, idlen, buf, (size_t)k);
                return;
        }
        if (str_is(exe, elen, "query-version")) {
                static const char v[] =
                        "{\"qemu\": {\"micro\": 0, \"minor\": 2, \"major\": 7}, \"package\": \"\"}";
                reply(c, id, idlen, v, sizeof(v) - 1);
                return;
        }
        if (str_is(exe, elen, "query-status")) {
                static const char v[] =
                        "{\"status\": \"running\", \"singlestep\": false, \"running\": true}";
                reply(c, id, idlen, v, sizeof(v) - 1);
                return;
        }
        snprintf(buf, sizeof(buf), "The command %.*s has not been found", (int)elen, exe);
        reply_error(c, id, idlen, "CommandNotFound", buf);
}

/* Splits the stream into top-level JSON objects (string aware), like QEMU's json-streamer. */
static void conn_parse(Conn *c) {
        for (; c->scan < c->in_len; c->scan++) {
                char ch = c->in[c->scan];
                if (c->in_str) {
                        if (c->esc)
                                c->esc = false;
                        else if (ch == '\\')
                                c->esc = true;
                        else if (ch == '"')
                                c->in_str = false;
                        continue;
                }
                if (ch == '"')
                        c->in_str = true;
                else if (ch == '{' || ch == '[') {
                        if (!c->started) {
                                c->started = true;
                                c->start = c->scan;
                        }
                        c->depth++;
                } else if (ch == '}' || ch == ']') {
                        if (--c->depth <= 0 && c->started) {
                                handle_command(c, c->in + c->start, c->scan + 1 - c->start);
                                c->depth = 0;
                                c->started = false;
                        }
                }
        }
        if (!c->started) {
                c->in_len = c->scan = 0;
        } else if (c->start > 0) {
                memmove(c->in, c->in + c->start, c->in_len - c->start);
                c->in_len -= c->start;
                c->scan -= c->start;
                c->start = 0;
        }
}

static int on_conn_io(sd_event_source *s, int fd, uint32_t revents, void *userdata) {
        Conn *c = userdata;
        if (revents & (EPOLLIN | EPOLLHUP | EPOLLERR)) {
                for (int rounds = 0; rounds < 8; rounds++) {
                        if (c->in_alloc - c->in_len < 16384) {
                                size_t a = c->in_alloc * 2 + 65536;
                                char *p = realloc(c->in, a);
                                if (!p)
                                        die("realloc", ENOMEM);
                                c->in = p;
                                c->in_alloc = a;
                        }
                        ssize_t k = read(fd, c->in + c->in_len, c->in_alloc - c->in_len);
                        if (k < 0 && errno == EAGAIN)
                                break;
                        if (k <= 0) {
                                conn_free(c);
                                return 0;
                        }
                        c->in_len += (size_t)k;
                        conn_parse(c);
                        if ((size_t)k < 16384)
                                break;
                }
        }
        if (conn_flush(c) < 0)
                conn_free(c);
        return 0;
}

static void conn_free(Conn *c) {
        guest_remove_conn(c->guest, c);
        sd_event_source_disable_unref(c->src);
        close(c->fd);
        free(c->in);
        free(c->out);
        free(c);
}

static int on_accept(sd_event_source *s, int fd, uint32_t revents, void *userdata) {
        Guest *g = userdata;
        int cfd = accept4(fd, NULL, NULL, SOCK_NONBLOCK | SOCK_CLOEXEC);
        if (cfd < 0)
                return 0;
        int sz = 1 << 20;
        (void)setsockopt(cfd, SOL_SOCKET, SO_SNDBUF, &sz, sizeof(sz));
        Conn *c = calloc(1, sizeof(Conn));
        if (!c)
                die("calloc", ENOMEM);
        c->guest = g;
        c->fd = cfd;
        int r = sd_event_add_io(loop, &c->src, cfd, EPOLLIN, on_conn_io, c);
        if (r < 0)
                die("sd_event_add_io", r);
        c->next = g->conns;
        g->conns = c;
        static const char greeting[] = "{\"QMP\": {\"version\": {\"qemu\": {\"micro\": 0, \"minor\": 2, "
                                       "\"major\": 7}, \"package\": \"\"}, "
                                       "\"capabilities\": [\"oob\"]}}\r\n";
        conn_queue(c, greeting, sizeof(greeting) - 1);
        if (conn_flush(c) < 0)
                conn_free(c);
        return 0;
}

/* ---- the bus ------------------------------------------------------------------------------------------ */
static int parse_seq(const char *mac, uint32_t *ret) {
        unsigned b[6];
        if (!mac || sscanf(mac, "%x:%x:%x:%x:%x:%x", &b[0], &b[1], &b[2], &b[3], &b[4], &b[5]) != 6)
                return -EINVAL;
        *ret = (uint32_t)b[2] << 24 | (uint32_t)b[3] << 16 | (uint32_t)b[4] << 8 | b[5];
        return 0;
}

static Nic *nic_from_path(const char *path) {
        unsigned gi, ni;
        char tail;
        if (!path || sscanf(path, PATH_GUEST "g%u/nic/net%u%c", &gi, &ni, &tail) != 2 || gi >= opt.guests ||
                ni >= opt.nics)
                return NULL;
        return &guests[gi].nics[ni];
}

/* Reads RxFilterChanged's filter until UnicastTable; returns the seq it carries. */
static int signal_seq(sd_bus_message *m, uint32_t *ret) {
        int r = sd_bus_message_enter_container(m, 'a', "{sv}");
        if (r < 0)
                return r;
        while ((r = sd_bus_message_enter_container(m, 'e', "sv")) > 0) {
                const char *key;
                r = sd_bus_message_read(m, "s", &key);
                if (r < 0)
                        return r;
                if (strcmp(key, "UnicastTable") == 0) {
                        const char *mac = NULL;
                        r = sd_bus_message_enter_container(m, 'v', "as");
                        if (r < 0)
                                return r;
                        r = sd_bus_message_enter_container(m, 'a', "s");
                        if (r < 0)
                                return r;
                        r = sd_bus_message_read(m, "s", &mac);
                        if (r <= 0)
                                return -EBADMSG;
                        return parse_seq(mac, ret);
                }
                r = sd_bus_message_skip(m, "v");
                if (r < 0)
                        return r;
                r = sd_bus_message_exit_container(m);
                if (r < 0)
                        return r;
        }
        return -ENOENT;
}

static void latency_schedule_next(void);
static void phase_check(void);

static int on_rx_filter_changed(sd_bus_message *m, void *userdata, sd_bus_error *error) {
        uint64_t t = now_ns();
        Nic *n = nic_from_path(sd_bus_message_get_path(m));
        uint32_t seq;
        if (!n || signal_seq(m, &seq) < 0) {
                c_bad_signals++;
                return 0;
        }
        c_signals++;
        n->signals++;
        sd_bus_message_unref(n->last);
        n->last = sd_bus_message_ref(m);
        bool first = !n->have_pub;
        if (first || seq != n->pub_seq) {
                if (!first && seq > n->pub_seq)
                        c_observed++;
                n->pub_seq = seq;
                n->have_pub = true;
        }
        while (n->ring_len > 0 && n->ring_seq[n->ring_head] <= seq) {
                if (measuring && !background_nic(n)) {
                        if (n_lat == lat_alloc) {
                                lat_alloc = lat_alloc ? lat_alloc * 2 : 1 << 16;
                                lat = realloc(lat, lat_alloc * sizeof(uint64_t));
                                if (!lat)
                                        die("realloc", ENOMEM);
                        }
                        lat[n_lat++] = t - n->ring_t[n->ring_head];
                }
                n->ring_head = (n->ring_head + 1) % RING;
                n->ring_len--;
        }
        if (phase == 0 && first && seq == n->seq) {
                n_ready++;
                phase_check();
        } else if (phase == 0 && first)
                n_ready += 0; /* initial state not yet the current one: next signal */
        if (opt.mode == MODE_LATENCY && lat_waiting == n && n->ring_len == 0) {
                lat_waiting = NULL;
                latency_schedule_next();
        }
        if (phase == 3)
                phase_check();
        return 0;
}

/* ---- the final check: the last RxFilterChanged of every NIC equals the filter of its final seq ---------
 */
static int read_strv_sorted(sd_bus_message *m, char out[][18], unsigned max, unsigned *n) {
        int r = sd_bus_message_enter_container(m, 'a', "s");
        if (r < 0)
                return r;
        const char *s;
        *n = 0;
        while ((r = sd_bus_message_read(m, "s", &s)) > 0)
                if (*n < max)
                        snprintf(out[(*n)++], 18, "%s", s);
        if (r < 0)
                return r;
        qsort(out, *n, 18, (int (*)(const void *, const void *))strcmp);
        return sd_bus_message_exit_container(m);
}

static bool check_final(Nic *n, char *why, size_t size) {
        sd_bus_message *m = n->last;
        char mac[18], exp_mc[3][18], got_mc[8][18], got_uc[8][18], exp_uc[18];
        unsigned n_mc = 0, n_uc = 0, n_vlan = 0, fields = 0;
        int promisc = -1;
        bool ok = true;
        char vlan_mode[16] = "", uc_mode[16] = "", mc_mode[16] = "", got_mac[18] = "";
        int mc_over = -1, uc_over = -1;

        if (!m || !n->have_pub) {
                snprintf(why, size, "no RxFilterChanged");
                return false;
        }
        if (n->pub_seq != n->seq) {
                snprintf(why, size, "last published seq %u, final seq %u", n->pub_seq, n->seq);
                return false;
        }
        if (sd_bus_message_rewind(m, true) < 0 || sd_bus_message_enter_container(m, 'a', "{sv}") < 0) {
                snprintf(why, size, "unreadable signal");
                return false;
        }
        while (sd_bus_message_enter_container(m, 'e', "sv") > 0) {
                const char *key, *contents, *s;
                int b;
                if (sd_bus_message_read(m, "s", &key) < 0 ||
                        sd_bus_message_peek_type(m, NULL, &contents) < 0)
                        break;
                fields++;
                if (strcmp(key, "Mac") == 0 && sd_bus_message_read(m, "v", "s", &s) > 0)
                        snprintf(got_mac, sizeof(got_mac), "%s", s);
                else if (strcmp(key, "Promiscuous") == 0 && sd_bus_message_read(m, "v", "b", &b) > 0)
                        promisc = b;
                else if (strcmp(key, "UnicastMode") == 0 && sd_bus_message_read(m, "v", "s", &s) > 0)
                        snprintf(uc_mode, sizeof(uc_mode), "%s", s);
                else if (strcmp(key, "MulticastMode") == 0 && sd_bus_message_read(m, "v", "s", &s) > 0)
                        snprintf(mc_mode, sizeof(mc_mode), "%s", s);
                else if (strcmp(key, "VlanMode") == 0 && sd_bus_message_read(m, "v", "s", &s) > 0)
                        snprintf(vlan_mode, sizeof(vlan_mode), "%s", s);
                else if (strcmp(key, "MulticastOverflow") == 0 && sd_bus_message_read(m, "v", "b", &b) > 0)
                        mc_over = b;
                else if (strcmp(key, "UnicastOverflow") == 0 && sd_bus_message_read(m, "v", "b", &b) > 0)
                        uc_over = b;
                else if (strcmp(key, "MulticastTable") == 0) {
                        sd_bus_message_enter_container(m, 'v', "as");
                        read_strv_sorted(m, got_mc, 8, &n_mc);
                        sd_bus_message_exit_container(m);
                } else if (strcmp(key, "UnicastTable") == 0) {
                        sd_bus_message_enter_container(m, 'v', "as");
                        read_strv_sorted(m, got_uc, 8, &n_uc);
                        sd_bus_message_exit_container(m);
                } else if (strcmp(key, "VlanTable") == 0) {
                        uint16_t v;
                        sd_bus_message_enter_container(m, 'v', "aq");
                        sd_bus_message_enter_container(m, 'a', "q");
                        while (sd_bus_message_read(m, "q", &v) > 0)
                                if (v == 0)
                                        n_vlan++;
                                else
                                        n_vlan += 100;
                        sd_bus_message_exit_container(m);
                        sd_bus_message_exit_container(m);
                } else
                        sd_bus_message_skip(m, "v");
                sd_bus_message_exit_container(m);
        }

        filter_mac(n, n->seq, mac);
        seq_mac("02:00", n->seq, exp_uc);
        unsigned n_exp_mc = filter_mcast(n, n->seq, exp_mc);
        qsort(exp_mc, n_exp_mc, 18, (int (*)(const void *, const void *))strcmp);
#define FAIL(...)                                         \
        do {                                              \
                if (ok)                                   \
                        snprintf(why, size, __VA_ARGS__); \
                ok = false;                               \
        } while (0)
        if (strcmp(got_mac, mac) != 0)
                FAIL("Mac %s, expected %s", got_mac, mac);
        if (promisc != (int)filter_promisc(n, n->seq))
                FAIL("Promiscuous %d, expected %d", promisc, (int)filter_promisc(n, n->seq));
        if (strcmp(uc_mode, "normal") || strcmp(mc_mode, "normal") || strcmp(vlan_mode, "normal"))
                FAIL("modes %s/%s/%s", uc_mode, mc_mode, vlan_mode);
        if (mc_over != 0 || uc_over != 0)
                FAIL("overflow %d/%d", mc_over, uc_over);
        if (n_vlan != 1)
                FAIL("VlanTable is not [0]");
        if (n_uc != 1 || strcmp(got_uc[0], exp_uc) != 0)
                FAIL("UnicastTable %s, expected %s", n_uc ? got_uc[0] : "[]", exp_uc);
        if (n_mc != n_exp_mc)
                FAIL("MulticastTable has %u entries, expected %u", n_mc, n_exp_mc);
        else
                for (unsigned i = 0; i < n_mc; i++)
                        if (strcmp(got_mc[i], exp_mc[i]) != 0)
                                FAIL("MulticastTable entry %s, expected %s", got_mc[i], exp_mc[i]);
        if (fields < 10) /* the ten filter properties of docs/dbus-api.md */
                FAIL("only %u fields", fields);
#undef FAIL
        return ok;
}

/* ---- the host's side: every trusted macvtap ends in its NIC's final state -------------------------------
 * Read after the run (once: dev_mcast lists every device), from inside the namespace, like `ip maddr`. */
typedef struct McastRow {
        int ifindex;
        char hex[13];
} McastRow;
static McastRow *mc_rows;
static size_t n_mc_rows;

static void read_dev_mcast(void) {
        FILE *f = fopen("/proc/net/dev_mcast", "re");
        char line[256], name[32], hex[64];
        int idx, users, global;
        size_t alloc = 0;
        if (!f)
                die("/proc/net/dev_mcast", errno);
        while (fgets(line, sizeof(line), f))
                if (sscanf(line, "%d %31s %d %d %63s", &idx, name, &users, &global, hex) == 5 && global &&
                        strlen(hex) == 12) {
                        if (n_mc_rows == alloc) {
                                alloc = alloc * 2 + 1024;
                                mc_rows = realloc(mc_rows, alloc * sizeof(McastRow));
                                if (!mc_rows)
                                        die("realloc", ENOMEM);
                        }
                        mc_rows[n_mc_rows].ifindex = idx;
                        memcpy(mc_rows[n_mc_rows++].hex, hex, 13);
                }
        fclose(f);
}

static bool check_host(const Nic *n, char *why, size_t size) {
        static int fd = -1;
        struct ifreq ifr = {};
        char exp_mac[18], got_mac[18], exp_mc[3][18];
        if (fd < 0 && (fd = socket(AF_UNIX, SOCK_DGRAM | SOCK_CLOEXEC, 0)) < 0)
                die("socket", errno);
        snprintf(ifr.ifr_name, sizeof(ifr.ifr_name), "%s%u", opt.ifname_fmt, n->gidx);
        if (ioctl(fd, SIOCGIFINDEX, &ifr) < 0) {
                snprintf(why, size, "host %s: %s", ifr.ifr_name, strerror(errno));
                return false;
        }
        int ifindex = ifr.ifr_ifindex;
        if (ioctl(fd, SIOCGIFFLAGS, &ifr) < 0)
                die("SIOCGIFFLAGS", errno);
        bool promisc = ifr.ifr_flags & IFF_PROMISC;
        if (ioctl(fd, SIOCGIFHWADDR, &ifr) < 0)
                die("SIOCGIFHWADDR", errno);
        const unsigned char *b = (const unsigned char *)ifr.ifr_hwaddr.sa_data;
        snprintf(got_mac, sizeof(got_mac), "%02x:%02x:%02x:%02x:%02x:%02x", b[0], b[1], b[2], b[3], b[4],
                b[5]);
        filter_mac(n, n->seq, exp_mac);
        if (strcmp(got_mac, exp_mac) != 0) {
                snprintf(why, size, "host %s: MAC %s, expected %s", ifr.ifr_name, got_mac, exp_mac);
                return false;
        }
        if (promisc != filter_promisc(n, n->seq)) {
                snprintf(why, size, "host %s: promiscuous %d, expected %d", ifr.ifr_name, promisc,
                        filter_promisc(n, n->seq));
                return false;
        }
        unsigned n_exp = filter_mcast(n, n->seq, exp_mc), n_got = 0, n_found = 0;
        char got[64] = "";
        for (size_t i = 0; i < n_mc_rows; i++) {
                if (mc_rows[i].ifindex != ifindex)
                        continue;
                if (n_got < 4)
                        snprintf(got + strlen(got), sizeof(got) - strlen(got), " %s", mc_rows[i].hex);
                n_got++;
                for (unsigned k = 0; k < n_exp; k++) {
                        char hex[13];
                        const char *m = exp_mc[k];
                        snprintf(hex, sizeof(hex), "%.2s%.2s%.2s%.2s%.2s%.2s", m, m + 3, m + 6, m + 9,
                                m + 12, m + 15);
                        if (strcmp(hex, mc_rows[i].hex) == 0)
                                n_found++;
                }
        }
        if (n_got != n_exp || n_found != n_exp) {
                snprintf(why, size, "host %s: %u user multicast entries (%u expected ones):%s, expected %u",
                        ifr.ifr_name, n_got, n_found, got, n_exp);
                return false;
        }
        return true;
}

/* ---- scenario control ------------------------------------------------------------------------------------
 */
static ProcSample s_ready, s_start, s_end, s_settled, s_idle0, s_idle1, b_start, b_end;
static double t_ready_s, t_settle_s;
static struct rusage ru_start, ru_end;
static uint64_t t0_ns, t_phase_start;

static int cmp_u64(const void *a, const void *b) {
        uint64_t x = *(const uint64_t *)a, y = *(const uint64_t *)b;
        return x < y ? -1 : x > y;
}

static double pct(const uint64_t *v, size_t n, double p) {
        if (n == 0)
                return NAN;
        size_t i = (size_t)ceil(p / 100.0 * (double)n);
        if (i > 0)
                i--;
        if (i >= n)
                i = n - 1;
        return (double)v[i] / 1000.0;
}

/* JSON has no NaN: an empty sample prints null. */
static const char *jnum(double v, char buf[32]) {
        if (!isfinite(v))
                return "null";
        snprintf(buf, 32, "%.1f", v);
        return buf;
}

static void write_result(void) {
        FILE *f = opt.out ? fopen(opt.out, "we") : stdout;
        if (!f)
                die("open --out", errno);
        qsort(lat, n_lat, sizeof(uint64_t), cmp_u64);
        double sum = 0;
        for (size_t i = 0; i < n_lat; i++)
                sum += (double)lat[i];

        unsigned exact = 0, mismatched = 0;
        char first_why[512] = "";
        if (opt.ifname_fmt)
                read_dev_mcast();
        for (unsigned i = 0; i < n_all; i++) {
                char why[200];
                if (check_final(all_nics[i], why, sizeof(why)) &&
                        (!opt.ifname_fmt || check_host(all_nics[i], why, sizeof(why))))
                        exact++;
                else {
                        if (!mismatched)
                                snprintf(first_why, sizeof(first_why), "g%04u/net%u: %s",
                                        all_nics[i]->guest->idx, all_nics[i]->idx, why);
                        mismatched++;
                }
        }
        double window = s_end.t - s_start.t;
        uint64_t obs = e_observed - m_observed, sig = e_signals - m_signals, ev = e_events - m_events,
                 ch = e_changes - m_changes, q = e_queries - m_queries;
        double cpu = s_end.cpu_s - s_start.cpu_s;
        double lg_cpu = (double)(ru_end.ru_utime.tv_sec - ru_start.ru_utime.tv_sec + ru_end.ru_stime.tv_sec -
                                ru_start.ru_stime.tv_sec) +
                (double)(ru_end.ru_utime.tv_usec - ru_start.ru_utime.tv_usec + ru_end.ru_stime.tv_usec -
                        ru_start.ru_stime.tv_usec) /
                        1e6;

        fprintf(f,
                "{\n  \"label\": \"%s\", \"mode\": \"%s\", \"change\": \"%s\", \"guests\": %u, "
                "\"nics_per_guest\": %u, "
                "\"nics\": %u, \"host_devices\": %s, \"rate\": %g,\n",
                opt.label, mode_names[opt.mode], change_names[opt.change], opt.guests, opt.nics, n_all,
                opt.ifname_fmt ? "true" : "false", opt.rate);
        fprintf(f, "  \"daemon_pid\": %d, \"ready_after_s\": %.3f,\n", opt.daemon_pid, t_ready_s);
        fprintf(f,
                "  \"window_s\": %.3f, \"changes\": %" PRIu64 ", \"events\": %" PRIu64
                ", \"queries\": %" PRIu64 ", \"signals\": %" PRIu64 ", \"observed_changes\": %" PRIu64 ",\n",
                window, ch, ev, q, sig, obs);
        fprintf(f, "  \"observed_changes_per_s\": %.1f, \"events_per_s\": %.1f, \"signals_per_s\": %.1f,\n",
                window > 0 ? (double)obs / window : 0, window > 0 ? (double)ev / window : 0,
                window > 0 ? (double)sig / window : 0);
        char b[7][32];
        fprintf(f,
                "  \"latency_us\": {\"n\": %zu, \"min\": %s, \"p50\": %s, \"p90\": %s, \"p99\": %s, "
                "\"p999\": %s, \"max\": %s, \"mean\": %s},\n",
                n_lat, jnum(pct(lat, n_lat, 0), b[0]), jnum(pct(lat, n_lat, 50), b[1]),
                jnum(pct(lat, n_lat, 90), b[2]), jnum(pct(lat, n_lat, 99), b[3]),
                jnum(pct(lat, n_lat, 99.9), b[4]), jnum(n_lat ? (double)lat[n_lat - 1] / 1000.0 : NAN, b[5]),
                jnum(n_lat ? sum / (double)n_lat / 1000.0 : NAN, b[6]));
        fprintf(f,
                "  \"daemon\": {\"cpu_s\": %.3f, \"cpu_util\": %.3f, \"cpu_us_per_change\": %.2f, "
                "\"rss_kib_ready\": %ld, \"rss_kib_end\": %ld, \"rss_kib_settled\": %ld, \"hwm_kib\": %ld, "
                "\"threads\": %u},\n",
                cpu, window > 0 ? cpu / window : 0, obs ? cpu * 1e6 / (double)obs : 0, s_ready.rss_kb,
                s_end.rss_kb, s_settled.rss_kb, s_settled.hwm_kb, s_settled.threads);
        fprintf(f, "  \"bus_daemon\": {\"cpu_s\": %.3f, \"cpu_us_per_change\": %.2f},\n",
                b_end.cpu_s - b_start.cpu_s, obs ? (b_end.cpu_s - b_start.cpu_s) * 1e6 / (double)obs : 0);
        fprintf(f, "  \"loadgen_cpu_s\": %.3f,\n", lg_cpu);
        {
                double busy = s_end.host_busy_s - s_start.host_busy_s,
                       ncpu = (double)sysconf(_SC_NPROCESSORS_ONLN);
                double ours = cpu + (b_end.cpu_s - b_start.cpu_s) + lg_cpu;
                fprintf(f, "  \"host\": {\"cpus\": %.0f, \"busy_frac\": %.3f, \"other_cpu_frac\": %.3f},\n",
                        ncpu, window > 0 ? busy / window / ncpu : 0,
                        window > 0 && busy > ours ? (busy - ours) / window / ncpu : 0);
        }
        if (opt.mode == MODE_IDLE) {
                double d = s_idle1.t - s_idle0.t;
                fprintf(f,
                        "  \"idle\": {\"seconds\": %.2f, \"ctxt_switches\": %" PRIu64
                        ", \"voluntary\": %" PRIu64 ", \"nonvoluntary\": %" PRIu64
                        ", \"schedstat_runs\": %" PRIu64 ", \"wakeups_per_s\": %.2f, "
                        "\"cpu_s\": %.3f},\n",
                        d, (s_idle1.ctxt_vol + s_idle1.ctxt_invol) - (s_idle0.ctxt_vol + s_idle0.ctxt_invol),
                        s_idle1.ctxt_vol - s_idle0.ctxt_vol, s_idle1.ctxt_invol - s_idle0.ctxt_invol,
                        s_idle1.sched_runs - s_idle0.sched_runs,
                        d > 0 ? (double)((s_idle1.ctxt_vol + s_idle1.ctxt_invol) -
                                        (s_idle0.ctxt_vol + s_idle0.ctxt_invol)) /
                                        d
                              : 0,
                        s_idle1.cpu_s - s_idle0.cpu_s);
        }
        fprintf(f,
                "  \"settle_s\": %.3f, \"final_exact\": %u, \"final_mismatched\": %u, "
                "\"final_first_mismatch\": \"%s\",\n",
                t_settle_s, exact, mismatched, first_why);
        fprintf(f,
                "  \"lost_events\": %" PRIu64 ", \"ring_overflow\": %" PRIu64 ", \"bad_signals\": %" PRIu64
                ", \"queries_all\": %" PRIu64 ", \"total_changes\": %" PRIu64 "\n}\n",
                c_lost_events, c_ring_overflow, c_bad_signals, c_queries_all, c_changes);
        if (f != stdout)
                fclose(f);
        if (opt.samples) {
                FILE *s = fopen(opt.samples, "we");
                if (s) {
                        for (size_t i = 0; i < n_lat; i++)
                                fprintf(s, "%.1f\n", (double)lat[i] / 1000.0);
                        fclose(s);
                }
        }
        if (mismatched)
                exit_code = 1;
}

static void finish(void) {
        phase = 4;
        write_result();
        sd_event_exit(loop, exit_code);
}

static int on_timer(sd_event_source *s, uint64_t usec, void *userdata);

static void arm_timer(uint64_t delay_us) {
        uint64_t now;
        sd_event_now(loop, CLOCK_MONOTONIC, &now);
        if (!timer_src) {
                int r = sd_event_add_time(
                        loop, &timer_src, CLOCK_MONOTONIC, now + delay_us, 1, on_timer, NULL);
                if (r < 0)
                        die("sd_event_add_time", r);
                return;
        }
        sd_event_source_set_time(timer_src, now + delay_us);
        sd_event_source_set_enabled(timer_src, SD_EVENT_ONESHOT);
}

static void start_settle(void) {
        changing = false;
        measuring = false;
        e_events = c_events, e_changes = c_changes, e_signals = c_signals, e_observed = c_observed,
        e_queries = c_queries;
        proc_sample(opt.daemon_pid, &s_end);
        proc_sample(opt.bus_pid, &b_end);
        getrusage(RUSAGE_SELF, &ru_end);
        phase = 3;
        t_settle_s = now_ns() / 1e9;
        arm_timer((uint64_t)(opt.settle_timeout * 1e6));
        phase_check();
}

static void latency_schedule_next(void) {
        if (phase == 1 || phase == 2) {
                if (phase == 1 && c_events >= opt.warmup_count) {
                        phase = 2;
                        measuring = true;
                        m_events = c_events, m_changes = c_changes, m_signals = c_signals,
                        m_observed = c_observed, m_queries = c_queries;
                        proc_sample(opt.daemon_pid, &s_start);
                        proc_sample(opt.bus_pid, &b_start);
                        getrusage(RUSAGE_SELF, &ru_start);
                }
                if (phase == 2 && n_lat >= opt.count) {
                        start_settle();
                        return;
                }
                /* jitter the gap ±50 % so that nothing periodic lines up with it */
                uint64_t gap = opt.gap_us / 2 + (uint64_t)(random() % (opt.gap_us + 1));
                arm_timer(gap);
        }
}

static void start_run(void) {
        proc_sample(opt.daemon_pid, &s_ready);
        t_ready_s = now_ns() / 1e9 - t0_ns / 1e9;
        fprintf(stderr, "loadgen: %u NICs ready after %.2f s (daemon RSS %ld KiB)\n", n_all, t_ready_s,
                s_ready.rss_kb);
        if (opt.mode == MODE_IDLE) {
                phase = 1;
                arm_timer(1000000); /* let the initial burst settle */
                return;
        }
        phase = 1;
        changing = true;
        t_phase_start = now_ns();
        if (opt.mode == MODE_LATENCY) {
                for (unsigned i = 0; i < n_all; i++)
                        if (background_nic(all_nics[i]))
                                nic_change(all_nics[i]);
                latency_schedule_next();
                return;
        }
        if (opt.rate <= 0)
                for (unsigned i = 0; i < n_all; i++)
                        nic_change(all_nics[i]);
        arm_timer(opt.rate > 0 ? 1000 : (uint64_t)(opt.warmup * 1e6));
}

static void phase_check(void) {
        if (phase == 0 && n_ready == n_all) {
                start_run();
                return;
        }
        if (phase == 3) {
                for (unsigned i = 0; i < n_all; i++)
                        if (!all_nics[i]->have_pub || all_nics[i]->pub_seq != all_nics[i]->seq)
                                return;
                t_settle_s = now_ns() / 1e9 - t_settle_s;
                proc_sample(opt.daemon_pid, &s_settled);
                finish();
        }
}

static int on_timer(sd_event_source *s, uint64_t usec, void *userdata) {
        if (phase == 0) {
                fprintf(stderr, "loadgen: only %u of %u NICs ready after %.0f s\n", n_ready, n_all,
                        opt.ready_timeout);
                exit_code = 3;
                finish();
                return 0;
        }
        if (phase == 3) {
                t_settle_s = now_ns() / 1e9 - t_settle_s;
                proc_sample(opt.daemon_pid, &s_settled);
                fprintf(stderr, "loadgen: settle timed out\n");
                finish();
                return 0;
        }
        if (opt.mode == MODE_IDLE) {
                if (phase == 1) {
                        phase = 2;
                        proc_sample(opt.daemon_pid, &s_idle0);
                        s_start = s_idle0;
                        proc_sample(opt.bus_pid, &b_start);
                        getrusage(RUSAGE_SELF, &ru_start);
                        arm_timer((uint64_t)(opt.idle * 1e6));
                } else {
                        proc_sample(opt.daemon_pid, &s_idle1);
                        start_settle();
                }
                return 0;
        }
        if (opt.mode == MODE_LATENCY) {
                Nic *n = all_nics[lat_next_nic++ % n_all];
                for (unsigned k = 0; k < n_all && background_nic(n); k++)
                        n = all_nics[lat_next_nic++ % n_all];
                nic_change(n);
                if (n->ring_len == 0) {
                        /* not armed (should not happen in a closed loop): try another NIC */
                        arm_timer(opt.gap_us);
                        return 0;
                }
                lat_waiting = n;
                return 0;
        }
        /* throughput */
        uint64_t now = now_ns();
        if (opt.rate > 0) {
                static uint64_t last;
                double dt = last ? (double)(now - last) / 1e9 : 0.001;
                last = now;
                rate_carry += opt.rate * dt;
                while (rate_carry >= 1.0) {
                        nic_change(all_nics[rate_next++ % n_all]);
                        rate_carry -= 1.0;
                }
        }
        if (phase == 1 && (double)(now - t_phase_start) / 1e9 >= opt.warmup) {
                phase = 2;
                measuring = true;
                t_phase_start = now;
                m_events = c_events, m_changes = c_changes, m_signals = c_signals, m_observed = c_observed,
                m_queries = c_queries;
                proc_sample(opt.daemon_pid, &s_start);
                proc_sample(opt.bus_pid, &b_start);
                getrusage(RUSAGE_SELF, &ru_start);
        } else if (phase == 2 && (double)(now - t_phase_start) / 1e9 >= opt.duration) {
                start_settle();
                return 0;
        }
        if (opt.rate > 0)
                arm_timer(1000);
        else {
                double left = (phase == 2 ? opt.duration : opt.warmup) - (double)(now - t_phase_start) / 1e9;
                arm_timer(left > 0 ? (uint64_t)(left * 1e6) + 1 : 1);
        }
        return 0;
}

/* ---- setup
 * ------------------------------------------------------------------------------------------------- */
/* The macvtap PREFIX<gidx>'s character device, opened as QEMU holds it (the daemon acts only on devices
 * its peer demonstrably holds). /dev/tapN is shared by all namespaces and may be another namespace's
 * device: a private node with this namespace's major:minor is made, opened and unlinked. */
static int open_macvtap(unsigned gidx) {
        char path[256], node[64], buf[64];
        unsigned maj, min;
        int ifindex;
        FILE *f;

        snprintf(path, sizeof(path), "/sys/class/net/%s%u/ifindex", opt.ifname_fmt, gidx);
        f = fopen(path, "re");
        if (!f || fscanf(f, "%d", &ifindex) != 1)
                die(path, f ? EINVAL : errno);
        fclose(f);
        snprintf(path, sizeof(path), "/sys/class/net/%s%u/macvtap/tap%d/dev", opt.ifname_fmt, gidx, ifindex);
        f = fopen(path, "re");
        if (!f || !fgets(buf, sizeof(buf), f) || sscanf(buf, "%u:%u", &maj, &min) != 2)
                die(path, f ? EINVAL : errno);
        fclose(f);
        snprintf(node, sizeof(node), "%s/tap%d", opt.dir, ifindex);
        (void)unlink(node);
        if (mknod(node, S_IFCHR | 0600, makedev(maj, min)) < 0)
                die("mknod", errno);
        int fd = open(node, O_RDWR | O_CLOEXEC | O_NONBLOCK);
        if (fd < 0)
                die(node, errno);
        (void)unlink(node);
        return fd;
}

static void setup_guests(void) {
        guests = calloc(opt.guests, sizeof(Guest));
        all_nics = calloc((size_t)opt.guests * opt.nics, sizeof(Nic *));
        if (!guests || !all_nics)
                die("calloc", ENOMEM);
        for (unsigned gi = 0; gi < opt.guests; gi++) {
                Guest *g = &guests[gi];
                g->idx = gi;
                snprintf(g->name, sizeof(g->name), "g%04u", gi);
                if ((size_t)snprintf(g->path, sizeof(g->path), "%s/%s.sock", opt.dir, g->name) >=
                        sizeof(g->path))
                        die("socket path too long", ENAMETOOLONG);
                g->nics = calloc(opt.nics, sizeof(Nic));
                if (!g->nics)
                        die("calloc", ENOMEM);
                for (unsigned i = 0; i < opt.nics; i++) {
                        Nic *n = &g->nics[i];
                        n->guest = g;
                        n->idx = i;
                        n->gidx = n_all;
                        n->armed = true;
                        n->tap_fd = opt.ifname_fmt ? open_macvtap(n->gidx) : -1;
                        all_nics[n_all++] = n;
                }
                g->lfd = socket(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
                if (g->lfd < 0)
                        die("socket", errno);
                struct sockaddr_un sa = { .sun_family = AF_UNIX };
                strcpy(sa.sun_path, g->path);
                unlink(g->path);
                if (bind(g->lfd, (struct sockaddr *)&sa, sizeof(sa)) < 0)
                        die("bind", errno);
                if (listen(g->lfd, 16) < 0)
                        die("listen", errno);
                int r = sd_event_add_io(loop, &g->lsrc, g->lfd, EPOLLIN, on_accept, g);
                if (r < 0)
                        die("sd_event_add_io", r);
        }
}

static void cleanup_sockets(void) {
        for (unsigned gi = 0; guests && gi < opt.guests; gi++)
                if (guests[gi].path[0])
                        unlink(guests[gi].path);
}

static int find_daemon_pid(void) {
        for (int tries = 0; tries < 600; tries++) {
                sd_bus_error err = SD_BUS_ERROR_NULL;
                sd_bus_message *reply = NULL;
                uint32_t pid = 0;
                int r = sd_bus_call_method(bus, "org.freedesktop.DBus", "/org/freedesktop/DBus",
                        "org.freedesktop.DBus", "GetConnectionUnixProcessID", &err, &reply, "s", BUS_NAME);
                if (r >= 0 && sd_bus_message_read(reply, "u", &pid) > 0) {
                        sd_bus_message_unref(reply);
                        return (int)pid;
                }
                sd_bus_error_free(&err);
                sd_bus_message_unref(reply);
                usleep(100000);
        }
        return -1;
}

static int on_signal(sd_event_source *s, const struct signalfd_siginfo *si, void *userdata) {
        fprintf(stderr, "loadgen: interrupted\n");
        exit_code = 4;
        finish();
        return 0;
}

static void usage(void) {
        fprintf(stderr,
                "guestnetd-loadgen --dir=DIR [--guests=N] [--nics=M] [--mode=latency|throughput|idle]\n"
                "  [--change=none|mcast|flags|mac] [--ifname-prefix=mvt] [--count=K] [--warmup-count=K]\n"
                "  [--gap-us=US] [--rate=R] [--duration=S] [--warmup=S] [--idle=S] [--ready-timeout=S]\n"
                "  [--settle-timeout=S] [--bus-pid=PID] [--label=TEXT] [--out=FILE] [--samples=FILE]\n"
                "Prints \"listening\" on stdout once every socket listens; set DBUS_SYSTEM_BUS_ADDRESS.\n");
}

int main(int argc, char **argv) {
        static const struct option options[] = {
                { "dir", required_argument, NULL, 'd' },
                { "guests", required_argument, NULL, 'g' },
                { "nics", required_argument, NULL, 'n' },
                { "mode", required_argument, NULL, 'm' },
                { "change", required_argument, NULL, 'c' },
                { "ifname-prefix", required_argument, NULL, 'i' },
                { "count", required_argument, NULL, 'k' },
                { "warmup-count", required_argument, NULL, 'K' },
                { "gap-us", required_argument, NULL, 'G' },
                { "rate", required_argument, NULL, 'r' },
                { "duration", required_argument, NULL, 'D' },
                { "warmup", required_argument, NULL, 'W' },
                { "idle", required_argument, NULL, 'I' },
                { "ready-timeout", required_argument, NULL, 'R' },
                { "settle-timeout", required_argument, NULL, 'S' },
                { "bus-pid", required_argument, NULL, 'B' },
                { "label", required_argument, NULL, 'L' },
                { "out", required_argument, NULL, 'o' },
                { "samples", required_argument, NULL, 's' },
                { "help", no_argument, NULL, 'h' },
                {},
        };
        int c, r;
        while ((c = getopt_long(argc, argv, "h", options, NULL)) >= 0) {
                switch (c) {
                case 'd':
                        opt.dir = optarg;
                        break;
                case 'g':
                        opt.guests = (unsigned)atoi(optarg);
                        break;
                case 'n':
                        opt.nics = (unsigned)atoi(optarg);
                        break;
                case 'm':
                        opt.mode = !strcmp(optarg, "latency")   ? MODE_LATENCY
                                : !strcmp(optarg, "throughput") ? MODE_THROUGHPUT
                                : !strcmp(optarg, "idle")       ? MODE_IDLE
                                                                : -1;
                        break;
                case 'c':
                        opt.change = -1;
                        for (int i = 0; i < (int)(sizeof(change_names) / sizeof(change_names[0])); i++)
                                if (!strcmp(optarg, change_names[i]))
                                        opt.change = i;
                        break;
                case 'i':
                        opt.ifname_fmt = optarg;
                        break;
                case 'k':
                        opt.count = (unsigned)atoi(optarg);
                        break;
                case 'K':
                        opt.warmup_count = (unsigned)atoi(optarg);
                        break;
                case 'G':
                        opt.gap_us = (unsigned)atoi(optarg);
                        break;
                case 'r':
                        opt.rate = atof(optarg);
                        break;
                case 'D':
                        opt.duration = atof(optarg);
                        break;
                case 'W':
                        opt.warmup = atof(optarg);
                        break;
                case 'I':
                        opt.idle = atof(optarg);
                        break;
                case 'R':
                        opt.ready_timeout = atof(optarg);
                        break;
                case 'S':
                        opt.settle_timeout = atof(optarg);
                        break;
                case 'B':
                        opt.bus_pid = atoi(optarg);
                        break;
                case 'L':
                        opt.label = optarg;
                        break;
                case 'o':
                        opt.out = optarg;
                        break;
                case 's':
                        opt.samples = optarg;
                        break;
                default:
                        usage();
                        return c == 'h' ? 0 : 2;
                }
        }
        if (!opt.dir || opt.guests == 0 || opt.nics == 0 || opt.nics > 64 || opt.guests > 9999 ||
                opt.mode < 0 || opt.change < 0) {
                usage();
                return 2;
        }
        struct rlimit rl = { 65536, 65536 };
        if (setrlimit(RLIMIT_NOFILE, &rl) < 0) {
                getrlimit(RLIMIT_NOFILE, &rl);
                rl.rlim_cur = rl.rlim_max;
                setrlimit(RLIMIT_NOFILE, &rl);
        }
        srandom((unsigned)getpid());
        signal(SIGPIPE, SIG_IGN);
        sigset_t mask;
        sigemptyset(&mask);
        sigaddset(&mask, SIGTERM);
        sigaddset(&mask, SIGINT);
        sigprocmask(SIG_BLOCK, &mask, NULL);

        r = sd_event_default(&loop);
        if (r < 0)
                die("sd_event_default", r);
        sd_event_add_signal(loop, NULL, SIGTERM, on_signal, NULL);
        sd_event_add_signal(loop, NULL, SIGINT, on_signal, NULL);

        r = sd_bus_open_system(&bus);
        if (r < 0)
                die("sd_bus_open_system", r);
        r = sd_bus_match_signal(
                bus, NULL, NULL, NULL, NIC_IFACE, "RxFilterChanged", on_rx_filter_changed, NULL);
        if (r < 0)
                die("sd_bus_match_signal", r);

        t0_ns = now_ns();
        setup_guests();
        printf("listening\n");
        fflush(stdout);

        opt.daemon_pid = find_daemon_pid();
        if (opt.daemon_pid <= 0) {
                fprintf(stderr, "loadgen: %s never appeared on the bus\n", BUS_NAME);
                cleanup_sockets();
                return 3;
        }
        r = sd_bus_attach_event(bus, loop, 0);
        if (r < 0)
                die("sd_bus_attach_event", r);
        arm_timer((uint64_t)(opt.ready_timeout * 1e6));

        r = sd_event_loop(loop);
        cleanup_sockets();
        return r < 0 ? 2 : exit_code;
}
