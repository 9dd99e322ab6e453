/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* rxfilter.c: parse and validate query-rx-filter replies, diff filters, derive host device state. */
#include "rxfilter.h"

#include <assert.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cleanup.h"

static const char *const rx_mode_table[_RX_MODE_MAX] = {
        [RX_MODE_NORMAL] = "normal",
        [RX_MODE_NONE] = "none",
        [RX_MODE_ALL] = "all",
};

const char *rx_mode_to_string(RxMode m) {
        if (m < 0 || m >= _RX_MODE_MAX)
                return NULL;
        return rx_mode_table[m];
}

RxMode rx_mode_from_string(const char *s) {
        if (!s)
                return _RX_MODE_INVALID;
        for (RxMode m = 0; m < _RX_MODE_MAX; m++)
                if (strcmp(rx_mode_table[m], s) == 0)
                        return m;
        return _RX_MODE_INVALID;
}

/* The 12 members of QAPI's RxFilterInfo, all mandatory. */
typedef enum InfoField {
        INFO_NAME,
        INFO_MAIN_MAC,
        INFO_PROMISCUOUS,
        INFO_BROADCAST_ALLOWED,
        INFO_UNICAST,
        INFO_MULTICAST,
        INFO_VLAN,
        INFO_UNICAST_OVERFLOW,
        INFO_MULTICAST_OVERFLOW,
        INFO_UNICAST_TABLE,
        INFO_MULTICAST_TABLE,
        INFO_VLAN_TABLE,
        _INFO_FIELD_MAX,
} InfoField;

static const struct {
        const char *key;
        json_type type;
        const char *type_name; /* for "must be ..." */
} info_fields[_INFO_FIELD_MAX] = {
        [INFO_NAME] = { "name", json_type_string, "a string" },
        [INFO_MAIN_MAC] = { "main-mac", json_type_string, "a string" },
        [INFO_PROMISCUOUS] = { "promiscuous", json_type_boolean, "a boolean" },
        [INFO_BROADCAST_ALLOWED] = { "broadcast-allowed", json_type_boolean, "a boolean" },
        [INFO_UNICAST] = { "unicast", json_type_string, "a string" },
        [INFO_MULTICAST] = { "multicast", json_type_string, "a string" },
        [INFO_VLAN] = { "vlan", json_type_string, "a string" },
        [INFO_UNICAST_OVERFLOW] = { "unicast-overflow", json_type_boolean, "a boolean" },
        [INFO_MULTICAST_OVERFLOW] = { "multicast-overflow", json_type_boolean, "a boolean" },
        [INFO_UNICAST_TABLE] = { "unicast-table", json_type_array, "an array" },
        [INFO_MULTICAST_TABLE] = { "multicast-table", json_type_array, "an array" },
        [INFO_VLAN_TABLE] = { "vlan-table", json_type_array, "an array" },
};

/* Values quoted in error messages are cut here: a broken reply must not make a huge log line. */
#define EXCERPT_MAX 64

_printf_(2, 3) static int bad_message(char **ret_error, const char *format, ...) {
        va_list ap;

        if (!ret_error)
                return -EBADMSG;

        va_start(ap, format);
        if (vasprintf(ret_error, format, ap) < 0)
                *ret_error = NULL; /* out of memory: the error stands, without its sentence */
        va_end(ap);
        return -EBADMSG;
}

static const char *json_type_name_of(json_object *v) {
        return json_type_to_name(json_object_get_type(v));
}

/* JSON rendering, so control characters in a hostile string come out escaped. Owned by v. */
static const char *json_excerpt(json_object *v) {
        return json_object_to_json_string_ext(v, JSON_C_TO_STRING_PLAIN | JSON_C_TO_STRING_NOSLASHESCAPE);
}

static int mac_from_json(json_object *v, EtherAddr *ret) {
        /* The length check also refuses a valid address followed by an embedded NUL and more. */
        if (json_object_get_string_len(v) != ETHER_ADDR_STRLEN - 1)
                return -EINVAL;
        return ether_addr_parse(json_object_get_string(v), ret);
}

static size_t ether_addr_sort_unique(EtherAddr *table, size_t n) {
        size_t k = 1;

        if (n < 2)
                return n;
        qsort(table, n, sizeof(EtherAddr), ether_addr_compare);
        for (size_t i = 1; i < n; i++)
                if (!ether_addr_equal(&table[i], &table[k - 1]))
                        table[k++] = table[i];
        /* Equal filters stay byte-identical past their entries. */
        memset(&table[k], 0, (n - k) * sizeof(EtherAddr));
        return k;
}

static int name_from_json(json_object *v, char ret[static RXFILTER_NAME_MAX + 1], char **ret_error) {
        const char *s = json_object_get_string(v);
        size_t len = (size_t)json_object_get_string_len(v);

        if (len == 0)
                return bad_message(ret_error, "field 'name' must not be empty");
        if (len > RXFILTER_NAME_MAX)
                return bad_message(
                        ret_error, "field 'name' is %zu bytes long, longer than %d", len, RXFILTER_NAME_MAX);
        if (strlen(s) != len)
                return bad_message(ret_error, "field 'name' contains a NUL byte");
        memcpy(ret, s, len);
        ret[len] = '\0';
        return 0;
}

static int mode_from_json(json_object *v, const char *key, RxMode *ret, char **ret_error) {
        RxMode m = rx_mode_from_string(json_object_get_string(v));

        if (m < 0)
                return bad_message(ret_error, "field '%s' must be one of normal, none, all, got %.*s", key,
                        EXCERPT_MAX, json_excerpt(v));
        *ret = m;
        return 0;
}

/* QEMU keeps one MAC table and splits it for the reply by each address's group bit (first_multi),
 * so an address on the wrong side cannot come from QEMU: the reply is broken and is refused
 * rather than silently moved to the other table. The caller checked the array fits in table. */
static int mac_table_from_json(json_object *array, const char *key, bool multicast, EtherAddr *table,
        size_t *ret_n, char **ret_error) {
        size_t n = json_object_array_length(array);

        for (size_t i = 0; i < n; i++) {
                json_object *e = json_object_array_get_idx(array, i);
                char buf[ETHER_ADDR_STRLEN];

                if (!json_object_is_type(e, json_type_string))
                        return bad_message(ret_error, "field '%s' entry %zu must be a string, got %s", key,
                                i, json_type_name_of(e));
                if (mac_from_json(e, &table[i]) < 0)
                        return bad_message(ret_error, "field '%s' entry %zu: %.*s is not a MAC address", key,
                                i, EXCERPT_MAX, json_excerpt(e));
                if (ether_addr_is_multicast(&table[i]) != multicast)
                        return bad_message(ret_error, "field '%s' entry %zu: %s is not a %s address", key, i,
                                ether_addr_format(&table[i], buf), multicast ? "multicast" : "unicast");
        }
        *ret_n = ether_addr_sort_unique(table, n);
        return 0;
}

static int vlan_table_from_json(json_object *array, RxFilter *f, char **ret_error) {
        size_t n = json_object_array_length(array);

        /* QEMU prints its VID bitmap, so more entries than VIDs means a broken reply. */
        if (n > RXFILTER_VLAN_MAX)
                return bad_message(
                        ret_error, "field 'vlan-table' has %zu entries, more than %d", n, RXFILTER_VLAN_MAX);

        for (size_t i = 0; i < n; i++) {
                json_object *e = json_object_array_get_idx(array, i);
                int64_t vid;
                uint64_t bit;

                if (!json_object_is_type(e, json_type_int))
                        return bad_message(ret_error,
                                "field 'vlan-table' entry %zu must be an integer, got %s", i,
                                json_type_name_of(e));
                vid = json_object_get_int64(e); /* saturates, so huge values stay out of range */
                if (vid < 0 || vid >= RXFILTER_VLAN_MAX)
                        return bad_message(ret_error,
                                "field 'vlan-table' entry %zu: %.*s is out of range 0..%d", i, EXCERPT_MAX,
                                json_excerpt(e), RXFILTER_VLAN_MAX - 1);
                bit = UINT64_C(1) << (vid % 64);
                if (!(f->vlan_bitmap[vid / 64] & bit)) {
                        f->vlan_bitmap[vid / 64] |= bit;
                        f->n_vlans++;
                }
        }
        return 0;
}

int rxfilter_from_json(json_object *info, RxFilter *ret, char **ret_error) {
        json_object *v[_INFO_FIELD_MAX];
        RxFilter f = {};
        size_t n_table;
        int r;

        assert(ret);

        if (!json_object_is_type(info, json_type_object))
                return bad_message(
                        ret_error, "RxFilterInfo must be an object, got %s", json_type_name_of(info));

        /* Unknown members are skipped: newer QEMUs may add some. */
        for (size_t i = 0; i < _INFO_FIELD_MAX; i++) {
                if (!json_object_object_get_ex(info, info_fields[i].key, &v[i]))
                        return bad_message(ret_error, "missing field '%s'", info_fields[i].key);
                /* Strict: an int is not a boolean, nor is the string "true". */
                if (!json_object_is_type(v[i], info_fields[i].type))
                        return bad_message(ret_error, "field '%s' must be %s, got %s", info_fields[i].key,
                                info_fields[i].type_name, json_type_name_of(v[i]));
        }

        r = name_from_json(v[INFO_NAME], f.name, ret_error);
        if (r < 0)
                return r;

        if (mac_from_json(v[INFO_MAIN_MAC], &f.main_mac) < 0)
                return bad_message(ret_error, "field 'main-mac': %.*s is not a MAC address", EXCERPT_MAX,
                        json_excerpt(v[INFO_MAIN_MAC]));

        f.promiscuous = json_object_get_boolean(v[INFO_PROMISCUOUS]);
        f.broadcast_allowed = json_object_get_boolean(v[INFO_BROADCAST_ALLOWED]);
        f.unicast_overflow = json_object_get_boolean(v[INFO_UNICAST_OVERFLOW]);
        f.multicast_overflow = json_object_get_boolean(v[INFO_MULTICAST_OVERFLOW]);

        r = mode_from_json(v[INFO_UNICAST], "unicast", &f.unicast, ret_error);
        if (r < 0)
                return r;
        r = mode_from_json(v[INFO_MULTICAST], "multicast", &f.multicast, ret_error);
        if (r < 0)
                return r;
        r = mode_from_json(v[INFO_VLAN], "vlan", &f.vlan, ret_error);
        if (r < 0)
                return r;

        /* Both tables share QEMU's 64 slots; counted as sent, before duplicates are folded. */
        n_table = json_object_array_length(v[INFO_UNICAST_TABLE]) +
                json_object_array_length(v[INFO_MULTICAST_TABLE]);
        if (n_table > RXFILTER_TABLE_MAX)
                return bad_message(ret_error,
                        "fields 'unicast-table' and 'multicast-table' have %zu entries together, more than "
                        "%d",
                        n_table, RXFILTER_TABLE_MAX);
        r = mac_table_from_json(
                v[INFO_UNICAST_TABLE], "unicast-table", false, f.unicast_table, &f.n_unicast, ret_error);
        if (r < 0)
                return r;
        r = mac_table_from_json(v[INFO_MULTICAST_TABLE], "multicast-table", true, f.multicast_table,
                &f.n_multicast, ret_error);
        if (r < 0)
                return r;

        /* With vlan "all" QEMU lists all 4096 VIDs; they are kept as sent, the mode says it all. */
        r = vlan_table_from_json(v[INFO_VLAN_TABLE], &f, ret_error);
        if (r < 0)
                return r;

        *ret = f;
        return 0;
}

const char *rxfilter_field_to_string(RxFilterField field) {
        switch (field) {
        case RXFILTER_FIELD_MAC:
                return "Mac";
        case RXFILTER_FIELD_PROMISCUOUS:
                return "Promiscuous";
        case RXFILTER_FIELD_UNICAST_MODE:
                return "UnicastMode";
        case RXFILTER_FIELD_MULTICAST_MODE:
                return "MulticastMode";
        case RXFILTER_FIELD_VLAN_MODE:
                return "VlanMode";
        case RXFILTER_FIELD_UNICAST_TABLE:
                return "UnicastTable";
        case RXFILTER_FIELD_MULTICAST_TABLE:
                return "MulticastTable";
        case RXFILTER_FIELD_VLAN_TABLE:
                return "VlanTable";
        case RXFILTER_FIELD_UNICAST_OVERFLOW:
                return "UnicastOverflow";
        case RXFILTER_FIELD_MULTICAST_OVERFLOW:
                return "MulticastOverflow";
        default:
                return NULL;
        }
}

static bool mac_table_equal(const EtherAddr *a, size_t n_a, const EtherAddr *b, size_t n_b) {
        return n_a == n_b && memcmp(a, b, n_a * sizeof(EtherAddr)) == 0;
}

static bool vlan_table_equal(const RxFilter *a, const RxFilter *b) {
        if (a->vlan == RX_MODE_ALL && b->vlan == RX_MODE_ALL)
                return true;
        return a->n_vlans == b->n_vlans &&
                memcmp(a->vlan_bitmap, b->vlan_bitmap, sizeof(a->vlan_bitmap)) == 0;
}

unsigned rxfilter_diff(const RxFilter *a, const RxFilter *b) {
        unsigned d = 0;

        if (!ether_addr_equal(&a->main_mac, &b->main_mac))
                d |= RXFILTER_FIELD_MAC;
        if (a->promiscuous != b->promiscuous)
                d |= RXFILTER_FIELD_PROMISCUOUS;
        if (a->unicast != b->unicast)
                d |= RXFILTER_FIELD_UNICAST_MODE;
        if (a->multicast != b->multicast)
                d |= RXFILTER_FIELD_MULTICAST_MODE;
        if (a->vlan != b->vlan)
                d |= RXFILTER_FIELD_VLAN_MODE;
        if (!mac_table_equal(a->unicast_table, a->n_unicast, b->unicast_table, b->n_unicast))
                d |= RXFILTER_FIELD_UNICAST_TABLE;
        if (!mac_table_equal(a->multicast_table, a->n_multicast, b->multicast_table, b->n_multicast))
                d |= RXFILTER_FIELD_MULTICAST_TABLE;
        if (!vlan_table_equal(a, b))
                d |= RXFILTER_FIELD_VLAN_TABLE;
        if (a->unicast_overflow != b->unicast_overflow)
                d |= RXFILTER_FIELD_UNICAST_OVERFLOW;
        if (a->multicast_overflow != b->multicast_overflow)
                d |= RXFILTER_FIELD_MULTICAST_OVERFLOW;
        return d;
}

static bool vlan_demands_promisc(const RxFilter *f, VlanPolicy policy) {
        switch (policy) {
        case VLAN_POLICY_LIBVIRT:
                return f->n_vlans > 0 || f->vlan == RX_MODE_ALL;
        case VLAN_POLICY_IMPROVED:
                /* VID 0 only carries priority tags, and "all" just means the guest does not filter. */
                return f->vlan == RX_MODE_NORMAL && f->n_vlans > (rxfilter_has_vlan(f, 0) ? 1u : 0u);
        default:
                return false;
        }
}

static bool unicast_demands_promisc(const RxFilter *f, UnicastPolicy policy) {
        if (policy != UNICAST_POLICY_PROMISC)
                return false;
        return f->unicast == RX_MODE_ALL || f->unicast_overflow || f->n_unicast > 0;
}

void rxfilter_to_host(
        const RxFilter *f, VlanPolicy vlan_policy, UnicastPolicy unicast_policy, HostFilter *ret) {
        HostFilter h = {
                .mac = f->main_mac,
                .promisc = f->promiscuous || vlan_demands_promisc(f, vlan_policy) ||
                        unicast_demands_promisc(f, unicast_policy),
                .multicast = f->multicast != RX_MODE_NONE,
                .allmulti = f->multicast == RX_MODE_ALL ||
                        (f->multicast == RX_MODE_NORMAL && f->multicast_overflow),
                /* QEMU empties the table on overflow: the host keeps its entries meanwhile. */
                .multicast_list_valid = !f->multicast_overflow,
        };

        assert(ret);

        /* broadcast_allowed is deliberately unused: QEMU reports it inverted. */
        if (h.multicast_list_valid) {
                h.n_multicast = f->n_multicast;
                memcpy(h.multicast_table, f->multicast_table, f->n_multicast * sizeof(EtherAddr));
        }
        *ret = h;
}
