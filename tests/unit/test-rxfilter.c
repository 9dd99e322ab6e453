/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* test-rxfilter.c: query-rx-filter parsing, validation, diffing and the host mapping (rxfilter.md). */
#include "rxfilter.h"

#include "cleanup.h"
#include "tests.h"

DEFINE_POINTER_CLEANUP_FUNC(json_object, json_object_put);

/* rxfilter.md: a Linux guest after `ip link set eth0 up`, verbatim. */
#define LINUX_UP                                                                                   \
        "{\"promiscuous\":false,\"name\":\"net0\",\"main-mac\":\"52:54:00:12:34:56\","             \
        "\"unicast\":\"normal\",\"vlan\":\"normal\",\"vlan-table\":[0],\"unicast-table\":[],"      \
        "\"multicast\":\"normal\",\"multicast-overflow\":false,\"unicast-overflow\":false,"        \
        "\"multicast-table\":[\"33:33:ff:12:34:56\",\"01:00:5e:00:00:01\",\"33:33:00:00:00:01\"]," \
        "\"broadcast-allowed\":false}"

static const char *const all_fields[] = {
        "name",
        "main-mac",
        "promiscuous",
        "broadcast-allowed",
        "unicast",
        "multicast",
        "vlan",
        "unicast-overflow",
        "multicast-overflow",
        "unicast-table",
        "multicast-table",
        "vlan-table",
};

static json_object *linux_up(void) {
        json_object *o = json_tokener_parse(LINUX_UP);
        if (!o)
                abort();
        return o;
}

/* Replaces (or adds) one member; value is JSON text ("null" included). */
static void set_field(json_object *o, const char *key, const char *value) {
        json_object_object_add(o, key, json_tokener_parse(value));
}

/* Parses LINUX_UP with key set to value (key NULL: unchanged). */
static int parse_with(const char *key, const char *value, RxFilter *ret, char **ret_error) {
        _cleanup_(json_object_putp) json_object *o = linux_up();

        if (key)
                set_field(o, key, value);
        return rxfilter_from_json(o, ret, ret_error);
}

/* Parses LINUX_UP with two members changed. */
static int parse_with2(const char *key1, const char *value1, const char *key2, const char *value2,
        RxFilter *ret, char **ret_error) {
        _cleanup_(json_object_putp) json_object *o = linux_up();

        set_field(o, key1, value1);
        set_field(o, key2, value2);
        return rxfilter_from_json(o, ret, ret_error);
}

/* An array of n MAC strings prefix:00:00:XX:YY, XX:YY counting from 0 (every entry distinct unless
 * same is set). */
static json_object *mac_array(uint8_t b0, uint8_t b1, size_t n, bool same) {
        json_object *a = json_object_new_array();

        for (size_t i = 0; i < n; i++) {
                char buf[ETHER_ADDR_STRLEN];
                size_t k = same ? 0 : i;
                snprintf(buf, sizeof(buf), "%02x:%02x:00:00:%02x:%02x", b0, b1, (unsigned)(k >> 8),
                        (unsigned)(k & 0xff));
                json_object_array_add(a, json_object_new_string(buf));
        }
        return a;
}

/* All 4096 VIDs, highest first, as QEMU lists them with vlan "all". */
static json_object *all_vids(void) {
        json_object *a = json_object_new_array();

        for (int vid = RXFILTER_VLAN_MAX - 1; vid >= 0; vid--)
                json_object_array_add(a, json_object_new_int(vid));
        return a;
}

static EtherAddr mac(const char *s) {
        EtherAddr a;
        if (ether_addr_parse(s, &a) < 0)
                abort();
        return a;
}

static bool host_promisc(const RxFilter *f, VlanPolicy vp, UnicastPolicy up) {
        HostFilter h;
        rxfilter_to_host(f, vp, up, &h);
        return h.promisc;
}

/* Checks that parsing fails with exactly this message and leaves ret untouched. */
#define ASSERT_PARSE_FAILS(r_expr, err, f, message)                                                     \
        do {                                                                                            \
                ASSERT_ERROR(r_expr, EBADMSG);                                                          \
                ASSERT_STR_EQ(err, message);                                                            \
                ASSERT_TRUE((f).name[0] == (char)0xa5 && (f).n_vlans == (size_t)0xa5a5a5a5a5a5a5a5ULL); \
                free(err);                                                                              \
                err = NULL;                                                                             \
        } while (0)

TEST(rx_mode_strings) {
        ASSERT_STR_EQ(rx_mode_to_string(RX_MODE_NORMAL), "normal");
        ASSERT_STR_EQ(rx_mode_to_string(RX_MODE_NONE), "none");
        ASSERT_STR_EQ(rx_mode_to_string(RX_MODE_ALL), "all");
        ASSERT_TRUE(rx_mode_to_string(_RX_MODE_MAX) == NULL);
        ASSERT_TRUE(rx_mode_to_string(_RX_MODE_INVALID) == NULL);
        ASSERT_INT_EQ(rx_mode_from_string("normal"), RX_MODE_NORMAL);
        ASSERT_INT_EQ(rx_mode_from_string("none"), RX_MODE_NONE);
        ASSERT_INT_EQ(rx_mode_from_string("all"), RX_MODE_ALL);
        ASSERT_ERROR(rx_mode_from_string("ALL"), EINVAL);
        ASSERT_ERROR(rx_mode_from_string(""), EINVAL);
        ASSERT_ERROR(rx_mode_from_string(NULL), EINVAL);
}

TEST(linux_guest_after_link_up) {
        RxFilter f;
        EtherAddr want = mac("52:54:00:12:34:56");
        char buf[ETHER_ADDR_STRLEN];

        ASSERT_OK(parse_with(NULL, NULL, &f, NULL));
        ASSERT_STR_EQ(f.name, "net0");
        ASSERT_TRUE(ether_addr_equal(&f.main_mac, &want));
        ASSERT_FALSE(f.promiscuous);
        ASSERT_FALSE(f.broadcast_allowed);
        ASSERT_INT_EQ(f.unicast, RX_MODE_NORMAL);
        ASSERT_INT_EQ(f.multicast, RX_MODE_NORMAL);
        ASSERT_INT_EQ(f.vlan, RX_MODE_NORMAL);
        ASSERT_FALSE(f.unicast_overflow);
        ASSERT_FALSE(f.multicast_overflow);
        ASSERT_INT_EQ(f.n_unicast, 0);
        /* Sorted, whatever order QEMU sent. */
        ASSERT_INT_EQ(f.n_multicast, 3);
        ASSERT_STR_EQ(ether_addr_format(&f.multicast_table[0], buf), "01:00:5e:00:00:01");
        ASSERT_STR_EQ(ether_addr_format(&f.multicast_table[1], buf), "33:33:00:00:00:01");
        ASSERT_STR_EQ(ether_addr_format(&f.multicast_table[2], buf), "33:33:ff:12:34:56");
        ASSERT_INT_EQ(f.n_vlans, 1);
        ASSERT_TRUE(rxfilter_has_vlan(&f, 0));
        ASSERT_FALSE(rxfilter_has_vlan(&f, 1));
        ASSERT_FALSE(rxfilter_has_vlan(&f, 4096));
}

TEST(linux_guest_after_link_up_to_host) {
        RxFilter f;
        HostFilter h;

        ASSERT_OK(parse_with(NULL, NULL, &f, NULL));

        rxfilter_to_host(&f, VLAN_POLICY_IMPROVED, UNICAST_POLICY_IGNORE, &h);
        ASSERT_TRUE(ether_addr_equal(&h.mac, &f.main_mac));
        ASSERT_FALSE(h.promisc); /* VID 0 alone does not ask for promisc */
        ASSERT_TRUE(h.multicast);
        ASSERT_FALSE(h.allmulti);
        ASSERT_TRUE(h.multicast_list_valid);
        ASSERT_INT_EQ(h.n_multicast, 3);
        ASSERT_TRUE(memcmp(h.multicast_table, f.multicast_table, 3 * sizeof(EtherAddr)) == 0);

        rxfilter_to_host(&f, VLAN_POLICY_LIBVIRT, UNICAST_POLICY_IGNORE, &h);
        ASSERT_TRUE(h.promisc); /* libvirt: any VLAN entry, VID 0 included */
        ASSERT_TRUE(h.multicast);
        ASSERT_FALSE(h.allmulti);
        ASSERT_INT_EQ(h.n_multicast, 3);

        ASSERT_FALSE(host_promisc(&f, VLAN_POLICY_OFF, UNICAST_POLICY_IGNORE));
        ASSERT_FALSE(host_promisc(&f, VLAN_POLICY_IMPROVED, UNICAST_POLICY_PROMISC));
}

TEST(reverse_order_tables_equal_forward) {
        RxFilter fwd, rev;

        ASSERT_OK(parse_with2("multicast-table",
                "[\"01:00:5e:00:00:01\",\"33:33:00:00:00:01\",\"33:33:ff:12:34:56\"]", "vlan-table",
                "[0,42,100]", &fwd, NULL));
        ASSERT_OK(parse_with2("multicast-table",
                "[\"33:33:ff:12:34:56\",\"33:33:00:00:00:01\",\"01:00:5e:00:00:01\"]", "vlan-table",
                "[100,42,0]", &rev, NULL));
        ASSERT_INT_EQ(rxfilter_diff(&fwd, &rev), 0);
        ASSERT_INT_EQ(rxfilter_diff(&rev, &fwd), 0);
        /* Normalized down to the bytes, so the struct can be compared or hashed as a whole. */
        ASSERT_TRUE(memcmp(&fwd, &rev, sizeof(fwd)) == 0);

        ASSERT_OK(parse_with("unicast-table", "[\"52:54:00:ab:cd:ef\",\"02:00:00:00:00:01\"]", &fwd, NULL));
        ASSERT_OK(parse_with("unicast-table", "[\"02:00:00:00:00:01\",\"52:54:00:ab:cd:ef\"]", &rev, NULL));
        ASSERT_INT_EQ(rxfilter_diff(&fwd, &rev), 0);
        ASSERT_INT_EQ(fwd.n_unicast, 2);
        EtherAddr first = mac("02:00:00:00:00:01");
        ASSERT_TRUE(ether_addr_equal(&rev.unicast_table[0], &first));
}

TEST(duplicates_folded) {
        RxFilter f, g;

        ASSERT_OK(parse_with2("multicast-table",
                "[\"33:33:00:00:00:01\",\"01:00:5e:00:00:01\",\"33:33:00:00:00:01\",\"33:33:00:00:00:01\"]",
                "vlan-table", "[42,0,42,0,42]", &f, NULL));
        ASSERT_INT_EQ(f.n_multicast, 2);
        ASSERT_INT_EQ(f.n_vlans, 2);
        ASSERT_OK(parse_with2("multicast-table", "[\"01:00:5e:00:00:01\",\"33:33:00:00:00:01\"]",
                "vlan-table", "[0,42]", &g, NULL));
        ASSERT_INT_EQ(rxfilter_diff(&f, &g), 0);
        ASSERT_TRUE(memcmp(&f, &g, sizeof(f)) == 0);

        ASSERT_OK(parse_with("unicast-table", "[\"52:54:00:ab:cd:ef\",\"52:54:00:AB:CD:EF\"]", &f, NULL));
        ASSERT_INT_EQ(f.n_unicast, 1);
}

TEST(vlan_all_lists_all_4096) {
        _cleanup_(json_object_putp) json_object *o = linux_up();
        RxFilter f, empty_all;

        set_field(o, "vlan", "\"all\"");
        json_object_object_add(o, "vlan-table", all_vids());
        ASSERT_OK(rxfilter_from_json(o, &f, NULL));
        ASSERT_INT_EQ(f.vlan, RX_MODE_ALL);
        ASSERT_INT_EQ(f.n_vlans, 4096);
        ASSERT_TRUE(rxfilter_has_vlan(&f, 0));
        ASSERT_TRUE(rxfilter_has_vlan(&f, 42));
        ASSERT_TRUE(rxfilter_has_vlan(&f, 4095));

        ASSERT_FALSE(host_promisc(&f, VLAN_POLICY_IMPROVED, UNICAST_POLICY_IGNORE));
        ASSERT_TRUE(host_promisc(&f, VLAN_POLICY_LIBVIRT, UNICAST_POLICY_IGNORE));
        ASSERT_FALSE(host_promisc(&f, VLAN_POLICY_OFF, UNICAST_POLICY_IGNORE));

        /* With both in mode "all" the tables are not compared. */
        ASSERT_OK(parse_with2("vlan", "\"all\"", "vlan-table", "[]", &empty_all, NULL));
        ASSERT_INT_EQ(rxfilter_diff(&f, &empty_all), 0);
        /* ... and libvirt treats mode "all" as VLAN demand even with an empty table. */
        ASSERT_TRUE(host_promisc(&empty_all, VLAN_POLICY_LIBVIRT, UNICAST_POLICY_IGNORE));
        ASSERT_FALSE(host_promisc(&empty_all, VLAN_POLICY_IMPROVED, UNICAST_POLICY_IGNORE));
}

TEST(vlan_eth0_42) {
        RxFilter f;

        ASSERT_OK(parse_with("vlan-table", "[42,0]", &f, NULL));
        ASSERT_INT_EQ(f.n_vlans, 2);
        ASSERT_TRUE(rxfilter_has_vlan(&f, 0));
        ASSERT_TRUE(rxfilter_has_vlan(&f, 42));
        ASSERT_FALSE(rxfilter_has_vlan(&f, 41));
        ASSERT_FALSE(rxfilter_has_vlan(&f, 43));

        ASSERT_TRUE(host_promisc(&f, VLAN_POLICY_IMPROVED, UNICAST_POLICY_IGNORE));
        ASSERT_TRUE(host_promisc(&f, VLAN_POLICY_LIBVIRT, UNICAST_POLICY_IGNORE));
        ASSERT_FALSE(host_promisc(&f, VLAN_POLICY_OFF, UNICAST_POLICY_IGNORE));

        /* A real VID without VID 0 asks as well. */
        ASSERT_OK(parse_with("vlan-table", "[4095]", &f, NULL));
        ASSERT_TRUE(host_promisc(&f, VLAN_POLICY_IMPROVED, UNICAST_POLICY_IGNORE));
}

TEST(vlan_policy_mapping) {
        static const struct {
                const char *vlan, *table;
                bool improved, libvirt;
        } vectors[] = {
                { "\"normal\"", "[]", false, false },
                { "\"normal\"", "[0]", false, true },
                { "\"normal\"", "[42,0]", true, true },
                { "\"normal\"", "[7]", true, true },
                { "\"all\"", "[]", false, true },
                { "\"all\"", "[42,0]", false, true },
                { "\"none\"", "[]", false, false },
                { "\"none\"", "[42]", false, true },
        };

        for (size_t i = 0; i < sizeof(vectors) / sizeof(vectors[0]); i++) {
                RxFilter f;
                ASSERT_OK(parse_with2("vlan", vectors[i].vlan, "vlan-table", vectors[i].table, &f, NULL));
                if (host_promisc(&f, VLAN_POLICY_IMPROVED, UNICAST_POLICY_IGNORE) != vectors[i].improved)
                        TEST_FAIL("improved, vlan %s table %s: wrong promisc", vectors[i].vlan,
                                vectors[i].table);
                if (host_promisc(&f, VLAN_POLICY_LIBVIRT, UNICAST_POLICY_IGNORE) != vectors[i].libvirt)
                        TEST_FAIL("libvirt, vlan %s table %s: wrong promisc", vectors[i].vlan,
                                vectors[i].table);
                if (host_promisc(&f, VLAN_POLICY_OFF, UNICAST_POLICY_IGNORE))
                        TEST_FAIL("off, vlan %s table %s: promisc", vectors[i].vlan, vectors[i].table);
        }
}

TEST(guest_promiscuous_always_wins) {
        RxFilter f;

        ASSERT_OK(parse_with2("promiscuous", "true", "vlan-table", "[]", &f, NULL));
        for (VlanPolicy vp = 0; vp < _VLAN_POLICY_MAX; vp++)
                for (UnicastPolicy up = 0; up < _UNICAST_POLICY_MAX; up++)
                        ASSERT_TRUE(host_promisc(&f, vp, up));
}

TEST(unicast_policy_mapping) {
        RxFilter f;

        /* A macvlan inside the guest shows up in unicast-table. */
        ASSERT_OK(parse_with("unicast-table", "[\"02:42:ac:11:00:02\"]", &f, NULL));
        ASSERT_INT_EQ(f.n_unicast, 1);
        ASSERT_FALSE(host_promisc(&f, VLAN_POLICY_IMPROVED, UNICAST_POLICY_IGNORE));
        ASSERT_TRUE(host_promisc(&f, VLAN_POLICY_IMPROVED, UNICAST_POLICY_PROMISC));
        ASSERT_TRUE(host_promisc(&f, VLAN_POLICY_OFF, UNICAST_POLICY_PROMISC));

        ASSERT_OK(parse_with("unicast", "\"all\"", &f, NULL));
        ASSERT_FALSE(host_promisc(&f, VLAN_POLICY_IMPROVED, UNICAST_POLICY_IGNORE));
        ASSERT_TRUE(host_promisc(&f, VLAN_POLICY_IMPROVED, UNICAST_POLICY_PROMISC));

        ASSERT_OK(parse_with("unicast-overflow", "true", &f, NULL));
        ASSERT_FALSE(host_promisc(&f, VLAN_POLICY_IMPROVED, UNICAST_POLICY_IGNORE));
        ASSERT_TRUE(host_promisc(&f, VLAN_POLICY_IMPROVED, UNICAST_POLICY_PROMISC));

        /* Only the guest's own MAC: nothing to ask for. */
        ASSERT_OK(parse_with(NULL, NULL, &f, NULL));
        ASSERT_FALSE(host_promisc(&f, VLAN_POLICY_IMPROVED, UNICAST_POLICY_PROMISC));
        ASSERT_OK(parse_with("unicast", "\"none\"", &f, NULL));
        ASSERT_FALSE(host_promisc(&f, VLAN_POLICY_IMPROVED, UNICAST_POLICY_PROMISC));
}

TEST(multicast_overflow_empty_table) {
        RxFilter f;
        HostFilter h;

        ASSERT_OK(parse_with2("multicast-overflow", "true", "multicast-table", "[]", &f, NULL));
        ASSERT_TRUE(f.multicast_overflow);
        ASSERT_INT_EQ(f.n_multicast, 0);
        rxfilter_to_host(&f, VLAN_POLICY_IMPROVED, UNICAST_POLICY_IGNORE, &h);
        ASSERT_FALSE(h.multicast_list_valid);
        ASSERT_TRUE(h.allmulti);
        ASSERT_TRUE(h.multicast);
        ASSERT_INT_EQ(h.n_multicast, 0);
        ASSERT_FALSE(h.promisc);

        /* Should a table come along anyway, it is not a list to install. */
        ASSERT_OK(parse_with("multicast-overflow", "true", &f, NULL));
        rxfilter_to_host(&f, VLAN_POLICY_IMPROVED, UNICAST_POLICY_IGNORE, &h);
        ASSERT_FALSE(h.multicast_list_valid);
        ASSERT_INT_EQ(h.n_multicast, 0);
}

TEST(multicast_modes) {
        RxFilter f;
        HostFilter h;

        ASSERT_OK(parse_with("multicast", "\"all\"", &f, NULL));
        rxfilter_to_host(&f, VLAN_POLICY_IMPROVED, UNICAST_POLICY_IGNORE, &h);
        ASSERT_TRUE(h.allmulti);
        ASSERT_TRUE(h.multicast);
        ASSERT_TRUE(h.multicast_list_valid);
        ASSERT_INT_EQ(h.n_multicast, 3);

        ASSERT_OK(parse_with("multicast", "\"none\"", &f, NULL));
        rxfilter_to_host(&f, VLAN_POLICY_IMPROVED, UNICAST_POLICY_IGNORE, &h);
        ASSERT_FALSE(h.allmulti);
        ASSERT_FALSE(h.multicast);

        ASSERT_OK(parse_with2("multicast", "\"none\"", "multicast-overflow", "true", &f, NULL));
        rxfilter_to_host(&f, VLAN_POLICY_IMPROVED, UNICAST_POLICY_IGNORE, &h);
        ASSERT_FALSE(h.allmulti);
        ASSERT_FALSE(h.multicast);

        ASSERT_OK(parse_with(NULL, NULL, &f, NULL));
        rxfilter_to_host(&f, VLAN_POLICY_IMPROVED, UNICAST_POLICY_IGNORE, &h);
        ASSERT_FALSE(h.allmulti);
        ASSERT_TRUE(h.multicast);
}

TEST(broadcast_allowed_inverted_is_parsed_not_applied) {
        RxFilter f_false, f_true;
        HostFilter h_false, h_true;

        ASSERT_OK(parse_with("broadcast-allowed", "false", &f_false, NULL));
        ASSERT_OK(parse_with("broadcast-allowed", "true", &f_true, NULL));
        ASSERT_FALSE(f_false.broadcast_allowed);
        ASSERT_TRUE(f_true.broadcast_allowed);
        ASSERT_INT_EQ(rxfilter_diff(&f_false, &f_true), 0);

        for (VlanPolicy vp = 0; vp < _VLAN_POLICY_MAX; vp++)
                for (UnicastPolicy up = 0; up < _UNICAST_POLICY_MAX; up++) {
                        memset(&h_false, 0x11, sizeof(h_false));
                        memset(&h_true, 0x22, sizeof(h_true));
                        rxfilter_to_host(&f_false, vp, up, &h_false);
                        rxfilter_to_host(&f_true, vp, up, &h_true);
                        ASSERT_TRUE(memcmp(&h_false, &h_true, sizeof(h_false)) == 0);
                }
}

TEST(main_mac_taken_as_sent) {
        RxFilter f;
        HostFilter h;
        EtherAddr want = mac("52:54:00:ab:cd:ef");

        ASSERT_OK(parse_with("main-mac", "\"52:54:00:AB:CD:EF\"", &f, NULL));
        ASSERT_TRUE(ether_addr_equal(&f.main_mac, &want));
        rxfilter_to_host(&f, VLAN_POLICY_IMPROVED, UNICAST_POLICY_IGNORE, &h);
        ASSERT_TRUE(ether_addr_equal(&h.mac, &want));

        /* Valid here: it is what the guest said; the host sync refuses to install it. */
        ASSERT_OK(parse_with("main-mac", "\"01:00:5e:00:00:01\"", &f, NULL));
        ASSERT_TRUE(ether_addr_is_multicast(&f.main_mac));
        ASSERT_OK(parse_with("main-mac", "\"00:00:00:00:00:00\"", &f, NULL));
        ASSERT_TRUE(ether_addr_is_zero(&f.main_mac));
}

TEST(missing_each_field) {
        for (size_t i = 0; i < sizeof(all_fields) / sizeof(all_fields[0]); i++) {
                _cleanup_(json_object_putp) json_object *o = linux_up();
                _cleanup_free_ char *err = NULL;
                char want[64];
                RxFilter f;

                memset(&f, 0xa5, sizeof(f));
                json_object_object_del(o, all_fields[i]);
                snprintf(want, sizeof(want), "missing field '%s'", all_fields[i]);
                ASSERT_PARSE_FAILS(rxfilter_from_json(o, &f, &err), err, f, want);
        }
}

TEST(wrong_type_each_field) {
        static const struct {
                const char *key, *value, *message;
        } vectors[] = {
                { "name", "5", "field 'name' must be a string, got int" },
                { "name", "null", "field 'name' must be a string, got null" },
                { "main-mac", "true", "field 'main-mac' must be a string, got boolean" },
                { "main-mac", "[\"52:54:00:12:34:56\"]", "field 'main-mac' must be a string, got array" },
                { "promiscuous", "\"true\"", "field 'promiscuous' must be a boolean, got string" },
                { "promiscuous", "1", "field 'promiscuous' must be a boolean, got int" },
                { "promiscuous", "0", "field 'promiscuous' must be a boolean, got int" },
                { "broadcast-allowed", "null", "field 'broadcast-allowed' must be a boolean, got null" },
                { "unicast", "0", "field 'unicast' must be a string, got int" },
                { "multicast", "true", "field 'multicast' must be a string, got boolean" },
                { "vlan", "[]", "field 'vlan' must be a string, got array" },
                { "unicast-overflow", "\"false\"",
                        "field 'unicast-overflow' must be a boolean, got string" },
                { "multicast-overflow", "0", "field 'multicast-overflow' must be a boolean, got int" },
                { "unicast-table", "\"52:54:00:ab:cd:ef\"",
                        "field 'unicast-table' must be an array, got string" },
                { "multicast-table", "{}", "field 'multicast-table' must be an array, got object" },
                { "vlan-table", "0", "field 'vlan-table' must be an array, got int" },
                { "vlan-table", "[\"1\"]", "field 'vlan-table' entry 0 must be an integer, got string" },
                { "vlan-table", "[0,1.0]", "field 'vlan-table' entry 1 must be an integer, got double" },
                { "vlan-table", "[true]", "field 'vlan-table' entry 0 must be an integer, got boolean" },
                { "vlan-table", "[null]", "field 'vlan-table' entry 0 must be an integer, got null" },
                { "multicast-table", "[\"33:33:00:00:00:01\",1]",
                        "field 'multicast-table' entry 1 must be a string, got int" },
                { "unicast-table", "[[]]", "field 'unicast-table' entry 0 must be a string, got array" },
        };

        for (size_t i = 0; i < sizeof(vectors) / sizeof(vectors[0]); i++) {
                _cleanup_free_ char *err = NULL;
                RxFilter f;

                memset(&f, 0xa5, sizeof(f));
                ASSERT_PARSE_FAILS(
                        parse_with(vectors[i].key, vectors[i].value, &f, &err), err, f, vectors[i].message);
        }
}

TEST(unknown_fields_ignored) {
        _cleanup_(json_object_putp) json_object *o = linux_up();
        RxFilter base, f;

        ASSERT_OK(parse_with(NULL, NULL, &base, NULL));
        set_field(o, "future-field", "{\"x\":[1,2,3]}");
        set_field(o, "multicast-mode-v2", "\"weird\"");
        ASSERT_OK(rxfilter_from_json(o, &f, NULL));
        ASSERT_TRUE(memcmp(&base, &f, sizeof(f)) == 0);
}

TEST(non_object_rejected) {
        static const struct {
                const char *json, *message;
        } vectors[] = {
                { "[" LINUX_UP "]", "RxFilterInfo must be an object, got array" },
                { "\"net0\"", "RxFilterInfo must be an object, got string" },
                { "42", "RxFilterInfo must be an object, got int" },
                { "true", "RxFilterInfo must be an object, got boolean" },
        };

        for (size_t i = 0; i < sizeof(vectors) / sizeof(vectors[0]); i++) {
                _cleanup_(json_object_putp) json_object *o = json_tokener_parse(vectors[i].json);
                _cleanup_free_ char *err = NULL;
                RxFilter f;

                ASSERT_TRUE(o);
                memset(&f, 0xa5, sizeof(f));
                ASSERT_PARSE_FAILS(rxfilter_from_json(o, &f, &err), err, f, vectors[i].message);
        }

        _cleanup_free_ char *err = NULL;
        RxFilter f;
        memset(&f, 0xa5, sizeof(f));
        ASSERT_PARSE_FAILS(
                rxfilter_from_json(NULL, &f, &err), err, f, "RxFilterInfo must be an object, got null");
}

TEST(error_without_message) {
        RxFilter f;

        ASSERT_ERROR(parse_with("promiscuous", "1", &f, NULL), EBADMSG);
        ASSERT_ERROR(parse_with("vlan-table", "[5000]", &f, NULL), EBADMSG);
        ASSERT_ERROR(rxfilter_from_json(NULL, &f, NULL), EBADMSG);
}

/* Builds LINUX_UP with n_uc unicast and n_mc multicast entries. */
static int parse_tables(size_t n_uc, size_t n_mc, bool same, RxFilter *ret, char **ret_error) {
        _cleanup_(json_object_putp) json_object *o = linux_up();

        json_object_object_add(o, "unicast-table", mac_array(0x52, 0x54, n_uc, same));
        json_object_object_add(o, "multicast-table", mac_array(0x33, 0x33, n_mc, same));
        return rxfilter_from_json(o, ret, ret_error);
}

TEST(shared_table_65_rejected) {
        _cleanup_free_ char *err = NULL;
        RxFilter f;

        memset(&f, 0xa5, sizeof(f));
        ASSERT_PARSE_FAILS(parse_tables(40, 25, false, &f, &err), err, f,
                "fields 'unicast-table' and 'multicast-table' have 65 entries together, more than 64");
        ASSERT_PARSE_FAILS(parse_tables(65, 0, false, &f, &err), err, f,
                "fields 'unicast-table' and 'multicast-table' have 65 entries together, more than 64");
        ASSERT_PARSE_FAILS(parse_tables(0, 65, false, &f, &err), err, f,
                "fields 'unicast-table' and 'multicast-table' have 65 entries together, more than 64");
        /* Counted as sent: duplicates do not make a broken reply fit. */
        ASSERT_PARSE_FAILS(parse_tables(40, 25, true, &f, &err), err, f,
                "fields 'unicast-table' and 'multicast-table' have 65 entries together, more than 64");
}

TEST(shared_table_64_accepted) {
        RxFilter f;

        ASSERT_OK(parse_tables(40, 24, false, &f, NULL));
        ASSERT_INT_EQ(f.n_unicast, 40);
        ASSERT_INT_EQ(f.n_multicast, 24);
        ASSERT_OK(parse_tables(0, 64, false, &f, NULL));
        ASSERT_INT_EQ(f.n_unicast, 0);
        ASSERT_INT_EQ(f.n_multicast, 64);
        /* Sorted ascending. */
        for (size_t i = 1; i < f.n_multicast; i++)
                ASSERT_TRUE(ether_addr_compare(&f.multicast_table[i - 1], &f.multicast_table[i]) < 0);
        ASSERT_OK(parse_tables(64, 0, false, &f, NULL));
        ASSERT_INT_EQ(f.n_unicast, 64);
        ASSERT_OK(parse_tables(40, 24, true, &f, NULL));
        ASSERT_INT_EQ(f.n_unicast, 1);
        ASSERT_INT_EQ(f.n_multicast, 1);

        HostFilter h;
        ASSERT_OK(parse_tables(0, 64, false, &f, NULL));
        rxfilter_to_host(&f, VLAN_POLICY_IMPROVED, UNICAST_POLICY_IGNORE, &h);
        ASSERT_INT_EQ(h.n_multicast, 64);
        ASSERT_TRUE(memcmp(h.multicast_table, f.multicast_table, sizeof(h.multicast_table)) == 0);
}

TEST(bad_macs) {
        static const struct {
                const char *key, *value, *message;
        } vectors[] = {
                { "main-mac", "\"52:54:00:12:34\"",
                        "field 'main-mac': \"52:54:00:12:34\" is not a MAC address" },
                { "main-mac", "\"zz:54:00:12:34:56\"",
                        "field 'main-mac': \"zz:54:00:12:34:56\" is not a MAC address" },
                { "main-mac", "\"\"", "field 'main-mac': \"\" is not a MAC address" },
                { "main-mac", "\"52:54:00:12:34:56:78\"",
                        "field 'main-mac': \"52:54:00:12:34:56:78\" is not a MAC address" },
                { "main-mac", "\"52:54:00:12:34:56\\u0000x\"",
                        "field 'main-mac': \"52:54:00:12:34:56\\u0000x\" is not a MAC address" },
                { "main-mac", "\"52-54-00-12-34-56\"",
                        "field 'main-mac': \"52-54-00-12-34-56\" is not a MAC address" },
                { "multicast-table", "[\"33:33:00:00:00:01\",\"33:33:zz:00:00:01\"]",
                        "field 'multicast-table' entry 1: \"33:33:zz:00:00:01\" is not a MAC address" },
                { "unicast-table", "[\"52:54:00:12:34\"]",
                        "field 'unicast-table' entry 0: \"52:54:00:12:34\" is not a MAC address" },
        };

        for (size_t i = 0; i < sizeof(vectors) / sizeof(vectors[0]); i++) {
                _cleanup_free_ char *err = NULL;
                RxFilter f;

                memset(&f, 0xa5, sizeof(f));
                ASSERT_PARSE_FAILS(
                        parse_with(vectors[i].key, vectors[i].value, &f, &err), err, f, vectors[i].message);
        }
}

TEST(bad_mac_excerpt_is_bounded_and_escaped) {
        _cleanup_(json_object_putp) json_object *o = linux_up();
        _cleanup_free_ char *err = NULL;
        char long_value[1024];
        RxFilter f;

        memset(long_value, 'a', sizeof(long_value) - 1);
        long_value[sizeof(long_value) - 1] = '\0';
        json_object_object_add(o, "main-mac", json_object_new_string(long_value));
        ASSERT_ERROR(rxfilter_from_json(o, &f, &err), EBADMSG);
        ASSERT_STR_CONTAINS(err, "field 'main-mac': ");
        ASSERT_TRUE(strlen(err) < 128);

        free(err);
        err = NULL;
        json_object_object_add(o, "main-mac", json_object_new_string("\n\x1b[31m"));
        ASSERT_ERROR(rxfilter_from_json(o, &f, &err), EBADMSG);
        ASSERT_STR_EQ(err, "field 'main-mac': \"\\n\\u001b[31m\" is not a MAC address");
}

TEST(upper_case_macs_accepted) {
        RxFilter upper, lower;

        ASSERT_OK(parse_with2("main-mac", "\"52:54:00:AB:CD:EF\"", "multicast-table",
                "[\"33:33:FF:AB:CD:EF\"]", &upper, NULL));
        ASSERT_OK(parse_with2("main-mac", "\"52:54:00:ab:cd:ef\"", "multicast-table",
                "[\"33:33:ff:ab:cd:ef\"]", &lower, NULL));
        ASSERT_INT_EQ(rxfilter_diff(&upper, &lower), 0);
}

TEST(table_group_bit_mismatch_rejected) {
        _cleanup_free_ char *err = NULL;
        RxFilter f;

        memset(&f, 0xa5, sizeof(f));
        ASSERT_PARSE_FAILS(
                parse_with("unicast-table", "[\"52:54:00:ab:cd:ef\",\"33:33:00:00:00:01\"]", &f, &err), err,
                f, "field 'unicast-table' entry 1: 33:33:00:00:00:01 is not a unicast address");
        ASSERT_PARSE_FAILS(parse_with("multicast-table", "[\"52:54:00:12:34:57\"]", &f, &err), err, f,
                "field 'multicast-table' entry 0: 52:54:00:12:34:57 is not a multicast address");
        ASSERT_PARSE_FAILS(parse_with("unicast-table", "[\"FF:FF:FF:FF:FF:FF\"]", &f, &err), err, f,
                "field 'unicast-table' entry 0: ff:ff:ff:ff:ff:ff is not a unicast address");

        /* Broadcast has the group bit: it belongs to the multicast side. */
        ASSERT_OK(parse_with("multicast-table", "[\"ff:ff:ff:ff:ff:ff\"]", &f, NULL));
        ASSERT_INT_EQ(f.n_multicast, 1);
}

TEST(vlan_ids_out_of_range) {
        static const struct {
                const char *value, *message;
        } vectors[] = {
                { "[0,1,2,5000]", "field 'vlan-table' entry 3: 5000 is out of range 0..4095" },
                { "[4096]", "field 'vlan-table' entry 0: 4096 is out of range 0..4095" },
                { "[0,-1]", "field 'vlan-table' entry 1: -1 is out of range 0..4095" },
                { "[9223372036854775807]",
                        "field 'vlan-table' entry 0: 9223372036854775807 is out of range 0..4095" },
                { "[18446744073709551615]",
                        "field 'vlan-table' entry 0: 18446744073709551615 is out of range 0..4095" },
        };

        for (size_t i = 0; i < sizeof(vectors) / sizeof(vectors[0]); i++) {
                _cleanup_free_ char *err = NULL;
                RxFilter f;

                memset(&f, 0xa5, sizeof(f));
                ASSERT_PARSE_FAILS(
                        parse_with("vlan-table", vectors[i].value, &f, &err), err, f, vectors[i].message);
        }

        RxFilter f;
        ASSERT_OK(parse_with("vlan-table", "[4095,0]", &f, NULL));
        ASSERT_TRUE(rxfilter_has_vlan(&f, 4095));
        ASSERT_INT_EQ(f.n_vlans, 2);
}

TEST(vlan_table_longer_than_4096_rejected) {
        _cleanup_(json_object_putp) json_object *o = linux_up();
        _cleanup_free_ char *err = NULL;
        json_object *a = all_vids();
        RxFilter f;

        json_object_array_add(a, json_object_new_int(0));
        json_object_object_add(o, "vlan-table", a);
        memset(&f, 0xa5, sizeof(f));
        ASSERT_PARSE_FAILS(rxfilter_from_json(o, &f, &err), err, f,
                "field 'vlan-table' has 4097 entries, more than 4096");
}

TEST(name_limits) {
        char name[RXFILTER_NAME_MAX + 2 + 2];
        _cleanup_free_ char *err = NULL;
        RxFilter f;

        memset(&f, 0xa5, sizeof(f));
        ASSERT_PARSE_FAILS(parse_with("name", "\"\"", &f, &err), err, f, "field 'name' must not be empty");
        ASSERT_PARSE_FAILS(
                parse_with("name", "\"net\\u00000\"", &f, &err), err, f, "field 'name' contains a NUL byte");

        /* "\"" + 128 or 129 bytes + "\"" */
        name[0] = '"';
        memset(name + 1, 'n', RXFILTER_NAME_MAX + 1);
        name[RXFILTER_NAME_MAX + 2] = '"';
        name[RXFILTER_NAME_MAX + 3] = '\0';
        ASSERT_PARSE_FAILS(parse_with("name", name, &f, &err), err, f,
                "field 'name' is 129 bytes long, longer than 128");

        name[RXFILTER_NAME_MAX + 1] = '"';
        name[RXFILTER_NAME_MAX + 2] = '\0';
        ASSERT_OK(parse_with("name", name, &f, NULL));
        ASSERT_INT_EQ(strlen(f.name), RXFILTER_NAME_MAX);
        ASSERT_TRUE(f.name[0] == 'n' && f.name[RXFILTER_NAME_MAX - 1] == 'n');

        ASSERT_OK(parse_with("name", "\"virtio-net-pci.0\"", &f, NULL));
        ASSERT_STR_EQ(f.name, "virtio-net-pci.0");
}

TEST(bad_modes) {
        static const struct {
                const char *key, *value, *message;
        } vectors[] = {
                { "unicast", "\"bogus\"",
                        "field 'unicast' must be one of normal, none, all, got \"bogus\"" },
                { "multicast", "\"ALL\"",
                        "field 'multicast' must be one of normal, none, all, got \"ALL\"" },
                { "vlan", "\"\"", "field 'vlan' must be one of normal, none, all, got \"\"" },
        };

        for (size_t i = 0; i < sizeof(vectors) / sizeof(vectors[0]); i++) {
                _cleanup_free_ char *err = NULL;
                RxFilter f;

                memset(&f, 0xa5, sizeof(f));
                ASSERT_PARSE_FAILS(
                        parse_with(vectors[i].key, vectors[i].value, &f, &err), err, f, vectors[i].message);
        }

        RxFilter f;
        ASSERT_OK(parse_with("unicast", "\"none\"", &f, NULL));
        ASSERT_INT_EQ(f.unicast, RX_MODE_NONE);
        ASSERT_OK(parse_with("multicast", "\"all\"", &f, NULL));
        ASSERT_INT_EQ(f.multicast, RX_MODE_ALL);
        ASSERT_OK(parse_with("vlan", "\"none\"", &f, NULL));
        ASSERT_INT_EQ(f.vlan, RX_MODE_NONE);
}

TEST(diff_each_field) {
        static const struct {
                const char *key, *value;
                unsigned bits;
                const char *property;
        } vectors[] = {
                { "main-mac", "\"52:54:00:12:34:57\"", RXFILTER_FIELD_MAC, "Mac" },
                { "promiscuous", "true", RXFILTER_FIELD_PROMISCUOUS, "Promiscuous" },
                { "unicast", "\"all\"", RXFILTER_FIELD_UNICAST_MODE, "UnicastMode" },
                { "multicast", "\"none\"", RXFILTER_FIELD_MULTICAST_MODE, "MulticastMode" },
                { "vlan", "\"all\"", RXFILTER_FIELD_VLAN_MODE, "VlanMode" },
                { "unicast-table", "[\"02:42:ac:11:00:02\"]", RXFILTER_FIELD_UNICAST_TABLE, "UnicastTable" },
                { "multicast-table", "[\"33:33:ff:12:34:56\"]", RXFILTER_FIELD_MULTICAST_TABLE,
                        "MulticastTable" },
                { "vlan-table", "[42,0]", RXFILTER_FIELD_VLAN_TABLE, "VlanTable" },
                { "unicast-overflow", "true", RXFILTER_FIELD_UNICAST_OVERFLOW, "UnicastOverflow" },
                { "multicast-overflow", "true", RXFILTER_FIELD_MULTICAST_OVERFLOW, "MulticastOverflow" },
                /* Not fields. */
                { "name", "\"net1\"", 0, NULL },
                { "broadcast-allowed", "true", 0, NULL },
        };
        RxFilter base;
        unsigned seen = 0;

        ASSERT_OK(parse_with(NULL, NULL, &base, NULL));
        ASSERT_INT_EQ(rxfilter_diff(&base, &base), 0);
        for (size_t i = 0; i < sizeof(vectors) / sizeof(vectors[0]); i++) {
                RxFilter f;
                ASSERT_OK(parse_with(vectors[i].key, vectors[i].value, &f, NULL));
                ASSERT_INT_EQ(rxfilter_diff(&base, &f), vectors[i].bits);
                ASSERT_INT_EQ(rxfilter_diff(&f, &base), vectors[i].bits);
                if (vectors[i].property)
                        ASSERT_STR_EQ(rxfilter_field_to_string(vectors[i].bits), vectors[i].property);
                seen |= vectors[i].bits;
        }
        ASSERT_INT_EQ(seen, _RXFILTER_FIELD_ALL);

        /* Several at once. */
        RxFilter f;
        ASSERT_OK(parse_with2("promiscuous", "true", "vlan-table", "[]", &f, NULL));
        ASSERT_INT_EQ(rxfilter_diff(&base, &f), RXFILTER_FIELD_PROMISCUOUS | RXFILTER_FIELD_VLAN_TABLE);
}

TEST(diff_vlan_modes) {
        RxFilter all_full, all_42, normal_42, normal_0;

        ASSERT_OK(parse_with2("vlan", "\"all\"", "vlan-table", "[0,1,2,3]", &all_full, NULL));
        ASSERT_OK(parse_with2("vlan", "\"all\"", "vlan-table", "[42]", &all_42, NULL));
        ASSERT_OK(parse_with("vlan-table", "[42]", &normal_42, NULL));
        ASSERT_OK(parse_with("vlan-table", "[0]", &normal_0, NULL));

        ASSERT_INT_EQ(rxfilter_diff(&all_full, &all_42), 0);
        ASSERT_INT_EQ(rxfilter_diff(&all_42, &normal_42), RXFILTER_FIELD_VLAN_MODE);
        ASSERT_INT_EQ(
                rxfilter_diff(&all_full, &normal_0), RXFILTER_FIELD_VLAN_MODE | RXFILTER_FIELD_VLAN_TABLE);
        ASSERT_INT_EQ(rxfilter_diff(&normal_42, &normal_0), RXFILTER_FIELD_VLAN_TABLE);
}

TEST(field_to_string) {
        static const char *const names[] = {
                "Mac",
                "Promiscuous",
                "UnicastMode",
                "MulticastMode",
                "VlanMode",
                "UnicastTable",
                "MulticastTable",
                "VlanTable",
                "UnicastOverflow",
                "MulticastOverflow",
        };

        for (unsigned i = 0; i < sizeof(names) / sizeof(names[0]); i++)
                ASSERT_STR_EQ(rxfilter_field_to_string(1u << i), names[i]);
        ASSERT_INT_EQ(1u << (sizeof(names) / sizeof(names[0])), _RXFILTER_FIELD_ALL + 1);
        ASSERT_TRUE(rxfilter_field_to_string(0) == NULL);
        ASSERT_TRUE(rxfilter_field_to_string(RXFILTER_FIELD_MAC | RXFILTER_FIELD_PROMISCUOUS) == NULL);
        ASSERT_TRUE(rxfilter_field_to_string(_RXFILTER_FIELD_ALL + 1) == NULL);
}
