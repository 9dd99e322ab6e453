/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* bus-introspect.c: introspection XML of one interface, written from its compiled sd_bus_vtable. */
#include "bus-introspect.h"

#include <errno.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "bus.h"
#include "cleanup.h"

/* Byte for byte what sd-bus (bus-introspect.c) writes, so `busctl introspect --xml-interface` and
 * the dbus/ XML files can be compared without normalizing. */
#define INTROSPECT_DOCTYPE                                                                   \
        "<!DOCTYPE node PUBLIC \"-//freedesktop//DTD D-BUS Object Introspection 1.0//EN\"\n" \
        "\"https://www.freedesktop.org/standards/dbus/1.0/introspect.dtd\">\n"

static const BusInterface interfaces[] = {
        { BUS_MANAGER_INTERFACE, bus_manager_vtable },
        { BUS_GUEST_INTERFACE, bus_guest_vtable },
        { BUS_NIC_INTERFACE, bus_nic_vtable },
};

const BusInterface *bus_interfaces(size_t *ret_n) {
        *ret_n = ELEMENTSOF(interfaces);
        return interfaces;
}

const BusInterface *bus_interface_find(const char *name) {
        for (size_t i = 0; i < ELEMENTSOF(interfaces); i++)
                if (strcmp(interfaces[i].name, name) == 0)
                        return &interfaces[i];
        return NULL;
}

/* Length of the first complete type in signature, or 0 if it is malformed. */
static size_t signature_element_length(const char *s) {
        switch (s[0]) {
        case 'y':
        case 'b':
        case 'n':
        case 'q':
        case 'i':
        case 'u':
        case 'x':
        case 't':
        case 'd':
        case 's':
        case 'o':
        case 'g':
        case 'h':
        case 'v':
                return 1;
        case 'a': {
                size_t l = signature_element_length(s + 1);
                return l ? 1 + l : 0;
        }
        case '(':
        case '{': {
                char close = s[0] == '(' ? ')' : '}';
                size_t i = 1;
                while (s[i] != close) {
                        size_t l = signature_element_length(s + i);
                        if (l == 0)
                                return 0;
                        i += l;
                }
                return i + 1;
        }
        default:
                return 0;
        }
}

/* One <arg> per complete type; *names walks the NUL-separated name list shared by in and out args. */
static int write_arguments(FILE *f, const char *signature, const char **names, const char *direction) {
        while (*signature) {
                size_t l = signature_element_length(signature);
                if (l == 0)
                        return -EINVAL;

                fprintf(f, "   <arg type=\"%.*s\"", (int)l, signature);
                if (**names != '\0') {
                        fprintf(f, " name=\"%s\"", *names);
                        *names += strlen(*names) + 1;
                }
                if (direction)
                        fprintf(f, " direction=\"%s\"/>\n", direction);
                else
                        fputs("/>\n", f);
                signature += l;
        }
        return 0;
}

/* The annotations sd-bus adds, in its order. Our bus connection is not "trusted" (a system bus), so
 * members without SD_BUS_VTABLE_UNPRIVILEGED are marked Privileged, as sd-bus marks them. */
static void write_flags(FILE *f, int type, uint64_t flags) {
        if (flags & SD_BUS_VTABLE_DEPRECATED)
                fputs("   <annotation name=\"org.freedesktop.DBus.Deprecated\" value=\"true\"/>\n", f);
        if (type == _SD_BUS_VTABLE_METHOD && (flags & SD_BUS_VTABLE_METHOD_NO_REPLY))
                fputs("   <annotation name=\"org.freedesktop.DBus.Method.NoReply\" value=\"true\"/>\n", f);
        if (type == _SD_BUS_VTABLE_PROPERTY || type == _SD_BUS_VTABLE_WRITABLE_PROPERTY) {
                if (flags & SD_BUS_VTABLE_PROPERTY_EXPLICIT)
                        fputs("   <annotation name=\"org.freedesktop.systemd1.Explicit\" value=\"true\"/>\n",
                                f);
                if (flags & SD_BUS_VTABLE_PROPERTY_CONST)
                        fputs("   <annotation name=\"org.freedesktop.DBus.Property.EmitsChangedSignal\" "
                              "value=\"const\"/>\n",
                                f);
                else if (flags & SD_BUS_VTABLE_PROPERTY_EMITS_INVALIDATION)
                        fputs("   <annotation name=\"org.freedesktop.DBus.Property.EmitsChangedSignal\" "
                              "value=\"invalidates\"/>\n",
                                f);
                else if (!(flags & SD_BUS_VTABLE_PROPERTY_EMITS_CHANGE))
                        fputs("   <annotation name=\"org.freedesktop.DBus.Property.EmitsChangedSignal\" "
                              "value=\"false\"/>\n",
                                f);
        }
        if ((type == _SD_BUS_VTABLE_METHOD || type == _SD_BUS_VTABLE_WRITABLE_PROPERTY) &&
                !(flags & SD_BUS_VTABLE_UNPRIVILEGED))
                fputs("   <annotation name=\"org.freedesktop.systemd1.Privileged\" value=\"true\"/>\n", f);
}

static const char *strempty(const char *s) {
        return s ? s : "";
}

int bus_introspect_write(FILE *f, const char *interface, const sd_bus_vtable *vtable) {
        int r;

        if (vtable[0].type != _SD_BUS_VTABLE_START)
                return -EINVAL;
        /* Entries are element_size apart: a vtable compiled against another libsystemd still walks. */
        size_t step = vtable[0].x.start.element_size;
        bool has_names = vtable[0].x.start.features & _SD_BUS_VTABLE_PARAM_NAMES;
        if (step < offsetof(sd_bus_vtable, x))
                return -EINVAL;

        fputs(INTROSPECT_DOCTYPE "<node>\n", f);
        fprintf(f, " <interface name=\"%s\">\n", interface);

        for (const sd_bus_vtable *v = vtable; v->type != _SD_BUS_VTABLE_END;
                v = (const sd_bus_vtable *)((const uint8_t *)v + step)) {
                const char *names = "";

                if (v->type != _SD_BUS_VTABLE_START && (v->flags & SD_BUS_VTABLE_HIDDEN))
                        continue;

                switch (v->type) {
                case _SD_BUS_VTABLE_START:
                        if (v->flags & SD_BUS_VTABLE_DEPRECATED)
                                fputs("  <annotation name=\"org.freedesktop.DBus.Deprecated\" "
                                      "value=\"true\"/>\n",
                                        f);
                        break;
                case _SD_BUS_VTABLE_METHOD:
                        fprintf(f, "  <method name=\"%s\">\n", v->x.method.member);
                        if (has_names)
                                names = strempty(v->x.method.names);
                        r = write_arguments(f, strempty(v->x.method.signature), &names, "in");
                        if (r >= 0)
                                r = write_arguments(f, strempty(v->x.method.result), &names, "out");
                        if (r < 0)
                                return r;
                        write_flags(f, v->type, v->flags);
                        fputs("  </method>\n", f);
                        break;
                case _SD_BUS_VTABLE_PROPERTY:
                case _SD_BUS_VTABLE_WRITABLE_PROPERTY:
                        fprintf(f, "  <property name=\"%s\" type=\"%s\" access=\"%s\">\n",
                                v->x.property.member, v->x.property.signature,
                                v->type == _SD_BUS_VTABLE_WRITABLE_PROPERTY ? "readwrite" : "read");
                        write_flags(f, v->type, v->flags);
                        fputs("  </property>\n", f);
                        break;
                case _SD_BUS_VTABLE_SIGNAL:
                        fprintf(f, "  <signal name=\"%s\">\n", v->x.signal.member);
                        if (has_names)
                                names = strempty(v->x.signal.names);
                        r = write_arguments(f, strempty(v->x.signal.signature), &names, NULL);
                        if (r < 0)
                                return r;
                        write_flags(f, v->type, v->flags);
                        fputs("  </signal>\n", f);
                        break;
                default:
                        return -EINVAL;
                }
        }

        fputs(" </interface>\n</node>\n", f);
        return 0;
}

int bus_introspect_to_string(const char *interface, const sd_bus_vtable *vtable, char **ret) {
        _cleanup_free_ char *buf = NULL;
        size_t size = 0;
        int r;

        FILE *f = open_memstream(&buf, &size);
        if (!f)
                return -ENOMEM;
        r = bus_introspect_write(f, interface, vtable);
        if (fclose(f) != 0 && r >= 0)
                r = -ENOMEM;
        if (r < 0)
                return r;
        *ret = TAKE_PTR(buf);
        return 0;
}
