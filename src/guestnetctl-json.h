/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* guestnetctl-json.h: D-Bus message values read into json-c objects, for guestnetctl's --json and output. */
#pragma once

#include <json-c/json.h>
#include <systemd/sd-bus.h>

#include "cleanup.h"

DEFINE_POINTER_CLEANUP_FUNC(json_object, json_object_put)

/* Reads the next complete value of m, whatever its type, into a new JSON value: strings, object paths
 * and signatures become strings, booleans booleans, integers and doubles numbers, "a{..}" objects
 * (keys as strings), other arrays and structs arrays, variants their content. 0 on success, -ENXIO
 * when m has no further value, another negative errno otherwise. */
int bus_message_read_json(sd_bus_message *m, json_object **ret);

/* Calls org.freedesktop.DBus.Properties.GetAll(interface) on path and returns the properties as one
 * JSON object. Errors of the call are in *error. */
int bus_get_all_properties_json(sd_bus *bus, const char *destination, const char *path,
        const char *interface, sd_bus_error *error, json_object **ret);

/* Typed lookups in a JSON object of properties; a missing key or another type gives the fallback
 * ("" for strings, false, 0, an empty list). */
const char *json_get_string(json_object *o, const char *key);
int json_get_bool(json_object *o, const char *key);
uint64_t json_get_uint64(json_object *o, const char *key);
size_t json_get_array_length(json_object *o, const char *key);
json_object *json_get_array_item(json_object *o, const char *key, size_t i);

/* A deep copy of o for a terminal: every string (and object key) with its non-printable bytes as
 * \xNN (escape.h), so that nothing a peer put on the bus moves the cursor or sets a title. NULL on
 * OOM. */
json_object *json_escape_strings(json_object *o);
