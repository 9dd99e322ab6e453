/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* jsoncost.h: what json-c will allocate to parse a message, estimated from its bytes before json-c sees
 * them. The length of a message says little: 1 MiB of "{}," becomes 274 MiB of json-c objects (each
 * object carries a 16-entry hash table), 1 MiB of "1," 34 MiB. A monitor's messages are fed through
 * this first, and one whose estimate passes a budget is refused before json-c builds it. */
#pragma once

#include <stdbool.h>
#include <stddef.h>

/* json-c 0.16 on x86-64, with glibc's chunk overhead (measured by test-jsoncost against mallinfo2()):
 * an object is its struct and a 16-entry table; a member's key is strdup()ed; every value is a
 * json_object of its own; an array starts with 32 slots (on its first element); a number with a
 * fraction or exponent keeps a copy of its text. Every byte outside strings costs one more. */
#define JSON_COST_OBJECT 800u
#define JSON_COST_ARRAY  160u
#define JSON_COST_VALUE  80u /* per ',' and ':' (a member, an element, a key's value) */
/* per ':' besides: an object's hash table doubles as it fills, and while it moves both tables are held
 * (up to 4.5 entries of 40 bytes a member): what json-c keeps after the parse is under the estimate
 * without it, its peak during the parse is not (an object of 87,000 keys: 24.0 MB at the peak). */
#define JSON_COST_MEMBER 64u
#define JSON_COST_STRING 48u /* per string, plus its bytes */
#define JSON_COST_DOUBLE 48u /* per '.', 'e' or 'E' outside strings */

typedef struct JsonCost {
        size_t cost; /* of the message so far */
        unsigned depth; /* open objects and arrays */
        bool in_string, escaped;
        bool started; /* the message's first '{' or '[' was seen */
        bool invalid; /* a byte JSON never has outside a string: see json_cost_scan() */
} JsonCost;

/* Scans data, the next bytes of a message, and returns how many belong to it: up to and including the
 * '}' or ']' that closes its outermost value, else size (the message goes on). Stops early, with
 * s->cost > budget, at the byte that passes the budget, and with s->invalid at a '\'' or '/' outside a
 * string: json-c (unless strict) reads those as a single-quoted string or a comment, whose '"' would
 * make this scan take what follows for a string and miss the objects in it. Whitespace before the
 * message is skipped by the caller; a message that is not an object or array (json-c rejects those
 * anyway) is counted as text. */
size_t json_cost_scan(JsonCost *s, const char *data, size_t size, size_t budget);
