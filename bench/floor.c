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
 *   guestnetd-floor watch SOCKET IFNAME
 *                                  against a real QEMU, inside the device's namespace: one line per
 *                                  NIC_RX_FILTER_CHANGED ("event REALTIME_US" with QEMU's own timestamp)
 *                                  and per change of the host device ("host REALTIME_US PROMISC ALLMULTI
 *                                  MAC ENTRIES"), polled every 50 µs for 200 ms after each event, else
 *                                  every 2 ms; until stdin closes. Run with bench/run real-qemu.
 * Each prints one JSON object: {"what": ..., "n": N, "p50_us": ..., "p99_us": ..., ...}. */
#include <errno.h>
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
#include <sys/socket.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <systemd/sd-bus.h>
#include <time.h>
#include <unistd.h>

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
        for (unsigned i = 0; i < n; i++) {
                uint64_t t = now_ns();
                int r = setlink(fd, ifindex, (i & 1) ? 0 : IFF_PROMISC, IFF_PROMISC, NULL);
                fl[i] = now_ns() - t;
                if (r < 0) {
                        errno = -r;
                        die("RTM_SETLINK flags");
                }
        }
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

/* Reads from the monitor until a complete line (QMP ends every message with \r\n) is in buf. */
static char qbuf[1 << 16];
static size_t qlen;

static char *qmp_line(int fd, int timeout_ms) {
        for (;;) {
                char *nl = memchr(qbuf, '\n', qlen);
                if (nl) {
                        static char line[sizeof(qbuf)];
                        size_t k = (size_t)(nl - qbuf) + 1;
                        memcpy(line, qbuf, k);
                        line[k] = '\0';
                        memmove(qbuf, qbuf + k, qlen - k);
                        qlen -= k;
                        return line;
                }
                struct pollfd p = { .fd = fd, .events = POLLIN };
                if (poll(&p, 1, timeout_ms) <= 0)
                        return NULL;
                ssize_t r = read(fd, qbuf + qlen, sizeof(qbuf) - 1 - qlen);
                if (r <= 0)
                        die("qmp read");
                qlen += (size_t)r;
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

typedef struct HostState {
        int promisc, allmulti;
        char mac[18];
        char entries[512]; /* the device's user multicast entries, as dev_mcast lists them */
} HostState;

static void host_state(int sock, const char *ifname, int ifindex, HostState *s) {
        struct ifreq ifr = {};
        snprintf(ifr.ifr_name, sizeof(ifr.ifr_name), "%s", ifname);
        if (ioctl(sock, SIOCGIFFLAGS, &ifr) < 0)
                die("SIOCGIFFLAGS");
        s->promisc = !!(ifr.ifr_flags & IFF_PROMISC);
        s->allmulti = !!(ifr.ifr_flags & IFF_ALLMULTI);
        if (ioctl(sock, SIOCGIFHWADDR, &ifr) < 0)
                die("SIOCGIFHWADDR");
        const unsigned char *b = (const unsigned char *)ifr.ifr_hwaddr.sa_data;
        snprintf(
                s->mac, sizeof(s->mac), "%02x:%02x:%02x:%02x:%02x:%02x", b[0], b[1], b[2], b[3], b[4], b[5]);
        s->entries[0] = '\0';
        FILE *f = fopen("/proc/net/dev_mcast", "re");
        char line[256], name[32], hex[64];
        int idx, users, global;
        size_t k = 0;
        while (f && fgets(line, sizeof(line), f))
                if (sscanf(line, "%d %31s %d %d %63s", &idx, name, &users, &global, hex) == 5 &&
                        idx == ifindex && global && k + strlen(hex) + 2 < sizeof(s->entries))
                        k += (size_t)snprintf(
                                s->entries + k, sizeof(s->entries) - k, "%s%s", k ? "," : "", hex);
        if (f)
                fclose(f);
        if (!k)
                strcpy(s->entries, "-");
}

static int floor_watch(const char *path, const char *ifname) {
        int fd = qmp_connect(path), sock = socket(AF_UNIX, SOCK_DGRAM | SOCK_CLOEXEC, 0);
        struct ifreq ifr = {};
        snprintf(ifr.ifr_name, sizeof(ifr.ifr_name), "%s", ifname);
        if (sock < 0 || ioctl(sock, SIOCGIFINDEX, &ifr) < 0)
                die("SIOCGIFINDEX");
        int ifindex = ifr.ifr_ifindex;
        HostState last, now;
        uint64_t fast_until = 0;
        host_state(sock, ifname, ifindex, &last);
        printf("host %llu %d %d %s %s\n", (unsigned long long)realtime_us(), last.promisc, last.allmulti,
                last.mac, last.entries);
        fflush(stdout);
        for (;;) {
                struct pollfd p[2] = { { .fd = fd, .events = POLLIN }, { .fd = 0, .events = POLLIN } };
                bool fast = realtime_us() < fast_until;
                /* poll() sleeps at least a tick: in the fast phase wait with nanosleep instead. */
                int r = poll(p, 2, fast ? 0 : 2);
                if (r < 0 && errno != EINTR)
                        die("poll");
                if (p[1].revents)
                        return 0; /* stdin closed (or written): done */
                if (p[0].revents) {
                        ssize_t k = read(fd, qbuf + qlen, sizeof(qbuf) - 1 - qlen);
                        if (k <= 0)
                                return 0;
                        qlen += (size_t)k;
                        for (char *l; (l = qmp_line(fd, 0));) {
                                char *e = strstr(l, "NIC_RX_FILTER_CHANGED");
                                unsigned long long sec, usec;
                                char *ts = strstr(l, "\"seconds\"");
                                char *us = strstr(l, "\"microseconds\"");
                                if (!e || !ts || !us || sscanf(ts, "\"seconds\": %llu", &sec) != 1 ||
                                        sscanf(us, "\"microseconds\": %llu", &usec) != 1)
                                        continue;
                                printf("event %llu\n", sec * 1000000ULL + usec);
                                fast_until = realtime_us() + 200000;
                        }
                }
                host_state(sock, ifname, ifindex, &now);
                if (memcmp(&now, &last, sizeof(now)) != 0) {
                        printf("host %llu %d %d %s %s\n", (unsigned long long)realtime_us(), now.promisc,
                                now.allmulti, now.mac, now.entries);
                        last = now;
                }
                fflush(stdout);
                if (fast)
                        nanosleep(&(struct timespec){ .tv_nsec = 50000 }, NULL);
        }
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
                uint64_t t = now_ns();
                int r = setlink(fd, flags_index, (i & 1) ? 0 : IFF_PROMISC, IFF_PROMISC, NULL);
                fl[i] = now_ns() - t;
                if (r < 0) {
                        errno = -r;
                        die("RTM_SETLINK flags");
                }
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
        fprintf(stderr,
                "usage: guestnetd-floor qmp N | setlink IFNAME N | macflags MACDEV FLAGSDEV N | dbus N | "
                "rxfilter SOCKET NIC N | "
                "watch SOCKET IFNAME\n");
        return 2;
}
