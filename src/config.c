/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* config.c: guestnetd.conf and guest drop-ins, parsed with inih through a line-counting reader. */
#include "config.h"

#include <ctype.h>
#include <dirent.h>
#include <errno.h>
#include <ini.h>
#include <limits.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/un.h>

#include "cleanup.h"
#include "escape.h"
#include "log-ratelimit.h"
#include "log.h"
#include "schedslice.h"

#define streq(a, b) (strcmp((a), (b)) == 0)

#define USEC_PER_SEC                   UINT64_C(1000000)
#define WORKERS_MAX                    1024
#define MAX_QUERIES_PER_SECOND_MAX     100000
#define MAX_QUERIES_PER_SECOND_DEFAULT 20
#define RECONCILE_INTERVAL_SEC_DEFAULT 60
#define RECONCILE_INTERVAL_SEC_MAX     (UINT64_C(365) * 24 * 3600)
#define GUEST_NAME_MAX                 200
#define IFNAME_MAX                     15 /* IFNAMSIZ - 1 */
/* inih copies section names into a 50-byte buffer and silently truncates longer ones. */
#define INI_SECTION_MAX 49
/* connect() takes the path in sockaddr_un.sun_path, NUL-terminated. */
#define QMP_SOCKET_PATH_MAX (sizeof(((struct sockaddr_un *)NULL)->sun_path) - 1)

#define BOOLEAN_ALLOWED    "allowed values are yes, no, true, false, on, off, 1, 0"
#define GUEST_NAME_ALLOWED "a guest name is 1..200 bytes of UTF-8 without '/' or control characters"
#define IFNAME_ALLOWED                                                                                   \
        "an interface name is 1..15 printable ASCII bytes without '/', ':' or whitespace, not \".\" or " \
        "\"..\""

typedef struct ConfigParser ConfigParser;
/* Called for each section header that inih accepts, with the text between the brackets. */
typedef int (*ConfigSectionHandler)(ConfigParser *p, const char *section);
/* Called for each Key=Value. Returns 0, or a negative errno after logging an invalid value. */
typedef int (*ConfigKeyHandler)(ConfigParser *p, const char *section, const char *key, const char *value);

struct ConfigParser {
        const char *path;
        FILE *f;
        unsigned line; /* the physical line inih is working on */
        int error; /* first error from a handler or the reader */
        int read_error; /* errno-style error from reading the file */
        bool skip_section; /* the current section header was bad (and reported): ignore its keys */
        ConfigSectionHandler on_section;
        ConfigKeyHandler on_key;
        void *userdata;
};

static bool utf8_is_valid(const char *s);

/* A config line holds at most INI_MAX_LINE bytes, each escaped to at most 4. */
#define ESCAPED_MAX (4 * INI_MAX_LINE + 1)

/* Control characters, and every non-ASCII byte of a string that is not UTF-8, become \xNN: the value
 * complained about must show in the log as it is in the file. */
static const char *escape(const char *s, char buf[static ESCAPED_MAX]) {
        bool utf8 = utf8_is_valid(s);
        size_t n = 0;

        for (const unsigned char *c = (const unsigned char *)s; *c != '\0' && n + 5 < ESCAPED_MAX; c++) {
                if (*c < ' ' || *c == 0x7f || (*c >= 0x80 && !utf8))
                        n += (size_t)snprintf(buf + n, ESCAPED_MAX - n, "\\x%02x", *c);
                else
                        buf[n++] = (char)*c;
        }
        buf[n] = '\0';
        return buf;
}

static void config_record_error(ConfigParser *p, int r) {
        if (r < 0 && p->error == 0)
                p->error = r;
}

static int config_invalid(ConfigParser *p, const char *key, const char *value, const char *format, ...)
        _printf_(4, 5);
static int config_invalid(ConfigParser *p, const char *key, const char *value, const char *format, ...) {
        char reason[512], escaped[ESCAPED_MAX];
        va_list ap;

        va_start(ap, format);
        (void)vsnprintf(reason, sizeof(reason), format, ap);
        va_end(ap);
        log_error("%s:%u: invalid %s=%s: %s", p->path, p->line, key, escape(value, escaped), reason);
        return -EINVAL;
}

static void config_warn_unknown_section(ConfigParser *p, const char *section) {
        char escaped[ESCAPED_MAX];
        log_warning("%s:%u: unknown section [%s], ignoring", p->path, p->line, escape(section, escaped));
}

/* Keys of unknown sections were covered by the section's warning; keys before any section were not. */
static int config_ignore_key(ConfigParser *p, const char *section, const char *key) {
        if (section[0] == '\0')
                log_warning("%s:%u: key %s= outside of any section, ignoring", p->path, p->line, key);
        return 0;
}

static int config_unknown_key(ConfigParser *p, const char *section, const char *key) {
        log_warning("%s:%u: unknown key %s= in section [%s], ignoring", p->path, p->line, key, section);
        return 0;
}

/* Mirrors inih: the name ends at the first ']', unless an inline comment (';' after whitespace) comes
 * first, in which case inih reports the line as a syntax error and keeps the previous section. */
static void config_section_line(ConfigParser *p, const char *line) {
        const char *start = line + 1, *end = start;
        bool was_space = false;

        for (; *end != '\0' && *end != ']'; end++) {
                if (was_space && *end == ';')
                        return;
                was_space = isspace((unsigned char)*end);
        }
        if (*end != ']')
                return;

        p->skip_section = true;
        if ((size_t)(end - start) > INI_SECTION_MAX) {
                log_error("%s:%u: section name longer than %d bytes", p->path, p->line, INI_SECTION_MAX);
                config_record_error(p, -EINVAL);
                return;
        }
        _cleanup_free_ char *name = strndup(start, (size_t)(end - start));
        if (!name) {
                config_record_error(p, -ENOMEM);
                return;
        }
        p->skip_section = false;
        config_record_error(p, p->on_section(p, name));
}

/* libinih is built without INI_HANDLER_LINENO, so the handler cannot ask inih for the line: this reader
 * hands inih exactly one physical line per call and counts them, which keeps inih's own error line in
 * step too. Leading whitespace is dropped, so an indented line is an ordinary line: inih's multi-line
 * values would otherwise silently turn an indented "Key=value" into part of the previous key's value. */
static char *config_reader(char *buf, int size, void *stream) {
        ConfigParser *p = stream;
        bool any = false, too_long = false, nul = false;
        size_t n = 0;
        int c;

        while ((c = getc(p->f)) != EOF) {
                any = true;
                if (c == '\n')
                        break;
                if (n == 0 && (c == ' ' || c == '\t'))
                        continue;
                if (c == '\0')
                        nul = true;
                else if (n + 1 < (size_t)size)
                        buf[n++] = (char)c;
                else
                        too_long = true;
        }
        if (ferror(p->f)) {
                p->read_error = errno > 0 ? -errno : -EIO;
                return NULL;
        }
        if (!any)
                return NULL;

        p->line++;
        buf[n] = '\0';
        if (p->line == 1 && strncmp(buf, "\xEF\xBB\xBF", 3) == 0)
                memmove(buf, buf + 3, n - 2);

        if (too_long || nul) {
                log_error("%s:%u: %s, ignoring the line", p->path, p->line,
                        nul ? "line contains a NUL byte" : "line too long");
                config_record_error(p, -EINVAL);
                if (buf[0] == '[')
                        p->skip_section = true;
                buf[0] = '\0';
        } else if (buf[0] == '[')
                config_section_line(p, buf);
        return buf;
}

static int config_ini_handler(void *userdata, const char *section, const char *key, const char *value) {
        ConfigParser *p = userdata;

        if (!p->skip_section)
                config_record_error(p, p->on_key(p, section, key, value));
        /* Always "success": our errors are in p->error, so inih's return value counts only syntax errors. */
        return 1;
}

/* Parses f, logging every problem with path and line. Returns 0, -EINVAL for invalid content, or another
 * negative errno. */
static int config_parse(const char *path, FILE *f, ConfigSectionHandler on_section, ConfigKeyHandler on_key,
        void *userdata) {
        ConfigParser p = {
                .path = path,
                .f = f,
                .on_section = on_section,
                .on_key = on_key,
                .userdata = userdata,
        };
        int r;

        r = ini_parse_stream(config_reader, &p, config_ini_handler, &p);
        if (p.read_error < 0)
                return log_error_errno(p.read_error, "Failed to read %s: %m", path);
        if (r == -2 || p.error == -ENOMEM)
                return log_oom();
        if (r > 0) {
                log_error("%s:%d: syntax error: expected [Section], Key=Value or a comment", path, r);
                return -EINVAL;
        }
        if (r < 0)
                return log_error_errno(EIO, "Failed to parse %s: %m", path);
        return p.error;
}

static bool isempty(const char *s) {
        return !s || s[0] == '\0';
}

static int config_parse_unsigned(ConfigParser *p, const char *key, const char *value, uint64_t max,
        const char *allowed, uint64_t *ret) {
        uint64_t v = 0;

        for (const char *c = value; *c != '\0'; c++) {
                unsigned digit = (unsigned)(*c - '0');
                if (*c < '0' || *c > '9' || digit > max || v > (max - digit) / 10)
                        return config_invalid(p, key, value, "allowed values are %s", allowed);
                v = v * 10 + digit;
        }
        *ret = v;
        return 0;
}

static int config_parse_trust(ConfigParser *p, const char *key, const char *value, int *ret) {
        _cleanup_free_ char *bad_word = NULL;
        int t;

        t = trust_from_string(value, &bad_word);
        if (t == -ENOMEM)
                return t;
        if (t < 0 && bad_word && (streq(bad_word, "all") || streq(bad_word, "none")))
                return config_invalid(p, key, value,
                        "\"%s\" cannot be combined with other words; allowed values are %s", bad_word,
                        TRUST_CAPABILITIES_ALLOWED);
        if (t < 0 && bad_word)
                return config_invalid(p, key, value, "unknown capability \"%s\"; allowed values are %s",
                        bad_word, TRUST_CAPABILITIES_ALLOWED);
        if (t < 0)
                return config_invalid(p, key, value, "allowed values are %s", TRUST_CAPABILITIES_ALLOWED);
        *ret = t;
        return 0;
}

static int config_parse_path(ConfigParser *p, const char *key, const char *value, size_t max, char **ret) {
        if (value[0] != '/')
                return config_invalid(p, key, value, "not an absolute path (it must start with '/')");
        if (strlen(value) > max)
                return config_invalid(p, key, value, "path longer than %zu bytes", max);
        if (has_control_chars(value))
                return config_invalid(p, key, value, "path contains control characters");

        char *copy = strdup(value);
        if (!copy)
                return -ENOMEM;
        free(*ret);
        *ret = copy;
        return 0;
}

int parse_boolean(const char *s) {
        static const char *const yes[] = { "yes", "true", "on", "1" };
        static const char *const no[] = { "no", "false", "off", "0" };

        if (!s)
                return -EINVAL;
        for (size_t i = 0; i < ELEMENTSOF(yes); i++) {
                if (strcasecmp(s, yes[i]) == 0)
                        return 1;
                if (strcasecmp(s, no[i]) == 0)
                        return 0;
        }
        return -EINVAL;
}

static bool utf8_is_valid(const char *s) {
        static const uint32_t min_for_length[] = { 0, 0, 0x80, 0x800, 0x10000 };
        const unsigned char *c = (const unsigned char *)s;

        while (*c != '\0') {
                size_t len;
                uint32_t cp;

                if (*c < 0x80) {
                        c++;
                        continue;
                }
                if ((*c & 0xe0) == 0xc0) {
                        len = 2;
                        cp = *c & 0x1f;
                } else if ((*c & 0xf0) == 0xe0) {
                        len = 3;
                        cp = *c & 0x0f;
                } else if ((*c & 0xf8) == 0xf0) {
                        len = 4;
                        cp = *c & 0x07;
                } else
                        return false;
                for (size_t i = 1; i < len; i++) {
                        if ((c[i] & 0xc0) != 0x80) /* also stops at the terminating NUL */
                                return false;
                        cp = (cp << 6) | (c[i] & 0x3f);
                }
                /* Overlong forms, UTF-16 surrogates and values beyond Unicode are not UTF-8. */
                if (cp < min_for_length[len] || cp > 0x10ffff || (cp >= 0xd800 && cp <= 0xdfff))
                        return false;
                c += len;
        }
        return true;
}

const char *guest_name_invalid_reason(const char *name) {
        if (isempty(name))
                return "the name is empty";
        if (strlen(name) > GUEST_NAME_MAX)
                return "the name is longer than 200 bytes";
        if (strchr(name, '/'))
                return "the name contains '/'";
        if (has_control_chars(name))
                return "the name contains control characters";
        /* The name is published as a D-Bus string, which must be UTF-8. */
        if (!utf8_is_valid(name))
                return "the name is not valid UTF-8";
        return NULL;
}

const char *display_text_invalid_reason(const char *s, size_t max) {
        if (strlen(s) > max)
                return "too long";
        if (has_control_chars(s))
                return "contains control characters";
        if (!utf8_is_valid(s))
                return "not valid UTF-8";
        return NULL;
}

bool uuid_is_valid(const char *s) {
        /* 8-4-4-4-12 hex digits, as query-uuid and the SMBIOS give it. */
        static const char pattern[] = "xxxxxxxx-xxxx-xxxx-xxxx-xxxxxxxxxxxx";
        if (strlen(s) != sizeof(pattern) - 1)
                return false;
        for (size_t i = 0; s[i]; i++)
                if (pattern[i] == '-' ? s[i] != '-' : !isxdigit((unsigned char)s[i]))
                        return false;
        return true;
}

const char *nic_id_invalid_reason(const char *id) {
        if (isempty(id))
                return "the id is empty";
        if (strlen(id) > NIC_ID_MAX)
                return "the id is longer than 128 bytes";
        if (strchr(id, '/'))
                return "the id contains '/'";
        if (has_control_chars(id))
                return "the id contains control characters";
        if (!utf8_is_valid(id))
                return "the id is not valid UTF-8";
        return NULL;
}

const char *ifname_invalid_reason(const char *name) {
        if (isempty(name))
                return "the name is empty";
        if (strlen(name) > IFNAME_MAX)
                return "the name is longer than 15 bytes";
        if (streq(name, ".") || streq(name, ".."))
                return "\".\" and \"..\" are not interface names";
        for (const char *c = name; *c != '\0'; c++) {
                if (*c == '/' || *c == ':')
                        return "the name contains '/' or ':'";
                if ((unsigned char)*c <= ' ' || (unsigned char)*c >= 0x7f)
                        return "the name contains whitespace, control or non-ASCII characters";
        }
        return NULL;
}

void daemon_config_init(DaemonConfig *c) {
        *c = (DaemonConfig){
                /* If this tiny allocation fails, daemon_config_load() retries it and reports -ENOMEM. */
                .qmp_directory = strdup(QMP_DIR_DEFAULT),
                .workers = 0,
                .default_trust = TRUST_NONE,
                .vlan_policy = VLAN_POLICY_IMPROVED,
                .unicast_policy = UNICAST_POLICY_IGNORE,
                .reconcile_interval_usec = RECONCILE_INTERVAL_SEC_DEFAULT * USEC_PER_SEC,
                .emit_signals = true,
                .max_queries_per_second = MAX_QUERIES_PER_SECOND_DEFAULT,
                .log_ratelimit_interval_usec = LOG_RATELIMIT_INTERVAL_USEC,
                .log_ratelimit_burst = LOG_RATELIMIT_BURST,
                .revert_on_stop = true,
                .runtime_directory = strdup(RUNTIME_DIR_DEFAULT),
                .sched_slice_usec = SCHED_SLICE_USEC_DEFAULT,
        };
}

void daemon_config_done(DaemonConfig *c) {
        free(c->qmp_directory);
        c->qmp_directory = NULL;
        free(c->runtime_directory);
        c->runtime_directory = NULL;
}

static int daemon_on_section(ConfigParser *p, const char *section) {
        if (!streq(section, "Daemon"))
                config_warn_unknown_section(p, section);
        return 0;
}

/* An empty value resets the key to its default, as in systemd unit files. */
static int daemon_on_key(ConfigParser *p, const char *section, const char *key, const char *value) {
        DaemonConfig *c = p->userdata;
        uint64_t u;
        int r;

        if (!streq(section, "Daemon"))
                return config_ignore_key(p, section, key);

        if (streq(key, "QmpDirectory")) {
                if (isempty(value))
                        value = QMP_DIR_DEFAULT;
                return config_parse_path(p, key, value, PATH_MAX - 1, &c->qmp_directory);
        }
        if (streq(key, "RuntimeDirectory")) {
                if (isempty(value))
                        value = RUNTIME_DIR_DEFAULT;
                return config_parse_path(p, key, value, PATH_MAX - 64, &c->runtime_directory);
        }
        if (streq(key, "RevertOnStop")) {
                r = isempty(value) ? 1 : parse_boolean(value);
                if (r < 0)
                        return config_invalid(p, key, value, BOOLEAN_ALLOWED);
                c->revert_on_stop = r;
                return 0;
        }
        if (streq(key, "Workers")) {
                r = config_parse_unsigned(p, key, isempty(value) ? "0" : value, WORKERS_MAX,
                        "integers 0..1024 (0 = number of CPUs)", &u);
                if (r >= 0)
                        c->workers = (unsigned)u;
                return r;
        }
        if (streq(key, "DefaultTrust")) {
                int t = TRUST_NONE;
                r = isempty(value) ? 0 : config_parse_trust(p, key, value, &t);
                if (r >= 0)
                        c->default_trust = (unsigned)t;
                return r;
        }
        if (streq(key, "VlanPolicy")) {
                VlanPolicy v = isempty(value) ? VLAN_POLICY_IMPROVED : vlan_policy_from_string(value);
                if (v < 0)
                        return config_invalid(p, key, value, "allowed values are improved, libvirt, off");
                c->vlan_policy = v;
                return 0;
        }
        if (streq(key, "UnicastPolicy")) {
                UnicastPolicy v = isempty(value) ? UNICAST_POLICY_IGNORE : unicast_policy_from_string(value);
                if (v < 0)
                        return config_invalid(p, key, value, "allowed values are ignore, promisc");
                c->unicast_policy = v;
                return 0;
        }
        if (streq(key, "ReconcileIntervalSec")) {
                /* Whole seconds only: no time units, so "5min" is rejected rather than guessed at. */
                r = config_parse_unsigned(p, key, isempty(value) ? "60" : value, RECONCILE_INTERVAL_SEC_MAX,
                        "whole seconds 0..31536000 without a unit (0 = off)", &u);
                if (r >= 0)
                        c->reconcile_interval_usec = u * USEC_PER_SEC;
                return r;
        }
        if (streq(key, "EmitSignals")) {
                r = isempty(value) ? 1 : parse_boolean(value);
                if (r < 0)
                        return config_invalid(p, key, value, BOOLEAN_ALLOWED);
                c->emit_signals = r;
                return 0;
        }
        if (streq(key, "MaxQueriesPerSecond")) {
                r = config_parse_unsigned(p, key, isempty(value) ? "20" : value, MAX_QUERIES_PER_SECOND_MAX,
                        "integers 0..100000 (0 = unlimited)", &u);
                if (r >= 0)
                        c->max_queries_per_second = (unsigned)u;
                return r;
        }
        if (streq(key, "CPUSchedulingSliceUSec")) {
                static const char allowed[] = "whole microseconds 100..100000 without a unit, or 0 to leave "
                                              "the slice the daemon was started with";
                if (isempty(value)) {
                        c->sched_slice_usec = SCHED_SLICE_USEC_DEFAULT;
                        return 0;
                }
                r = config_parse_unsigned(p, key, value, SCHED_SLICE_USEC_MAX, allowed, &u);
                if (r >= 0 && u != 0 && u < SCHED_SLICE_USEC_MIN)
                        r = config_invalid(p, key, value, "allowed values are %s", allowed);
                if (r >= 0)
                        c->sched_slice_usec = (unsigned)u;
                return r;
        }
        if (streq(key, "LogRateLimitIntervalSec")) {
                r = config_parse_unsigned(p, key, isempty(value) ? "10" : value, 3600,
                        "whole seconds 0..3600 without a unit (0 = off)", &u);
                if (r >= 0)
                        c->log_ratelimit_interval_usec = u * USEC_PER_SEC;
                return r;
        }
        if (streq(key, "LogRateLimitBurst")) {
                r = config_parse_unsigned(p, key, isempty(value) ? "200" : value, 1000000,
                        "integers 0..1000000 (0 = off)", &u);
                if (r >= 0)
                        c->log_ratelimit_burst = (unsigned)u;
                return r;
        }
        return config_unknown_key(p, section, key);
}

int daemon_config_load(DaemonConfig *c, const char *path, bool required) {
        _cleanup_fclose_ FILE *f = NULL;
        int r;

        f = fopen(path, "re");
        if (!f) {
                if (errno == ENOENT && !required) {
                        log_debug("%s does not exist, using defaults.", path);
                        return 0;
                }
                return log_error_errno(errno, "Failed to open %s: %m", path);
        }

        /* Parse into a copy, so that a file with errors leaves c as it was. */
        _cleanup_(daemon_config_done) DaemonConfig parsed = *c;
        parsed.qmp_directory = strdup(c->qmp_directory ? c->qmp_directory : QMP_DIR_DEFAULT);
        parsed.runtime_directory = strdup(c->runtime_directory ? c->runtime_directory : RUNTIME_DIR_DEFAULT);
        if (!parsed.qmp_directory || !parsed.runtime_directory)
                return log_oom();

        r = config_parse(path, f, daemon_on_section, daemon_on_key, &parsed);
        if (r < 0)
                return r;

        daemon_config_done(c);
        *c = parsed;
        parsed.qmp_directory = NULL;
        parsed.runtime_directory = NULL;
        return 0;
}

GuestConfig *guest_config_free(GuestConfig *g) {
        if (!g)
                return NULL;
        for (size_t i = 0; i < g->n_nics; i++) {
                free(g->nics[i].id);
                free(g->nics[i].host_interface);
        }
        free(g->nics);
        free(g->name);
        free(g->qmp_socket);
        free(g->netns);
        free(g->source);
        free(g);
        return NULL;
}

GuestConfig **guest_configs_free(GuestConfig **list) {
        if (!list)
                return NULL;
        for (GuestConfig **g = list; *g; g++)
                guest_config_free(*g);
        free(list);
        return NULL;
}

const NicConfig *guest_config_find_nic(const GuestConfig *g, const char *id) {
        if (!g || !id)
                return NULL;
        for (size_t i = 0; i < g->n_nics; i++)
                if (streq(g->nics[i].id, id))
                        return &g->nics[i];
        return NULL;
}

typedef enum GuestSection {
        GUEST_SECTION_NONE,
        GUEST_SECTION_GUEST,
        GUEST_SECTION_NIC,
        GUEST_SECTION_OTHER, /* unknown or invalid: already reported */
} GuestSection;

typedef struct GuestParser {
        GuestConfig *guest;
        GuestSection section;
        size_t nic; /* index into guest->nics while in GUEST_SECTION_NIC */
} GuestParser;

/* Finds or appends the NIC: a repeated [Nic ID] section continues the first one. */
static int guest_nic_index(GuestConfig *g, const char *id, size_t *ret) {
        for (size_t i = 0; i < g->n_nics; i++)
                if (streq(g->nics[i].id, id)) {
                        *ret = i;
                        return 0;
                }
        if (g->n_nics >= GUEST_NICS_MAX)
                return -E2BIG;

        _cleanup_free_ char *copy = strdup(id);
        if (!copy)
                return -ENOMEM;
        NicConfig *nics = reallocarray(g->nics, g->n_nics + 1, sizeof(NicConfig));
        if (!nics)
                return -ENOMEM;
        g->nics = nics;
        g->nics[g->n_nics] = (NicConfig){ .id = TAKE_PTR(copy), .trust = -1 };
        *ret = g->n_nics++;
        return 0;
}

static int guest_on_section(ConfigParser *p, const char *section) {
        GuestParser *gp = p->userdata;

        gp->section = GUEST_SECTION_OTHER;
        if (streq(section, "Guest")) {
                gp->section = GUEST_SECTION_GUEST;
                return 0;
        }
        if (strncmp(section, "Nic", 3) != 0 ||
                (section[3] != '\0' && section[3] != ' ' && section[3] != '\t')) {
                config_warn_unknown_section(p, section);
                return 0;
        }

        const char *id = section + 3 + strspn(section + 3, " \t");
        size_t len = strlen(id);
        while (len > 0 && (id[len - 1] == ' ' || id[len - 1] == '\t'))
                len--;
        if (len == 0) {
                log_error("%s:%u: invalid section [%s]: a NIC id is required, as in [Nic net0]", p->path,
                        p->line, section);
                return -EINVAL;
        }
        _cleanup_free_ char *nic_id = strndup(id, len);
        if (!nic_id)
                return -ENOMEM;
        const char *reason = nic_id_invalid_reason(nic_id);
        if (reason) {
                char escaped[ESCAPED_MAX];
                log_error("%s:%u: invalid section [%s]: %s (a NIC id is 1..%d bytes of UTF-8 without '/' or "
                          "control characters)",
                        p->path, p->line, escape(section, escaped), reason, NIC_ID_MAX);
                return -EINVAL;
        }

        int r = guest_nic_index(gp->guest, nic_id, &gp->nic);
        if (r == -E2BIG) {
                log_error("%s:%u: invalid section [Nic %s]: a guest has at most %d NICs", p->path, p->line,
                        nic_id, GUEST_NICS_MAX);
                return -EINVAL;
        }
        if (r < 0)
                return r;
        gp->section = GUEST_SECTION_NIC;
        return 0;
}

static int guest_on_guest_key(ConfigParser *p, const char *section, const char *key, const char *value) {
        GuestConfig *g = ((GuestParser *)p->userdata)->guest;

        if (streq(key, "Name")) {
                const char *reason = guest_name_invalid_reason(value);
                if (reason)
                        return config_invalid(p, key, value, "%s; %s", reason, GUEST_NAME_ALLOWED);
                char *copy = strdup(value);
                if (!copy)
                        return -ENOMEM;
                free(g->name);
                g->name = copy;
                return 0;
        }
        if (streq(key, "NetworkNamespace")) {
                if (isempty(value)) {
                        g->netns = mfree(g->netns);
                        return 0;
                }
                return config_parse_path(p, key, value, PATH_MAX - 1, &g->netns);
        }
        if (streq(key, "QmpSocket")) {
                if (isempty(value)) {
                        g->qmp_socket = mfree(g->qmp_socket);
                        return 0;
                }
                return config_parse_path(p, key, value, QMP_SOCKET_PATH_MAX, &g->qmp_socket);
        }
        if (streq(key, "Trust")) {
                g->trust = -1;
                return isempty(value) ? 0 : config_parse_trust(p, key, value, &g->trust);
        }
        return config_unknown_key(p, section, key);
}

static int guest_on_nic_key(ConfigParser *p, const char *section, const char *key, const char *value) {
        GuestParser *gp = p->userdata;
        NicConfig *nic = &gp->guest->nics[gp->nic];

        if (streq(key, "HostInterface")) {
                if (isempty(value)) {
                        nic->host_interface = mfree(nic->host_interface);
                        return 0;
                }
                const char *reason = ifname_invalid_reason(value);
                if (reason)
                        return config_invalid(p, key, value, "%s; %s", reason, IFNAME_ALLOWED);
                char *copy = strdup(value);
                if (!copy)
                        return -ENOMEM;
                free(nic->host_interface);
                nic->host_interface = copy;
                return 0;
        }
        if (streq(key, "Trust")) {
                nic->trust = -1;
                return isempty(value) ? 0 : config_parse_trust(p, key, value, &nic->trust);
        }
        return config_unknown_key(p, section, key);
}

static int guest_on_key(ConfigParser *p, const char *section, const char *key, const char *value) {
        switch (((GuestParser *)p->userdata)->section) {
        case GUEST_SECTION_GUEST:
                return guest_on_guest_key(p, section, key, value);
        case GUEST_SECTION_NIC:
                return guest_on_nic_key(p, section, key, value);
        case GUEST_SECTION_NONE:
        case GUEST_SECTION_OTHER:
                break;
        }
        return config_ignore_key(p, section, key);
}

/* "guests.d/vm1.conf" → "vm1" */
static char *guest_name_from_path(const char *path) {
        const char *base = strrchr(path, '/');
        base = base ? base + 1 : path;
        size_t len = strlen(base);
        if (len >= 5 && streq(base + len - 5, ".conf"))
                len -= 5;
        return strndup(base, len);
}

int guest_config_load(const char *path, GuestConfig **ret) {
        _cleanup_(guest_config_freep) GuestConfig *g = NULL;
        _cleanup_fclose_ FILE *f = NULL;
        int r;

        f = fopen(path, "re");
        if (!f)
                return log_error_errno(errno, "Failed to open %s: %m", path);

        g = calloc(1, sizeof(GuestConfig));
        if (!g)
                return log_oom();
        g->trust = -1;
        g->source = strdup(path);
        if (!g->source)
                return log_oom();

        GuestParser gp = { .guest = g };
        r = config_parse(path, f, guest_on_section, guest_on_key, &gp);
        if (r < 0)
                return r;

        if (!g->qmp_socket) {
                log_error("%s: QmpSocket= is missing in [Guest]: it must name the guest's QMP socket", path);
                return -EINVAL;
        }
        if (!g->name) {
                g->name = guest_name_from_path(path);
                if (!g->name)
                        return log_oom();
                const char *reason = guest_name_invalid_reason(g->name);
                if (reason) {
                        char escaped[ESCAPED_MAX];
                        log_error("%s: invalid guest name \"%s\" taken from the file name: %s; %s, or set "
                                  "Name=",
                                path, escape(g->name, escaped), reason, GUEST_NAME_ALLOWED);
                        return -EINVAL;
                }
        }

        *ret = TAKE_PTR(g);
        return 0;
}

/* closedirp() comes from cleanup.h. */
static char **strv_free(char **l) {
        for (char **s = l; s && *s; s++)
                free(*s);
        free(l);
        return NULL;
}
DEFINE_POINTER_CLEANUP_FUNC(char *, strv_free)

static int strcmp_ptr(const void *a, const void *b) {
        return strcmp(*(char *const *)a, *(char *const *)b);
}

/* "NAME.conf" with a non-empty NAME; hidden files (editors, package managers) are skipped. */
static bool is_drop_in_name(const char *name) {
        size_t len = strlen(name);
        return name[0] != '.' && len > 5 && streq(name + len - 5, ".conf");
}

/* The sorted names of dir's drop-ins, NULL-terminated. */
static int list_drop_ins(DIR *d, char ***ret, size_t *ret_n) {
        _cleanup_(strv_freep) char **names = NULL;
        size_t n = 0;
        struct dirent *de;

        for (errno = 0; (de = readdir(d)); errno = 0) {
                if (!is_drop_in_name(de->d_name))
                        continue;
                char **grown = reallocarray(names, n + 2, sizeof(char *));
                if (!grown)
                        return -ENOMEM;
                names = grown;
                names[n] = strdup(de->d_name);
                if (!names[n])
                        return -ENOMEM;
                names[++n] = NULL;
        }
        if (errno > 0)
                return -errno;

        /* strcmp, not alphasort(): the order must not depend on the locale. */
        if (n > 0)
                qsort(names, n, sizeof(char *), strcmp_ptr);
        *ret = TAKE_PTR(names);
        *ret_n = n;
        return 0;
}

static const GuestConfig *find_guest(GuestConfig **list, size_t n, const char *name) {
        for (size_t i = 0; i < n; i++)
                if (streq(list[i]->name, name))
                        return list[i];
        return NULL;
}

int guest_configs_load_dir(const char *dir, GuestConfig ***ret, size_t *ret_n) {
        _cleanup_(guest_configs_freep) GuestConfig **list = NULL;
        _cleanup_(strv_freep) char **names = NULL;
        _cleanup_(closedirp) DIR *d = NULL;
        size_t n = 0, n_names = 0;
        int r;

        d = opendir(dir);
        if (!d) {
                if (errno != ENOENT)
                        return log_error_errno(errno, "Failed to open guest drop-in directory %s: %m", dir);
                log_debug("Guest drop-in directory %s does not exist.", dir);
                *ret = NULL;
                *ret_n = 0;
                return 0;
        }

        r = list_drop_ins(d, &names, &n_names);
        if (r == -ENOMEM)
                return log_oom();
        if (r < 0)
                return log_error_errno(r, "Failed to read guest drop-in directory %s: %m", dir);

        for (size_t i = 0; i < n_names; i++) {
                _cleanup_(guest_config_freep) GuestConfig *g = NULL;
                _cleanup_free_ char *path = NULL;

                if (asprintf(&path, "%s/%s", dir, names[i]) < 0)
                        return log_oom();

                r = guest_config_load(path, &g);
                if (r == -ENOMEM)
                        return r;
                if (r < 0) {
                        log_error("skipping guest drop-in %s", path);
                        continue;
                }

                const GuestConfig *other = find_guest(list, n, g->name);
                if (other) {
                        log_error("%s: guest name \"%s\" is already used by %s; skipping guest drop-in %s",
                                path, g->name, other->source, path);
                        continue;
                }

                GuestConfig **grown = reallocarray(list, n + 2, sizeof(GuestConfig *));
                if (!grown)
                        return log_oom();
                list = grown;
                list[n++] = TAKE_PTR(g);
                list[n] = NULL;
        }

        *ret = TAKE_PTR(list);
        *ret_n = n;
        return (int)n;
}
