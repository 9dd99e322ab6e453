/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* test-bus-introspect.c: the XML written from the compiled vtables has every member of dbus-api.md, and
 * the committed dbus/IFACE.xml files are exactly what the daemon writes (so they cannot drift). */
#include "bus-introspect.h"

#include "bus.h"
#include "cleanup.h"
#include "tests.h"

/* The members of dbus-api.md as they must appear: name, signature, argument names, annotations. */
static const char *const manager_members[] = {
        "  <property name=\"Version\" type=\"s\" access=\"read\">\n"
        "   <annotation name=\"org.freedesktop.DBus.Property.EmitsChangedSignal\" value=\"const\"/>\n"
        "  </property>\n",
        "  <property name=\"Guests\" type=\"ao\" access=\"read\">\n  </property>\n",
        "  <property name=\"DefaultTrust\" type=\"as\" access=\"read\">\n  </property>\n",
        "  <property name=\"EmitSignals\" type=\"b\" access=\"read\">\n"
        "   <annotation name=\"org.freedesktop.DBus.Property.EmitsChangedSignal\" value=\"const\"/>\n"
        "  </property>\n",
        "  <method name=\"ListGuests\">\n"
        "   <arg type=\"a(sso)\" name=\"guests\" direction=\"out\"/>\n"
        "  </method>\n",
        "  <method name=\"GetGuest\">\n"
        "   <arg type=\"s\" name=\"name\" direction=\"in\"/>\n"
        "   <arg type=\"o\" name=\"path\" direction=\"out\"/>\n"
        "  </method>\n",
        "  <method name=\"FindNicByHostInterface\">\n"
        "   <arg type=\"s\" name=\"ifname\" direction=\"in\"/>\n"
        "   <arg type=\"o\" name=\"path\" direction=\"out\"/>\n"
        "  </method>\n",
        "  <method name=\"AttachGuest\">\n"
        "   <arg type=\"s\" name=\"name\" direction=\"in\"/>\n"
        "   <arg type=\"s\" name=\"qmp_socket\" direction=\"in\"/>\n"
        "   <arg type=\"a{sv}\" name=\"options\" direction=\"in\"/>\n"
        "   <arg type=\"o\" name=\"path\" direction=\"out\"/>\n"
        "  </method>\n",
        "  <method name=\"DetachGuest\">\n"
        "   <arg type=\"s\" name=\"name\" direction=\"in\"/>\n"
        "  </method>\n",
        "  <method name=\"Resync\">\n  </method>\n",
        "  <method name=\"GetMetrics\">\n"
        "   <arg type=\"a(sssa(a{ss}d))\" name=\"families\" direction=\"out\"/>\n"
        "  </method>\n",
        NULL,
};

static const char *const guest_members[] = {
        "  <property name=\"Name\" type=\"s\" access=\"read\">\n"
        "   <annotation name=\"org.freedesktop.DBus.Property.EmitsChangedSignal\" value=\"const\"/>\n",
        "  <property name=\"UUID\" type=\"s\" access=\"read\">\n  </property>\n",
        "  <property name=\"QmpSocket\" type=\"s\" access=\"read\">\n"
        "   <annotation name=\"org.freedesktop.DBus.Property.EmitsChangedSignal\" value=\"const\"/>\n",
        "  <property name=\"State\" type=\"s\" access=\"read\">\n  </property>\n",
        "  <property name=\"QemuVersion\" type=\"s\" access=\"read\">\n  </property>\n",
        "  <property name=\"Nics\" type=\"ao\" access=\"read\">\n  </property>\n",
        "  <method name=\"Resync\">\n  </method>\n",
        "  <signal name=\"NetEvent\">\n"
        "   <arg type=\"s\" name=\"event\"/>\n"
        "   <arg type=\"a{sv}\" name=\"data\"/>\n"
        "  </signal>\n",
        NULL,
};

#define CONST_PROPERTY(name, type)                                                                     \
        "  <property name=\"" name "\" type=\"" type "\" access=\"read\">\n"                           \
        "   <annotation name=\"org.freedesktop.DBus.Property.EmitsChangedSignal\" value=\"const\"/>\n" \
        "  </property>\n"
#define CHANGING_PROPERTY(name, type) \
        "  <property name=\"" name "\" type=\"" type "\" access=\"read\">\n  </property>\n"

static const char *const nic_members[] = {
        CONST_PROPERTY("Id", "s"),
        CONST_PROPERTY("Guest", "o"),
        CONST_PROPERTY("QomPath", "s"),
        CHANGING_PROPERTY("HostInterface", "s"),
        CHANGING_PROPERTY("HostInterfaceKind", "s"),
        CHANGING_PROPERTY("ConfiguredMac", "s"),
        CHANGING_PROPERTY("Mac", "s"),
        CHANGING_PROPERTY("Promiscuous", "b"),
        CHANGING_PROPERTY("UnicastMode", "s"),
        CHANGING_PROPERTY("MulticastMode", "s"),
        CHANGING_PROPERTY("VlanMode", "s"),
        CHANGING_PROPERTY("UnicastTable", "as"),
        CHANGING_PROPERTY("MulticastTable", "as"),
        CHANGING_PROPERTY("VlanTable", "aq"),
        CHANGING_PROPERTY("UnicastOverflow", "b"),
        CHANGING_PROPERTY("MulticastOverflow", "b"),
        CHANGING_PROPERTY("Trust", "as"),
        CHANGING_PROPERTY("SyncState", "s"),
        CHANGING_PROPERTY("LastError", "s"),
        CHANGING_PROPERTY("Changes", "t"),
        CHANGING_PROPERTY("LastChangeUSec", "t"),
        "  <method name=\"SetTrust\">\n"
        "   <arg type=\"as\" name=\"capabilities\" direction=\"in\"/>\n"
        "  </method>\n",
        "  <method name=\"Resync\">\n  </method>\n",
        "  <signal name=\"RxFilterChanged\">\n"
        "   <arg type=\"a{sv}\" name=\"filter\"/>\n"
        "   <arg type=\"as\" name=\"changed\"/>\n"
        "   <arg type=\"s\" name=\"sync\"/>\n"
        "  </signal>\n",
        "  <signal name=\"MacChanged\">\n"
        "   <arg type=\"s\" name=\"old\"/>\n"
        "   <arg type=\"s\" name=\"new\"/>\n"
        "   <arg type=\"s\" name=\"reason\"/>\n"
        "  </signal>\n",
        "  <signal name=\"HostSyncFailed\">\n"
        "   <arg type=\"s\" name=\"attribute\"/>\n"
        "   <arg type=\"s\" name=\"error\"/>\n"
        "  </signal>\n",
        NULL,
};

static unsigned count_substrings(const char *hay, const char *needle) {
        unsigned n = 0;
        for (const char *p = hay; (p = strstr(p, needle)); p++)
                n++;
        return n;
}

static void check_interface(const char *name, const char *const *members, unsigned n_properties,
        unsigned n_methods, unsigned n_signals) {
        const BusInterface *iface = bus_interface_find(name);
        _cleanup_free_ char *xml = NULL;

        ASSERT_TRUE(iface);
        ASSERT_OK(bus_introspect_to_string(iface->name, iface->vtable, &xml));
        ASSERT_STR_CONTAINS(xml, "<!DOCTYPE node PUBLIC");
        ASSERT_STR_CONTAINS(xml, "\n<node>\n <interface name=\"");
        ASSERT_STR_CONTAINS(xml, name);
        for (const char *const *m = members; *m; m++)
                ASSERT_STR_CONTAINS(xml, *m);
        /* Nothing beyond the spec, and nothing left to sd-bus's access check: polkit decides. */
        ASSERT_INT_EQ(count_substrings(xml, "<property "), n_properties);
        ASSERT_INT_EQ(count_substrings(xml, "<method "), n_methods);
        ASSERT_INT_EQ(count_substrings(xml, "<signal "), n_signals);
        ASSERT_FALSE(strstr(xml, "org.freedesktop.systemd1.Privileged"));
        ASSERT_TRUE(strstr(xml, " </interface>\n</node>\n"));
}

TEST(manager_members) {
        check_interface(BUS_MANAGER_INTERFACE, manager_members, 4, 7, 0);
}

TEST(guest_members) {
        check_interface(BUS_GUEST_INTERFACE, guest_members, 6, 1, 1);
}

TEST(nic_members) {
        check_interface(BUS_NIC_INTERFACE, nic_members, 21, 2, 3);
}

static char *read_file(const char *path) {
        _cleanup_fclose_ FILE *f = fopen(path, "re");
        _cleanup_free_ char *buf = NULL;
        size_t size = 0;

        if (!f)
                return NULL;
        FILE *out = open_memstream(&buf, &size);
        if (!out)
                return NULL;
        char chunk[4096];
        for (size_t n; (n = fread(chunk, 1, sizeof(chunk), f)) > 0;)
                fwrite(chunk, 1, n, out);
        if (fclose(out) != 0 || ferror(f))
                return NULL;
        return TAKE_PTR(buf);
}

/* dbus/IFACE.xml is regenerated with `guestnetd --bus-introspect=IFACE > dbus/IFACE.xml`. */
TEST(committed_xml_matches_vtables) {
        const char *root = getenv("GUESTNETD_SOURCE_ROOT");
        const BusInterface *ifaces;
        size_t n;

        if (!root)
                TEST_SKIP("GUESTNETD_SOURCE_ROOT is not set (meson test sets it)");
        ifaces = bus_interfaces(&n);
        ASSERT_INT_EQ(n, 3);
        for (size_t i = 0; i < n; i++) {
                _cleanup_free_ char *xml = NULL, *path = NULL, *committed = NULL;

                ASSERT_OK(bus_introspect_to_string(ifaces[i].name, ifaces[i].vtable, &xml));
                ASSERT_TRUE(asprintf(&path, "%s/dbus/%s.xml", root, ifaces[i].name) >= 0);
                committed = read_file(path);
                if (!committed)
                        TEST_FAIL("cannot read %s: %s", path, strerror(errno));
                if (strcmp(xml, committed) != 0)
                        TEST_FAIL("%s differs from the compiled vtable; regenerate it with "
                                  "guestnetd --bus-introspect=%s",
                                path, ifaces[i].name);
        }
}

TEST(interface_lookup) {
        size_t n;
        const BusInterface *ifaces = bus_interfaces(&n);

        ASSERT_INT_EQ(n, 3);
        ASSERT_STR_EQ(ifaces[0].name, BUS_MANAGER_INTERFACE);
        ASSERT_STR_EQ(ifaces[1].name, BUS_GUEST_INTERFACE);
        ASSERT_STR_EQ(ifaces[2].name, BUS_NIC_INTERFACE);
        ASSERT_TRUE(bus_interface_find(BUS_NIC_INTERFACE) == &ifaces[2]);
        ASSERT_TRUE(bus_interface_find("io.guestnetd.GuestNet1") == NULL);
        ASSERT_TRUE(bus_interface_find("list") == NULL);
}

static int handler(sd_bus_message *m, void *userdata, sd_bus_error *error) {
        return 0;
}

/* Container signatures split into one <arg> per complete type; names shared by in and out args; the
 * annotations sd-bus writes for flags we do not use ourselves. */
TEST(signatures_names_and_flags) {
        static const sd_bus_vtable vtable[] = {
                SD_BUS_VTABLE_START(SD_BUS_VTABLE_DEPRECATED),
                SD_BUS_METHOD_WITH_ARGS("M", SD_BUS_ARGS("a{sa(ii)}", a, "(sv)", b, "aav", c),
                        SD_BUS_RESULT("x", d, "a{ss}", e), handler, 0),
                SD_BUS_METHOD("Unnamed", "su", "", handler, SD_BUS_VTABLE_METHOD_NO_REPLY),
                SD_BUS_METHOD("Hidden", "", "", handler, SD_BUS_VTABLE_HIDDEN),
                SD_BUS_PROPERTY("Inv", "s", NULL, 0, SD_BUS_VTABLE_PROPERTY_EMITS_INVALIDATION),
                SD_BUS_PROPERTY("Quiet", "u", NULL, 0, 0),
                SD_BUS_WRITABLE_PROPERTY("W", "b", NULL, NULL, 0, SD_BUS_VTABLE_UNPRIVILEGED),
                SD_BUS_SIGNAL("S", "a(oo)", 0),
                SD_BUS_VTABLE_END,
        };
        _cleanup_free_ char *xml = NULL;

        ASSERT_OK(bus_introspect_to_string("x.Test", vtable, &xml));
        ASSERT_STR_CONTAINS(xml,
                " <interface name=\"x.Test\">\n"
                "  <annotation name=\"org.freedesktop.DBus.Deprecated\" value=\"true\"/>\n");
        ASSERT_STR_CONTAINS(xml,
                "  <method name=\"M\">\n"
                "   <arg type=\"a{sa(ii)}\" name=\"a\" direction=\"in\"/>\n"
                "   <arg type=\"(sv)\" name=\"b\" direction=\"in\"/>\n"
                "   <arg type=\"aav\" name=\"c\" direction=\"in\"/>\n"
                "   <arg type=\"x\" name=\"d\" direction=\"out\"/>\n"
                "   <arg type=\"a{ss}\" name=\"e\" direction=\"out\"/>\n"
                "   <annotation name=\"org.freedesktop.systemd1.Privileged\" value=\"true\"/>\n"
                "  </method>\n");
        ASSERT_STR_CONTAINS(xml,
                "  <method name=\"Unnamed\">\n"
                "   <arg type=\"s\" direction=\"in\"/>\n"
                "   <arg type=\"u\" direction=\"in\"/>\n"
                "   <annotation name=\"org.freedesktop.DBus.Method.NoReply\" value=\"true\"/>\n");
        ASSERT_FALSE(strstr(xml, "Hidden"));
        ASSERT_STR_CONTAINS(xml,
                "  <property name=\"Inv\" type=\"s\" access=\"read\">\n"
                "   <annotation name=\"org.freedesktop.DBus.Property.EmitsChangedSignal\" "
                "value=\"invalidates\"/>\n");
        ASSERT_STR_CONTAINS(xml,
                "  <property name=\"Quiet\" type=\"u\" access=\"read\">\n"
                "   <annotation name=\"org.freedesktop.DBus.Property.EmitsChangedSignal\" "
                "value=\"false\"/>\n");
        ASSERT_STR_CONTAINS(xml,
                "  <property name=\"W\" type=\"b\" access=\"readwrite\">\n"
                "   <annotation name=\"org.freedesktop.DBus.Property.EmitsChangedSignal\" "
                "value=\"false\"/>\n"
                "  </property>\n");
        ASSERT_STR_CONTAINS(xml, "  <signal name=\"S\">\n   <arg type=\"a(oo)\"/>\n  </signal>\n");
}

TEST(malformed_signature) {
        static const sd_bus_vtable vtable[] = {
                SD_BUS_VTABLE_START(0),
                SD_BUS_METHOD("Bad", "a{s", "", handler, 0),
                SD_BUS_VTABLE_END,
        };
        char *xml = NULL;

        ASSERT_ERROR(bus_introspect_to_string("x.Bad", vtable, &xml), EINVAL);
        ASSERT_TRUE(xml == NULL);
}
