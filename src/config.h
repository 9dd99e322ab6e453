/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* config.h: guestnetd.conf ([Daemon]) and guest drop-ins (guests.d/NAME.conf), parsed with inih. */
#pragma once

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "cleanup.h"
#include "trust.h"

#include "paths.h"

#define CONFIG_FILE_DEFAULT GUESTNETD_SYSCONFDIR "/guestnetd/guestnetd.conf"
#define GUESTS_DIR_DEFAULT  GUESTNETD_SYSCONFDIR "/guestnetd/guests.d"
#define QMP_DIR_DEFAULT     "/run/guestnetd/qmp"
#define RUNTIME_DIR_DEFAULT "/run/guestnetd"

/* NICs per guest: a PCI bus holds 32 devices and real guests have a few. More is refused in drop-ins
 * and AttachGuest, and entries of a full reply beyond it are ignored (one log line), so a hostile
 * QEMU can't make us build objects without bound. */
#define GUEST_NICS_MAX 64
#define NIC_ID_MAX     128 /* bytes, as RXFILTER_NAME_MAX */

typedef struct NicConfig {
        char *id; /* [Nic ID] */
        char *host_interface; /* HostInterface= or NULL */
        int trust; /* Trust= mask, or -1 when not set (inherit the guest's) */
} NicConfig;

typedef struct GuestConfig {
        char *name; /* Name= (defaults to the drop-in's file name without .conf) */
        char *qmp_socket; /* QmpSocket= (required) */
        char *netns; /* NetworkNamespace= path, or NULL: the QEMU process's namespace */
        int trust; /* Trust= mask, or -1 when not set (inherit DefaultTrust=) */
        char *source; /* file it came from, for messages */
        NicConfig *nics;
        size_t n_nics;
} GuestConfig;

typedef struct DaemonConfig {
        char *qmp_directory; /* QmpDirectory=, default QMP_DIR_DEFAULT */
        unsigned workers; /* Workers=, 0 = number of CPUs */
        unsigned default_trust; /* DefaultTrust=, default none */
        VlanPolicy vlan_policy; /* VlanPolicy=, default improved */
        UnicastPolicy unicast_policy; /* UnicastPolicy=, default ignore */
        uint64_t reconcile_interval_usec; /* ReconcileIntervalSec=, default 60 s, 0 = off */
        bool emit_signals; /* EmitSignals=, default yes */
        unsigned max_queries_per_second; /* MaxQueriesPerSecond=, default 20, 0 = unlimited */
        uint64_t log_ratelimit_interval_usec; /* LogRateLimitIntervalSec=, default 10 s, 0 = off */
        unsigned log_ratelimit_burst; /* LogRateLimitBurst=, default 200, 0 = off */
        bool revert_on_stop; /* RevertOnStop=, default yes: undo our host changes when the guest goes */
        char *runtime_directory; /* RuntimeDirectory=, default RUNTIME_DIR_DEFAULT: persisted baselines */
        unsigned sched_slice_usec; /* CPUSchedulingSliceUSec=, default 100, 0 = left as started */
} DaemonConfig;

/* Fills in the defaults. */
void daemon_config_init(DaemonConfig *c);
void daemon_config_done(DaemonConfig *c);

/* Parses the main file into c (keeping defaults for unset keys; an empty value, "Key=", resets the key to
 * its default, as in systemd). ReconcileIntervalSec= takes whole seconds without a unit. Leading
 * whitespace is ignored and values never continue on the next line. On error c is left unchanged; after
 * success c->qmp_directory is never NULL. A missing file is fine (0) unless
 * `required`. An invalid value or syntax error is logged naming file, line, key and what is allowed,
 * and returns -EINVAL. Unknown sections/keys are warned about with file and line. */
int daemon_config_load(DaemonConfig *c, const char *path, bool required);

/* Parses one drop-in. Returns 0 and a new GuestConfig, or -EINVAL after logging why (another negative
 * errno if the file can't be read). Repeated [Nic ID] sections are merged, later keys winning. */
int guest_config_load(const char *path, GuestConfig **ret);
GuestConfig *guest_config_free(GuestConfig *g);
DEFINE_POINTER_CLEANUP_FUNC(GuestConfig, guest_config_free)

/* Loads every *.conf in dir in lexical order; bad files are logged and skipped. A missing dir
 * gives 0 guests. Returns the count loaded (>= 0) or a negative errno for a dir that can't be read.
 * Hidden files are skipped; a second drop-in with an already used Name= is skipped with an error.
 * *ret is NULL-terminated (NULL when nothing was loaded); free it with guest_configs_free(). */
int guest_configs_load_dir(const char *dir, GuestConfig ***ret, size_t *ret_n);
/* Frees a NULL-terminated list from guest_configs_load_dir(). Accepts NULL, returns NULL. */
GuestConfig **guest_configs_free(GuestConfig **list);
DEFINE_POINTER_CLEANUP_FUNC(GuestConfig *, guest_configs_free)

const NicConfig *guest_config_find_nic(const GuestConfig *g, const char *id);

/* NULL when name is a valid guest name (1..200 bytes of UTF-8, no '/', no control characters), else a
 * static string saying what is wrong with it. */
const char *guest_name_invalid_reason(const char *name);
/* NULL when id is a valid NIC id (1..NIC_ID_MAX bytes of UTF-8, no '/', no control characters: it is
 * logged, printed and published), else a static string saying what is wrong with it. */
const char *nic_id_invalid_reason(const char *id);
/* NULL when s may be logged, printed and published as it is: at most max bytes of UTF-8 without
 * control characters; else a static string saying what is wrong. For what a monitor tells about itself. */
const char *display_text_invalid_reason(const char *s, size_t max);
/* True for a UUID in the canonical 8-4-4-4-12 hex form. */
bool uuid_is_valid(const char *s);
/* NULL when name is a valid interface name (1..15 printable ASCII bytes, no '/', ':' or whitespace, not
 * "." or ".."), else a static string saying what is wrong with it. */
const char *ifname_invalid_reason(const char *name);

/* Parses a boolean the systemd way: yes/no, true/false, on/off, 1/0. Returns 0/1 or -EINVAL. */
int parse_boolean(const char *s);
