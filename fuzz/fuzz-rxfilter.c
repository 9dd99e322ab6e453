/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* fuzz-rxfilter.c: arbitrary JSON through rxfilter_from_json(), rxfilter_diff() and rxfilter_to_host().
 *
 * The input is parsed as the QMP client parses a message (same depth limit, UTF-8 validation); a
 * top-level array is taken as a query-rx-filter reply, each element one RxFilterInfo. Accepted filters
 * must be normalized (sorted unique tables, counts within bounds, n_vlans = bits set), equal to
 * themselves, to a copy and to their own JSON rendering parsed again; a refusal must leave the output
 * untouched and say why in a short sentence. */
#include <assert.h>
#include <json-c/json.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "log.h"
#include "qmp.h"
#include "rxfilter.h"

#define ERROR_MESSAGE_MAX 512 /* values are quoted cut to 64 bytes, so a sentence stays short */

static RxFilter reference; /* the Linux guest of rxfilter.md */

static const char reference_json[] =
        "{\"promiscuous\":false,\"name\":\"net0\",\"main-mac\":\"52:54:00:12:34:56\",\"unicast\":\"normal\","
        "\"vlan\":\"normal\",\"vlan-table\":[0],\"unicast-table\":[],\"multicast\":\"normal\","
        "\"multicast-overflow\":false,\"unicast-overflow\":false,"
        "\"multicast-table\":[\"33:33:ff:12:34:56\",\"01:00:5e:00:00:01\",\"33:33:00:00:00:01\"],"
        "\"broadcast-allowed\":false}";

static void check_table(const EtherAddr *table, size_t n, bool multicast) {
        static const EtherAddr zero;

        assert(n <= RXFILTER_TABLE_MAX);
        for (size_t i = 0; i < n; i++) {
                assert(ether_addr_is_multicast(&table[i]) == multicast);
                if (i > 0)
                        assert(ether_addr_compare(&table[i - 1], &table[i]) < 0);
        }
        /* Equal sets must compare equal as bytes: nothing may be left past the entries. */
        for (size_t i = n; i < RXFILTER_TABLE_MAX; i++)
                assert(ether_addr_equal(&table[i], &zero));
}

static void check_filter(const RxFilter *f) {
        size_t bits = 0;

        assert(f->name[0] != '\0');
        assert(strnlen(f->name, sizeof(f->name)) <= RXFILTER_NAME_MAX);
        assert(rx_mode_to_string(f->unicast) && rx_mode_to_string(f->multicast) &&
                rx_mode_to_string(f->vlan));
        assert(f->n_unicast + f->n_multicast <= RXFILTER_TABLE_MAX);
        check_table(f->unicast_table, f->n_unicast, false);
        check_table(f->multicast_table, f->n_multicast, true);
        for (size_t i = 0; i < ELEMENTSOF(f->vlan_bitmap); i++)
                bits += (size_t)__builtin_popcountll(f->vlan_bitmap[i]);
        assert(f->n_vlans == bits);
        assert(f->n_vlans <= RXFILTER_VLAN_MAX);
}

static void check_host(const RxFilter *f, const HostFilter *h) {
        assert(ether_addr_equal(&h->mac, &f->main_mac));
        assert(h->multicast_list_valid == !f->multicast_overflow);
        assert(h->multicast == (f->multicast != RX_MODE_NONE));
        if (f->promiscuous)
                assert(h->promisc);
        if (f->multicast == RX_MODE_ALL)
                assert(h->allmulti);
        if (h->multicast_list_valid) {
                assert(h->n_multicast == f->n_multicast);
                assert(memcmp(h->multicast_table, f->multicast_table, h->n_multicast * sizeof(EtherAddr)) ==
                        0);
        } else
                assert(h->n_multicast == 0);
}

static json_object *mac_table_to_json(const EtherAddr *table, size_t n) {
        json_object *a = json_object_new_array();
        char buf[ETHER_ADDR_STRLEN];

        /* Reversed, as QEMU sends them: order must not matter. */
        for (size_t i = n; i > 0; i--)
                json_object_array_add(a, json_object_new_string(ether_addr_format(&table[i - 1], buf)));
        return a;
}

static json_object *filter_to_json(const RxFilter *f) {
        json_object *o = json_object_new_object(), *vlans = json_object_new_array();
        char buf[ETHER_ADDR_STRLEN];

        json_object_object_add(o, "name", json_object_new_string(f->name));
        json_object_object_add(o, "main-mac", json_object_new_string(ether_addr_format(&f->main_mac, buf)));
        json_object_object_add(o, "promiscuous", json_object_new_boolean(f->promiscuous));
        json_object_object_add(o, "broadcast-allowed", json_object_new_boolean(f->broadcast_allowed));
        json_object_object_add(o, "unicast", json_object_new_string(rx_mode_to_string(f->unicast)));
        json_object_object_add(o, "multicast", json_object_new_string(rx_mode_to_string(f->multicast)));
        json_object_object_add(o, "vlan", json_object_new_string(rx_mode_to_string(f->vlan)));
        json_object_object_add(o, "unicast-overflow", json_object_new_boolean(f->unicast_overflow));
        json_object_object_add(o, "multicast-overflow", json_object_new_boolean(f->multicast_overflow));
        json_object_object_add(o, "unicast-table", mac_table_to_json(f->unicast_table, f->n_unicast));
        json_object_object_add(o, "multicast-table", mac_table_to_json(f->multicast_table, f->n_multicast));
        for (unsigned vid = RXFILTER_VLAN_MAX; vid > 0; vid--)
                if (rxfilter_has_vlan(f, vid - 1))
                        json_object_array_add(vlans, json_object_new_int((int)vid - 1));
        json_object_object_add(o, "vlan-table", vlans);
        return o;
}

static void check_one(json_object *info) {
        RxFilter f, untouched, copy, again;
        char *error = NULL;
        HostFilter h;
        int r;

        memset(&f, 0xa5, sizeof(f));
        untouched = f;
        r = rxfilter_from_json(info, &f, &error);
        if (r < 0) {
                assert(r == -EBADMSG);
                assert(error && strlen(error) < ERROR_MESSAGE_MAX);
                assert(memcmp(&f, &untouched, sizeof(f)) == 0);
                free(error);
                /* Without a place for the sentence it must fail the same way. */
                assert(rxfilter_from_json(info, &f, NULL) == -EBADMSG);
                return;
        }
        assert(r == 0);
        assert(!error);
        check_filter(&f);

        assert(rxfilter_diff(&f, &f) == 0);
        copy = f;
        assert(rxfilter_diff(&f, &copy) == 0);
        unsigned d = rxfilter_diff(&f, &reference);
        assert(d == rxfilter_diff(&reference, &f));
        assert((d & ~(unsigned)_RXFILTER_FIELD_ALL) == 0);
        for (unsigned bit = 1; bit & _RXFILTER_FIELD_ALL; bit <<= 1)
                assert(rxfilter_field_to_string(bit));

        for (VlanPolicy v = 0; v < _VLAN_POLICY_MAX; v++)
                for (UnicastPolicy u = 0; u < _UNICAST_POLICY_MAX; u++) {
                        rxfilter_to_host(&f, v, u, &h);
                        check_host(&f, &h);
                }

        /* What we understood, said again the way QEMU says it, must be understood the same way. */
        json_object *o = filter_to_json(&f);
        r = rxfilter_from_json(o, &again, &error);
        assert(r == 0 && !error);
        assert(rxfilter_diff(&f, &again) == 0);
        assert(strcmp(f.name, again.name) == 0 && f.broadcast_allowed == again.broadcast_allowed);
        json_object_put(o);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
        static json_tokener *tokener;

        if (!tokener) {
                log_max_level = getenv("FUZZ_LOG") ? LOG_DEBUG : -1;
                json_object *o = json_tokener_parse(reference_json);
                assert(o && rxfilter_from_json(o, &reference, NULL) == 0);
                json_object_put(o);
                tokener = json_tokener_new_ex(QMP_JSON_DEPTH_MAX);
                assert(tokener);
                json_tokener_set_flags(tokener, JSON_TOKENER_VALIDATE_UTF8);
        }
        if (size > QMP_MESSAGE_MAX || size > INT32_MAX)
                return 0;

        json_tokener_reset(tokener);
        json_object *root = json_tokener_parse_ex(tokener, (const char *)data, (int)size);
        if (!root) {
                /* Also a NUL-terminated text through the plain entry point, as the issue asks. */
                char *text = malloc(size + 1);
                assert(text);
                memcpy(text, data, size);
                text[size] = '\0';
                root = json_tokener_parse(text);
                free(text);
                if (!root)
                        return 0;
        }

        if (json_object_is_type(root, json_type_array))
                for (size_t i = 0; i < json_object_array_length(root); i++)
                        check_one(json_object_array_get_idx(root, i));
        else
                check_one(root);
        json_object_put(root);
        return 0;
}
