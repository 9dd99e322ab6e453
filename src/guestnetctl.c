/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* guestnetctl.c: the command line client of guestnetd's D-Bus API, in the spirit of networkctl. */
#include <getopt.h>
#include <inttypes.h>
#include <locale.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>
#include <strings.h>
#include <sys/un.h>
#include <systemd/sd-bus.h>
#include <systemd/sd-event.h>
#include <time.h>
#include <wchar.h>

#include "bus.h"
#include "cleanup.h"
#include "escape.h"
#include "guestnetctl-json.h"
#include "guestnetctl-term.h"
#include "version.h"

/* Exit statuses, documented in guestnetctl(1). A command returns a negative errno for an unexpected
 * failure (exit 1, after saying what failed) and one of these (>= 0) otherwise, already explained on
 * stderr. */
typedef enum ExitStatus {
        EXIT_OK = 0,
        EXIT_FAIL = 1,
        EXIT_USAGE = 2,
        EXIT_NO_SUCH_OBJECT = 3,
        EXIT_NOT_AUTHORIZED = 4,
        EXIT_NOT_RUNNING = 5,
        EXIT_INVALID_ARGUMENT = 6,
        EXIT_NOT_CONNECTED = 7,
} ExitStatus;

#define LABEL_WIDTH 17

typedef enum JsonMode {
        JSON_OFF,
        JSON_SHORT, /* one line per object */
        JSON_PRETTY,
} JsonMode;

/* Where the daemon is: this system's bus, a host's over ssh (-H) or a container's (-M). */
typedef enum Transport {
        TRANSPORT_LOCAL,
        TRANSPORT_REMOTE,
        TRANSPORT_MACHINE,
} Transport;

/* The widest a list column gets on a terminal without --full. */
#define COLUMN_MAX 32

static JsonMode arg_json = JSON_OFF;
static Transport arg_transport = TRANSPORT_LOCAL;
static const char *arg_host = NULL;
static bool arg_quiet = false;
static bool arg_full = false;
static bool arg_pager = true;
static bool arg_legend = true;
static bool arg_ask_password = true;
static const char *arg_trust = NULL;

static bool streq(const char *a, const char *b) {
        return strcmp(a, b) == 0;
}

static bool startswith(const char *s, const char *prefix) {
        return strncmp(s, prefix, strlen(prefix)) == 0;
}

static const char *strdash(const char *s) {
        return s && s[0] != '\0' ? s : "-";
}

static const char *yes_no(bool b) {
        return b ? "yes" : "no";
}

/* A malloc'd formatted string, NULL on OOM. */
static char *strdup_printf(const char *format, ...) _printf_(1, 2);
static char *strdup_printf(const char *format, ...) {
        va_list ap;
        char *s;
        int r;

        va_start(ap, format);
        r = vasprintf(&s, format, ap);
        va_end(ap);
        return r < 0 ? NULL : s;
}

static int usage_error(const char *format, ...) _printf_(1, 2);
static int usage_error(const char *format, ...) {
        va_list ap;

        va_start(ap, format);
        vfprintf(stderr, format, ap);
        va_end(ap);
        fputc('\n', stderr);
        return EXIT_USAGE;
}

static int log_oom(void) {
        fputs("Out of memory.\n", stderr);
        return -ENOMEM;
}

static int log_failed(int r, const char *what) {
        fprintf(stderr, "Failed to %s: %s\n", what, strerror(-r));
        return r;
}

/* ---- errors from the bus -------------------------------------------------------------------------- */

/* Why the daemon can't be reached, in the words of the bus (dbus-daemon or dbus-broker, with or
 * without systemd activation); NULL when the error is of another kind. */
static const char *not_running_reason(const sd_bus_error *e, int r) {
        if (sd_bus_error_has_names(e, SD_BUS_ERROR_SERVICE_UNKNOWN))
                return "guestnetd is not running, and the bus cannot start it: it is not installed there "
                       "(no "
                       "D-Bus service file for " BUS_NAME ").";
        if (sd_bus_error_has_names(e, SD_BUS_ERROR_NAME_HAS_NO_OWNER))
                return "guestnetd is not running.";
        if (e->name &&
                (startswith(e->name, "org.freedesktop.DBus.Error.Spawn.") ||
                        startswith(e->name, "org.freedesktop.systemd1.")))
                return "guestnetd is not running: starting it by D-Bus activation failed";
        if (!e->name && (r == -ECONNREFUSED || r == -ENOENT))
                return "Cannot reach guestnetd: the system bus is down";
        if (sd_bus_error_has_names(e, SD_BUS_ERROR_DISCONNECTED, SD_BUS_ERROR_NO_SERVER) ||
                (!e->name && r == -ECONNRESET))
                return "Cannot reach guestnetd: lost the connection to the bus";
        return NULL;
}

static bool error_is_unknown_object(const sd_bus_error *e) {
        return sd_bus_error_has_names(e, SD_BUS_ERROR_UNKNOWN_OBJECT, SD_BUS_ERROR_UNKNOWN_INTERFACE);
}

/* One line on stderr for a failed call ("what" says what we tried, for errors that need it) and the exit
 * status of the error's class. */
static int log_call_error(const sd_bus_error *e, int r, const char *what) {
        _cleanup_free_ char *escaped =
                e->message && e->message[0] != '\0' ? escape_nonprintable_dup(e->message) : NULL;
        const char *msg = escaped, *why;

        if (sd_bus_error_has_names(e, SD_BUS_ERROR_ACCESS_DENIED)) {
                /* The daemon's messages may say "Not authorized" already. */
                if (msg && startswith(msg, "Not authorized"))
                        fprintf(stderr, "%s\n", msg);
                else
                        fprintf(stderr, "Not authorized: %s\n", msg ?: "access denied.");
                return EXIT_NOT_AUTHORIZED;
        }
        if (sd_bus_error_has_names(e, SD_BUS_ERROR_INTERACTIVE_AUTHORIZATION_REQUIRED)) {
                fprintf(stderr, "Not authorized: %s\n",
                        msg
                                ?: arg_ask_password
                                ? "interactive authentication required (no polkit agent "
                                  "answered)."
                                : "interactive authentication required, and --no-ask-password "
                                  "was given.");
                return EXIT_NOT_AUTHORIZED;
        }
        why = not_running_reason(e, r);
        if (why) {
                /* The activation's and the bus's own messages say what failed. */
                if (why[strlen(why) - 1] == '.')
                        fprintf(stderr, "%s\n", why);
                else
                        fprintf(stderr, "%s: %s\n", why, msg ?: strerror(-r));
                return EXIT_NOT_RUNNING;
        }
        if (sd_bus_error_has_names(
                    e, BUS_ERROR_NO_SUCH_GUEST, BUS_ERROR_NO_SUCH_NIC, SD_BUS_ERROR_UNKNOWN_OBJECT)) {
                fprintf(stderr, "%s\n", msg ?: "No such object.");
                return EXIT_NO_SUCH_OBJECT;
        }
        if (sd_bus_error_has_names(e, BUS_ERROR_INVALID_ARGUMENT, SD_BUS_ERROR_INVALID_ARGS)) {
                fprintf(stderr, "Invalid argument: %s\n", msg ?: "rejected by guestnetd.");
                return EXIT_INVALID_ARGUMENT;
        }
        if (sd_bus_error_has_names(e, BUS_ERROR_GUEST_NOT_CONNECTED)) {
                fprintf(stderr, "%s\n", msg ?: "The guest is not connected.");
                return EXIT_NOT_CONNECTED;
        }
        fprintf(stderr, "Failed to %s: %s\n", what, msg ?: strerror(-r));
        return EXIT_FAIL;
}

/* ---- the connection and paths --------------------------------------------------------------------- */

static int connect_bus(sd_bus **ret) {
        _cleanup_(sd_bus_flush_close_unrefp) sd_bus *bus = NULL;
        int r;

        /* sd-bus takes the address from DBUS_SYSTEM_BUS_ADDRESS when it is set; -H runs
         * "systemd-stdio-bridge" over ssh, -M enters the container's namespaces (as busctl does). */
        if (arg_transport == TRANSPORT_REMOTE)
                r = sd_bus_open_system_remote(&bus, arg_host);
        else if (arg_transport == TRANSPORT_MACHINE)
                r = sd_bus_open_system_machine(&bus, arg_host);
        else
                r = sd_bus_open_system(&bus);
        if (r < 0) {
                if (arg_transport == TRANSPORT_LOCAL) {
                        const char *addr = getenv("DBUS_SYSTEM_BUS_ADDRESS");
                        fprintf(stderr, "Cannot reach guestnetd: the system bus is down (%s: %s).\n",
                                addr ?: "unix:path=/run/dbus/system_bus_socket", strerror(-r));
                } else
                        fprintf(stderr,
                                "Cannot reach guestnetd: cannot connect to the system bus of %s '%s': %s\n",
                                arg_transport == TRANSPORT_REMOTE ? "host" : "machine", arg_host,
                                strerror(-r));
                return EXIT_NOT_RUNNING;
        }
        *ret = TAKE_PTR(bus);
        return 0;
}

/* The guest's object path from Manager.GetGuest(): the daemon says best whether it knows the guest. */
static int get_guest_path(sd_bus *bus, const char *name, char **ret) {
        _cleanup_(sd_bus_error_free) sd_bus_error error = SD_BUS_ERROR_NULL;
        _cleanup_(sd_bus_message_unrefp) sd_bus_message *reply = NULL;
        const char *path;
        int r;

        r = sd_bus_call_method(
                bus, BUS_NAME, BUS_ROOT_PATH, BUS_MANAGER_INTERFACE, "GetGuest", &error, &reply, "s", name);
        if (r < 0)
                return log_call_error(&error, r, "look up the guest");
        r = sd_bus_message_read(reply, "o", &path);
        if (r < 0)
                return log_failed(r, "parse the reply of GetGuest()");
        *ret = strdup(path);
        return *ret ? 0 : log_oom();
}

/* BUS_ROOT_PATH/guest/<enc name>/nic/<enc id>, encoded as the daemon does (nic_bus_path()). */
static int nic_path(const char *guest, const char *nic, char **ret) {
        int r;

        r = sd_bus_path_encode_many(ret, BUS_ROOT_PATH "/guest/%/nic/%", guest, nic);
        return r < 0 ? log_oom() : 0;
}

/* "…/guest/<enc name>[/nic/<enc id>]" back to the names; 0 when path is neither. */
static int decode_path(const char *path, char **ret_guest, char **ret_nic) {
        int r;

        *ret_guest = *ret_nic = NULL;
        r = sd_bus_path_decode_many(path, BUS_ROOT_PATH "/guest/%/nic/%", ret_guest, ret_nic);
        if (r != 0)
                return r;
        return sd_bus_path_decode_many(path, BUS_ROOT_PATH "/guest/%", ret_guest);
}

/* A NIC object's properties, or "Guest 'G' has no NIC 'N'." when it is not there. */
static int get_nic_properties(sd_bus *bus, const char *guest, const char *nic, json_object **ret) {
        _cleanup_(sd_bus_error_free) sd_bus_error error = SD_BUS_ERROR_NULL;
        _cleanup_free_ char *path = NULL;
        json_object *props;
        int r;

        r = nic_path(guest, nic, &path);
        if (r != 0)
                return r;
        r = bus_get_all_properties_json(bus, BUS_NAME, path, BUS_NIC_INTERFACE, &error, &props);
        if (r < 0 && error_is_unknown_object(&error)) {
                fprintf(stderr, "Guest '%s' has no NIC '%s'.\n", guest, nic);
                return EXIT_NO_SUCH_OBJECT;
        }
        if (r < 0)
                return log_call_error(&error, r, "read the NIC's properties");
        if (json_object_object_add(props, "Path", json_object_new_string(path)) < 0) {
                json_object_put(props);
                return log_oom();
        }
        *ret = props;
        return 0;
}

static int get_guest_properties(sd_bus *bus, const char *path, json_object **ret) {
        _cleanup_(sd_bus_error_free) sd_bus_error error = SD_BUS_ERROR_NULL;
        json_object *props;
        int r;

        r = bus_get_all_properties_json(bus, BUS_NAME, path, BUS_GUEST_INTERFACE, &error, &props);
        if (r < 0)
                return log_call_error(&error, r, "read the guest's properties");
        if (json_object_object_add(props, "Path", json_object_new_string(path)) < 0) {
                json_object_put(props);
                return log_oom();
        }
        *ret = props;
        return 0;
}

static int print_json(json_object *o) {
        /* short: one line, which is also what the bash completion greps. */
        const char *s = json_object_to_json_string_ext(o,
                (arg_json == JSON_PRETTY ? JSON_C_TO_STRING_PRETTY | JSON_C_TO_STRING_SPACED
                                         : JSON_C_TO_STRING_PLAIN) |
                        JSON_C_TO_STRING_NOSLASHESCAPE);
        if (!s)
                return log_oom();
        puts(s);
        return 0;
}

/* ---- output helpers -------------------------------------------------------------------------------- */

/* Columns a character takes on a terminal (wcwidth: 2 for CJK, 0 for combining marks); one when the
 * locale can't tell. */
static size_t char_width(const char *s, size_t *ret_len) {
        mbstate_t st = {};
        wchar_t wc;
        size_t n = mbrtowc(&wc, s, MB_CUR_MAX, &st);
        int w;

        if (n == (size_t)-1 || n == (size_t)-2 || n == 0) {
                unsigned cp;
                n = utf8_sequence(s, &cp);
                *ret_len = n > 0 ? n : 1;
                return 1;
        }
        *ret_len = n;
        w = wcwidth(wc);
        return w < 0 ? 1 : (size_t)w;
}

static size_t display_width(const char *s) {
        size_t w = 0, len;
        for (; *s; s += len)
                w += char_width(s, &len);
        return w;
}

/* On a terminal and without --full, a column is at most COLUMN_MAX wide: longer text ends in "…". */
static size_t column_width(size_t w) {
        return !arg_full && isatty(STDOUT_FILENO) && w > COLUMN_MAX ? COLUMN_MAX : w;
}

static void print_padded(const char *s, size_t width) {
        size_t w = display_width(s), len;

        if (w > width) {
                for (w = 0; *s; s += len) {
                        size_t cw = char_width(s, &len);
                        if (w + cw + 1 > width)
                                break;
                        fwrite(s, 1, len, stdout);
                        w += cw;
                }
                fputs("…", stdout);
                w++;
        } else
                fputs(s, stdout);
        for (; w < width; w++)
                putchar(' ');
}

static const char *state_color(const char *state) {
        if (streq(state, "connected") || streq(state, "in-sync"))
                return ansi(ANSI_GREEN);
        if (streq(state, "disconnected") || streq(state, "failed"))
                return ansi(ANSI_RED);
        if (streq(state, "connecting") || streq(state, "pending"))
                return ansi(ANSI_YELLOW);
        if (streq(state, "unsupported"))
                return ansi(ANSI_GREY);
        return "";
}

static void print_label(const char *label) {
        printf("%*s: ", LABEL_WIDTH, label);
}

static void print_field(const char *label, const char *value) {
        print_label(label);
        printf("%s\n", value);
}

/* A list property, one item per line under the label; nothing when empty. */
static void print_list_field(json_object *props, const char *label, const char *key) {
        size_t n = json_get_array_length(props, key);

        for (size_t i = 0; i < n; i++) {
                json_object *item = json_get_array_item(props, key, i);
                if (i == 0)
                        print_label(label);
                else
                        printf("%*s  ", LABEL_WIDTH, "");
                printf("%s\n", json_object_get_string(item));
        }
}

/* Joins a list property with sep; "none" when empty. Returns a malloc'd string. */
static char *join_list(json_object *props, const char *key, const char *sep) {
        size_t n = json_get_array_length(props, key), len = 1;
        char *s;

        if (n == 0)
                return strdup("none");
        for (size_t i = 0; i < n; i++)
                len += strlen(json_object_get_string(json_get_array_item(props, key, i))) + strlen(sep);
        s = calloc(1, len);
        for (size_t i = 0; s && i < n; i++) {
                if (i > 0)
                        strcat(s, sep);
                strcat(s, json_object_get_string(json_get_array_item(props, key, i)));
        }
        return s;
}

static void format_realtime(uint64_t usec, bool with_usec, char *buf, size_t size) {
        time_t sec = (time_t)(usec / 1000000);
        struct tm tm;
        size_t n;

        if (!localtime_r(&sec, &tm)) {
                snprintf(buf, size, "@%" PRIu64, usec);
                return;
        }
        n = strftime(buf, size, with_usec ? "%Y-%m-%d %H:%M:%S" : "%a %Y-%m-%d %H:%M:%S %Z", &tm);
        if (with_usec && n > 0)
                snprintf(buf + n, size - n, ".%06u", (unsigned)(usec % 1000000));
}

/* ---- list ------------------------------------------------------------------------------------------ */

static int verb_list(sd_bus *bus, int argc, char **argv) {
        _cleanup_(sd_bus_error_free) sd_bus_error error = SD_BUS_ERROR_NULL;
        _cleanup_(sd_bus_message_unrefp) sd_bus_message *reply = NULL;
        _cleanup_(json_object_putp) json_object *guests = json_object_new_array();
        const char *name, *uuid, *path;
        size_t w_name = strlen("GUEST"), w_state = strlen("STATE"), n;
        _cleanup_(json_object_putp) json_object *shown = NULL;
        int r;

        if (!guests)
                return log_oom();
        r = sd_bus_call_method(
                bus, BUS_NAME, BUS_ROOT_PATH, BUS_MANAGER_INTERFACE, "ListGuests", &error, &reply, NULL);
        if (r < 0)
                return log_call_error(&error, r, "list guests");
        r = sd_bus_message_enter_container(reply, 'a', "(sso)");
        if (r < 0)
                return log_failed(r, "parse the reply of ListGuests()");
        while ((r = sd_bus_message_read(reply, "(sso)", &name, &uuid, &path)) > 0) {
                _cleanup_(sd_bus_error_free) sd_bus_error e = SD_BUS_ERROR_NULL;
                json_object *props = NULL, *ids;

                r = bus_get_all_properties_json(bus, BUS_NAME, path, BUS_GUEST_INTERFACE, &e, &props);
                if (r < 0 && error_is_unknown_object(&e))
                        continue; /* detached meanwhile */
                if (r < 0)
                        return log_call_error(&e, r, "read a guest's properties");
                ids = json_object_new_array();
                if (!ids || json_object_array_add(guests, props) < 0) {
                        json_object_put(ids);
                        json_object_put(props);
                        return log_oom();
                }
                for (size_t i = 0; i < json_get_array_length(props, "Nics"); i++) {
                        _cleanup_free_ char *g = NULL, *nic = NULL;
                        const char *p = json_object_get_string(json_get_array_item(props, "Nics", i));
                        if (decode_path(p, &g, &nic) > 0 && nic)
                                json_object_array_add(ids, json_object_new_string(nic));
                }
                json_object_object_add(props, "Path", json_object_new_string(path));
                json_object_object_add(props, "NicIds", ids);
        }
        if (r < 0)
                return log_failed(r, "parse the reply of ListGuests()");

        n = json_object_array_length(guests);
        if (arg_json) {
                _cleanup_(json_object_putp) json_object *o = json_object_new_object();
                if (!o || json_object_object_add(o, "guests", json_object_get(guests)) < 0)
                        return log_oom();
                return print_json(o);
        }

        shown = json_escape_strings(guests);
        if (!shown)
                return log_oom();
        for (size_t i = 0; i < n; i++) {
                json_object *g = json_object_array_get_idx(shown, i);
                if (display_width(json_get_string(g, "Name")) > w_name)
                        w_name = display_width(json_get_string(g, "Name"));
                if (display_width(json_get_string(g, "State")) > w_state)
                        w_state = display_width(json_get_string(g, "State"));
        }
        w_name = column_width(w_name);
        w_state = column_width(w_state);

        if (arg_legend) {
                printf("%s", ansi(ANSI_UNDERLINE));
                print_padded("GUEST", w_name + 1);
                print_padded("STATE", w_state + 1);
                printf("NICS UUID%s\n", ansi(ANSI_NORMAL));
        }
        for (size_t i = 0; i < n; i++) {
                json_object *g = json_object_array_get_idx(shown, i);
                const char *state = json_get_string(g, "State");

                print_padded(json_get_string(g, "Name"), w_name);
                putchar(' ');
                printf("%s", state_color(state));
                print_padded(state, w_state);
                printf("%s %4zu %s\n", ansi(ANSI_NORMAL), json_get_array_length(g, "NicIds"),
                        strdash(json_get_string(g, "UUID")));
        }
        if (arg_legend)
                printf("\n%zu guest%s listed.\n", n, n == 1 ? "" : "s");
        return 0;
}

/* ---- status and nic -------------------------------------------------------------------------------- */

static void print_header(const char *state, const char *title) {
        printf("%s●%s %s%s%s\n", state_color(state), ansi(ANSI_NORMAL), ansi(ANSI_BOLD), title,
                ansi(ANSI_NORMAL));
}

static void print_nic(json_object *nic, const char *guest) {
        _cleanup_free_ char *title = NULL, *trust = NULL, *vlans = NULL;
        const char *sync = json_get_string(nic, "SyncState");
        const char *ifname = json_get_string(nic, "HostInterface");
        const char *mac = json_get_string(nic, "Mac"), *configured = json_get_string(nic, "ConfiguredMac");
        const char *error = json_get_string(nic, "LastError");
        uint64_t changes = json_get_uint64(nic, "Changes");
        char buf[128];

        if (asprintf(&title, "%s (guest %s)", json_get_string(nic, "Id"), guest) < 0)
                title = NULL;
        print_header(sync, title ?: json_get_string(nic, "Id"));
        print_field("QOM path", strdash(json_get_string(nic, "QomPath")));
        print_label("Host interface");
        if (ifname[0] != '\0')
                printf("%s (%s)\n", ifname, json_get_string(nic, "HostInterfaceKind"));
        else
                printf("unknown\n");
        print_label("MAC");
        printf("%s", strdash(mac));
        if (configured[0] != '\0' && strcasecmp(configured, mac) != 0)
                printf(" (configured %s)", configured);
        printf("\n");
        print_field("Promiscuous", yes_no(json_get_bool(nic, "Promiscuous")));
        print_label("Unicast");
        printf("%s%s\n", json_get_string(nic, "UnicastMode"),
                json_get_bool(nic, "UnicastOverflow") ? " (table overflowed)" : "");
        print_list_field(nic, "Unicast table", "UnicastTable");
        print_label("Multicast");
        printf("%s%s\n", json_get_string(nic, "MulticastMode"),
                json_get_bool(nic, "MulticastOverflow") ? " (table overflowed)" : "");
        print_list_field(nic, "Multicast table", "MulticastTable");
        print_field("VLAN", json_get_string(nic, "VlanMode"));
        if (json_get_array_length(nic, "VlanTable") > 0) {
                vlans = join_list(nic, "VlanTable", " ");
                print_field("VLAN table", vlans ?: "?");
        }
        trust = join_list(nic, "Trust", " ");
        print_field("Trust", trust ?: "?");
        print_label("Sync state");
        printf("%s%s%s\n", state_color(sync), sync, ansi(ANSI_NORMAL));
        if (error[0] != '\0') {
                print_label("Last error");
                printf("%s%s%s\n", ansi(ANSI_RED), error, ansi(ANSI_NORMAL));
        }
        print_label("Changes");
        if (changes > 0) {
                format_realtime(json_get_uint64(nic, "LastChangeUSec"), false, buf, sizeof(buf));
                printf("%" PRIu64 " (last %s)\n", changes, buf);
        } else
                printf("0\n");
}

static int verb_status(sd_bus *bus, int argc, char **argv) {
        _cleanup_(json_object_putp) json_object *guest = NULL, *nics = json_object_new_array();
        _cleanup_free_ char *path = NULL;
        int r;

        if (!nics)
                return log_oom();
        r = get_guest_path(bus, argv[1], &path);
        if (r != 0)
                return r;
        r = get_guest_properties(bus, path, &guest);
        if (r != 0)
                return r;
        for (size_t i = 0; i < json_get_array_length(guest, "Nics"); i++) {
                const char *p = json_object_get_string(json_get_array_item(guest, "Nics", i));
                _cleanup_(sd_bus_error_free) sd_bus_error error = SD_BUS_ERROR_NULL;
                json_object *nic;

                r = bus_get_all_properties_json(bus, BUS_NAME, p, BUS_NIC_INTERFACE, &error, &nic);
                if (r < 0 && error_is_unknown_object(&error))
                        continue; /* unplugged meanwhile */
                if (r < 0)
                        return log_call_error(&error, r, "read a NIC's properties");
                json_object_object_add(nic, "Path", json_object_new_string(p));
                if (json_object_array_add(nics, nic) < 0) {
                        json_object_put(nic);
                        return log_oom();
                }
        }

        if (arg_json) {
                _cleanup_(json_object_putp) json_object *o = json_object_new_object();
                if (!o || json_object_object_add(o, "guest", json_object_get(guest)) < 0 ||
                        json_object_object_add(o, "nics", json_object_get(nics)) < 0)
                        return log_oom();
                return print_json(o);
        }

        _cleanup_(json_object_putp) json_object *g = json_escape_strings(guest),
                                                *ns = json_escape_strings(nics);
        if (!g || !ns)
                return log_oom();
        const char *name = json_get_string(g, "Name"), *state = json_get_string(g, "State");
        print_header(state, name);
        print_label("State");
        printf("%s%s%s\n", state_color(state), state, ansi(ANSI_NORMAL));
        print_field("UUID", strdash(json_get_string(g, "UUID")));
        print_field("QEMU version", strdash(json_get_string(g, "QemuVersion")));
        print_field("QMP socket", json_get_string(g, "QmpSocket"));
        print_label("NICs");
        for (size_t i = 0; i < json_object_array_length(ns); i++)
                printf("%s%s", i > 0 ? ", " : "", json_get_string(json_object_array_get_idx(ns, i), "Id"));
        printf("%s\n", json_object_array_length(ns) == 0 ? "none" : "");
        for (size_t i = 0; i < json_object_array_length(ns); i++) {
                printf("\n");
                print_nic(json_object_array_get_idx(ns, i), name);
        }
        return 0;
}

static int verb_nic(sd_bus *bus, int argc, char **argv) {
        _cleanup_(json_object_putp) json_object *nic = NULL;
        _cleanup_free_ char *path = NULL;
        int r;

        r = get_guest_path(bus, argv[1], &path);
        if (r != 0)
                return r;
        r = get_nic_properties(bus, argv[1], argv[2], &nic);
        if (r != 0)
                return r;
        if (arg_json)
                return print_json(nic);
        _cleanup_(json_object_putp) json_object *shown = json_escape_strings(nic);
        _cleanup_free_ char *guest = escape_nonprintable_dup(argv[1]);
        if (!shown || !guest)
                return log_oom();
        print_nic(shown, guest);
        return 0;
}

/* ---- monitor --------------------------------------------------------------------------------------- */

typedef struct Monitor {
        const char *guest; /* only this guest's objects, or NULL */
        const char *guest_path;
} Monitor;

static bool monitor_wants(const Monitor *m, const char *path) {
        size_t l;

        if (!m->guest_path)
                return true;
        l = strlen(m->guest_path);
        return strncmp(path, m->guest_path, l) == 0 && (path[l] == '\0' || path[l] == '/');
}

/* A filter value for one line: booleans yes/no, lists joined with ',' ("none" when empty). */
static void fput_value(json_object *v, FILE *f) {
        if (json_object_is_type(v, json_type_boolean))
                fputs(yes_no(json_object_get_boolean(v)), f);
        else if (json_object_is_type(v, json_type_array)) {
                size_t n = json_object_array_length(v);
                if (n == 0)
                        fputs("none", f);
                for (size_t i = 0; i < n; i++)
                        fprintf(f, "%s%s", i > 0 ? "," : "",
                                json_object_get_string(json_object_array_get_idx(v, i)));
        } else if (json_object_is_type(v, json_type_object)) {
                bool first = true;
                json_object_object_foreach(v, key, val) {
                        fprintf(f, "%s%s=", first ? "" : " ", key);
                        fput_value(val, f);
                        first = false;
                }
        } else
                fputs(json_object_get_string(v), f);
}

/* The event's details after "TYPE: " in the human format. */
static void fput_details(const char *type, json_object *ev, FILE *f) {
        json_object *v;

        if (streq(type, "RxFilterChanged")) {
                json_object *filter = NULL, *changed = NULL;
                size_t n;

                json_object_object_get_ex(ev, "filter", &filter);
                json_object_object_get_ex(ev, "changed", &changed);
                n = changed ? json_object_array_length(changed) : 0;
                if (n == 0)
                        fputs("no field changed", f);
                for (size_t i = 0; i < n; i++) {
                        const char *key = json_object_get_string(json_object_array_get_idx(changed, i));
                        fprintf(f, "%s%s=", i > 0 ? " " : "", key);
                        if (filter && json_object_object_get_ex(filter, key, &v))
                                fput_value(v, f);
                        else
                                fputs("?", f);
                }
                fprintf(f, " (sync: %s)", json_get_string(ev, "sync"));
        } else if (streq(type, "MacChanged"))
                fprintf(f, "%s -> %s (%s)", strdash(json_get_string(ev, "old")),
                        strdash(json_get_string(ev, "new")), json_get_string(ev, "reason"));
        else if (streq(type, "HostSyncFailed"))
                fprintf(f, "%s: %s", json_get_string(ev, "attribute"), json_get_string(ev, "error"));
        else if (streq(type, "NetEvent")) {
                fputs(json_get_string(ev, "event"), f);
                if (json_object_object_get_ex(ev, "data", &v)) {
                        json_object_object_foreach(v, key, val) {
                                if (streq(key, "timestamp"))
                                        continue;
                                fprintf(f, " %s=", key);
                                fput_value(val, f);
                        }
                }
        } else if (streq(type, "StateChanged"))
                fputs(json_get_string(ev, "state"), f);
}

static int monitor_print(const Monitor *m, const char *type, const char *path, json_object *ev) {
        _cleanup_free_ char *guest = NULL, *nic = NULL;
        struct timespec ts;
        uint64_t now;
        char buf[64];

        if (path && !monitor_wants(m, path))
                return 0;
        clock_gettime(CLOCK_REALTIME, &ts);
        now = (uint64_t)ts.tv_sec * 1000000 + (uint64_t)ts.tv_nsec / 1000;
        if (path && decode_path(path, &guest, &nic) < 0)
                return log_oom();

        if (arg_json) {
                json_object_object_add(ev, "timestamp", json_object_new_uint64(now));
                json_object_object_add(ev, "type", json_object_new_string(type));
                if (path)
                        json_object_object_add(ev, "path", json_object_new_string(path));
                if (guest)
                        json_object_object_add(ev, "guest", json_object_new_string(guest));
                if (nic)
                        json_object_object_add(ev, "nic", json_object_new_string(nic));
                print_json(ev);
        } else {
                _cleanup_(json_object_putp) json_object *shown = json_escape_strings(ev);
                _cleanup_free_ char *g = guest ? escape_nonprintable_dup(guest) : NULL,
                                    *n = nic ? escape_nonprintable_dup(nic) : NULL;
                if (!shown || (guest && !g) || (nic && !n))
                        return log_oom();
                format_realtime(now, true, buf, sizeof(buf));
                printf("%s%s%s ", ansi(ANSI_GREY), buf, ansi(ANSI_NORMAL));
                if (g)
                        printf("%s%s%s ", g, n ? "/" : "", n ?: "");
                printf("%s%s%s", ansi(ANSI_BOLD), type, ansi(ANSI_NORMAL));
                if (json_object_object_length(shown) > 0) {
                        fputs(": ", stdout);
                        fput_details(type, shown, stdout);
                }
                putchar('\n');
        }
        fflush(stdout);
        return 0;
}

/* Reads the signal's arguments into ev under the given names. */
static int read_args(sd_bus_message *message, json_object *ev, const char *const *names) {
        int r;

        for (; *names; names++) {
                json_object *v;
                r = bus_message_read_json(message, &v);
                if (r < 0)
                        return r;
                json_object_object_add(ev, *names, v);
        }
        return 0;
}

static int on_signal(sd_bus_message *message, void *userdata, sd_bus_error *ret_error) {
        _cleanup_(json_object_putp) json_object *ev = json_object_new_object();
        const char *iface = sd_bus_message_get_interface(message),
                   *member = sd_bus_message_get_member(message);
        const char *path = sd_bus_message_get_path(message);
        Monitor *m = userdata;
        int r;

        if (!ev)
                return log_oom();
        if (!iface || !member || !path)
                return 0;

        if (streq(iface, BUS_NIC_INTERFACE) || streq(iface, BUS_GUEST_INTERFACE)) {
                static const struct {
                        const char *member, *args[4];
                } known[] = {
                        { "RxFilterChanged", { "filter", "changed", "sync", NULL } },
                        { "MacChanged", { "old", "new", "reason", NULL } },
                        { "HostSyncFailed", { "attribute", "error", NULL } },
                        { "NetEvent", { "event", "data", NULL } },
                };
                for (size_t i = 0; i < ELEMENTSOF(known); i++)
                        if (streq(member, known[i].member)) {
                                r = read_args(message, ev, known[i].args);
                                if (r < 0)
                                        return log_failed(r, "parse a signal");
                                return monitor_print(m, member, path, ev);
                        }
                return 0;
        }

        if (streq(iface, "org.freedesktop.DBus.ObjectManager")) {
                const char *object, *name;
                bool added = streq(member, "InterfacesAdded");

                r = sd_bus_message_read(message, "o", &object);
                if (r < 0)
                        return log_failed(r, "parse a signal");
                r = sd_bus_message_enter_container(message, 'a', added ? "{sa{sv}}" : "s");
                while (r > 0) {
                        if (added) {
                                r = sd_bus_message_enter_container(message, 'e', "sa{sv}");
                                if (r <= 0)
                                        break;
                                r = sd_bus_message_read(message, "s", &name);
                                if (r >= 0)
                                        r = sd_bus_message_skip(message, "a{sv}");
                                if (r >= 0)
                                        r = sd_bus_message_exit_container(message);
                        } else
                                r = sd_bus_message_read(message, "s", &name);
                        if (r <= 0)
                                break;
                        if (streq(name, BUS_GUEST_INTERFACE))
                                monitor_print(m, added ? "GuestAdded" : "GuestRemoved", object, ev);
                        else if (streq(name, BUS_NIC_INTERFACE))
                                monitor_print(m, added ? "NicAdded" : "NicRemoved", object, ev);
                }
                if (r < 0)
                        return log_failed(r, "parse a signal");
                return 0;
        }

        if (streq(iface, "org.freedesktop.DBus.Properties")) {
                _cleanup_(json_object_putp) json_object *changed = NULL;
                json_object *state;

                r = sd_bus_message_skip(message, "s");
                if (r >= 0)
                        r = bus_message_read_json(message, &changed);
                if (r < 0)
                        return log_failed(r, "parse a signal");
                if (!json_object_object_get_ex(changed, "State", &state))
                        return 0;
                json_object_object_add(ev, "state", json_object_get(state));
                return monitor_print(m, "StateChanged", path, ev);
        }

        if (streq(iface, "org.freedesktop.DBus") && streq(member, "NameOwnerChanged")) {
                const char *name, *old_owner, *new_owner;

                r = sd_bus_message_read(message, "sss", &name, &old_owner, &new_owner);
                if (r < 0)
                        return log_failed(r, "parse a signal");
                if (!streq(name, BUS_NAME))
                        return 0;
                return monitor_print(m, new_owner[0] != '\0' ? "DaemonStarted" : "DaemonStopped", NULL, ev);
        }
        return 0;
}

static int on_exit_signal(sd_event_source *s, const struct signalfd_siginfo *si, void *userdata) {
        return sd_event_exit(sd_event_source_get_event(s), 0);
}

static int add_match(sd_bus *bus, Monitor *m, const char *rule) {
        int r;

        r = sd_bus_add_match(bus, NULL, rule, on_signal, m);
        if (r < 0)
                return log_failed(r, "add a match rule");
        return 0;
}

static int verb_monitor(sd_bus *bus, int argc, char **argv) {
        _cleanup_(sd_event_unrefp) sd_event *event = NULL;
        _cleanup_(sd_bus_error_free) sd_bus_error error = SD_BUS_ERROR_NULL;
        _cleanup_free_ char *guest_path = NULL;
        Monitor m = { .guest = argc > 1 ? argv[1] : NULL };
        int r;

        /* Nothing to follow when guestnetd can't be reached (this also activates it); a guest that is not
         * there yet is waited for. */
        if (m.guest) {
                r = sd_bus_path_encode(BUS_ROOT_PATH "/guest", m.guest, &guest_path);
                if (r < 0)
                        return log_oom();
                m.guest_path = guest_path;
                r = sd_bus_call_method(bus, BUS_NAME, BUS_ROOT_PATH, BUS_MANAGER_INTERFACE, "GetGuest",
                        &error, NULL, "s", m.guest);
        } else
                r = sd_bus_call_method(bus, BUS_NAME, BUS_ROOT_PATH, BUS_MANAGER_INTERFACE, "ListGuests",
                        &error, NULL, NULL);
        if (r < 0 && !sd_bus_error_has_name(&error, BUS_ERROR_NO_SUCH_GUEST))
                return log_call_error(&error, r, "reach guestnetd");
        if (r < 0 && !arg_quiet)
                fprintf(stderr, "No guest named '%s' yet; waiting for it.\n", m.guest);

        /* Signals of the guest's (or every) object by path prefix; ObjectManager's on the root, filtered
         * here by the object they name; the daemon's name coming and going. */
        const char *space = m.guest_path ?: BUS_ROOT_PATH;
        char *rules[] = {
                strdup_printf("type='signal',sender='%s',interface='%s',path_namespace='%s'", BUS_NAME,
                        BUS_NIC_INTERFACE, space),
                strdup_printf(
                        "type='signal',sender='%s',interface='%s',member='NetEvent',path_namespace='%s'",
                        BUS_NAME, BUS_GUEST_INTERFACE, space),
                strdup_printf("type='signal',sender='%s',interface='org.freedesktop.DBus.Properties',"
                              "member='PropertiesChanged',path_namespace='%s',arg0='%s'",
                        BUS_NAME, space, BUS_GUEST_INTERFACE),
                strdup_printf(
                        "type='signal',sender='%s',interface='org.freedesktop.DBus.ObjectManager',path='%s'",
                        BUS_NAME, BUS_ROOT_PATH),
                strdup_printf("type='signal',sender='org.freedesktop.DBus',interface='org.freedesktop.DBus',"
                              "member='NameOwnerChanged',arg0='%s'",
                        BUS_NAME),
        };
        r = 0;
        for (size_t i = 0; i < ELEMENTSOF(rules); i++) {
                if (r >= 0)
                        r = rules[i] ? add_match(bus, &m, rules[i]) : log_oom();
                free(rules[i]);
        }
        if (r < 0)
                return r;

        r = sd_event_default(&event);
        if (r >= 0) {
                sigset_t mask;
                sigemptyset(&mask);
                sigaddset(&mask, SIGINT);
                sigaddset(&mask, SIGTERM);
                sigprocmask(SIG_BLOCK, &mask, NULL);
                r = sd_event_add_signal(event, NULL, SIGINT, on_exit_signal, NULL);
        }
        if (r >= 0)
                r = sd_event_add_signal(event, NULL, SIGTERM, on_exit_signal, NULL);
        if (r >= 0)
                r = sd_bus_attach_event(bus, event, SD_EVENT_PRIORITY_NORMAL);
        if (r >= 0)
                r = sd_bus_set_exit_on_disconnect(bus, true);
        if (r < 0)
                return log_failed(r, "set up the event loop");

        /* On stderr, so that stdout stays one event per line; tests wait for it too. */
        if (!arg_quiet)
                fprintf(stderr, "Monitoring %s%s%s. Press Ctrl-C to stop.\n",
                        m.guest ? "guest '" : "all guests", m.guest ?: "", m.guest ? "'" : "");
        /* Our signal handlers exit the loop with 0; sd-bus exits it with EXIT_FAILURE on disconnect. */
        r = sd_event_loop(event);
        if (r < 0)
                return log_failed(r, "run the event loop");
        if (r != 0) {
                fputs("Lost the connection to the system bus.\n", stderr);
                return EXIT_FAIL;
        }
        return 0;
}

/* ---- metrics --------------------------------------------------------------------------------------- */

/* A label value in the Prometheus text format: backslash, double quote and newline escaped. */
static void fput_label_value(const char *v, FILE *f) {
        for (; *v; v++)
                if (*v == '\\' || *v == '"')
                        fprintf(f, "\\%c", *v);
                else if (*v == '\n')
                        fputs("\\n", f);
                else
                        fputc(*v, f);
}

static void fput_value_prometheus(double v, FILE *f) {
        /* Counters and gauges are integers but for timestamps: print those exactly. */
        if (v == (double)(int64_t)v && v < 9007199254740992.0 && v > -9007199254740992.0)
                fprintf(f, "%" PRId64 "\n", (int64_t)v);
        else
                fprintf(f, "%.17g\n", v);
}

/* Manager.GetMetrics() in the Prometheus text exposition format (what node_exporter's textfile
 * collector reads), or as JSON. */
static int verb_metrics(sd_bus *bus, int argc, char **argv) {
        _cleanup_(sd_bus_error_free) sd_bus_error error = SD_BUS_ERROR_NULL;
        _cleanup_(sd_bus_message_unrefp) sd_bus_message *reply = NULL;
        _cleanup_(json_object_putp) json_object *families = NULL;
        int r;

        r = sd_bus_call_method(
                bus, BUS_NAME, BUS_ROOT_PATH, BUS_MANAGER_INTERFACE, "GetMetrics", &error, &reply, NULL);
        if (r < 0)
                return log_call_error(&error, r, "read the metrics");
        r = bus_message_read_json(reply, &families);
        if (r < 0)
                return log_failed(r, "parse the reply of GetMetrics()");

        if (arg_json) {
                _cleanup_(json_object_putp) json_object *o = json_object_new_object();
                json_object *list = json_object_new_array();
                for (size_t i = 0; list && i < json_object_array_length(families); i++) {
                        json_object *f = json_object_array_get_idx(families, i),
                                    *fo = json_object_new_object();
                        json_object *samples = json_object_new_array(),
                                    *src = json_object_array_get_idx(f, 3);
                        for (size_t k = 0; samples && k < json_object_array_length(src); k++) {
                                json_object *smp = json_object_array_get_idx(src, k),
                                            *so = json_object_new_object();
                                json_object_object_add(
                                        so, "labels", json_object_get(json_object_array_get_idx(smp, 0)));
                                json_object_object_add(
                                        so, "value", json_object_get(json_object_array_get_idx(smp, 1)));
                                json_object_array_add(samples, so);
                        }
                        json_object_object_add(fo, "name", json_object_get(json_object_array_get_idx(f, 0)));
                        json_object_object_add(fo, "type", json_object_get(json_object_array_get_idx(f, 1)));
                        json_object_object_add(fo, "help", json_object_get(json_object_array_get_idx(f, 2)));
                        json_object_object_add(fo, "samples", samples);
                        json_object_array_add(list, fo);
                }
                if (!o || !list || json_object_object_add(o, "families", list) < 0)
                        return log_oom();
                return print_json(o);
        }

        for (size_t i = 0; i < json_object_array_length(families); i++) {
                json_object *f = json_object_array_get_idx(families, i),
                            *samples = json_object_array_get_idx(f, 3);
                const char *name = json_object_get_string(json_object_array_get_idx(f, 0));

                printf("# HELP %s ", name);
                for (const char *h = json_object_get_string(json_object_array_get_idx(f, 2)); *h; h++)
                        if (*h == '\\')
                                fputs("\\\\", stdout);
                        else if (*h == '\n')
                                fputs("\\n", stdout);
                        else
                                putchar(*h);
                printf("\n# TYPE %s %s\n", name, json_object_get_string(json_object_array_get_idx(f, 1)));
                for (size_t k = 0; k < json_object_array_length(samples); k++) {
                        json_object *smp = json_object_array_get_idx(samples, k);
                        bool first = true;

                        fputs(name, stdout);
                        json_object_object_foreach(json_object_array_get_idx(smp, 0), key, val) {
                                printf("%s%s=\"", first ? "{" : ",", key);
                                fput_label_value(json_object_get_string(val), stdout);
                                putchar('"');
                                first = false;
                        }
                        fputs(first ? " " : "} ", stdout);
                        fput_value_prometheus(
                                json_object_get_double(json_object_array_get_idx(smp, 1)), stdout);
                }
        }
        return 0;
}

/* ---- privileged commands --------------------------------------------------------------------------- */

/* Sends a method call built by the caller, allowing polkit to ask for a password unless
 * --no-ask-password; with a terminal, a text agent answers the challenge. A call on a NIC's path names
 * the guest and NIC, for the message when there is no such object. */
static int call_privileged(sd_bus *bus, sd_bus_message *m, const char *what, const char *guest,
        const char *nic, sd_bus_message **ret_reply) {
        _cleanup_(sd_bus_error_free) sd_bus_error error = SD_BUS_ERROR_NULL;
        pid_t agent = 0;
        int r;

        r = sd_bus_message_set_allow_interactive_authorization(m, arg_ask_password);
        if (r < 0)
                return log_failed(r, "build the method call");
        if (arg_ask_password)
                agent = polkit_agent_open();
        r = sd_bus_call(bus, m, 0, &error, ret_reply);
        polkit_agent_close(agent);
        if (r < 0 && nic && error_is_unknown_object(&error)) {
                fprintf(stderr, "Guest '%s' has no NIC '%s'.\n", guest, nic);
                return EXIT_NO_SUCH_OBJECT;
        }
        if (r < 0)
                return log_call_error(&error, r, what);
        return 0;
}

static int new_call(
        sd_bus *bus, const char *path, const char *iface, const char *member, sd_bus_message **ret) {
        int r;

        r = sd_bus_message_new_method_call(bus, ret, BUS_NAME, path, iface, member);
        return r < 0 ? log_failed(r, "build the method call") : 0;
}

/* Capability words, each argument split further at commas and whitespace ("mac,multicast"). */
static int append_capabilities(sd_bus_message *m, char **words, int n) {
        int r;

        r = sd_bus_message_open_container(m, 'a', "s");
        for (int i = 0; i < n && r >= 0; i++) {
                _cleanup_free_ char *copy = strdup(words[i]);
                char *save = NULL;
                if (!copy)
                        return -ENOMEM;
                for (char *w = strtok_r(copy, ", \t", &save); w && r >= 0; w = strtok_r(NULL, ", \t", &save))
                        r = sd_bus_message_append(m, "s", w);
        }
        if (r < 0)
                return r;
        return sd_bus_message_close_container(m);
}

static int verb_trust(sd_bus *bus, int argc, char **argv) {
        _cleanup_(sd_bus_message_unrefp) sd_bus_message *m = NULL;
        _cleanup_free_ char *guest = NULL, *path = NULL;
        int r;

        r = get_guest_path(bus, argv[1], &guest);
        if (r == 0)
                r = nic_path(argv[1], argv[2], &path);
        if (r == 0)
                r = new_call(bus, path, BUS_NIC_INTERFACE, "SetTrust", &m);
        if (r != 0)
                return r;
        r = append_capabilities(m, argv + 3, argc - 3);
        if (r < 0)
                return log_failed(r, "build the method call");
        return call_privileged(bus, m, "set the trust", argv[1], argv[2], NULL);
}

static int verb_resync(sd_bus *bus, int argc, char **argv) {
        _cleanup_(sd_bus_message_unrefp) sd_bus_message *m = NULL;
        _cleanup_free_ char *guest = NULL, *path = NULL;
        int r;

        r = get_guest_path(bus, argv[1], &guest);
        if (r != 0)
                return r;
        if (argc > 2) {
                r = nic_path(argv[1], argv[2], &path);
                if (r == 0)
                        r = new_call(bus, path, BUS_NIC_INTERFACE, "Resync", &m);
        } else
                r = new_call(bus, guest, BUS_GUEST_INTERFACE, "Resync", &m);
        if (r != 0)
                return r;
        return call_privileged(bus, m, "resync", argv[1], argc > 2 ? argv[2] : NULL, NULL);
}

/* "NIC=IFNAME" arguments as the "nics" option, a{ss}. */
static int append_nics_option(sd_bus_message *m, char **args, int n) {
        int r;

        r = sd_bus_message_append(m, "s", "nics");
        if (r >= 0)
                r = sd_bus_message_open_container(m, 'v', "a{ss}");
        if (r >= 0)
                r = sd_bus_message_open_container(m, 'a', "{ss}");
        for (int i = 0; i < n && r >= 0; i++) {
                _cleanup_free_ char *id = strndup(args[i], strcspn(args[i], "="));
                if (!id)
                        return -ENOMEM;
                r = sd_bus_message_append(m, "{ss}", id, strchr(args[i], '=') + 1);
        }
        if (r >= 0)
                r = sd_bus_message_close_container(m);
        if (r >= 0)
                r = sd_bus_message_close_container(m);
        return r;
}

static int verb_attach(sd_bus *bus, int argc, char **argv) {
        _cleanup_(sd_bus_message_unrefp) sd_bus_message *m = NULL;
        _cleanup_free_ char *socket = NULL;
        int r;

        /* The daemon resolves nothing relative to our directory: make the path absolute here. */
        if (argv[2][0] == '/')
                socket = strdup(argv[2]);
        else {
                _cleanup_free_ char *cwd = getcwd(NULL, 0);
                if (!cwd)
                        return log_failed(-errno, "get the current directory");
                if (asprintf(&socket, "%s/%s", cwd, argv[2]) < 0)
                        socket = NULL;
        }
        if (!socket)
                return log_oom();

        r = new_call(bus, BUS_ROOT_PATH, BUS_MANAGER_INTERFACE, "AttachGuest", &m);
        if (r != 0)
                return r;
        r = sd_bus_message_append(m, "ss", argv[1], socket);
        if (r >= 0)
                r = sd_bus_message_open_container(m, 'a', "{sv}");
        if (r >= 0 && argc > 3) {
                r = sd_bus_message_open_container(m, 'e', "sv");
                if (r >= 0)
                        r = append_nics_option(m, argv + 3, argc - 3);
                if (r >= 0)
                        r = sd_bus_message_close_container(m);
        }
        if (r >= 0 && arg_trust) {
                r = sd_bus_message_open_container(m, 'e', "sv");
                if (r >= 0)
                        r = sd_bus_message_append(m, "s", "trust");
                if (r >= 0)
                        r = sd_bus_message_open_container(m, 'v', "as");
                if (r >= 0)
                        r = append_capabilities(m, (char **)&arg_trust, 1);
                if (r >= 0)
                        r = sd_bus_message_close_container(m);
                if (r >= 0)
                        r = sd_bus_message_close_container(m);
        }
        if (r >= 0)
                r = sd_bus_message_close_container(m);
        if (r < 0)
                return log_failed(r, "build the method call");
        return call_privileged(bus, m, "attach the guest", NULL, NULL, NULL);
}

static int verb_detach(sd_bus *bus, int argc, char **argv) {
        _cleanup_(sd_bus_message_unrefp) sd_bus_message *m = NULL;
        int r;

        r = new_call(bus, BUS_ROOT_PATH, BUS_MANAGER_INTERFACE, "DetachGuest", &m);
        if (r != 0)
                return r;
        r = sd_bus_message_append(m, "s", argv[1]);
        if (r < 0)
                return log_failed(r, "build the method call");
        return call_privileged(bus, m, "detach the guest", NULL, NULL, NULL);
}

/* ---- arguments ------------------------------------------------------------------------------------- */

static void help(void) {
        printf("guestnetctl [OPTIONS...] COMMAND ...\n\n"
               "Query and control guestnetd, the QEMU guest RX filter service.\n\n"
               "Commands:\n"
               "  list                         List guests (default)\n"
               "  status GUEST                 Show a guest and each NIC's filter, trust and sync state\n"
               "  nic GUEST NIC                Show one NIC\n"
               "  monitor [GUEST]              Follow filter changes and events until Ctrl-C\n"
               "  trust GUEST NIC CAPS...      Set what the guest may change on the host: all, none,\n"
               "                               or some of mac multicast allmulti promisc\n"
               "  resync GUEST [NIC]           Read the filter from QEMU again and sync the host\n"
               "  attach NAME SOCKET [NIC=IFNAME...]\n"
               "                               Attach a guest by its QMP socket\n"
               "  detach NAME                  Detach a guest\n"
               "  metrics                      Print the daemon's metrics for Prometheus\n"
               "  help                         Show this help\n\n"
               "Options:\n"
               "  -h --help                    Show this help and exit\n"
               "     --version                 Print the version and exit\n"
               "     --json=MODE               Machine-readable output: pretty, short (one line per\n"
               "                               object) or off\n"
               "  -j                           Same as --json=pretty on a terminal, --json=short\n"
               "                               otherwise\n"
               "  -H --host=HOST               Operate on a remote host ([USER@]HOST, over ssh)\n"
               "  -M --machine=CONTAINER       Operate on a local container\n"
               "  -q --quiet                   Do not print informational messages\n"
               "  -l --full                    Do not ellipsize the columns of list\n"
               "     --no-pager                Do not pipe output into a pager\n"
               "     --no-legend               Do not print the table header and footer\n"
               "     --no-ask-password         Do not ask for a password for privileged commands\n"
               "     --trust=CAPS              With attach: the guest's trust (all, none, or a list)\n\n"
               "See the guestnetctl(1) man page for details and exit statuses.\n");
}

static int parse_json_mode(const char *s) {
        if (!s || streq(s, "short"))
                return JSON_SHORT; /* a bare --json: one line, as before --json= took a mode */
        if (streq(s, "pretty"))
                return JSON_PRETTY;
        if (streq(s, "off"))
                return JSON_OFF;
        return -EINVAL;
}

static int parse_argv(int argc, char **argv) {
        enum {
                ARG_VERSION = 0x100,
                ARG_JSON,
                ARG_NO_PAGER,
                ARG_NO_LEGEND,
                ARG_NO_ASK_PASSWORD,
                ARG_TRUST,
        };
        static const struct option options[] = {
                { "help", no_argument, NULL, 'h' },
                { "version", no_argument, NULL, ARG_VERSION },
                { "json", optional_argument, NULL, ARG_JSON },
                { "host", required_argument, NULL, 'H' },
                { "machine", required_argument, NULL, 'M' },
                { "quiet", no_argument, NULL, 'q' },
                { "full", no_argument, NULL, 'l' },
                { "no-pager", no_argument, NULL, ARG_NO_PAGER },
                { "no-legend", no_argument, NULL, ARG_NO_LEGEND },
                { "no-ask-password", no_argument, NULL, ARG_NO_ASK_PASSWORD },
                { "trust", required_argument, NULL, ARG_TRUST },
                {},
        };
        int c;

        opterr = 0;
        while ((c = getopt_long(argc, argv, ":hjH:M:ql", options, NULL)) >= 0) {
                switch (c) {
                case 'h':
                        help();
                        return 0;
                case ARG_VERSION:
                        printf("guestnetctl " GUESTNETD_VERSION "\n");
                        return 0;
                case ARG_JSON: {
                        int mode = parse_json_mode(optarg);
                        if (mode < 0)
                                return usage_error(
                                        "Invalid --json= mode '%s': pretty, short or off.", optarg);
                        arg_json = mode;
                        break;
                }
                case 'j':
                        arg_json = isatty(STDOUT_FILENO) ? JSON_PRETTY : JSON_SHORT;
                        break;
                case 'H':
                        arg_transport = TRANSPORT_REMOTE;
                        arg_host = optarg;
                        break;
                case 'M':
                        arg_transport = TRANSPORT_MACHINE;
                        arg_host = optarg;
                        break;
                case 'q':
                        arg_quiet = true;
                        break;
                case 'l':
                        arg_full = true;
                        break;
                case ARG_NO_PAGER:
                        arg_pager = false;
                        break;
                case ARG_NO_LEGEND:
                        arg_legend = false;
                        break;
                case ARG_NO_ASK_PASSWORD:
                        arg_ask_password = false;
                        break;
                case ARG_TRUST:
                        arg_trust = optarg;
                        break;
                case ':':
                        return usage_error("Option '%s' needs an argument.", argv[optind - 1]);
                case '?':
                        /* optopt is a short option's letter, or a long option's value (when it took no
                         * argument but got one): only the former is worth printing as a character. */
                        if (optopt > 0 && optopt < 0x100 && argv[optind - 1][1] != '-')
                                return usage_error("Unknown option '-%c'.", optopt);
                        return usage_error("Unknown option '%s'.", argv[optind - 1]);
                default:
                        return usage_error("Unknown option.");
                }
        }
        return 1;
}

typedef struct Verb {
        const char *name;
        int min_args, max_args; /* not counting the verb; -1: no limit */
        bool pager; /* output worth paging */
        int (*run)(sd_bus *bus, int argc, char **argv);
} Verb;

static const Verb verbs[] = {
        { "list", 0, 0, true, verb_list },
        { "status", 1, 1, true, verb_status },
        { "nic", 2, 2, true, verb_nic },
        { "monitor", 0, 1, false, verb_monitor },
        { "trust", 3, -1, false, verb_trust },
        { "resync", 1, 2, false, verb_resync },
        { "attach", 2, -1, false, verb_attach },
        { "detach", 1, 1, false, verb_detach },
        { "metrics", 0, 0, false, verb_metrics },
        { "help", 0, 0, false, NULL },
};

static int check_arguments(const Verb *v, int argc, char **argv) {
        if (argc - 1 < v->min_args)
                return usage_error("Too few arguments for '%s'.", v->name);
        if (v->max_args >= 0 && argc - 1 > v->max_args)
                return usage_error("Too many arguments for '%s'.", v->name);
        if (arg_trust && v->run != verb_attach)
                return usage_error("--trust= is only valid with 'attach'.");
        for (int i = 1; i < argc; i++)
                if (argv[i][0] == '\0')
                        return usage_error("Empty argument for '%s'.", v->name);
        if (v->run == verb_attach) {
                if (strlen(argv[2]) >= sizeof(((struct sockaddr_un *)NULL)->sun_path))
                        return usage_error("Socket path too long: %s", argv[2]);
                for (int i = 3; i < argc; i++) {
                        const char *eq = strchr(argv[i], '=');
                        if (!eq || eq == argv[i] || eq[1] == '\0')
                                return usage_error("Expected NIC=IFNAME, got '%s'.", argv[i]);
                }
        }
        return 0;
}

static int dispatch(int argc, char **argv) {
        _cleanup_(sd_bus_flush_close_unrefp) sd_bus *bus = NULL;
        const char *name = argc > 0 ? argv[0] : "list";
        const Verb *v = NULL;
        char *dflt[] = { (char *)"list", NULL };
        int r;

        if (argc == 0) {
                argc = 1;
                argv = dflt;
        }
        for (size_t i = 0; i < ELEMENTSOF(verbs); i++)
                if (streq(verbs[i].name, name))
                        v = &verbs[i];
        if (!v)
                return usage_error("Unknown command '%s'.", name);
        r = check_arguments(v, argc, argv);
        if (r != 0)
                return r;
        if (!v->run) {
                help();
                return 0;
        }

        r = connect_bus(&bus);
        if (r != 0)
                return r;
        (void)colors_enabled(); /* decided on the real stdout, before a pager takes it */
        if (v->pager && arg_pager && !arg_json)
                (void)pager_open();
        r = v->run(bus, argc, argv);
        pager_close();
        return r;
}

int main(int argc, char **argv) {
        int r;

        setlocale(LC_ALL, "");
        r = parse_argv(argc, argv);
        if (r <= 0)
                return r < 0 ? EXIT_FAIL : EXIT_OK;
        if (r > 1)
                return r;
        r = dispatch(argc - optind, argv + optind);
        return r < 0 ? EXIT_FAIL : r;
}
