/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* guestnetctl-json.c: D-Bus message values read into json-c objects. */
#include "guestnetctl-json.h"

#include <errno.h>
#include <inttypes.h>
#include <stdbool.h>
#include <stdio.h>
#include <string.h>

#include "escape.h"

static int read_basic_json(sd_bus_message *m, char type, json_object **ret) {
        union {
                uint8_t u8;
                int16_t i16;
                uint16_t u16;
                int32_t i32;
                uint32_t u32;
                int64_t i64;
                uint64_t u64;
                double d;
                int b;
                const char *s;
        } v = {};
        json_object *o;
        int r;

        r = sd_bus_message_read_basic(m, type, &v);
        if (r < 0)
                return r;
        if (r == 0)
                return -ENXIO;

        switch (type) {
        case SD_BUS_TYPE_BYTE:
                o = json_object_new_int(v.u8);
                break;
        case SD_BUS_TYPE_BOOLEAN:
                o = json_object_new_boolean(v.b);
                break;
        case SD_BUS_TYPE_INT16:
                o = json_object_new_int(v.i16);
                break;
        case SD_BUS_TYPE_UINT16:
                o = json_object_new_int(v.u16);
                break;
        case SD_BUS_TYPE_INT32:
                o = json_object_new_int(v.i32);
                break;
        case SD_BUS_TYPE_UINT32:
                o = json_object_new_int64(v.u32);
                break;
        case SD_BUS_TYPE_INT64:
                o = json_object_new_int64(v.i64);
                break;
        case SD_BUS_TYPE_UINT64:
                o = json_object_new_uint64(v.u64);
                break;
        case SD_BUS_TYPE_DOUBLE:
                o = json_object_new_double(v.d);
                break;
        case SD_BUS_TYPE_STRING:
        case SD_BUS_TYPE_OBJECT_PATH:
        case SD_BUS_TYPE_SIGNATURE:
                o = json_object_new_string(v.s);
                break;
        default:
                /* Unix fds: we never receive one from the daemon. */
                return -EBADMSG;
        }
        if (!o)
                return -ENOMEM;
        *ret = o;
        return 0;
}

/* A dictionary's key as a JSON object key: strings as they are, numbers in decimal. */
static int json_key_string(json_object *key, char **ret) {
        const char *s = json_object_is_type(key, json_type_string) ? json_object_get_string(key)
                                                                   : json_object_to_json_string(key);
        char *copy = strdup(s ? s : "");
        if (!copy)
                return -ENOMEM;
        *ret = copy;
        return 0;
}

/* The entries of an "a{..}" whose entry signature (without braces) is entry. */
static int read_dict_json(sd_bus_message *m, const char *entry, json_object **ret) {
        _cleanup_(json_object_putp) json_object *o = json_object_new_object();
        int r;

        if (!o)
                return -ENOMEM;
        while ((r = sd_bus_message_enter_container(m, SD_BUS_TYPE_DICT_ENTRY, entry)) > 0) {
                _cleanup_(json_object_putp) json_object *key = NULL, *value = NULL;
                _cleanup_free_ char *k = NULL;

                r = bus_message_read_json(m, &key);
                if (r >= 0)
                        r = bus_message_read_json(m, &value);
                if (r >= 0)
                        r = json_key_string(key, &k);
                if (r < 0)
                        return r;
                if (json_object_object_add(o, k, value) < 0)
                        return -ENOMEM;
                value = NULL;
                r = sd_bus_message_exit_container(m);
                if (r < 0)
                        return r;
        }
        if (r < 0)
                return r;
        *ret = TAKE_PTR(o);
        return 0;
}

/* The members of an array or struct, up to the end of the container we are in. */
static int read_list_json(sd_bus_message *m, json_object **ret) {
        _cleanup_(json_object_putp) json_object *a = json_object_new_array();
        int r;

        if (!a)
                return -ENOMEM;
        while ((r = sd_bus_message_at_end(m, false)) == 0) {
                _cleanup_(json_object_putp) json_object *item = NULL;

                r = bus_message_read_json(m, &item);
                if (r < 0)
                        return r;
                if (json_object_array_add(a, item) < 0)
                        return -ENOMEM;
                item = NULL;
        }
        if (r < 0)
                return r;
        *ret = TAKE_PTR(a);
        return 0;
}

int bus_message_read_json(sd_bus_message *m, json_object **ret) {
        _cleanup_(json_object_putp) json_object *o = NULL;
        const char *contents;
        char type;
        int r;

        r = sd_bus_message_peek_type(m, &type, &contents);
        if (r < 0)
                return r;
        if (r == 0)
                return -ENXIO;
        if (!contents)
                return read_basic_json(m, type, ret);

        r = sd_bus_message_enter_container(m, type, contents);
        if (r < 0)
                return r;
        if (type == SD_BUS_TYPE_VARIANT)
                r = bus_message_read_json(m, &o);
        else if (type == SD_BUS_TYPE_ARRAY && contents[0] == SD_BUS_TYPE_DICT_ENTRY_BEGIN) {
                _cleanup_free_ char *entry = strndup(contents + 1, strlen(contents) - 2);
                r = entry ? read_dict_json(m, entry, &o) : -ENOMEM;
        } else
                r = read_list_json(m, &o);
        if (r < 0)
                return r;
        r = sd_bus_message_exit_container(m);
        if (r < 0)
                return r;
        *ret = TAKE_PTR(o);
        return 0;
}

int bus_get_all_properties_json(sd_bus *bus, const char *destination, const char *path,
        const char *interface, sd_bus_error *error, json_object **ret) {
        _cleanup_(sd_bus_message_unrefp) sd_bus_message *reply = NULL;
        int r;

        r = sd_bus_call_method(bus, destination, path, "org.freedesktop.DBus.Properties", "GetAll", error,
                &reply, "s", interface);
        if (r < 0)
                return r;
        return bus_message_read_json(reply, ret);
}

const char *json_get_string(json_object *o, const char *key) {
        json_object *v;

        if (!json_object_object_get_ex(o, key, &v) || !json_object_is_type(v, json_type_string))
                return "";
        return json_object_get_string(v);
}

int json_get_bool(json_object *o, const char *key) {
        json_object *v;

        return json_object_object_get_ex(o, key, &v) && json_object_is_type(v, json_type_boolean) &&
                json_object_get_boolean(v);
}

uint64_t json_get_uint64(json_object *o, const char *key) {
        json_object *v;

        if (!json_object_object_get_ex(o, key, &v) || !json_object_is_type(v, json_type_int))
                return 0;
        return json_object_get_uint64(v);
}

size_t json_get_array_length(json_object *o, const char *key) {
        json_object *v;

        if (!json_object_object_get_ex(o, key, &v) || !json_object_is_type(v, json_type_array))
                return 0;
        return json_object_array_length(v);
}

json_object *json_get_array_item(json_object *o, const char *key, size_t i) {
        json_object *v;

        if (!json_object_object_get_ex(o, key, &v) || !json_object_is_type(v, json_type_array))
                return NULL;
        return json_object_array_get_idx(v, i);
}

json_object *json_escape_strings(json_object *o) {
        switch (json_object_get_type(o)) {
        case json_type_string: {
                _cleanup_free_ char *e = escape_nonprintable_dup(json_object_get_string(o));
                return e ? json_object_new_string(e) : NULL;
        }
        case json_type_array: {
                json_object *a = json_object_new_array();
                for (size_t i = 0; a && i < json_object_array_length(o); i++) {
                        json_object *old = json_object_array_get_idx(o, i);
                        json_object *item = old ? json_escape_strings(old) : NULL;
                        if ((old && !item) || json_object_array_add(a, item) < 0) {
                                json_object_put(item);
                                json_object_put(a);
                                return NULL;
                        }
                }
                return a;
        }
        case json_type_object: {
                json_object *c = json_object_new_object();
                json_object_object_foreach(o, key, val) {
                        _cleanup_free_ char *k = escape_nonprintable_dup(key);
                        json_object *v = val ? json_escape_strings(val) : NULL;
                        if (!c || !k || (val && !v) || json_object_object_add(c, k, v) < 0) {
                                json_object_put(v);
                                json_object_put(c);
                                return NULL;
                        }
                }
                return c;
        }
        default:
                return json_object_get(o); /* numbers and booleans: nothing to escape */
        }
}
