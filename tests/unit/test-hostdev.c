/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* test-hostdev.c: hostdev against real veth/macvtap/tap devices in a private network namespace. */
#include <fcntl.h>
#include <linux/if_tun.h>
#include <net/if.h>
#include <netlink/socket.h>
#include <sched.h>
#include <stdarg.h>
#include <stdio.h>
#include <sys/ioctl.h>
#include <sys/stat.h>
#include <sys/sysmacros.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "cleanup.h"
#include "hostdev.h"
#include "hostsync.h"
#include "peerdev.h"
#include "tests.h"

static const char *netns_skip_reason;

/* Enters a private network namespace once per process: every device dies with the process.
 * Returns 0, 1 (skip, reason in netns_skip_reason) or a negative errno. */
static int netns_enter(void) {
        static int state = 2; /* not tried yet */

        if (state != 2)
                return state;
        if (geteuid() != 0) {
                netns_skip_reason = "needs root (CAP_NET_ADMIN) for a private network namespace";
                return (state = 1);
        }
        if (unshare(CLONE_NEWNET) < 0) {
                netns_skip_reason = "unshare(CLONE_NEWNET) not permitted here";
                return (state = errno == EPERM ? 1 : -errno);
        }
        return (state = 0);
}

/* Fresh devices for every test: a macvtap (passthru) on a veth, a tap and a tun. */
static int devices_reset(void) {
        return system(
                "ip link del lo0 2>/dev/null; ip link del tap0 2>/dev/null; ip link del tun0 2>/dev/null; "
                "ip link add lo0 type veth peer name lo1 && "
                "ip link add link lo0 name mvt0 type macvtap mode passthru && "
                "ip tuntap add tap0 mode tap && ip tuntap add tun0 mode tun && "
                "ip link set lo0 up && ip link set lo1 up && ip link set mvt0 up && ip link set tap0 up");
}

#define NETNS_SETUP()                                                          \
        do {                                                                   \
                int _r = netns_enter();                                        \
                if (_r > 0)                                                    \
                        TEST_SKIP(netns_skip_reason);                          \
                if (_r < 0)                                                    \
                        TEST_FAIL("unshare(CLONE_NEWNET): %s", strerror(-_r)); \
                if (devices_reset() != 0)                                      \
                        TEST_FAIL("creating test devices failed");             \
        } while (0)

/* Runs a shell command and returns its whole stdout (static buffer). */
static const char *run(const char *fmt, ...) _printf_(1, 2);
static const char *run(const char *fmt, ...) {
        static char out[16384];
        char cmd[512];
        va_list ap;
        FILE *p;
        size_t n;

        va_start(ap, fmt);
        vsnprintf(cmd, sizeof(cmd), fmt, ap);
        va_end(ap);
        out[0] = '\0';
        p = popen(cmd, "re");
        if (!p)
                return out;
        n = fread(out, 1, sizeof(out) - 1, p);
        out[n] = '\0';
        pclose(p);
        return out;
}

/* The kernel's promiscuity/allmulti counter as `ip -d link` prints it, or -1. */
static int ip_counter(const char *ifname, const char *what) {
        const char *out = run("ip -d link show dev %s", ifname), *p;
        char key[64];

        snprintf(key, sizeof(key), "%s ", what);
        p = strstr(out, key);
        return p ? atoi(p + strlen(key)) : -1;
}

static bool ip_has_flag(const char *ifname, const char *flag) {
        char key[64];

        snprintf(key, sizeof(key), "\"%s\"", flag);
        return strstr(run("ip -j link show dev %s", ifname), key) != NULL;
}

static bool ip_has_address(const char *ifname, const char *mac) {
        char key[64];

        snprintf(key, sizeof(key), "\"address\":\"%s\"", mac);
        return strstr(run("ip -j link show dev %s", ifname), key) != NULL;
}

/* 1: listed by `ip maddr` as user-added ("static"), 0: listed as the kernel's, -1: absent. */
static int ip_maddr(const char *ifname, const char *mac) {
        const char *out = run("ip maddr show dev %s", ifname), *p, *eol;

        p = strstr(out, mac);
        if (!p)
                return -1;
        eol = strchr(p, '\n');
        p = strstr(p, "static");
        return p && (!eol || p < eol) ? 1 : 0;
}

static EtherAddr mac(const char *s) {
        EtherAddr a = {};

        (void)ether_addr_parse(s, &a);
        return a;
}

/* The filter that would leave the device exactly as it is. */
static void desired_from_state(const HostLinkState *s, HostFilter *ret) {
        *ret = (HostFilter){
                .mac = s->mac,
                .promisc = s->flags & IFF_PROMISC,
                .allmulti = s->flags & IFF_ALLMULTI,
                .multicast = s->flags & IFF_MULTICAST,
                .multicast_list_valid = true,
        };
        for (size_t i = 0; i < s->n_multicast && i < RXFILTER_TABLE_MAX; i++)
                ret->multicast_table[ret->n_multicast++] = s->multicast_table[i];
}

/* The plan as if everything on the device were ours: these tests are about the I/O (the ownership
 * rules are test-hostsync's). */
static void plan(const HostLinkState *s, const HostFilter *want, unsigned trust, HostChange *ch) {
        HostOwnership o;

        host_ownership_init(&o, s);
        o.flags_set = HOSTDEV_FLAGS_OURS;
        o.n_added = s->n_multicast < RXFILTER_TABLE_MAX ? s->n_multicast : RXFILTER_TABLE_MAX;
        memcpy(o.added, s->multicast_table, o.n_added * sizeof(EtherAddr));
        o.n_foreign = 0;
        hostsync_plan(s, want, trust, &o, ch);
}

/* read → plan → apply; the result of apply. */
static int sync_once(HostContext *c, const char *ifname, const HostFilter *want, unsigned trust,
        HostApplyResult *ret_res) {
        HostLinkState s;
        HostChange ch;
        HostApplyResult res;
        int r;

        r = hostdev_read(c, ifname, &s);
        if (r < 0)
                return r;
        plan(&s, want, trust, &ch);
        r = hostdev_apply(c, &s, &ch, &res);
        if (ret_res)
                *ret_res = res;
        return r;
}

static bool plan_is_empty(HostContext *c, const char *ifname, const HostFilter *want, unsigned trust) {
        HostLinkState s;
        HostChange ch;

        if (hostdev_read(c, ifname, &s) < 0)
                return false;
        plan(&s, want, trust, &ch);
        return host_change_is_empty(&ch);
}

static double now_ms(void) {
        struct timespec ts;

        clock_gettime(CLOCK_MONOTONIC, &ts);
        return ts.tv_sec * 1e3 + ts.tv_nsec / 1e6;
}

TEST(kind_to_string) {
        ASSERT_STR_EQ(hostdev_kind_to_string(HOSTDEV_KIND_UNKNOWN), "unknown");
        ASSERT_STR_EQ(hostdev_kind_to_string(HOSTDEV_KIND_MACVTAP), "macvtap");
        ASSERT_STR_EQ(hostdev_kind_to_string(HOSTDEV_KIND_TAP), "tap");
        ASSERT_TRUE(hostdev_kind_to_string(_HOSTDEV_KIND_MAX) == NULL);
        ASSERT_TRUE(hostdev_kind_to_string((HostDevKind)-1) == NULL);
}

TEST(context_sockets_cloexec) {
        _cleanup_(host_context_freep) HostContext *c = NULL;
        int fl;

        ASSERT_OK(host_context_new(NULL, &c));
        ASSERT_STR_EQ(c->dev_mcast_path, "/proc/self/net/dev_mcast");
        fl = fcntl(nl_socket_get_fd(c->nl), F_GETFD);
        ASSERT_TRUE(fl >= 0 && (fl & FD_CLOEXEC));
        fl = fcntl(c->ioctl_fd, F_GETFD);
        ASSERT_TRUE(fl >= 0 && (fl & FD_CLOEXEC));
        fl = fcntl(c->rtnl_fd, F_GETFD);
        ASSERT_TRUE(fl >= 0 && (fl & FD_CLOEXEC));
        ASSERT_TRUE(host_context_free(NULL) == NULL);
        ASSERT_TRUE(host_context_free(TAKE_PTR(c)) == NULL);

        ASSERT_OK(host_context_new("/tmp/elsewhere", &c));
        ASSERT_STR_EQ(c->dev_mcast_path, "/tmp/elsewhere");
}

TEST(read_macvtap) {
        _cleanup_(host_context_freep) HostContext *c = NULL;
        char buf[ETHER_ADDR_STRLEN];
        HostLinkState s;

        NETNS_SETUP();
        ASSERT_OK(host_context_new(NULL, &c));
        ASSERT_OK(hostdev_read(c, "mvt0", &s));
        ASSERT_INT_EQ(s.kind, HOSTDEV_KIND_MACVTAP);
        ASSERT_INT_EQ(s.ifindex, if_nametoindex("mvt0"));
        ASSERT_STR_EQ(s.ifname, "mvt0");
        ASSERT_TRUE(ether_addr_is_valid_unicast(&s.mac));
        ASSERT_TRUE(ip_has_address("mvt0", ether_addr_format(&s.mac, buf)));
        ASSERT_TRUE(s.flags & IFF_UP);
        ASSERT_TRUE(s.flags & IFF_MULTICAST);
        ASSERT_FALSE(s.flags & IFF_PROMISC);
        ASSERT_FALSE(s.flags & IFF_ALLMULTI);
        /* The kernel's own entries (33:33:00:00:00:01, 01:00:5e:00:00:01) are not ours. */
        ASSERT_INT_EQ(ip_maddr("mvt0", "33:33:00:00:00:01"), 0);
        ASSERT_INT_EQ(s.n_multicast, 0);
}

TEST(read_tap_tun_veth) {
        _cleanup_(host_context_freep) HostContext *c = NULL;
        HostLinkState s;

        NETNS_SETUP();
        ASSERT_OK(host_context_new(NULL, &c));
        ASSERT_OK(hostdev_read(c, "tap0", &s));
        ASSERT_INT_EQ(s.kind, HOSTDEV_KIND_TAP);
        ASSERT_TRUE(ether_addr_is_valid_unicast(&s.mac));
        /* Same link kind "tun", but no Ethernet: not a tap. */
        ASSERT_OK(hostdev_read(c, "tun0", &s));
        ASSERT_INT_EQ(s.kind, HOSTDEV_KIND_UNKNOWN);
        ASSERT_TRUE(ether_addr_is_zero(&s.mac));
        ASSERT_OK(hostdev_read(c, "lo1", &s));
        ASSERT_INT_EQ(s.kind, HOSTDEV_KIND_UNKNOWN);
}

TEST(read_missing) {
        _cleanup_(host_context_freep) HostContext *c = NULL;
        HostLinkState s;

        NETNS_SETUP();
        ASSERT_OK(host_context_new(NULL, &c));
        ASSERT_ERROR(hostdev_read(c, "nosuchdev0", &s), ENODEV);
        ASSERT_ERROR(hostdev_read(c, "", &s), EINVAL);
        ASSERT_ERROR(hostdev_read(c, "a-name-too-long-for-ifnamsiz", &s), EINVAL);
}

/* A macvtap's character device, opened as QEMU holds it: a private node with the device's own
 * major:minor (/dev/tapN is shared by every namespace). */
static int open_macvtap_node(const char *ifname, char node[static 64]) {
        char suffix[64];
        unsigned maj, min;

        /* /sys/class/net is the namespace's that mounted /sys; /sys/dev/char lists every namespace's. */
        snprintf(suffix, sizeof(suffix), "/net/%s/macvtap/tap%u", ifname, if_nametoindex(ifname));
        const char *out = run(
                "for l in /sys/dev/char/*; do case $(readlink $l) in *%s) basename $l;; esac; done", suffix);
        if (sscanf(out, "%u:%u", &maj, &min) != 2)
                return -ENODEV;
        snprintf(node, 64, "/tmp/test-hostdev-tap-%d", (int)getpid());
        (void)unlink(node);
        if (mknod(node, S_IFCHR | 0600, makedev(maj, min)) < 0)
                return -errno;
        int fd = open(node, O_RDWR | O_CLOEXEC);
        return fd < 0 ? -errno : fd;
}

/* The device a fd is, remembered: the same open node is recognised with one stat, anything else is
 * looked at again, and a fd that is not a tap or macvtap is never taken for the one remembered. The
 * same through /proc/PID/fd/N and through the process's fd table. */
static void check_peer_device_cache(const PeerFdTable *t) {
        PeerDeviceCache cache = {};
        PeerDevice d;
        char node[64];
        pid_t pid = getpid();

        int fd = open_macvtap_node("mvt0", node);
        ASSERT_TRUE(fd >= 0);
        ASSERT_INT_EQ(peerdev_from_fd_cached(t, pid, fd, &cache, &d), 0); /* looked at */
        ASSERT_INT_EQ(d.kind, HOSTDEV_KIND_MACVTAP);
        ASSERT_STR_EQ(d.ifname, "mvt0");
        ASSERT_INT_EQ(d.ifindex, if_nametoindex("mvt0"));
        d = (PeerDevice){};
        ASSERT_INT_EQ(peerdev_from_fd_cached(t, pid, fd, &cache, &d), 1); /* remembered */
        ASSERT_STR_EQ(d.ifname, "mvt0");
        ASSERT_INT_EQ(d.ifindex, if_nametoindex("mvt0"));

        /* Another open file under the same fd number: not the remembered device. */
        int devnull = open("/dev/null", O_RDWR | O_CLOEXEC);
        ASSERT_TRUE(devnull >= 0);
        ASSERT_OK(dup3(devnull, fd, O_CLOEXEC));
        ASSERT_ERROR(peerdev_from_fd_cached(t, pid, fd, &cache, &d), ENODEV);
        ASSERT_INT_EQ(cache.device.kind, HOSTDEV_KIND_UNKNOWN);
        close(fd);
        ASSERT_ERROR(peerdev_from_fd_cached(t, pid, fd, &cache, &d), ENOENT);

        /* A tap is read from fdinfo every time, never remembered. */
        int tun = open("/dev/net/tun", O_RDWR | O_CLOEXEC);
        ASSERT_TRUE(tun >= 0);
        struct ifreq ifr = { .ifr_flags = IFF_TAP | IFF_NO_PI };
        snprintf(ifr.ifr_name, sizeof(ifr.ifr_name), "tap0");
        ASSERT_OK(ioctl(tun, TUNSETIFF, &ifr));
        ASSERT_INT_EQ(peerdev_from_fd_cached(t, pid, tun, &cache, &d), 0);
        ASSERT_INT_EQ(d.kind, HOSTDEV_KIND_TAP);
        ASSERT_STR_EQ(d.ifname, "tap0");
        ASSERT_INT_EQ(peerdev_from_fd_cached(t, pid, tun, &cache, &d), 0);
        close(tun);
        close(devnull);
        ASSERT_OK(unlink(node));
}

TEST(peer_device_cache) {
        NETNS_SETUP();
        check_peer_device_cache(NULL);
        PeerFdTable *t = NULL;
        ASSERT_OK(peer_fd_table_open(getpid(), &t));
        check_peer_device_cache(t);
        peer_fd_table_unref(t);
}

/* A process's fd table outlives the process only as a dead end: once QEMU is gone (and its PID free
 * for another process), nothing is found through it, where /proc/PID/fd/N would be the new process's. */
TEST(peer_fd_table_of_an_exited_process_leads_nowhere) {
        PeerDeviceCache cache = {};
        PeerDevice d;
        char node[64];
        int pipefd[2];

        NETNS_SETUP();
        int fd = open_macvtap_node("mvt0", node);
        ASSERT_TRUE(fd >= 0);
        ASSERT_OK(pipe2(pipefd, O_CLOEXEC));
        pid_t child = fork();
        ASSERT_TRUE(child >= 0);
        if (child == 0) {
                char c;
                close(pipefd[1]);
                _exit(read(pipefd[0], &c, 1) < 0); /* holds the macvtap until told to go */
        }
        close(pipefd[0]);
        PeerFdTable *t = NULL;
        ASSERT_OK(peer_fd_table_open(child, &t));
        ASSERT_INT_EQ(peerdev_from_fd_cached(t, child, fd, &cache, &d), 0);
        ASSERT_STR_EQ(d.ifname, "mvt0");
        close(pipefd[1]);
        ASSERT_INT_EQ(waitpid(child, NULL, 0), child);
        ASSERT_TRUE(peerdev_from_fd_cached(t, child, fd, &cache, &d) < 0);
        peer_fd_table_unref(t);
        close(fd);
        ASSERT_OK(unlink(node));
}

TEST(read_dev_mcast_filtering) {
        _cleanup_(host_context_freep) HostContext *c = NULL;
        char path[] = "/tmp/test-hostdev-mcast-XXXXXX";
        _cleanup_fclose_ FILE *f = NULL;
        HostLinkState s;
        int fd;

        NETNS_SETUP();
        fd = mkostemp(path, O_CLOEXEC);
        ASSERT_TRUE(fd >= 0);
        f = fdopen(fd, "w");
        ASSERT_TRUE(f);
        /* lo is ifindex 1 in every namespace. */
        fputs("1    lo              1     1     01005e0000fb\n"
              "1    lo              2     0     333300000001\n"
              "1    lo              1     1     01005e000002\n"
              "1    lo              1     1     01005e0000fb\n"
              "2    other           1     1     01005e0000aa\n"
              "1    lo              1     1     0102030405060708\n",
                f);
        fflush(f);
        ASSERT_OK(host_context_new(path, &c));
        ASSERT_OK(hostdev_read(c, "lo", &s));
        ASSERT_INT_EQ(s.n_multicast, 2);
        ASSERT_TRUE(ether_addr_equal(&s.multicast_table[0], &(EtherAddr){ { 0x01, 0, 0x5e, 0, 0, 0x02 } }));
        ASSERT_TRUE(ether_addr_equal(&s.multicast_table[1], &(EtherAddr){ { 0x01, 0, 0x5e, 0, 0, 0xfb } }));

        /* More global entries than we can track: refused rather than silently truncated. */
        for (unsigned i = 0; i <= HOSTDEV_MULTICAST_MAX; i++)
                fprintf(f, "1    lo              1     1     01005e01%04x\n", i);
        fflush(f);
        ASSERT_ERROR(hostdev_read(c, "lo", &s), E2BIG);
        unlink(path);

        ASSERT_ERROR(hostdev_read(c, "lo", &s), ENOENT);
}

TEST(apply_mac) {
        _cleanup_(host_context_freep) HostContext *c = NULL;
        const char *macs[] = { "52:54:00:12:34:56", "52:54:00:12:34:57" };
        HostApplyResult res;
        HostLinkState s;
        HostFilter f;
        HostChange ch;
        double t0, total = 0;
        const unsigned rounds = 20;

        NETNS_SETUP();
        ASSERT_OK(host_context_new(NULL, &c));
        ASSERT_OK(hostdev_read(c, "mvt0", &s));
        desired_from_state(&s, &f);
        f.mac = mac(macs[0]);
        plan(&s, &f, TRUST_ALL, &ch);
        ASSERT_TRUE(ch.set_mac);
        ASSERT_INT_EQ(ch.flags_mask, 0);
        ASSERT_INT_EQ(ch.n_add + ch.n_del, 0);
        ASSERT_OK(hostdev_apply(c, &s, &ch, &res));
        ASSERT_INT_EQ(res.mac, 0);

        ASSERT_OK(hostdev_read(c, "mvt0", &s));
        ASSERT_TRUE(ether_addr_equal(&s.mac, &f.mac));
        ASSERT_TRUE(ip_has_address("mvt0", macs[0]));
        ASSERT_TRUE(s.flags & IFF_UP); /* set while up, and it stays up */
        ASSERT_TRUE(plan_is_empty(c, "mvt0", &f, TRUST_ALL));

        /* What one MAC change costs on a macvtap that is up. */
        for (unsigned i = 1; i <= rounds; i++) {
                ASSERT_OK(hostdev_read(c, "mvt0", &s));
                f.mac = mac(macs[i % 2]);
                plan(&s, &f, TRUST_ALL, &ch);
                t0 = now_ms();
                ASSERT_OK(hostdev_apply(c, &s, &ch, &res));
                total += now_ms() - t0;
        }
        printf("# RTM_SETLINK IFLA_ADDRESS on an up macvtap (passthru): %.3f ms average\n", total / rounds);
        ASSERT_TRUE(ip_has_address("mvt0", macs[rounds % 2]));
}

TEST(apply_kernel_errno_kept) {
        _cleanup_(host_context_freep) HostContext *c = NULL;
        HostChange ch = { .set_mac = true, .mac = mac("01:00:5e:00:00:01") };
        HostApplyResult res;
        HostLinkState s;

        NETNS_SETUP();
        ASSERT_OK(host_context_new(NULL, &c));
        ASSERT_OK(hostdev_read(c, "mvt0", &s));
        /* Bypassing the plan: the kernel refuses, and we get its errno, not libnl's NLE_NOADDR. */
        ASSERT_ERROR(hostdev_apply(c, &s, &ch, &res), EADDRNOTAVAIL);
        ASSERT_INT_EQ(res.mac, -EADDRNOTAVAIL);
        ASSERT_INT_EQ(res.promisc, 0);
        ASSERT_INT_EQ(res.multicast, 0);
        /* Deleting an entry that has no global (user-added) reference, here a kernel entry: the
         * kernel answers ENOENT and keeps it. No global entry is what a delete is for, so it counts as
         * done (the plan only ever deletes entries we added). */
        ch = (HostChange){ .n_del = 1, .del = { mac("33:33:00:00:00:01") } };
        ASSERT_OK(hostdev_apply(c, &s, &ch, &res));
        ASSERT_INT_EQ(res.multicast, 0);
        ASSERT_INT_EQ(res.del_failed[0], 0);
        ASSERT_INT_EQ(ip_maddr("mvt0", "33:33:00:00:00:01"), 0);
        /* Any other multicast error is kept: the device is gone by the time the entry is added. */
        ch = (HostChange){ .n_add = 1, .add = { mac("01:00:5e:00:00:fb") } };
        s.ifindex = 999999;
        ASSERT_ERROR(hostdev_apply(c, &s, &ch, &res), ENODEV);
        ASSERT_INT_EQ(res.multicast, -ENODEV);
}

TEST(apply_promisc_allmulti) {
        _cleanup_(host_context_freep) HostContext *c = NULL;
        HostApplyResult res;
        HostLinkState s;
        HostFilter f;

        NETNS_SETUP();
        ASSERT_OK(host_context_new(NULL, &c));
        ASSERT_OK(hostdev_read(c, "mvt0", &s));
        desired_from_state(&s, &f);

        f.promisc = true;
        ASSERT_OK(sync_once(c, "mvt0", &f, TRUST_ALL, &res));
        ASSERT_INT_EQ(res.promisc, 0);
        ASSERT_TRUE(ip_has_flag("mvt0", "PROMISC"));
        ASSERT_INT_EQ(ip_counter("mvt0", "promiscuity"), 1);
        ASSERT_OK(hostdev_read(c, "mvt0", &s));
        ASSERT_TRUE(s.flags & IFF_PROMISC);
        ASSERT_TRUE(plan_is_empty(c, "mvt0", &f, TRUST_ALL));

        f.allmulti = true;
        ASSERT_OK(sync_once(c, "mvt0", &f, TRUST_ALL, &res));
        ASSERT_INT_EQ(res.allmulti, 0);
        ASSERT_TRUE(ip_has_flag("mvt0", "ALLMULTI"));
        ASSERT_TRUE(ip_has_flag("mvt0", "PROMISC"));
        ASSERT_INT_EQ(ip_counter("mvt0", "allmulti"), 1);

        f.promisc = false;
        ASSERT_OK(sync_once(c, "mvt0", &f, TRUST_ALL, &res));
        ASSERT_FALSE(ip_has_flag("mvt0", "PROMISC"));
        ASSERT_TRUE(ip_has_flag("mvt0", "ALLMULTI"));
        ASSERT_INT_EQ(ip_counter("mvt0", "promiscuity"), 0);

        f.allmulti = false;
        ASSERT_OK(sync_once(c, "mvt0", &f, TRUST_ALL, &res));
        ASSERT_FALSE(ip_has_flag("mvt0", "ALLMULTI"));
        ASSERT_INT_EQ(ip_counter("mvt0", "allmulti"), 0);
        ASSERT_OK(hostdev_read(c, "mvt0", &s));
        ASSERT_FALSE(s.flags & (IFF_PROMISC | IFF_ALLMULTI));
        ASSERT_TRUE(s.flags & IFF_UP);

        /* IFF_MULTICAST off and on again, the other bits untouched. */
        f.multicast = false;
        ASSERT_OK(sync_once(c, "mvt0", &f, TRUST_MULTICAST, &res));
        ASSERT_FALSE(ip_has_flag("mvt0", "MULTICAST"));
        f.multicast = true;
        ASSERT_OK(sync_once(c, "mvt0", &f, TRUST_MULTICAST, &res));
        ASSERT_TRUE(ip_has_flag("mvt0", "MULTICAST"));
        ASSERT_TRUE(ip_has_flag("mvt0", "UP"));
}

TEST(apply_multicast_list) {
        _cleanup_(host_context_freep) HostContext *c = NULL;
        HostApplyResult res;
        HostLinkState s;
        HostFilter f;

        NETNS_SETUP();
        ASSERT_OK(host_context_new(NULL, &c));
        ASSERT_OK(hostdev_read(c, "mvt0", &s));
        ASSERT_INT_EQ(ip_maddr("mvt0", "33:33:00:00:00:01"), 0);
        desired_from_state(&s, &f);
        f.n_multicast = 3;
        f.multicast_table[0] = mac("01:00:5e:00:00:fb");
        f.multicast_table[1] = mac("33:33:00:00:00:01"); /* also the kernel's: we add our own reference */
        f.multicast_table[2] = mac("33:33:00:00:00:fb");

        ASSERT_OK(sync_once(c, "mvt0", &f, TRUST_MULTICAST, &res));
        ASSERT_INT_EQ(res.multicast, 0);
        ASSERT_OK(hostdev_read(c, "mvt0", &s));
        ASSERT_INT_EQ(s.n_multicast, 3);
        ASSERT_TRUE(ether_addr_equal(&s.multicast_table[0], &f.multicast_table[0]));
        ASSERT_TRUE(ether_addr_equal(&s.multicast_table[1], &f.multicast_table[1]));
        ASSERT_TRUE(ether_addr_equal(&s.multicast_table[2], &f.multicast_table[2]));
        ASSERT_INT_EQ(ip_maddr("mvt0", "01:00:5e:00:00:fb"), 1);
        ASSERT_INT_EQ(ip_maddr("mvt0", "33:33:00:00:00:fb"), 1);
        ASSERT_INT_EQ(ip_maddr("mvt0", "33:33:00:00:00:01"), 1);
        ASSERT_TRUE(plan_is_empty(c, "mvt0", &f, TRUST_MULTICAST));

        /* Drop one. */
        f.n_multicast = 2;
        f.multicast_table[1] = f.multicast_table[2];
        ASSERT_OK(sync_once(c, "mvt0", &f, TRUST_MULTICAST, &res));
        ASSERT_INT_EQ(ip_maddr("mvt0", "33:33:00:00:00:01"), 0); /* still there: the kernel's again */
        ASSERT_INT_EQ(ip_maddr("mvt0", "01:00:5e:00:00:fb"), 1);

        /* Drop all: only ours go, the kernel's entries stay. */
        f.n_multicast = 0;
        ASSERT_OK(sync_once(c, "mvt0", &f, TRUST_MULTICAST, &res));
        ASSERT_OK(hostdev_read(c, "mvt0", &s));
        ASSERT_INT_EQ(s.n_multicast, 0);
        ASSERT_INT_EQ(ip_maddr("mvt0", "01:00:5e:00:00:fb"), -1);
        ASSERT_INT_EQ(ip_maddr("mvt0", "33:33:00:00:00:fb"), -1);
        ASSERT_INT_EQ(ip_maddr("mvt0", "33:33:00:00:00:01"), 0);
        ASSERT_INT_EQ(ip_maddr("mvt0", "01:00:5e:00:00:01"), 0);
        ASSERT_STR_CONTAINS(run("cat /proc/net/dev_mcast"), "333300000001");
}

TEST(apply_twice_is_idempotent) {
        _cleanup_(host_context_freep) HostContext *c = NULL;
        HostApplyResult res;
        HostLinkState s;
        HostFilter f;
        HostChange ch;

        NETNS_SETUP();
        ASSERT_OK(host_context_new(NULL, &c));
        ASSERT_OK(hostdev_read(c, "mvt0", &s));
        f = (HostFilter){
                .mac = mac("52:54:00:ab:cd:ef"),
                .promisc = true,
                .allmulti = true,
                .multicast = true,
                .multicast_list_valid = true,
                .n_multicast = 2,
                .multicast_table = { mac("01:00:5e:00:00:fb"), mac("33:33:ff:ab:cd:ef") },
        };
        ASSERT_OK(sync_once(c, "mvt0", &f, TRUST_ALL, &res));

        ASSERT_OK(hostdev_read(c, "mvt0", &s));
        plan(&s, &f, TRUST_ALL, &ch);
        ASSERT_TRUE(host_change_is_empty(&ch));
        ASSERT_OK(hostdev_apply(c, &s, &ch, &res));
        ASSERT_INT_EQ(ip_counter("mvt0", "promiscuity"), 1);
        ASSERT_INT_EQ(ip_counter("mvt0", "allmulti"), 1);
        ASSERT_TRUE(ip_has_address("mvt0", "52:54:00:ab:cd:ef"));
}

TEST(partial_trust_multicast_only) {
        _cleanup_(host_context_freep) HostContext *c = NULL;
        HostLinkState before, after;
        HostApplyResult res;
        HostFilter f;
        HostChange ch;

        NETNS_SETUP();
        ASSERT_OK(host_context_new(NULL, &c));
        ASSERT_OK(hostdev_read(c, "mvt0", &before));
        f = (HostFilter){
                .mac = mac("52:54:00:ab:cd:ef"),
                .promisc = true,
                .allmulti = true,
                .multicast = true,
                .multicast_list_valid = true,
                .n_multicast = 1,
                .multicast_table = { mac("01:00:5e:00:00:fb") },
        };
        plan(&before, &f, TRUST_MULTICAST, &ch);
        ASSERT_FALSE(ch.set_mac);
        ASSERT_INT_EQ(ch.flags_mask, 0);
        ASSERT_INT_EQ(ch.n_add, 1);
        ASSERT_OK(hostdev_apply(c, &before, &ch, &res));

        ASSERT_OK(hostdev_read(c, "mvt0", &after));
        ASSERT_TRUE(ether_addr_equal(&before.mac, &after.mac));
        ASSERT_INT_EQ(before.flags, after.flags);
        ASSERT_INT_EQ(after.n_multicast, 1);
        ASSERT_FALSE(ip_has_flag("mvt0", "PROMISC"));
        ASSERT_FALSE(ip_has_flag("mvt0", "ALLMULTI"));
        ASSERT_FALSE(ip_has_address("mvt0", "52:54:00:ab:cd:ef"));
        ASSERT_INT_EQ(ip_maddr("mvt0", "01:00:5e:00:00:fb"), 1);
}

TEST(apply_to_deleted_device_reports_each_attribute) {
        _cleanup_(host_context_freep) HostContext *c = NULL;
        HostApplyResult res;
        HostLinkState s;
        HostFilter f;
        HostChange ch;

        NETNS_SETUP();
        ASSERT_OK(host_context_new(NULL, &c));
        ASSERT_OK(hostdev_read(c, "mvt0", &s));
        f = (HostFilter){
                .mac = mac("52:54:00:ab:cd:ef"),
                .promisc = true,
                .allmulti = true,
                .multicast = false,
                .multicast_list_valid = true,
                .n_multicast = 1,
                .multicast_table = { mac("01:00:5e:00:00:fb") },
        };
        plan(&s, &f, TRUST_ALL, &ch);
        ASSERT_TRUE(ch.set_mac);
        ASSERT_INT_EQ(ch.flags_mask, IFF_PROMISC | IFF_ALLMULTI | IFF_MULTICAST);
        ASSERT_INT_EQ(ch.n_add, 1);

        ASSERT_INT_EQ(system("ip link del mvt0"), 0);
        ASSERT_ERROR(hostdev_apply(c, &s, &ch, &res), ENODEV);
        ASSERT_INT_EQ(res.mac, -ENODEV);
        ASSERT_INT_EQ(res.promisc, -ENODEV);
        ASSERT_INT_EQ(res.allmulti, -ENODEV);
        ASSERT_INT_EQ(res.multicast, -ENODEV);
        /* The multicast list alone: the ioctl path finds the device gone too. */
        ch = (HostChange){ .n_add = 1, .add = { mac("01:00:5e:00:00:fb") } };
        ASSERT_ERROR(hostdev_apply(c, &s, &ch, &res), ENODEV);
        ASSERT_INT_EQ(res.mac, 0);
        ASSERT_INT_EQ(res.promisc, 0);
        ASSERT_INT_EQ(res.multicast, -ENODEV);
        ASSERT_ERROR(hostdev_read(c, "mvt0", &s), ENODEV);
}

TEST(promisc_toggle_1000_is_balanced) {
        _cleanup_(host_context_freep) HostContext *c = NULL;
        int lower_before;
        HostLinkState s;
        HostFilter f;

        NETNS_SETUP();
        ASSERT_OK(host_context_new(NULL, &c));
        ASSERT_INT_EQ(ip_counter("mvt0", "promiscuity"), 0);
        lower_before = ip_counter("lo0", "promiscuity");
        ASSERT_OK(hostdev_read(c, "mvt0", &s));
        desired_from_state(&s, &f);
        for (unsigned i = 0; i < 1000; i++) {
                f.promisc = true;
                ASSERT_OK(sync_once(c, "mvt0", &f, TRUST_PROMISC, NULL));
                f.promisc = false;
                ASSERT_OK(sync_once(c, "mvt0", &f, TRUST_PROMISC, NULL));
        }
        ASSERT_INT_EQ(ip_counter("mvt0", "promiscuity"), 0);
        ASSERT_INT_EQ(ip_counter("lo0", "promiscuity"), lower_before);
        ASSERT_FALSE(ip_has_flag("mvt0", "PROMISC"));
}

typedef struct Worker {
        HostNamespace *ns;
        const char *ifname;
        int r;
} Worker;

static void *worker_run(void *p) {
        Worker *w = p;
        HostFilter f = { .multicast = true, .multicast_list_valid = true };

        for (unsigned i = 0; i < 200 && w->r >= 0; i++) {
                HostContext *c;
                HostLinkState s;

                w->r = host_namespace_acquire(w->ns, &c);
                if (w->r < 0)
                        break;
                w->r = hostdev_read(c, w->ifname, &s);
                if (w->r >= 0) {
                        f.mac = s.mac;
                        f.allmulti = i % 2;
                        w->r = sync_once(c, w->ifname, &f, TRUST_ALLMULTI, NULL);
                }
                host_namespace_release(w->ns, c);
        }
        return NULL;
}

/* Jobs on several workers at once borrow sockets of their own: never more than were busy at once. */
TEST(contexts_from_threads) {
        _cleanup_(host_namespace_unrefp) HostNamespace *ns = NULL;
        pthread_t t[4];
        Worker w[4];

        NETNS_SETUP();
        ASSERT_OK(host_namespace_new_self(&ns));
        for (size_t i = 0; i < ELEMENTSOF(t); i++) {
                w[i] = (Worker){ .ns = ns, .ifname = "mvt0" };
                ASSERT_INT_EQ(pthread_create(&t[i], NULL, worker_run, &w[i]), 0);
        }
        for (size_t i = 0; i < ELEMENTSOF(t); i++) {
                ASSERT_INT_EQ(pthread_join(t[i], NULL), 0);
                ASSERT_OK(w[i].r);
        }
        ASSERT_TRUE(ns->n_contexts >= 1 && ns->n_contexts <= ELEMENTSOF(t));
        /* Racing syncs may interleave, but each toggle is masked: the counter stays 0 or 1. */
        ASSERT_TRUE(ip_counter("mvt0", "allmulti") <= 1);
}

/* A NIC's job in the middle of its host I/O (it holds its sockets: the kernel is setting a MAC) does not
 * hold up another NIC's job in the same namespace: that one gets sockets of its own and finishes while
 * the first still holds its. With one shared, locked socket set this would wait for the first. */
TEST(a_busy_nic_does_not_hold_up_another) {
        _cleanup_(host_namespace_unrefp) HostNamespace *ns = NULL;
        HostContext *busy, *other, *again;

        NETNS_SETUP();
        ASSERT_INT_EQ(system("ip link del lo2 2>/dev/null; ip link add lo2 type veth peer name lo3 && "
                             "ip link add link lo2 name mvt1 type macvtap mode bridge && "
                             "ip link set lo2 up && ip link set mvt1 up"),
                0);
        ASSERT_OK(host_namespace_new_self(&ns));
        ASSERT_OK(host_namespace_acquire(ns, &busy));

        Worker w = { .ns = ns, .ifname = "mvt1" };
        pthread_t t;
        ASSERT_INT_EQ(pthread_create(&t, NULL, worker_run, &w), 0);
        ASSERT_INT_EQ(pthread_join(t, NULL), 0); /* finished while `busy` is still held */
        ASSERT_OK(w.r);
        ASSERT_INT_EQ(ip_counter("mvt1", "allmulti"), 1); /* 200 toggles, the last one on */

        /* The other job's sockets were given back and are reused; the busy ones are not lent twice. */
        ASSERT_OK(host_namespace_acquire(ns, &other));
        ASSERT_TRUE(other != busy);
        ASSERT_INT_EQ(ns->n_contexts, 2);
        host_namespace_release(ns, busy);
        ASSERT_OK(host_namespace_acquire(ns, &again));
        ASSERT_TRUE(again == busy);
        host_namespace_release(ns, again);
        host_namespace_release(ns, other);
}

/* A namespace that cannot be entered fails every job with its error, and never falls back to ours. */
TEST(namespace_error_is_sticky) {
        _cleanup_(host_namespace_unrefp) HostNamespace *ns = NULL;
        HostContext *c = NULL;

        ASSERT_OK(host_namespace_new(-EPERM, &ns));
        ASSERT_ERROR(host_namespace_acquire(ns, &c), EPERM);
        ASSERT_ERROR(host_namespace_acquire(ns, &c), EPERM);
        ASSERT_TRUE(c == NULL);
}

static unsigned long current_netns(void) {
        struct stat st;
        return stat("/proc/thread-self/ns/net", &st) < 0 ? 0 : (unsigned long)st.st_ino;
}

/* A guest's devices in another namespace than the daemon's: the context opened there reads and changes
 * them (multicast list included), and the calling thread ends up back where it was. */
TEST(context_in_another_namespace) {
        NETNS_SETUP();

        int home = open("/proc/thread-self/ns/net", O_RDONLY | O_CLOEXEC);
        ASSERT_TRUE(home >= 0);
        unsigned long home_id = current_netns();
        ASSERT_OK(unshare(CLONE_NEWNET) < 0 ? -errno : 0);
        int r = system("ip link add gv0 type veth peer name gv1 && "
                       "ip link add link gv0 name gmvt type macvtap mode bridge && "
                       "ip link set gv0 up && ip link set gmvt up");
        int guest_ns = open("/proc/thread-self/ns/net", O_RDONLY | O_CLOEXEC);
        ASSERT_OK(setns(home, CLONE_NEWNET) < 0 ? -errno : 0);
        ASSERT_INT_EQ(r, 0);
        ASSERT_TRUE(guest_ns >= 0);

        HostContext *own, *there;
        HostLinkState s;
        ASSERT_OK(host_context_new(NULL, &own));
        ASSERT_OK(host_context_new_in_netns(guest_ns, &there));
        ASSERT_INT_EQ(current_netns(), home_id);
        ASSERT_TRUE(there->netns_id != own->netns_id);

        ASSERT_ERROR(hostdev_read(own, "gmvt", &s), ENODEV);
        ASSERT_OK(hostdev_read(there, "gmvt", &s));
        ASSERT_INT_EQ(s.kind, HOSTDEV_KIND_MACVTAP);
        ASSERT_INT_EQ(s.n_multicast, 0);

        char name[IF_NAMESIZE];
        ASSERT_OK(hostlink_ifname(there, s.ifindex, name));
        ASSERT_STR_EQ(name, "gmvt");

        HostChange ch = { .n_add = 1 };
        HostApplyResult res;
        ASSERT_OK(ether_addr_parse("01:00:5e:00:00:fb", &ch.add[0]));
        ASSERT_OK(hostdev_apply(there, &s, &ch, &res));
        ASSERT_OK(hostdev_read(there, "gmvt", &s));
        ASSERT_INT_EQ(s.n_multicast, 1);
        /* Read twice through the kept dev_mcast fd: it must be re-read from the start. */
        ASSERT_OK(hostdev_read(there, "gmvt", &s));
        ASSERT_INT_EQ(s.n_multicast, 1);

        host_context_free(there);
        host_context_free(own);
        close(guest_ns);
        close(home);
}

/* A tap that is a bridge port with learning off: its static FDB entry follows the guest's MAC. */
TEST(fdb_entry_moves_with_the_guest_mac) {
        NETNS_SETUP();
        ASSERT_INT_EQ(system("ip link del br0 2>/dev/null; ip link add br0 type bridge && "
                             "ip link set tap0 master br0 && ip link set br0 up"),
                0);

        HostContext *c;
        HostLinkState s;
        EtherAddr old_mac, new_mac, other;
        ASSERT_OK(host_context_new(NULL, &c));
        ASSERT_OK(hostdev_read(c, "tap0", &s));
        ASSERT_OK(ether_addr_parse("52:54:00:12:34:56", &old_mac));
        ASSERT_OK(ether_addr_parse("52:54:00:aa:bb:cc", &new_mac));
        ASSERT_OK(ether_addr_parse("52:54:00:00:00:99", &other));

        /* Learning on: not ours to manage. */
        ASSERT_INT_EQ(hostfdb_port_is_static(c, s.ifindex), 0);
        ASSERT_INT_EQ(system("ip link set tap0 type bridge_slave learning off && "
                             "bridge fdb add 52:54:00:12:34:56 dev tap0 master static"),
                0);
        ASSERT_INT_EQ(hostfdb_port_is_static(c, s.ifindex), 1);
        /* Not a bridge port at all. */
        HostLinkState mvt;
        ASSERT_OK(hostdev_read(c, "mvt0", &mvt));
        ASSERT_INT_EQ(hostfdb_port_is_static(c, mvt.ifindex), 0);

        ASSERT_INT_EQ(hostfdb_move(c, s.ifindex, &old_mac, &new_mac), 0);
        const char *fdb = run("bridge fdb show dev tap0");
        ASSERT_STR_CONTAINS(fdb, "52:54:00:aa:bb:cc master br0 static");
        ASSERT_TRUE(strstr(fdb, "52:54:00:12:34:56") == NULL);

        /* No entry for the old MAC: nothing to move, nothing added. */
        ASSERT_INT_EQ(hostfdb_move(c, s.ifindex, &other, &old_mac), 1);
        ASSERT_TRUE(strstr(run("bridge fdb show dev tap0"), "52:54:00:12:34:56") == NULL);

        host_context_free(c);
        ASSERT_INT_EQ(system("ip link del br0"), 0);
}
