/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* floor.c: what the hardware and kernel cost for each hop of guestnetd's path, measured bare, so the
 * benchmark report can state guestnetd's cost as a multiple of it.
 *
 *   guestnetd-floor qmp N          a QMP-like JSON round trip on a unix socket between two processes:
 *                                  the client writes a query-rx-filter command, the server (blocking
 *                                  read, no parsing beyond finding the end) writes back a realistic
 *                                  RxFilterInfo reply; plus an event one-way (server → client)
 *   guestnetd-floor setlink IFNAME N
 *                                  RTM_SETLINK toggling IFF_PROMISC (ifi_change = IFF_PROMISC) with an
 *                                  ACK on a raw NETLINK_ROUTE socket; SIOCADDMULTI+SIOCDELMULTI pairs;
 *                                  RTM_SETLINK IFLA_ADDRESS (MAC). Run it inside the namespace.
 *   guestnetd-floor macflags MACDEV FLAGSDEV N
 *                                  the kernel's part of bench/run's macflags scenario: RTM_SETLINK
 *                                  promisc toggles on FLAGSDEV (one at a time, with a 1 ms pause like the
 *                                  closed loop's) while a child process changes MACDEV's MAC back to back;
 *                                  the toggles' p50/p99/max. Run it inside the namespace.
 *   guestnetd-floor dbus N         a D-Bus signal round trip on $DBUS_SYSTEM_BUS_ADDRESS: process A
 *                                  emits Ping, B (subscribed) answers with Pong, A waits for it.
 *   guestnetd-floor rxfilter SOCKET NIC N
 *                                  against a real QEMU: the query-rx-filter round trip on a QMP monitor
 *                                  of its own (the least any daemon pays per event; prints p90 too)
 *   guestnetd-floor react SOCKET [NIC...]
 *                                  against a real QEMU, the floor under the guest's load: answers every
 *                                  NIC_RX_FILTER_CHANGED with that NIC's query-rx-filter as the daemon does
 *                                  (one in flight) and prints "react EVENT READ SENT REPLY PROMISC ALLMULTI
 *                                  MAC ENTRIES" per event (QEMU's timestamp, event read, query sent, reply
 *                                  read: realtime µs; the filter the reply shows); until stdin closes.
 *                                  The NICs named are queried once at the start, as the daemon does;
 *                                  "ready" says when that is done.
 *   guestnetd-floor watch SOCKET IFNAME
 *                                  against a real QEMU, inside the device's namespace: one line per
 *                                  NIC_RX_FILTER_CHANGED ("event REALTIME_US" with QEMU's own timestamp)
 *                                  and per change of the host device ("host REALTIME_US PROMISC ALLMULTI
 *                                  MAC ENTRIES"): flags and MAC from RTM_NEWLINK notifications (timed at
 *                                  recv), the multicast list polled in /proc/net/dev_mcast (often in a
 *                                  window after each event, rarely outside it); until stdin closes, then
 *                                  "stats ..." (its own reads and CPU). Both run with bench/run real-qemu.
 * The others print one JSON object: {"what": ..., "n": N, "p50_us": ..., "p99_us": ..., ...}. */
#include <ctype.h>
#include <errno.h>
#include <fcntl.h>
#include <linux/if.h>
#include <linux/netlink.h>
#include <linux/rtnetlink.h>
#include <math.h>
#include <net/if_arp.h>
#include <poll.h>
#include <signal.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/prctl.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <systemd/sd-bus.h>
#include <time.h>
#include <unistd.h>

#include "schedslice.h"

#define streq(a, b)   (strcmp((a), (b)) == 0)
#define ELEMENTSOF(x) (sizeof(x) / sizeof((x)[0]))

static uint64_t now_ns(void) {
        struct timespec ts;
        clock_gettime(CLOCK_MONOTONIC, &ts);
        return (uint64_t)ts.tv_sec * 1000000000ULL + (uint64_t)ts.tv_nsec;
}

static int cmp_u64(const void *a, const void *b) {
        uint64_t x = *(const uint64_t *)a, y = *(const uint64_t *)b;
        return x < y ? -1 : x > y;
}

static void report(const char *what, uint64_t *v, size_t n, bool last) {
        qsort(v, n, sizeof(*v), cmp_u64);
        double sum = 0;
        for (size_t i = 0; i < n; i++)
                sum += (double)v[i];
#define P(p) ((double)v[(size_t)fmin((double)n - 1, ceil((p) / 100.0 * (double)n) - 1)] / 1000.0)
        printf("  \"%s\": {\"n\": %zu, \"min_us\": %.2f, \"p50_us\": %.2f, \"p99_us\": %.2f, \"max_us\": "
               "%.2f, "
               "\"mean_us\": %.2f}%s\n",
                what, n, (double)v[0] / 1000.0, P(50), P(99), (double)v[n - 1] / 1000.0,
                sum / (double)n / 1000.0, last ? "" : ",");
#undef P
}

static void die(const char *what) {
        fprintf(stderr, "floor: %s: %s\n", what, strerror(errno));
        exit(2);
}

/* ---- QMP-like round trip ----------------------------------------------------------------------- */
static const char query[] =
        "{\"execute\":\"query-rx-filter\",\"arguments\":{\"name\":\"net0\"},\"id\":1234}\r\n";
static const char answer[] =
        "{\"return\": [{\"promiscuous\": false, \"name\": \"net0\", \"main-mac\": \"52:54:00:12:34:56\", "
        "\"unicast\": \"normal\", \"vlan\": \"normal\", \"vlan-table\": [0], \"unicast-table\": "
        "[\"02:00:00:00:00:01\"], \"multicast\": \"normal\", \"multicast-overflow\": false, "
        "\"unicast-overflow\": false, \"multicast-table\": [\"33:33:00:00:00:01\", \"01:00:5e:00:00:01\", "
        "\"33:33:00:00:00:01\"], \"broadcast-allowed\": false}], \"id\": 1234}\r\n";
static const char event[] =
        "{\"timestamp\": {\"seconds\": 1700000000, \"microseconds\": 1}, \"event\": "
        "\"NIC_RX_FILTER_CHANGED\", "
        "\"data\": {\"name\": \"net0\", \"path\": \"/machine/peripheral/net0/virtio-backend\"}}\r\n";

/* Reads until "\r\n" (messages here never contain one inside). */
static int read_msg(int fd, char *buf, size_t size) {
        size_t len = 0;
        for (;;) {
                ssize_t k = read(fd, buf + len, size - len);
                if (k <= 0)
                        return -1;
                len += (size_t)k;
                if (len >= 2 && buf[len - 2] == '\r' && buf[len - 1] == '\n')
                        return (int)len;
        }
}

static int floor_qmp(unsigned n) {
        char path[] = "/tmp/gnd-floor-XXXXXX";
        if (!mkdtemp(path))
                die("mkdtemp");
        char sock[128];
        snprintf(sock, sizeof(sock), "%s/qmp.sock", path);
        int lfd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
        struct sockaddr_un sa = { .sun_family = AF_UNIX };
        strcpy(sa.sun_path, sock);
        if (lfd < 0 || bind(lfd, (struct sockaddr *)&sa, sizeof(sa)) < 0 || listen(lfd, 1) < 0)
                die("listen");
        pid_t pid = fork();
        if (pid < 0)
                die("fork");
        if (pid == 0) {
                int c = accept(lfd, NULL, NULL);
                char buf[4096];
                if (c < 0)
                        _exit(1);
                for (;;) {
                        int k = read_msg(c, buf, sizeof(buf));
                        if (k < 0)
                                _exit(0);
                        if (buf[0] == 'E') { /* one-way: send an event, the client times its arrival */
                                if (write(c, event, sizeof(event) - 1) < 0)
                                        _exit(1);
                                continue;
                        }
                        if (write(c, answer, sizeof(answer) - 1) < 0)
                                _exit(1);
                }
        }
        close(lfd);
        int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
        if (fd < 0 || connect(fd, (struct sockaddr *)&sa, sizeof(sa)) < 0)
                die("connect");
        uint64_t *rtt = calloc(n, sizeof(uint64_t)), *ev = calloc(n, sizeof(uint64_t));
        char buf[4096];
        for (unsigned i = 0; i < n + n / 10; i++) {
                uint64_t t = now_ns();
                if (write(fd, query, sizeof(query) - 1) < 0 || read_msg(fd, buf, sizeof(buf)) < 0)
                        die("round trip");
                if (i >= n / 10)
                        rtt[i - n / 10] = now_ns() - t;
        }
        /* event one-way ≈ (trigger + event) - half a round trip: measured as a round trip too */
        for (unsigned i = 0; i < n; i++) {
                uint64_t t = now_ns();
                if (write(fd, "E\r\n", 3) < 0 || read_msg(fd, buf, sizeof(buf)) < 0)
                        die("event");
                ev[i] = now_ns() - t;
        }
        close(fd);
        waitpid(pid, NULL, 0);
        unlink(sock);
        rmdir(path);
        printf("{\n");
        report("qmp_round_trip", rtt, n, false);
        report("qmp_small_round_trip", ev, n, true);
        printf("}\n");
        return 0;
}

/* ---- RTM_SETLINK, SIOC*MULTI --------------------------------------------------------------------- */
static int nl_request(int fd, struct nlmsghdr *h) {
        static uint32_t seq;
        h->nlmsg_seq = ++seq;
        if (send(fd, h, h->nlmsg_len, 0) < 0)
                return -errno;
        char buf[8192];
        for (;;) {
                ssize_t k = recv(fd, buf, sizeof(buf), 0);
                if (k < 0)
                        return -errno;
                for (struct nlmsghdr *r = (struct nlmsghdr *)buf; NLMSG_OK(r, (size_t)k);
                        r = NLMSG_NEXT(r, k))
                        if (r->nlmsg_seq == h->nlmsg_seq && r->nlmsg_type == NLMSG_ERROR)
                                return ((struct nlmsgerr *)NLMSG_DATA(r))->error;
        }
}

static int setlink(int fd, int ifindex, unsigned flags, unsigned change, const unsigned char *mac) {
        struct {
                struct nlmsghdr h;
                struct ifinfomsg i;
                char attrs[64];
        } req = {};
        req.h.nlmsg_len = NLMSG_LENGTH(sizeof(struct ifinfomsg));
        req.h.nlmsg_type = RTM_SETLINK;
        req.h.nlmsg_flags = NLM_F_REQUEST | NLM_F_ACK;
        req.i.ifi_family = AF_UNSPEC;
        req.i.ifi_index = ifindex;
        req.i.ifi_flags = flags;
        req.i.ifi_change = change;
        if (mac) {
                struct rtattr *a = (struct rtattr *)((char *)&req + NLMSG_ALIGN(req.h.nlmsg_len));
                a->rta_type = IFLA_ADDRESS;
                a->rta_len = RTA_LENGTH(6);
                memcpy(RTA_DATA(a), mac, 6);
                req.h.nlmsg_len = NLMSG_ALIGN(req.h.nlmsg_len) + RTA_ALIGN(a->rta_len);
        }
        return nl_request(fd, &req.h);
}

/* The i-th toggle of IFF_PROMISC (on for even i, off for odd), acknowledged: its duration in ns. */
static uint64_t timed_promisc_toggle(int fd, int ifindex, unsigned i) {
        uint64_t t = now_ns();
        int r = setlink(fd, ifindex, (i & 1) ? 0 : IFF_PROMISC, IFF_PROMISC, NULL);
        t = now_ns() - t;
        if (r < 0) {
                errno = -r;
                die("RTM_SETLINK flags");
        }
        return t;
}

static int multi(int fd, const char *ifname, unsigned long op, const unsigned char *mac) {
        struct ifreq ifr = {};
        snprintf(ifr.ifr_name, sizeof(ifr.ifr_name), "%s", ifname);
        ifr.ifr_hwaddr.sa_family = AF_UNSPEC;
        memcpy(ifr.ifr_hwaddr.sa_data, mac, 6);
        return ioctl(fd, op, &ifr) < 0 ? -errno : 0;
}

static int floor_setlink(const char *ifname, unsigned n) {
        int fd = socket(AF_NETLINK, SOCK_RAW | SOCK_CLOEXEC, NETLINK_ROUTE);
        struct sockaddr_nl sa = { .nl_family = AF_NETLINK };
        if (fd < 0 || bind(fd, (struct sockaddr *)&sa, sizeof(sa)) < 0)
                die("netlink");
        int ufd = socket(AF_UNIX, SOCK_DGRAM | SOCK_CLOEXEC, 0);
        if (ufd < 0)
                die("socket");
        struct ifreq ifr = {};
        snprintf(ifr.ifr_name, sizeof(ifr.ifr_name), "%s", ifname);
        if (ioctl(ufd, SIOCGIFINDEX, &ifr) < 0)
                die("SIOCGIFINDEX");
        int ifindex = ifr.ifr_ifindex;
        if (ioctl(ufd, SIOCGIFHWADDR, &ifr) < 0)
                die("SIOCGIFHWADDR");
        unsigned char orig[6];
        memcpy(orig, ifr.ifr_hwaddr.sa_data, 6);

        uint64_t *fl = calloc(n, sizeof(uint64_t)), *mc = calloc(n, sizeof(uint64_t));
        for (unsigned i = 0; i < n; i++)
                fl[i] = timed_promisc_toggle(fd, ifindex, i);
        if (n & 1)
                (void)setlink(fd, ifindex, 0, IFF_PROMISC, NULL);
        for (unsigned i = 0; i < n; i++) {
                unsigned char m[6] = { 0x33, 0x33, 0x00, 0x00, (unsigned char)(i >> 8), (unsigned char)i };
                uint64_t t = now_ns();
                int r = multi(ufd, ifname, SIOCADDMULTI, m);
                if (r >= 0)
                        r = multi(ufd, ifname, SIOCDELMULTI, m);
                mc[i] = now_ns() - t;
                if (r < 0) {
                        errno = -r;
                        die("SIOC*MULTI");
                }
        }
        unsigned nm = n < 200 ? n : 200;
        uint64_t *ma = calloc(nm, sizeof(uint64_t));
        for (unsigned i = 0; i < nm; i++) {
                unsigned char m[6] = { 0x5a, 0x00, 0x00, 0x00, (unsigned char)(i >> 8), (unsigned char)i };
                uint64_t t = now_ns();
                int r = setlink(fd, ifindex, 0, 0, m);
                ma[i] = now_ns() - t;
                if (r < 0) {
                        errno = -r;
                        die("RTM_SETLINK mac");
                }
        }
        (void)setlink(fd, ifindex, 0, 0, orig);
        printf("{\n");
        report("setlink_flags", fl, n, false);
        report("multicast_add_del", mc, n, false);
        report("setlink_mac", ma, nm, true);
        printf("}\n");
        return 0;
}

/* ---- D-Bus signal round trip --------------------------------------------------------------------- */
static volatile int got;
static int on_pong(sd_bus_message *m, void *userdata, sd_bus_error *e) {
        got = 1;
        return 0;
}
static int on_ping(sd_bus_message *m, void *userdata, sd_bus_error *e) {
        sd_bus *bus = userdata;
        uint32_t k = 0;
        (void)sd_bus_message_read(m, "u", &k);
        (void)sd_bus_emit_signal(bus, "/io/guestnetd/Bench", "io.guestnetd.Bench", "Pong", "u", k);
        return 0;
}

static int wait_msg(sd_bus *bus, volatile int *flag) {
        while (!*flag) {
                int r = sd_bus_process(bus, NULL);
                if (r < 0)
                        return r;
                if (r == 0 && !*flag && (r = sd_bus_wait(bus, 5000000)) < 0)
                        return r;
        }
        return 0;
}

static int floor_dbus(unsigned n) {
        int pfd[2];
        if (pipe(pfd) < 0)
                die("pipe");
        pid_t pid = fork();
        if (pid < 0)
                die("fork");
        if (pid == 0) {
                sd_bus *bus = NULL;
                if (sd_bus_open_system(&bus) < 0 ||
                        sd_bus_match_signal(bus, NULL, NULL, "/io/guestnetd/Bench", "io.guestnetd.Bench",
                                "Ping", on_ping, bus) < 0)
                        _exit(1);
                /* a round trip to the bus: the match is installed once this returns */
                sd_bus_message *reply = NULL;
                sd_bus_call_method(bus, "org.freedesktop.DBus", "/org/freedesktop/DBus",
                        "org.freedesktop.DBus", "GetId", NULL, &reply, "");
                sd_bus_message_unref(reply);
                if (write(pfd[1], "r", 1) < 0)
                        _exit(1);
                alarm(120);
                for (;;) {
                        int r = sd_bus_process(bus, NULL);
                        if (r < 0)
                                _exit(0);
                        if (r == 0 && sd_bus_wait(bus, UINT64_MAX) < 0)
                                _exit(0);
                }
        }
        char c;
        if (read(pfd[0], &c, 1) != 1)
                die("child bus");
        sd_bus *bus = NULL;
        if (sd_bus_open_system(&bus) < 0 ||
                sd_bus_match_signal(bus, NULL, NULL, "/io/guestnetd/Bench", "io.guestnetd.Bench", "Pong",
                        on_pong, NULL) < 0)
                die("bus");
        sd_bus_message *reply = NULL;
        sd_bus_call_method(bus, "org.freedesktop.DBus", "/org/freedesktop/DBus", "org.freedesktop.DBus",
                "GetId", NULL, &reply, "");
        sd_bus_message_unref(reply);
        uint64_t *rtt = calloc(n, sizeof(uint64_t));
        for (unsigned i = 0; i < n + n / 10; i++) {
                got = 0;
                uint64_t t = now_ns();
                if (sd_bus_emit_signal(bus, "/io/guestnetd/Bench", "io.guestnetd.Bench", "Ping", "u", i) <
                                0 ||
                        wait_msg(bus, &got) < 0)
                        die("dbus round trip");
                if (i >= n / 10)
                        rtt[i - n / 10] = now_ns() - t;
        }
        kill(pid, SIGTERM);
        waitpid(pid, NULL, 0);
        printf("{\n");
        report("dbus_signal_round_trip", rtt, n, true);
        printf("}\n");
        return 0;
}

/* ---- a real QEMU's monitor ------------------------------------------------------------------------- */
static uint64_t realtime_us(void) {
        struct timespec ts;
        clock_gettime(CLOCK_REALTIME, &ts);
        return (uint64_t)ts.tv_sec * 1000000ULL + (uint64_t)ts.tv_nsec / 1000;
}

/* What the monitor sent that is not taken yet; next_line() cuts complete lines out of it. */
static char qbuf[1 << 16];
static size_t qlen;

static char *next_line(void) {
        char *nl = memchr(qbuf, '\n', qlen);
        if (!nl)
                return NULL;
        static char line[sizeof(qbuf)];
        size_t k = (size_t)(nl - qbuf) + 1;
        memcpy(line, qbuf, k);
        line[k] = '\0';
        memmove(qbuf, qbuf + k, qlen - k);
        qlen -= k;
        return line;
}

/* One read from the monitor; false at its end. A line longer than the buffer is a broken peer. */
static bool qmp_read(int fd) {
        if (qlen >= sizeof(qbuf) - 1) {
                errno = EMSGSIZE;
                die("qmp line");
        }
        ssize_t r = read(fd, qbuf + qlen, sizeof(qbuf) - 1 - qlen);
        if (r < 0)
                die("qmp read");
        qlen += (size_t)r;
        return r > 0;
}

/* Reads from the monitor until a complete line (QMP ends every message with \r\n) is there. */
static char *qmp_line(int fd, int timeout_ms) {
        for (;;) {
                char *l = next_line();
                if (l)
                        return l;
                struct pollfd p = { .fd = fd, .events = POLLIN };
                if (poll(&p, 1, timeout_ms) <= 0)
                        return NULL;
                if (!qmp_read(fd)) {
                        errno = ECONNRESET;
                        die("qmp read");
                }
        }
}

static int qmp_connect(const char *path) {
        struct sockaddr_un sa = { .sun_family = AF_UNIX };
        int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
        snprintf(sa.sun_path, sizeof(sa.sun_path), "%s", path);
        if (fd < 0 || connect(fd, (struct sockaddr *)&sa, sizeof(sa)) < 0)
                die("qmp connect");
        if (!qmp_line(fd, 5000))
                die("qmp greeting");
        static const char caps[] = "{\"execute\": \"qmp_capabilities\"}\r\n";
        if (write(fd, caps, sizeof(caps) - 1) < 0)
                die("qmp write");
        for (char *l; (l = qmp_line(fd, 5000));)
                if (strstr(l, "\"return\""))
                        return fd;
        die("qmp_capabilities");
        return -1;
}

static int floor_rxfilter(const char *path, const char *nic, unsigned n) {
        int fd = qmp_connect(path);
        uint64_t *v = calloc(n, sizeof(uint64_t));
        char cmd[256];
        int len = snprintf(cmd, sizeof(cmd),
                "{\"execute\": \"query-rx-filter\", \"arguments\": {\"name\": \"%s\"}}\r\n", nic);
        for (unsigned i = 0; i < n; i++) {
                uint64_t t = now_ns();
                if (write(fd, cmd, (size_t)len) != len)
                        die("qmp write");
                char *l;
                while ((l = qmp_line(fd, 5000)) && !strstr(l, "\"return\""))
                        ; /* an event in between */
                if (!l)
                        die("query-rx-filter timed out");
                v[i] = now_ns() - t;
                usleep(2000); /* as the daemon sees it: one query at a time, QEMU otherwise idle */
        }
        qsort(v, n, sizeof(*v), cmp_u64);
#define P(p) ((double)v[(size_t)fmin((double)n - 1, ceil((p) / 100.0 * (double)n) - 1)] / 1000.0)
        printf("{\"qemu_query_rx_filter\": {\"n\": %u, \"min_us\": %.1f, \"p50_us\": %.1f, \"p90_us\": "
               "%.1f, "
               "\"p99_us\": %.1f, \"max_us\": %.1f}}\n",
                n, (double)v[0] / 1000.0, P(50), P(90), P(99), (double)v[n - 1] / 1000.0);
#undef P
        free(v);
        return 0;
}

/* A NIC's RX filter as the host device has it or as QEMU reports it, in the words both modes print:
 * "PROMISC ALLMULTI MAC ENTRIES" (ENTRIES: multicast addresses in /proc/net/dev_mcast's hex,
 * comma-separated, "-" for none). */
typedef struct HostState {
        int promisc, allmulti;
        char mac[18];
        char entries[512];
} HostState;

static bool state_equal(const HostState *a, const HostState *b) {
        return a->promisc == b->promisc && a->allmulti == b->allmulti && streq(a->mac, b->mac) &&
                streq(a->entries, b->entries);
}

/* Ends a "host" or "react" line with the state. */
static void print_state(const HostState *s) {
        printf(" %d %d %s %s\n", s->promisc, s->allmulti, s->mac, s->entries);
        fflush(stdout);
}

static void format_mac(char out[static 18], const unsigned char *b) {
        snprintf(out, 18, "%02x:%02x:%02x:%02x:%02x:%02x", b[0], b[1], b[2], b[3], b[4], b[5]);
}

/* The value of "KEY" in a line of QEMU's JSON (`"key": value`), or NULL: enough for the few fields
 * read here (the daemon parses QMP properly). */
static const char *json_value(const char *l, const char *key) {
        size_t n = strlen(key);
        for (const char *p = l; (p = strchr(p, '"')); p++)
                if (strncmp(p + 1, key, n) == 0 && p[n + 1] == '"') {
                        const char *v = p + n + 2 + strspn(p + n + 2, " ");
                        if (*v == ':')
                                return v + 1 + strspn(v + 1, " ");
                }
        return NULL;
}

/* A quoted "xx:xx:xx:xx:xx:xx" at p, strictly. */
static bool mac_at(const char *p, unsigned char m[static 6]) {
        if (*p++ != '"')
                return false;
        for (int i = 0; i < 6; i++, p += 3) {
                if (!isxdigit((unsigned char)p[0]) || !isxdigit((unsigned char)p[1]) ||
                        p[2] != (i < 5 ? ':' : '"'))
                        return false;
                char hex[3] = { p[0], p[1], '\0' };
                m[i] = (unsigned char)strtoul(hex, NULL, 16);
        }
        return true;
}

/* A NIC_RX_FILTER_CHANGED line: QEMU's timestamp (realtime µs) and the NIC's name, which must be of
 * QEMU's id syntax (it goes into a command and the output as it is). */
static bool parse_event(const char *l, uint64_t *ts, char nic[static 64]) {
        const char *e = json_value(l, "event"), *s = json_value(l, "seconds"),
                   *u = json_value(l, "microseconds"), *name = json_value(l, "name");
        unsigned long long sec, usec;
        if (!e || strncmp(e, "\"NIC_RX_FILTER_CHANGED\"", 23) != 0 || !s || !u || !name || *name != '"' ||
                sscanf(s, "%llu", &sec) != 1 || sscanf(u, "%llu", &usec) != 1)
                return false;
        size_t n = strspn(name + 1, "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789_.-");
        if (n == 0 || n >= 64 || name[1 + n] != '"')
                return false;
        memcpy(nic, name + 1, n);
        nic[n] = '\0';
        *ts = sec * 1000000ULL + usec;
        return true;
}

/* The filter a query-rx-filter reply shows. */
static bool parse_filter(const char *l, HostState *s) {
        const char *pr = json_value(l, "promiscuous"), *mc = json_value(l, "multicast"),
                   *mac = json_value(l, "main-mac"), *tab = json_value(l, "multicast-table");
        unsigned char m[6];
        if (!pr || !mc || !mac || !tab || *tab != '[' || !mac_at(mac, m))
                return false;
        *s = (HostState){ .promisc = strncmp(pr, "true", 4) == 0,
                .allmulti = strncmp(mc, "\"all\"", 5) == 0 };
        format_mac(s->mac, m);
        size_t k = 0;
        for (const char *p = tab + 1;; p += 19) {
                p += strspn(p, " ,");
                if (*p == ']')
                        break;
                if (!mac_at(p, m))
                        return false;
                if (k + 14 < sizeof(s->entries))
                        k += (size_t)snprintf(s->entries + k, sizeof(s->entries) - k,
                                "%s%02x%02x%02x%02x%02x%02x", k ? "," : "", m[0], m[1], m[2], m[3], m[4],
                                m[5]);
        }
        if (!k)
                strcpy(s->entries, "-");
        return true;
}

/* The floor of the daemon's share under the guest's load: reacts to every NIC_RX_FILTER_CHANGED as the
 * daemon does (one query-rx-filter in flight; events that come meanwhile wait for its reply, one per
 * NIC), and prints "react EVENT READ SENT REPLY STATE": QEMU's timestamp, when the event was read, the
 * query sent, the reply read (realtime µs), and the filter the reply shows. */
static int floor_react(const char *path, char **nics, int n_nics) {
        int fd = qmp_connect(path);
        struct {
                uint64_t event, read;
                char nic[64];
        } q[16], cur = {};
        size_t nq = 0;
        /* The NICs named are queried once first, as the daemon does when it connects: that re-arms
         * QEMU's event if nobody answered the last one. */
        for (int i = 0; i < n_nics && nq < ELEMENTSOF(q); i++)
                if (strlen(nics[i]) < sizeof(q[0].nic)) {
                        q[nq].event = q[nq].read = 0;
                        strcpy(q[nq++].nic, nics[i]);
                }
        uint64_t sent = 0;
        unsigned id = 0, dropped = 0;
        bool in_flight = false, ready = false;
        for (;;) {
                if (!ready && !in_flight && nq == 0) {
                        /* connected, the first queries answered: from here on every event is seen */
                        printf("ready\n");
                        fflush(stdout);
                        ready = true;
                }
                if (!in_flight && nq > 0) {
                        memcpy(&cur, &q[0], sizeof(cur));
                        memmove(&q[0], &q[1], --nq * sizeof(q[0]));
                        char cmd[256];
                        static const char fmt[] = "{\"execute\": \"query-rx-filter\", "
                                                  "\"arguments\": {\"name\": \"%s\"}, \"id\": %u}\r\n";
                        int len = snprintf(cmd, sizeof(cmd), fmt, cur.nic, ++id);
                        sent = realtime_us();
                        if (write(fd, cmd, (size_t)len) != len)
                                die("qmp write");
                        in_flight = true;
                }
                struct pollfd p[2] = { { .fd = fd, .events = POLLIN }, { .fd = 0, .events = POLLIN } };
                if (poll(p, 2, -1) < 0) {
                        if (errno == EINTR)
                                continue;
                        die("poll");
                }
                if (p[1].revents)
                        break; /* stdin closed (or written): done */
                if (p[0].revents && !qmp_read(fd))
                        break;
                uint64_t t = realtime_us();
                for (char *l; (l = next_line());) {
                        uint64_t ts;
                        char nic[64];
                        if (parse_event(l, &ts, nic)) {
                                bool queued = false;
                                for (size_t i = 0; i < nq; i++)
                                        queued = queued || streq(q[i].nic, nic);
                                if (queued)
                                        continue;
                                if (nq == ELEMENTSOF(q)) {
                                        dropped++;
                                        continue;
                                }
                                q[nq].event = ts;
                                q[nq].read = t;
                                strcpy(q[nq++].nic, nic);
                                continue;
                        }
                        const char *rid = json_value(l, "id");
                        if (!in_flight || !rid || strtoul(rid, NULL, 10) != id)
                                continue;
                        in_flight = false;
                        if (cur.event == 0)
                                continue; /* a first query: nothing to time */
                        HostState s;
                        if (!parse_filter(l, &s))
                                s = (HostState){ .promisc = -1, .allmulti = -1, .mac = "-", .entries = "-" };
                        printf("react %llu %llu %llu %llu", (unsigned long long)cur.event,
                                (unsigned long long)cur.read, (unsigned long long)sent,
                                (unsigned long long)t);
                        print_state(&s);
                }
        }
        if (dropped)
                fprintf(stderr, "floor react: %u events dropped (more than %zu NICs waiting)\n", dropped,
                        ELEMENTSOF(q));
        return 0;
}

/* The device's user multicast entries. The kernel sends no notification for them: the watcher polls,
 * with pread() on a file kept open (3 µs a read here, against 16 µs for fopen/fgets/fclose). */
static unsigned long mcast_reads;

static void read_mcast(int ifindex, HostState *s) {
        static int fd = -1;
        static char buf[65536];
        if (fd < 0 && (fd = open("/proc/net/dev_mcast", O_RDONLY | O_CLOEXEC)) < 0)
                die("/proc/net/dev_mcast");
        size_t len = 0;
        for (ssize_t k;
                len < sizeof(buf) - 1 && (k = pread(fd, buf + len, sizeof(buf) - 1 - len, (off_t)len));
                len += (size_t)k)
                if (k < 0)
                        die("/proc/net/dev_mcast");
        buf[len] = '\0';
        mcast_reads++;

        size_t k = 0;
        char name[32], hex[64];
        int idx, users, global;
        s->entries[0] = '\0';
        for (char *l = buf, *nl; (nl = strchr(l, '\n')); l = nl + 1)
                if (sscanf(l, "%d %31s %d %d %63s", &idx, name, &users, &global, hex) == 5 &&
                        idx == ifindex && global && k + strlen(hex) + 2 < sizeof(s->entries))
                        k += (size_t)snprintf(
                                s->entries + k, sizeof(s->entries) - k, "%s%s", k ? "," : "", hex);
        if (!k)
                strcpy(s->entries, "-");
}

/* Flags and MAC with ioctls: the first look, and again when netlink notifications were lost. */
static void read_link(int sock, const char *ifname, HostState *s) {
        struct ifreq ifr = {};
        snprintf(ifr.ifr_name, sizeof(ifr.ifr_name), "%s", ifname);
        if (ioctl(sock, SIOCGIFFLAGS, &ifr) < 0)
                die("SIOCGIFFLAGS");
        s->promisc = !!(ifr.ifr_flags & IFF_PROMISC);
        s->allmulti = !!(ifr.ifr_flags & IFF_ALLMULTI);
        if (ioctl(sock, SIOCGIFHWADDR, &ifr) < 0)
                die("SIOCGIFHWADDR");
        format_mac(s->mac, (const unsigned char *)ifr.ifr_hwaddr.sa_data);
}

/* Applies the RTM_NEWLINK notifications about ifindex in buf (flags as SIOCGIFFLAGS shows them: the
 * user's promisc/allmulti, and IFLA_ADDRESS). */
static void link_update(char *buf, int len, int ifindex, HostState *s) {
        for (struct nlmsghdr *h = (struct nlmsghdr *)buf; NLMSG_OK(h, len); h = NLMSG_NEXT(h, len)) {
                if (h->nlmsg_type != RTM_NEWLINK || h->nlmsg_len < NLMSG_LENGTH(sizeof(struct ifinfomsg)))
                        continue;
                struct ifinfomsg *i = NLMSG_DATA(h);
                if (i->ifi_index != ifindex)
                        continue;
                s->promisc = !!(i->ifi_flags & IFF_PROMISC);
                s->allmulti = !!(i->ifi_flags & IFF_ALLMULTI);
                int alen = (int)IFLA_PAYLOAD(h);
                for (struct rtattr *a = IFLA_RTA(i); RTA_OK(a, alen); a = RTA_NEXT(a, alen))
                        if (a->rta_type == IFLA_ADDRESS && RTA_PAYLOAD(a) == 6)
                                format_mac(s->mac, RTA_DATA(a));
        }
}

/* How the watcher sees the multicast list (measured in docs/performance.md): every WATCH_FAST_US for
 * WATCH_WINDOW_US after each event, when a change is due, else every WATCH_SLOW_US. */
#define WATCH_WINDOW_US 30000
#define WATCH_FAST_US   200
#define WATCH_SLOW_US   20000

static uint64_t mono_us(void) {
        return now_ns() / 1000;
}

static int floor_watch(const char *path, const char *ifname) {
        int fd = qmp_connect(path), sock = socket(AF_UNIX, SOCK_DGRAM | SOCK_CLOEXEC, 0);
        int nl = socket(AF_NETLINK, SOCK_RAW | SOCK_CLOEXEC, NETLINK_ROUTE);
        struct sockaddr_nl sa = { .nl_family = AF_NETLINK, .nl_groups = RTMGRP_LINK };
        if (nl < 0 || bind(nl, (struct sockaddr *)&sa, sizeof(sa)) < 0)
                die("netlink");
        struct ifreq ifr = {};
        snprintf(ifr.ifr_name, sizeof(ifr.ifr_name), "%s", ifname);
        if (sock < 0 || ioctl(sock, SIOCGIFINDEX, &ifr) < 0)
                die("SIOCGIFINDEX");
        int ifindex = ifr.ifr_ifindex;
        /* ppoll()'s wake-ups to the µs, not the default 50 µs of slack */
        (void)prctl(PR_SET_TIMERSLACK, 1000UL);
        HostState last = {}, now;
        read_link(sock, ifname, &last);
        read_mcast(ifindex, &last);
        printf("host %llu", (unsigned long long)realtime_us());
        print_state(&last);
        unsigned long notifications = 0;
        uint64_t window_end = 0, next_mcast = mono_us() + WATCH_SLOW_US, t0 = mono_us();
        for (;;) {
                struct pollfd p[3] = { { .fd = fd, .events = POLLIN }, { .fd = nl, .events = POLLIN },
                        { .fd = 0, .events = POLLIN } };
                uint64_t m = mono_us(), wait = next_mcast > m ? next_mcast - m : 0;
                struct timespec ts = { .tv_sec = (time_t)(wait / 1000000),
                        .tv_nsec = (long)(wait % 1000000) * 1000 };
                if (ppoll(p, 3, &ts, NULL) < 0) {
                        if (errno == EINTR)
                                continue;
                        die("ppoll");
                }
                if (p[2].revents)
                        break; /* stdin closed (or written): done */
                now = last;
                if (p[1].revents) {
                        char buf[16384];
                        ssize_t k = recv(nl, buf, sizeof(buf), 0);
                        uint64_t t = realtime_us();
                        if (k < 0 && errno == ENOBUFS)
                                read_link(sock, ifname, &now); /* notifications lost: look again */
                        else if (k < 0)
                                die("netlink recv");
                        else
                                link_update(buf, (int)k, ifindex, &now);
                        notifications++;
                        if (!state_equal(&now, &last)) {
                                printf("host %llu", (unsigned long long)t);
                                print_state(&now);
                                last = now;
                        }
                }
                if (p[0].revents) {
                        if (!qmp_read(fd))
                                break;
                        for (char *l; (l = next_line());) {
                                uint64_t ts_us;
                                char nic[64];
                                if (!parse_event(l, &ts_us, nic))
                                        continue;
                                printf("event %llu\n", (unsigned long long)ts_us);
                                fflush(stdout);
                                window_end = mono_us() + WATCH_WINDOW_US;
                                if (next_mcast > mono_us() + WATCH_FAST_US)
                                        next_mcast = mono_us() + WATCH_FAST_US;
                        }
                }
                m = mono_us();
                if (m >= next_mcast) {
                        read_mcast(ifindex, &now);
                        uint64_t t = realtime_us();
                        if (!state_equal(&now, &last)) {
                                printf("host %llu", (unsigned long long)t);
                                print_state(&now);
                                last = now;
                        }
                        next_mcast = m + (m < window_end ? WATCH_FAST_US : WATCH_SLOW_US);
                }
        }
        struct rusage ru;
        getrusage(RUSAGE_SELF, &ru);
        printf("stats mcast_reads %lu notifications %lu cpu_us %llu wall_us %llu\n", mcast_reads,
                notifications,
                (unsigned long long)(ru.ru_utime.tv_sec + ru.ru_stime.tv_sec) * 1000000ULL +
                        (unsigned long long)(ru.ru_utime.tv_usec + ru.ru_stime.tv_usec),
                (unsigned long long)(mono_us() - t0));
        return 0;
}

static int floor_macflags(const char *mac_dev, const char *flags_dev, unsigned n) {
        int fd = socket(AF_NETLINK, SOCK_RAW | SOCK_CLOEXEC, NETLINK_ROUTE);
        struct sockaddr_nl sa = { .nl_family = AF_NETLINK };
        if (fd < 0 || bind(fd, (struct sockaddr *)&sa, sizeof(sa)) < 0)
                die("netlink");
        int ufd = socket(AF_UNIX, SOCK_DGRAM | SOCK_CLOEXEC, 0);
        struct ifreq ifr = {};
        if (ufd < 0)
                die("socket");
        snprintf(ifr.ifr_name, sizeof(ifr.ifr_name), "%s", mac_dev);
        if (ioctl(ufd, SIOCGIFINDEX, &ifr) < 0)
                die("SIOCGIFINDEX");
        int mac_index = ifr.ifr_ifindex;
        snprintf(ifr.ifr_name, sizeof(ifr.ifr_name), "%s", flags_dev);
        if (ioctl(ufd, SIOCGIFINDEX, &ifr) < 0)
                die("SIOCGIFINDEX");
        int flags_index = ifr.ifr_ifindex;

        pid_t child = fork();
        if (child < 0)
                die("fork");
        if (child == 0) {
                int cfd = socket(AF_NETLINK, SOCK_RAW | SOCK_CLOEXEC, NETLINK_ROUTE);
                if (cfd < 0 || bind(cfd, (struct sockaddr *)&sa, sizeof(sa)) < 0)
                        _exit(1);
                for (unsigned i = 1;; i++) {
                        unsigned char m[6] = { 0x5a, 0x01, (unsigned char)(i >> 24),
                                (unsigned char)(i >> 16), (unsigned char)(i >> 8), (unsigned char)i };
                        if (setlink(cfd, mac_index, 0, 0, m) < 0)
                                _exit(1);
                }
        }
        usleep(20000); /* the MAC changes under way */
        uint64_t *fl = calloc(n, sizeof(uint64_t));
        for (unsigned i = 0; i < n; i++) {
                fl[i] = timed_promisc_toggle(fd, flags_index, i);
                usleep(1000);
        }
        (void)setlink(fd, flags_index, 0, IFF_PROMISC, NULL);
        kill(child, SIGKILL);
        waitpid(child, NULL, 0);
        printf("{\n");
        report("setlink_flags_during_mac_changes", fl, n, true);
        printf("}\n");
        return 0;
}

int main(int argc, char **argv) {
        /* The daemon's scheduler slice (CPUSchedulingSliceUSec=), given by bench/run: a floor is what a
         * client scheduled as the daemon is pays, not one the kernel lets wait longer. */
        const char *slice = getenv("GUESTNETD_FLOOR_SLICE_USEC");
        if (slice && atoi(slice) > 0) {
                int r = sched_slice_set((uint64_t)atoi(slice), NULL);
                if (r < 0 && r != -EOPNOTSUPP && r != -EMEDIUMTYPE) {
                        fprintf(stderr, "guestnetd-floor: cannot set the scheduler slice: %s\n",
                                strerror(-r));
                        return 1;
                }
        }
        if (argc == 3 && strcmp(argv[1], "qmp") == 0)
                return floor_qmp((unsigned)atoi(argv[2]));
        if (argc == 4 && strcmp(argv[1], "setlink") == 0)
                return floor_setlink(argv[2], (unsigned)atoi(argv[3]));
        if (argc == 5 && strcmp(argv[1], "macflags") == 0)
                return floor_macflags(argv[2], argv[3], (unsigned)atoi(argv[4]));
        if (argc == 3 && strcmp(argv[1], "dbus") == 0)
                return floor_dbus((unsigned)atoi(argv[2]));
        if (argc == 5 && strcmp(argv[1], "rxfilter") == 0)
                return floor_rxfilter(argv[2], argv[3], (unsigned)atoi(argv[4]));
        if (argc == 4 && strcmp(argv[1], "watch") == 0)
                return floor_watch(argv[2], argv[3]);
        if (argc >= 3 && strcmp(argv[1], "react") == 0)
                return floor_react(argv[2], argv + 3, argc - 3);
        fprintf(stderr,
                "usage: guestnetd-floor qmp N | setlink IFNAME N | macflags MACDEV FLAGSDEV N | dbus N | "
                "rxfilter SOCKET NIC N | "
                "watch SOCKET IFNAME | react SOCKET [NIC...]\n");
        return 2;
}
