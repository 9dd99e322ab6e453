/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* bus-introspect.h: introspection XML of one interface, written from its compiled sd_bus_vtable. */
#pragma once

#include <stddef.h>
#include <stdio.h>
#include <systemd/sd-bus.h>

typedef struct BusInterface {
        const char *name;
        const sd_bus_vtable *vtable;
} BusInterface;

/* The daemon's interfaces (Manager, Guest, Nic), in that order. */
const BusInterface *bus_interfaces(size_t *ret_n);
/* NULL when name is none of them. */
const BusInterface *bus_interface_find(const char *name);

/* Writes a whole document (doctype, <node>, the one <interface>) in the layout sd-bus uses for
 * Introspect(), so the result matches `busctl introspect --xml-interface` for that interface.
 * -EINVAL for a malformed vtable or signature. */
int bus_introspect_write(FILE *f, const char *interface, const sd_bus_vtable *vtable);
/* The same into a malloc'd string. */
int bus_introspect_to_string(const char *interface, const sd_bus_vtable *vtable, char **ret);
