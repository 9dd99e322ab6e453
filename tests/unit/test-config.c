/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* test-config.c: guestnetd.conf and guest drop-in parsing, with the logged messages checked. */
#include <fcntl.h>
#include <ftw.h>
#include <stdio.h>
#include <sys/stat.h>
#include <unistd.h>

#include "config.h"
#include "tests.h"

static int remove_entry(const char *path, const struct stat *st, int type, struct FTW *ftw) {
        return remove(path);
}

static void tmpdir_removep(char **dir) {
        if (!*dir)
                return;
        (void)nftw(*dir, remove_entry, 16, FTW_DEPTH | FTW_PHYS);
        free(*dir);
}

static char *make_tmpdir(void) {
        char template[] = "/tmp/test-config-XXXXXX";
        return mkdtemp(template) ? strdup(template) : NULL;
}

static char *write_file_n(const char *dir, const char *name, const char *content, size_t size) {
        char *path = NULL;
        if (asprintf(&path, "%s/%s", dir, name) < 0)
                return NULL;
        FILE *f = fopen(path, "we");
        if (!f) {
                free(path);
                return NULL;
        }
        bool ok = fwrite(content, 1, size, f) == size;
        if (fclose(f) != 0 || !ok) {
                free(path);
                return NULL;
        }
        return path;
}

static char *write_file(const char *dir, const char *name, const char *content) {
        return write_file_n(dir, name, content, strlen(content));
}

/* Log capture: stderr goes to a temporary file for the duration of one call. Assertions only run after
 * capture_end(), so a failing test never leaves stderr redirected. */
static FILE *capture_file = NULL;
static int capture_saved_fd = -1;

static void capture_begin(void) {
        fflush(stderr);
        capture_file = tmpfile();
        capture_saved_fd = dup(STDERR_FILENO);
        if (capture_file && capture_saved_fd >= 0)
                (void)dup2(fileno(capture_file), STDERR_FILENO);
}

static char *capture_end(void) {
        char *text = NULL;
        size_t size = 0;

        fflush(stderr);
        if (capture_saved_fd >= 0) {
                (void)dup2(capture_saved_fd, STDERR_FILENO);
                close(capture_saved_fd);
                capture_saved_fd = -1;
        }
        if (!capture_file)
                return strdup("");
        FILE *out = open_memstream(&text, &size);
        if (out) {
                int c;
                rewind(capture_file);
                while ((c = getc(capture_file)) != EOF)
                        fputc(c, out);
                fclose(out);
        }
        fclose(capture_file);
        capture_file = NULL;
        /* Shown as TAP comments, so a failing test's output explains itself. */
        for (const char *line = text; line && *line;) {
                size_t len = strcspn(line, "\n");
                printf("#   log: %.*s\n", (int)len, line);
                line += len + (line[len] == '\n');
        }
        return text;
}

static int load_daemon(DaemonConfig *c, const char *path, bool required, char **ret_log) {
        capture_begin();
        int r = daemon_config_load(c, path, required);
        *ret_log = capture_end();
        return r;
}

static int load_guest(const char *path, GuestConfig **ret, char **ret_log) {
        capture_begin();
        int r = guest_config_load(path, ret);
        *ret_log = capture_end();
        return r;
}

static int load_dir(const char *dir, GuestConfig ***ret, size_t *ret_n, char **ret_log) {
        capture_begin();
        int r = guest_configs_load_dir(dir, ret, ret_n);
        *ret_log = capture_end();
        return r;
}

static char *strjoin3(const char *a, const char *b, const char *c) {
        char *s = NULL;
        return asprintf(&s, "%s%s%s", a, b, c) < 0 ? NULL : s;
}

static void daemon_config_donep(DaemonConfig *c) {
        daemon_config_done(c);
}

TEST(parse_boolean) {
        static const char *const yes[] = { "yes", "YES", "true", "True", "on", "ON", "1" };
        static const char *const no[] = { "no", "No", "false", "FALSE", "off", "Off", "0" };

        for (size_t i = 0; i < sizeof(yes) / sizeof(yes[0]); i++)
                ASSERT_INT_EQ(parse_boolean(yes[i]), 1);
        for (size_t i = 0; i < sizeof(no) / sizeof(no[0]); i++)
                ASSERT_INT_EQ(parse_boolean(no[i]), 0);
        ASSERT_ERROR(parse_boolean(""), EINVAL);
        ASSERT_ERROR(parse_boolean("2"), EINVAL);
        ASSERT_ERROR(parse_boolean("yess"), EINVAL);
        ASSERT_ERROR(parse_boolean("y"), EINVAL);
        ASSERT_ERROR(parse_boolean(NULL), EINVAL);
}

TEST(daemon_defaults) {
        _cleanup_(tmpdir_removep) char *dir = make_tmpdir();
        _cleanup_(daemon_config_donep) DaemonConfig c;
        _cleanup_free_ char *missing = NULL, *log = NULL, *log2 = NULL;

        daemon_config_init(&c);
        ASSERT_TRUE(dir);
        ASSERT_STR_EQ(c.qmp_directory, QMP_DIR_DEFAULT);
        ASSERT_INT_EQ(c.workers, 0);
        ASSERT_INT_EQ(c.default_trust, TRUST_NONE);
        ASSERT_INT_EQ(c.vlan_policy, VLAN_POLICY_IMPROVED);
        ASSERT_INT_EQ(c.unicast_policy, UNICAST_POLICY_IGNORE);
        ASSERT_INT_EQ(c.reconcile_interval_usec, 60 * 1000000ULL);
        ASSERT_TRUE(c.emit_signals);
        ASSERT_INT_EQ(c.max_queries_per_second, 20);

        missing = strjoin3(dir, "/", "nope.conf");
        ASSERT_TRUE(missing);
        ASSERT_INT_EQ(load_daemon(&c, missing, false, &log), 0);
        ASSERT_STR_EQ(c.qmp_directory, QMP_DIR_DEFAULT);
        ASSERT_INT_EQ(c.max_queries_per_second, 20);

        ASSERT_ERROR(load_daemon(&c, missing, true, &log2), ENOENT);
        ASSERT_STR_CONTAINS(log2, missing);
}

TEST(daemon_every_key) {
        _cleanup_(tmpdir_removep) char *dir = make_tmpdir();
        _cleanup_(daemon_config_donep) DaemonConfig c;
        _cleanup_free_ char *path = NULL, *log = NULL;

        daemon_config_init(&c);
        ASSERT_TRUE(dir);
        path = write_file(dir, "guestnetd.conf",
                "# guestnetd\n"
                "[Daemon]\n"
                "QmpDirectory=/srv/qmp\n"
                "Workers=8\n"
                "DefaultTrust=mac, multicast ; inline comment\n"
                "VlanPolicy=libvirt\n"
                "UnicastPolicy=promisc\n"
                "ReconcileIntervalSec=300\n"
                "EmitSignals=no\n"
                "MaxQueriesPerSecond=100000\n"
                "CPUSchedulingSliceUSec=2500\n");
        ASSERT_TRUE(path);
        ASSERT_INT_EQ(load_daemon(&c, path, true, &log), 0);
        ASSERT_STR_EQ(c.qmp_directory, "/srv/qmp");
        ASSERT_INT_EQ(c.workers, 8);
        ASSERT_INT_EQ(c.default_trust, TRUST_MAC | TRUST_MULTICAST);
        ASSERT_INT_EQ(c.vlan_policy, VLAN_POLICY_LIBVIRT);
        ASSERT_INT_EQ(c.unicast_policy, UNICAST_POLICY_PROMISC);
        ASSERT_INT_EQ(c.reconcile_interval_usec, 300 * 1000000ULL);
        ASSERT_FALSE(c.emit_signals);
        ASSERT_INT_EQ(c.max_queries_per_second, 100000);
        ASSERT_INT_EQ(c.sched_slice_usec, 2500);
        ASSERT_STR_EQ(log, "");
}

TEST(daemon_limits_and_resets) {
        _cleanup_(tmpdir_removep) char *dir = make_tmpdir();
        _cleanup_(daemon_config_donep) DaemonConfig c;
        _cleanup_free_ char *path = NULL, *log = NULL, *path2 = NULL, *log2 = NULL;

        daemon_config_init(&c);
        ASSERT_TRUE(dir);
        /* Indented keys are ordinary keys, not continuations of the previous value. */
        path = write_file(dir, "a.conf",
                "[Daemon]\n"
                "  Workers=1024\n"
                "\tReconcileIntervalSec=0\n"
                "  MaxQueriesPerSecond=0\n"
                "  CPUSchedulingSliceUSec=0\n"
                "  DefaultTrust=all\n"
                "  VlanPolicy=off\n"
                "  EmitSignals=off\n");
        ASSERT_TRUE(path);
        ASSERT_INT_EQ(load_daemon(&c, path, true, &log), 0);
        ASSERT_INT_EQ(c.workers, 1024);
        ASSERT_INT_EQ(c.reconcile_interval_usec, 0);
        ASSERT_INT_EQ(c.max_queries_per_second, 0);
        ASSERT_INT_EQ(c.sched_slice_usec, 0);
        ASSERT_INT_EQ(c.default_trust, TRUST_ALL);
        ASSERT_INT_EQ(c.vlan_policy, VLAN_POLICY_OFF);
        ASSERT_FALSE(c.emit_signals);

        /* An empty value resets the key to its default; a later assignment wins. */
        path2 = write_file(dir, "b.conf",
                "[Daemon]\n"
                "Workers=\n"
                "ReconcileIntervalSec=\n"
                "MaxQueriesPerSecond=5\n"
                "MaxQueriesPerSecond=\n"
                "CPUSchedulingSliceUSec=\n"
                "DefaultTrust=\n"
                "VlanPolicy=\n"
                "EmitSignals=\n"
                "QmpDirectory=/x\n"
                "QmpDirectory=\n");
        ASSERT_TRUE(path2);
        ASSERT_INT_EQ(load_daemon(&c, path2, true, &log2), 0);
        ASSERT_INT_EQ(c.workers, 0);
        ASSERT_INT_EQ(c.reconcile_interval_usec, 60 * 1000000ULL);
        ASSERT_INT_EQ(c.max_queries_per_second, 20);
        ASSERT_INT_EQ(c.sched_slice_usec, 100);
        ASSERT_INT_EQ(c.default_trust, TRUST_NONE);
        ASSERT_INT_EQ(c.vlan_policy, VLAN_POLICY_IMPROVED);
        ASSERT_TRUE(c.emit_signals);
        ASSERT_STR_EQ(c.qmp_directory, QMP_DIR_DEFAULT);
}

TEST(daemon_invalid_values) {
        static const struct {
                const char *key, *value, *allowed;
        } cases[] = {
                { "QmpDirectory", "run/qmp", "absolute path" },
                { "Workers", "1025", "0..1024" },
                { "Workers", "-1", "0..1024" },
                { "Workers", "four", "0..1024" },
                { "Workers", "+4", "0..1024" },
                { "Workers", "99999999999999999999999", "0..1024" },
                { "DefaultTrust", "mac bogus", "unknown capability \"bogus\"" },
                { "DefaultTrust", "all mac", "\"all\" cannot be combined" },
                { "DefaultTrust", ",", "mac multicast allmulti promisc" },
                { "VlanPolicy", "foo", "allowed values are improved, libvirt, off" },
                { "VlanPolicy", "Improved", "allowed values are improved, libvirt, off" },
                { "UnicastPolicy", "maybe", "allowed values are ignore, promisc" },
                { "ReconcileIntervalSec", "5min", "whole seconds" },
                { "ReconcileIntervalSec", "-1", "whole seconds" },
                { "ReconcileIntervalSec", "31536001", "0..31536000" },
                { "EmitSignals", "maybe", "yes, no, true, false, on, off, 1, 0" },
                { "MaxQueriesPerSecond", "100001", "0..100000" },
                { "MaxQueriesPerSecond", "1.5", "0..100000" },
                { "CPUSchedulingSliceUSec", "99", "100..100000" },
                { "CPUSchedulingSliceUSec", "100001", "100..100000" },
                { "CPUSchedulingSliceUSec", "1ms", "100..100000" },
        };
        _cleanup_(tmpdir_removep) char *dir = make_tmpdir();
        ASSERT_TRUE(dir);

        for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
                _cleanup_(daemon_config_donep) DaemonConfig c;
                _cleanup_free_ char *content = NULL, *path = NULL, *log = NULL, *expect = NULL;

                daemon_config_init(&c);
                /* The bad value is on line 4; Workers=7 on line 3 must not be applied either. */
                ASSERT_TRUE(asprintf(&content, "[Daemon]\n; comment\nWorkers=7\n%s=%s\n", cases[i].key,
                                    cases[i].value) > 0);
                path = write_file(dir, "guestnetd.conf", content);
                ASSERT_TRUE(path);
                ASSERT_ERROR(load_daemon(&c, path, true, &log), EINVAL);
                ASSERT_TRUE(
                        asprintf(&expect, "%s:4: invalid %s=%s: ", path, cases[i].key, cases[i].value) > 0);
                ASSERT_STR_CONTAINS(log, expect);
                ASSERT_STR_CONTAINS(log, cases[i].allowed);
                ASSERT_INT_EQ(c.workers, 0);
                ASSERT_STR_EQ(c.qmp_directory, QMP_DIR_DEFAULT);
        }
}

TEST(daemon_unknown_keys_and_sections_warn) {
        _cleanup_(tmpdir_removep) char *dir = make_tmpdir();
        _cleanup_(daemon_config_donep) DaemonConfig c;
        _cleanup_free_ char *path = NULL, *log = NULL, *expect1 = NULL, *expect2 = NULL, *expect3 = NULL;

        daemon_config_init(&c);
        ASSERT_TRUE(dir);
        path = write_file(dir, "guestnetd.conf",
                "Early=1\n"
                "[Daemon]\n"
                "Workers=3\n"
                "Foo=bar\n"
                "[Other]\n"
                "Workers=9\n");
        ASSERT_TRUE(path);
        ASSERT_INT_EQ(load_daemon(&c, path, true, &log), 0);
        ASSERT_INT_EQ(c.workers, 3);
        ASSERT_TRUE(asprintf(&expect1, "warning: %s:4: unknown key Foo= in section [Daemon], ignoring",
                            path) > 0);
        ASSERT_TRUE(asprintf(&expect2, "%s:5: unknown section [Other], ignoring", path) > 0);
        ASSERT_TRUE(asprintf(&expect3, "%s:1: key Early= outside of any section", path) > 0);
        ASSERT_STR_CONTAINS(log, expect1);
        ASSERT_STR_CONTAINS(log, expect2);
        ASSERT_STR_CONTAINS(log, expect3);
}

TEST(daemon_syntax_error_line) {
        _cleanup_(tmpdir_removep) char *dir = make_tmpdir();
        _cleanup_(daemon_config_donep) DaemonConfig c;
        _cleanup_free_ char *path = NULL, *log = NULL, *expect = NULL, *path2 = NULL, *log2 = NULL,
                            *expect2 = NULL, *expect3 = NULL, *content = NULL;

        daemon_config_init(&c);
        ASSERT_TRUE(dir);
        path = write_file(dir, "a.conf", "[Daemon]\nWorkers=2\n\nthis is not valid\nWorkers=5\n");
        ASSERT_TRUE(path);
        ASSERT_ERROR(load_daemon(&c, path, true, &log), EINVAL);
        ASSERT_TRUE(asprintf(&expect, "%s:4: syntax error", path) > 0);
        ASSERT_STR_CONTAINS(log, expect);
        ASSERT_INT_EQ(c.workers, 0);

        /* A line longer than inih's buffer is one line, not several: later line numbers stay right. */
        ASSERT_TRUE(asprintf(&content, "[Daemon]\n# %0300d\n[Daemon\n", 0) > 0);
        path2 = write_file(dir, "b.conf", content);
        ASSERT_TRUE(path2);
        ASSERT_ERROR(load_daemon(&c, path2, true, &log2), EINVAL);
        ASSERT_TRUE(asprintf(&expect2, "%s:2: line too long", path2) > 0);
        ASSERT_TRUE(asprintf(&expect3, "%s:3: syntax error", path2) > 0);
        ASSERT_STR_CONTAINS(log2, expect2);
        ASSERT_STR_CONTAINS(log2, expect3);
}

TEST(daemon_nul_byte_and_long_section) {
        static const char nul_content[] = "[Daemon]\nWorkers=2\0junk\n";
        _cleanup_(tmpdir_removep) char *dir = make_tmpdir();
        _cleanup_(daemon_config_donep) DaemonConfig c;
        _cleanup_free_ char *path = NULL, *log = NULL, *expect = NULL, *path2 = NULL, *log2 = NULL,
                            *expect2 = NULL;

        daemon_config_init(&c);
        ASSERT_TRUE(dir);
        path = write_file_n(dir, "a.conf", nul_content, sizeof(nul_content) - 1);
        ASSERT_TRUE(path);
        ASSERT_ERROR(load_daemon(&c, path, true, &log), EINVAL);
        ASSERT_TRUE(asprintf(&expect, "%s:2: line contains a NUL byte", path) > 0);
        ASSERT_STR_CONTAINS(log, expect);

        /* inih would silently truncate this section name to 49 bytes. */
        path2 = write_file(
                dir, "b.conf", "[Daemon]\n[Daemon-0123456789012345678901234567890123456789012]\n");
        ASSERT_TRUE(path2);
        ASSERT_ERROR(load_daemon(&c, path2, true, &log2), EINVAL);
        ASSERT_TRUE(asprintf(&expect2, "%s:2: section name longer than 49 bytes", path2) > 0);
        ASSERT_STR_CONTAINS(log2, expect2);
}

TEST(guest_defaults_from_file_name) {
        _cleanup_(tmpdir_removep) char *dir = make_tmpdir();
        _cleanup_(guest_config_freep) GuestConfig *g = NULL;
        _cleanup_free_ char *path = NULL, *log = NULL;

        ASSERT_TRUE(dir);
        path = write_file(dir, "vm1.conf", "[Guest]\nQmpSocket=/run/vm1.qmp\nFoo=1\n");
        ASSERT_TRUE(path);
        ASSERT_INT_EQ(load_guest(path, &g, &log), 0);
        ASSERT_STR_CONTAINS(log, "vm1.conf:3: unknown key Foo= in section [Guest], ignoring");
        ASSERT_TRUE(g);
        ASSERT_STR_EQ(g->name, "vm1");
        ASSERT_STR_EQ(g->qmp_socket, "/run/vm1.qmp");
        ASSERT_INT_EQ(g->trust, -1);
        ASSERT_STR_EQ(g->source, path);
        ASSERT_INT_EQ(g->n_nics, 0);
        ASSERT_TRUE(guest_config_find_nic(g, "net0") == NULL);
        ASSERT_TRUE(guest_config_free(NULL) == NULL);
}

TEST(guest_missing_qmp_socket) {
        _cleanup_(tmpdir_removep) char *dir = make_tmpdir();
        GuestConfig *g = NULL;
        _cleanup_free_ char *path = NULL, *log = NULL, *path2 = NULL, *log2 = NULL;

        ASSERT_TRUE(dir);
        path = write_file(dir, "vm1.conf", "[Guest]\nName=vm\nTrust=mac\n");
        ASSERT_TRUE(path);
        ASSERT_ERROR(load_guest(path, &g, &log), EINVAL);
        ASSERT_TRUE(g == NULL);
        ASSERT_STR_CONTAINS(log, path);
        ASSERT_STR_CONTAINS(log, "QmpSocket=");

        path2 = write_file(dir, "vm2.conf", "[Guest]\nQmpSocket=vm2.qmp\n");
        ASSERT_TRUE(path2);
        ASSERT_ERROR(load_guest(path2, &g, &log2), EINVAL);
        ASSERT_STR_CONTAINS(log2, "vm2.conf:2: invalid QmpSocket=vm2.qmp: not an absolute path");
}

TEST(guest_nics) {
        _cleanup_(tmpdir_removep) char *dir = make_tmpdir();
        _cleanup_(guest_config_freep) GuestConfig *g = NULL;
        _cleanup_free_ char *path = NULL, *log = NULL;
        const NicConfig *n;

        ASSERT_TRUE(dir);
        path = write_file(dir, "vm1.conf",
                "[Guest]\n"
                "Name=web server\n"
                "QmpSocket=/run/qemu/web.qmp\n"
                "Trust=promisc\n"
                "[Nic net0]\n"
                "HostInterface=macvtap0\n"
                "Trust=mac multicast\n"
                "[Nic net1]\n"
                "Trust=all\n"
                "[Nic net0]\n"
                "Trust=none\n"
                "[Nic hostnet2]\n");
        ASSERT_TRUE(path);
        ASSERT_INT_EQ(load_guest(path, &g, &log), 0);
        ASSERT_STR_EQ(g->name, "web server");
        ASSERT_STR_EQ(g->qmp_socket, "/run/qemu/web.qmp");
        ASSERT_INT_EQ(g->trust, TRUST_PROMISC);
        ASSERT_INT_EQ(g->n_nics, 3);

        n = guest_config_find_nic(g, "net0");
        ASSERT_TRUE(n);
        ASSERT_STR_EQ(n->host_interface, "macvtap0");
        ASSERT_INT_EQ(n->trust, TRUST_NONE); /* the repeated section wins */

        n = guest_config_find_nic(g, "net1");
        ASSERT_TRUE(n);
        ASSERT_TRUE(n->host_interface == NULL);
        ASSERT_INT_EQ(n->trust, TRUST_ALL);

        n = guest_config_find_nic(g, "hostnet2");
        ASSERT_TRUE(n);
        ASSERT_INT_EQ(n->trust, -1);
        ASSERT_TRUE(guest_config_find_nic(g, "net") == NULL);
        ASSERT_STR_EQ(log, "");
}

TEST(guest_invalid_values) {
        static const struct {
                const char *content, *expect;
        } cases[] = {
                { "[Nic net0]\nHostInterface=averyveryverylongname\n",
                        ":3: invalid HostInterface=averyveryverylongname: " },
                { "[Nic net0]\nHostInterface=a/b\n",
                        ":3: invalid HostInterface=a/b: the name contains '/'" },
                { "[Nic net0]\nHostInterface=eth0:1\n", ":3: invalid HostInterface=eth0:1: " },
                { "[Nic net0]\nHostInterface=tap 0\n", ":3: invalid HostInterface=tap 0: " },
                { "[Nic net0]\nHostInterface=..\n", ":3: invalid HostInterface=..: " },
                { "[Nic net0]\nTrust=everything\n", ":3: invalid Trust=everything: unknown capability" },
                { "[Nic]\nTrust=mac\n", ":2: invalid section [Nic]: a NIC id is required" },
                { "[Nic  ]\n", ":2: invalid section [Nic  ]: a NIC id is required" },
                { "Trust=sometimes\n", ":2: invalid Trust=sometimes: " },
                { "Name=a/b\n", ":2: invalid Name=a/b: the name contains '/'" },
                { "Name=a\x01z\n", ":2: invalid Name=a\\x01z: the name contains control characters" },
                { "Name=caf\xc3\n", ":2: invalid Name=caf\\xc3: the name is not valid UTF-8" },
                { "Name=caf\xc3\xa9\x7f\n", ":2: invalid Name=caf\xc3\xa9\\x7f: the name contains control" },
                { "[Nic net\x02]\n",
                        ":2: invalid section [Nic net\\x02]: the id contains control characters" },
                { "[Nic a/b]\n", ":2: invalid section [Nic a/b]: the id contains '/'" },
                { "QmpSocket=/run/"
                  "01234567890123456789012345678901234567890123456789012345678901234567890123456789012345678"
                  "9012345678901234567890123\n",
                        ":2: invalid QmpSocket=/run/0123456789" },
                { "Name=\n", ":2: invalid Name=: the name is empty" },
        };
        _cleanup_(tmpdir_removep) char *dir = make_tmpdir();
        ASSERT_TRUE(dir);

        for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
                _cleanup_free_ char *content = NULL, *path = NULL, *log = NULL;
                GuestConfig *g = NULL;

                ASSERT_TRUE(asprintf(&content, "[Guest]\n%s[Guest]\nQmpSocket=/run/x.qmp\n",
                                    cases[i].content) > 0);
                path = write_file(dir, "vm.conf", content);
                ASSERT_TRUE(path);
                ASSERT_ERROR(load_guest(path, &g, &log), EINVAL);
                ASSERT_TRUE(g == NULL);
                ASSERT_STR_CONTAINS(log, path);
                ASSERT_STR_CONTAINS(log, cases[i].expect);
        }
}

/* A drop-in is the operator's, but a bound is a bound: one NIC per bus object, a few dozen at most. */
TEST(guest_too_many_nics) {
        _cleanup_(tmpdir_removep) char *dir = make_tmpdir();
        _cleanup_free_ char *content = NULL, *path = NULL, *log = NULL;
        size_t len = 0;
        FILE *f;
        GuestConfig *g = NULL;

        ASSERT_TRUE(dir);
        f = open_memstream(&content, &len);
        ASSERT_TRUE(f);
        fputs("[Guest]\nQmpSocket=/run/x.qmp\n", f);
        for (int i = 0; i <= GUEST_NICS_MAX; i++)
                fprintf(f, "[Nic net%d]\nHostInterface=mvt%d\n", i, i);
        ASSERT_INT_EQ(fclose(f), 0);
        path = write_file(dir, "vm.conf", content);
        ASSERT_TRUE(path);
        ASSERT_ERROR(load_guest(path, &g, &log), EINVAL);
        ASSERT_STR_CONTAINS(log, "invalid section [Nic net64]: a guest has at most 64 NICs");
}

TEST(guest_name_from_bad_file_name) {
        _cleanup_(tmpdir_removep) char *dir = make_tmpdir();
        GuestConfig *g = NULL;
        _cleanup_free_ char *name = NULL, *path = NULL, *log = NULL;

        ASSERT_TRUE(dir);
        ASSERT_TRUE(asprintf(&name, "%0201d.conf", 0) > 0);
        path = write_file(dir, name, "[Guest]\nQmpSocket=/run/x.qmp\n");
        ASSERT_TRUE(path);
        ASSERT_ERROR(load_guest(path, &g, &log), EINVAL);
        ASSERT_STR_CONTAINS(log, "taken from the file name: the name is longer than 200 bytes");
}

TEST(name_validation) {
        ASSERT_TRUE(guest_name_invalid_reason("vm-1.example") == NULL);
        ASSERT_TRUE(guest_name_invalid_reason("caf\xc3\xa9") == NULL);
        ASSERT_TRUE(guest_name_invalid_reason("") != NULL);
        ASSERT_TRUE(guest_name_invalid_reason("\xed\xa0\x80") != NULL); /* a UTF-16 surrogate */
        ASSERT_TRUE(guest_name_invalid_reason("\xc0\xaf") != NULL); /* overlong '/' */
        ASSERT_TRUE(guest_name_invalid_reason("a\x7f") != NULL);

        ASSERT_TRUE(nic_id_invalid_reason("net0") == NULL);
        ASSERT_TRUE(nic_id_invalid_reason("virtio-net-pci.0") == NULL);
        ASSERT_TRUE(nic_id_invalid_reason("") != NULL);
        ASSERT_TRUE(nic_id_invalid_reason("a/b") != NULL);
        ASSERT_TRUE(nic_id_invalid_reason("net0\n<0>forged") != NULL);
        ASSERT_TRUE(nic_id_invalid_reason("\x1b[2J") != NULL);
        ASSERT_TRUE(nic_id_invalid_reason("caf\xc3") != NULL);

        ASSERT_TRUE(ifname_invalid_reason("eth0") == NULL);
        ASSERT_TRUE(ifname_invalid_reason("macvtap-123456") == NULL);
        ASSERT_TRUE(ifname_invalid_reason("a23456789012345") == NULL);
        ASSERT_TRUE(ifname_invalid_reason("a234567890123456") != NULL);
        ASSERT_TRUE(ifname_invalid_reason("") != NULL);
        ASSERT_TRUE(ifname_invalid_reason(".") != NULL);
        ASSERT_TRUE(ifname_invalid_reason("...") == NULL);
        ASSERT_TRUE(ifname_invalid_reason("a\tb") != NULL);
        ASSERT_TRUE(ifname_invalid_reason("caf\xc3\xa9") != NULL);
}

TEST(dir_good_and_bad) {
        _cleanup_(tmpdir_removep) char *dir = make_tmpdir();
        _cleanup_(guest_configs_freep) GuestConfig **list = NULL;
        _cleanup_free_ char *good = NULL, *bad = NULL, *log = NULL, *expect = NULL;
        size_t n = 99;

        ASSERT_TRUE(dir);
        bad = write_file(dir, "a-bad.conf", "[Guest]\nQmpSocket=/run/a.qmp\nTrust=bogus\n");
        good = write_file(dir, "b-good.conf", "[Guest]\nQmpSocket=/run/b.qmp\n");
        ASSERT_TRUE(good && bad);
        ASSERT_INT_EQ(load_dir(dir, &list, &n, &log), 1);
        ASSERT_INT_EQ(n, 1);
        ASSERT_STR_EQ(list[0]->name, "b-good");
        ASSERT_TRUE(list[1] == NULL);
        ASSERT_TRUE(asprintf(&expect, "skipping guest drop-in %s", bad) > 0);
        ASSERT_STR_CONTAINS(log, expect);
        ASSERT_STR_CONTAINS(log, "a-bad.conf:3: invalid Trust=bogus");
}

TEST(dir_duplicate_names) {
        _cleanup_(tmpdir_removep) char *dir = make_tmpdir();
        _cleanup_(guest_configs_freep) GuestConfig **list = NULL;
        _cleanup_free_ char *a = NULL, *b = NULL, *c = NULL, *log = NULL, *expect = NULL;
        size_t n = 0;

        ASSERT_TRUE(dir);
        a = write_file(dir, "10-a.conf", "[Guest]\nName=vm\nQmpSocket=/run/a.qmp\n");
        b = write_file(dir, "20-b.conf", "[Guest]\nName=vm\nQmpSocket=/run/b.qmp\n");
        c = write_file(dir, "vm.conf", "[Guest]\nQmpSocket=/run/c.qmp\n");
        ASSERT_TRUE(a && b && c);
        ASSERT_INT_EQ(load_dir(dir, &list, &n, &log), 1);
        ASSERT_INT_EQ(n, 1);
        ASSERT_STR_EQ(list[0]->qmp_socket, "/run/a.qmp");
        ASSERT_TRUE(
                asprintf(&expect, "%s: guest name \"vm\" is already used by %s; skipping guest drop-in %s",
                        b, a, b) > 0);
        ASSERT_STR_CONTAINS(log, expect);
        ASSERT_STR_CONTAINS(log, "skipping guest drop-in ");
        ASSERT_STR_CONTAINS(log, "/vm.conf");
}

TEST(dir_order_and_other_files) {
        _cleanup_(tmpdir_removep) char *dir = make_tmpdir();
        _cleanup_(guest_configs_freep) GuestConfig **list = NULL;
        _cleanup_free_ char *sub = NULL, *log = NULL;
        size_t n = 0;
        static const char *const ignored[] = { "README", "c.conf.bak", ".hidden.conf", ".conf", "conf" };
        static const char *const loaded[] = { "b.conf", "B.conf", "a.conf", "a-1.conf" };

        ASSERT_TRUE(dir);
        for (size_t i = 0; i < sizeof(ignored) / sizeof(ignored[0]); i++) {
                _cleanup_free_ char *p = write_file(dir, ignored[i], "this is not an ini file\n");
                ASSERT_TRUE(p);
        }
        for (size_t i = 0; i < sizeof(loaded) / sizeof(loaded[0]); i++) {
                _cleanup_free_ char *p = write_file(dir, loaded[i], "[Guest]\nQmpSocket=/run/x.qmp\n");
                ASSERT_TRUE(p);
        }
        sub = strjoin3(dir, "/", "subdir");
        ASSERT_TRUE(sub && mkdir(sub, 0700) == 0);

        ASSERT_INT_EQ(load_dir(dir, &list, &n, &log), 4);
        ASSERT_INT_EQ(n, 4);
        /* Byte order, whatever the locale. */
        ASSERT_STR_EQ(list[0]->name, "B");
        ASSERT_STR_EQ(list[1]->name, "a-1");
        ASSERT_STR_EQ(list[2]->name, "a");
        ASSERT_STR_EQ(list[3]->name, "b");
        ASSERT_STR_EQ(log, "");
}

TEST(dir_missing_or_empty) {
        _cleanup_(tmpdir_removep) char *dir = make_tmpdir();
        _cleanup_(guest_configs_freep) GuestConfig **list = NULL;
        _cleanup_free_ char *missing = NULL, *log = NULL, *log2 = NULL;
        size_t n = 99;

        ASSERT_TRUE(dir);
        missing = strjoin3(dir, "/", "guests.d");
        ASSERT_TRUE(missing);
        ASSERT_INT_EQ(load_dir(missing, &list, &n, &log), 0);
        ASSERT_INT_EQ(n, 0);
        ASSERT_TRUE(list == NULL);

        n = 99;
        ASSERT_INT_EQ(load_dir(dir, &list, &n, &log2), 0);
        ASSERT_INT_EQ(n, 0);
        ASSERT_TRUE(list == NULL);
}
