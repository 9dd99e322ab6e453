/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* jsoncost.c: json-c's memory for a message, estimated from its bytes (jsoncost.h). */
#include "jsoncost.h"

size_t json_cost_scan(JsonCost *s, const char *data, size_t size, size_t budget) {
        for (size_t i = 0; i < size; i++) {
                char ch = data[i];

                s->cost++;
                if (s->in_string) {
                        if (s->escaped)
                                s->escaped = false;
                        else if (ch == '\\')
                                s->escaped = true;
                        else if (ch == '"')
                                s->in_string = false;
                } else
                        switch (ch) {
                        case '\'':
                        case '/':
                                s->invalid = true;
                                return i + 1;
                        case '.':
                        case 'e':
                        case 'E':
                                s->cost += JSON_COST_DOUBLE;
                                break;
                        case '"':
                                s->in_string = true;
                                s->cost += JSON_COST_STRING;
                                break;
                        case '{':
                        case '[':
                                s->cost += ch == '{' ? JSON_COST_OBJECT : JSON_COST_ARRAY;
                                s->depth++;
                                s->started = true;
                                break;
                        case '}':
                        case ']':
                                if (s->depth > 0 && --s->depth == 0 && s->started)
                                        return i + 1; /* the message ends here */
                                break;
                        case ',':
                                s->cost += JSON_COST_VALUE;
                                break;
                        case ':':
                                s->cost += JSON_COST_VALUE + JSON_COST_MEMBER;
                                break;
                        default:
                                break;
                        }
                if (s->cost > budget)
                        return i + 1;
        }
        return size;
}
