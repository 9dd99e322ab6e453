/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* hostsync.c: what to change on a device (the guest's filter vs the device and what we own), revert,
 * and the persisted baseline. */
#include "hostsync.h"

#include <fcntl.h>
#include <inttypes.h>
#include <json-c/json.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "cleanup.h"
#include "textbuf.h"

void host_ownership_init(HostOwnership *o, const HostLinkState *current) {
        *o = (HostOwnership){
                .valid = true,
                .ifindex = current->ifindex,
                .baseline_mac = current->mac,
                .baseline_flags = current->flags & HOSTDEV_FLAGS_OURS,
        };
        strscpy(o->ifname, sizeof(o->ifname), current->ifname);
        if (current->have_multicast)
                host_ownership_note_multicast(o, current);
}

void host_ownership_note_multicast(HostOwnership *o, const HostLinkState *current) {
        size_t n = 0;

        if (!current->have_multicast)
                return;
        for (size_t i = 0; i < o->n_added; i++)
                if (ether_addr_set_contains(current->multicast_table, current->n_multicast, &o->added[i]))
                        o->added[n++] = o->added[i];
        o->n_added = n;

        o->n_foreign = 0;
        for (size_t i = 0; i < current->n_multicast && o->n_foreign < HOSTDEV_MULTICAST_MAX; i++)
                if (!ether_addr_set_contains(o->added, o->n_added, &current->multicast_table[i]))
                        o->foreign[o->n_foreign++] = current->multicast_table[i];
        o->multicast_known = true;
}

bool host_ownership_is_clean(const HostOwnership *o) {
        return !o->mac_set && o->flags_set == 0 && o->n_added == 0;
}

static void plan_flag(unsigned flag, bool want, unsigned current_flags, HostChange *change) {
        if (want == !!(current_flags & flag))
                return;
        change->flags_mask |= flag;
        if (want)
                change->flags |= flag;
}

/* The entries on the device: as read, or as the record knows them (ours and the administrator's). */
static size_t multicast_have(const HostLinkState *current, const HostOwnership *o, EtherAddr *have) {
        size_t n = 0;

        if (current->have_multicast) {
                n = current->n_multicast < HOSTDEV_MULTICAST_MAX ? current->n_multicast
                                                                 : HOSTDEV_MULTICAST_MAX;
                memcpy(have, current->multicast_table, n * sizeof(EtherAddr));
        } else {
                memcpy(have, o->added, o->n_added * sizeof(EtherAddr));
                n = o->n_added;
                for (size_t i = 0; i < o->n_foreign && n < HOSTDEV_MULTICAST_MAX; i++)
                        have[n++] = o->foreign[i];
        }
        return ether_addr_set_normalize(have, n);
}

static void plan_multicast_list(
        const HostLinkState *current, const HostFilter *desired, const HostOwnership *o, HostChange *ret) {
        EtherAddr want[RXFILTER_TABLE_MAX], have[HOSTDEV_MULTICAST_MAX];
        size_t n_want = 0, n_have, i = 0, j = 0;

        /* Guest-controlled: only group addresses belong in a multicast list. */
        for (size_t k = 0; k < desired->n_multicast && k < RXFILTER_TABLE_MAX; k++)
                if (ether_addr_is_multicast(&desired->multicast_table[k]))
                        want[n_want++] = desired->multicast_table[k];
        n_want = ether_addr_set_normalize(want, n_want);
        n_have = multicast_have(current, o, have);

        while (i < n_want || j < n_have) {
                int d = i >= n_want ? 1 : j >= n_have ? -1 : ether_addr_compare(&want[i], &have[j]);

                if (d < 0)
                        ret->add[ret->n_add++] = want[i++];
                else if (d > 0)
                        ret->del[ret->n_del++] = have[j++];
                else
                        i++, j++;
        }
}

/* Removes from `change` every undo of something we did not do: a bit is cleared only if we set it, a
 * multicast entry deleted only if we added it. */
static void drop_foreign_undo(HostChange *change, const HostOwnership *o) {
        unsigned foreign_clear = change->flags_mask & ~change->flags & ~o->flags_set;
        change->flags_mask &= ~foreign_clear;
        change->flags &= change->flags_mask;

        size_t n = 0;
        for (size_t i = 0; i < change->n_del; i++)
                if (ether_addr_set_contains(o->added, o->n_added, &change->del[i]))
                        change->del[n++] = change->del[i];
        change->n_del = n;
}

void hostsync_plan(const HostLinkState *current, const HostFilter *desired, unsigned trust,
        const HostOwnership *o, HostChange *ret) {
        *ret = (HostChange){};

        /* A tap's MAC and flags are the host side's, not the guest's: never change them. */
        if (current->kind == HOSTDEV_KIND_TAP)
                return;

        if ((trust & TRUST_MAC) && !ether_addr_equal(&desired->mac, &current->mac) &&
                ether_addr_is_valid_unicast(&desired->mac)) {
                ret->set_mac = true;
                ret->mac = desired->mac;
        }
        if (trust & TRUST_PROMISC)
                plan_flag(IFF_PROMISC, desired->promisc, current->flags, ret);
        if (trust & TRUST_ALLMULTI)
                plan_flag(IFF_ALLMULTI, desired->allmulti, current->flags, ret);
        if (trust & TRUST_MULTICAST) {
                plan_flag(IFF_MULTICAST, desired->multicast, current->flags, ret);
                if (desired->multicast_list_valid)
                        plan_multicast_list(current, desired, o, ret);
        }
        drop_foreign_undo(ret, o);
}

void hostsync_plan_revert(
        const HostLinkState *current, const HostOwnership *o, unsigned caps, HostChange *ret) {
        *ret = (HostChange){};
        if (current->kind == HOSTDEV_KIND_TAP)
                return;

        if ((caps & TRUST_MAC) && o->mac_set && !ether_addr_equal(&current->mac, &o->baseline_mac) &&
                ether_addr_is_valid_unicast(&o->baseline_mac)) {
                ret->set_mac = true;
                ret->mac = o->baseline_mac;
        }

        unsigned bits = (caps & TRUST_PROMISC ? IFF_PROMISC : 0) |
                (caps & TRUST_ALLMULTI ? IFF_ALLMULTI : 0) | (caps & TRUST_MULTICAST ? IFF_MULTICAST : 0);
        ret->flags_mask = o->flags_set & bits & current->flags;

        /* Without a read of the list, every entry of ours is deleted: one already gone is no error. */
        if (caps & TRUST_MULTICAST)
                for (size_t i = 0; i < o->n_added; i++)
                        if (!current->have_multicast ||
                                ether_addr_set_contains(
                                        current->multicast_table, current->n_multicast, &o->added[i]))
                                ret->del[ret->n_del++] = o->added[i];
}

static void added_insert(HostOwnership *o, const EtherAddr *a) {
        if (ether_addr_set_contains(o->added, o->n_added, a) || o->n_added >= RXFILTER_TABLE_MAX)
                return;
        o->added[o->n_added++] = *a;
        qsort(o->added, o->n_added, sizeof(EtherAddr), ether_addr_compare);
}

static void added_remove(HostOwnership *o, const EtherAddr *a) {
        for (size_t i = 0; i < o->n_added; i++)
                if (ether_addr_equal(&o->added[i], a)) {
                        memmove(o->added + i, o->added + i + 1, (o->n_added - i - 1) * sizeof(EtherAddr));
                        o->n_added--;
                        return;
                }
}

void hostsync_record(HostOwnership *o, const HostChange *change, const HostApplyResult *result) {
        if (change->set_mac && result->mac == 0)
                o->mac_set = !ether_addr_equal(&change->mac, &o->baseline_mac);

        for (size_t i = 0; i < HOST_ATTRIBUTES_MACVTAP; i++) {
                unsigned f = host_attributes[i].flag;
                /* The multicast attribute also covers the list: the bit's own outcome decides. */
                int r = f == IFF_MULTICAST ? result->multicast_flag
                                           : host_apply_result_get(result, &host_attributes[i]);
                if (!(change->flags_mask & f) || r != 0)
                        continue;
                /* A bit we set is ours to clear again, even one the baseline had and someone cleared
                 * meanwhile; clearing it makes it not ours. */
                if (change->flags & f)
                        o->flags_set |= f;
                else
                        o->flags_set &= ~f;
        }

        /* Multicast entries one by one: what was added is ours even if its neighbour failed (it must
         * be deleted again later), what is gone is not ours any more. */
        for (size_t i = 0; i < change->n_del && i < HOSTDEV_MULTICAST_MAX; i++)
                if (!(result->del_failed[i / 64] & UINT64_C(1) << (i % 64)))
                        added_remove(o, &change->del[i]);
        for (size_t i = 0; i < change->n_add && i < RXFILTER_TABLE_MAX; i++)
                if (!(result->add_failed & UINT64_C(1) << i))
                        added_insert(o, &change->add[i]);
}

/* ---- persistence ---------------------------------------------------------------------------------- */

static int ownership_name(uint64_t netns, int ifindex, const char *suffix, char *buf, size_t size) {
        TextBuf t = { .buf = buf, .size = size };
        text_append_u64(&t, netns);
        text_append_char(&t, '-');
        text_append_i64(&t, ifindex);
        text_append(&t, ".json");
        text_append(&t, suffix);
        return text_buf_fits(&t) ? 0 : -ENAMETOOLONG;
}

/* ---- the records' directory ------------------------------------------------------------------------- */

struct HostStateDir {
        char *path;
        uid_t uid; /* ours: the directory's owner must be this */
        pthread_rwlock_t lock; /* read: the fd is in use; write: it is being (re)opened */
        int fd;
};

int host_state_dir_new(const char *path, HostStateDir **ret) {
        HostStateDir *d = calloc(1, sizeof(HostStateDir));
        if (!d)
                return -ENOMEM;
        d->path = strdup(path);
        if (!d->path) {
                free(d);
                return -ENOMEM;
        }
        d->fd = -EBADF;
        d->uid = geteuid();
        pthread_rwlock_init(&d->lock, NULL);
        *ret = d;
        return 0;
}

HostStateDir *host_state_dir_free(HostStateDir *d) {
        if (!d)
                return NULL;
        safe_close(d->fd);
        pthread_rwlock_destroy(&d->lock);
        free(d->path);
        free(d);
        return NULL;
}

const char *host_state_dir_path(const HostStateDir *d) {
        return d->path;
}

/* Ours, and nobody else may write to it: we write there as root. */
static int check_state_dir(const HostStateDir *d, const struct stat *st) {
        return st->st_uid != d->uid || (st->st_mode & 022) ? -EPERM : 0;
}

static int open_state_dir(const HostStateDir *d) {
        const char *dir = d->path;
        struct stat st;

        if (mkdir(dir, 0700) < 0 && errno != EEXIST)
                return -errno;
        int fd = open(dir, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
        if (fd < 0)
                return -errno;
        if (fstat(fd, &st) < 0 || check_state_dir(d, &st) < 0) {
                safe_close(fd);
                return -EPERM;
        }
        return fd;
}

/* The directory's fd, read-locked until state_dir_unlock(): opened (created) once, then checked on
 * every use with one fstat: still ours and closed to others, and not removed (a removed directory is
 * created again). A record is written on every trusted change: no path walk or mkdir per record. */
static int state_dir_lock_full(HostStateDir *d, bool exclusive) {
        struct stat st;

        for (unsigned attempt = 0;; attempt++) {
                if (exclusive)
                        pthread_rwlock_wrlock(&d->lock);
                else
                        pthread_rwlock_rdlock(&d->lock);
                if (d->fd >= 0 && fstat(d->fd, &st) >= 0 && st.st_nlink > 0) {
                        int r = check_state_dir(d, &st);
                        if (r >= 0)
                                return d->fd;
                        pthread_rwlock_unlock(&d->lock);
                        return r;
                }
                pthread_rwlock_unlock(&d->lock);
                if (attempt > 0)
                        return -ENOENT; /* removed again as soon as it was made */

                pthread_rwlock_wrlock(&d->lock);
                d->fd = safe_close(d->fd);
                d->fd = open_state_dir(d);
                int r = d->fd;
                pthread_rwlock_unlock(&d->lock);
                if (r < 0)
                        return r;
        }
}

/* Shared: records are created (rename) and rewritten in place (pwrite) by many jobs at once, each its
 * own device's. A load is exclusive: an in-place write is not atomic against a concurrent read. */
static int state_dir_lock(HostStateDir *d) {
        return state_dir_lock_full(d, false);
}

static void state_dir_unlock(HostStateDir *d) {
        pthread_rwlock_unlock(&d->lock);
}

/* ---- records -------------------------------------------------------------------------------------- */

/* A JSON string as json-c writes it: quote, backslash and control bytes escaped, the rest verbatim. */
static void json_append_string(TextBuf *t, const char *s) {
        text_append_char(t, '"');
        for (; *s; s++) {
                unsigned char ch = (unsigned char)*s;
                if (ch == '"' || ch == '\\') {
                        text_append_char(t, '\\');
                        text_append_char(t, (char)ch);
                } else if (ch < 0x20 || ch == 0x7f) {
                        text_append(t, "\\u");
                        text_append_hex(t, ch, 4);
                } else
                        text_append_char(t, (char)ch);
        }
        text_append_char(t, '"');
}

/* The record's text (what host_ownership_parse() reads), without a JSON library or printf: it is
 * written on every trusted change. -ENOBUFS if it does not fit. */
static int ownership_format(const HostOwnership *o, char *buf, size_t size, size_t *ret_len) {
        char mac[ETHER_ADDR_STRLEN];
        TextBuf t = { .buf = buf, .size = size };

        text_append(&t, "{\"ifindex\":");
        text_append_i64(&t, o->ifindex);
        text_append(&t, ",\"ifname\":");
        json_append_string(&t, o->ifname);
        text_append(&t, ",\"baseline-mac\":\"");
        text_append(&t, ether_addr_format(&o->baseline_mac, mac));
        text_append(&t, "\",\"baseline-flags\":");
        text_append_u64(&t, o->baseline_flags);
        text_append(&t, ",\"mac-set\":");
        text_append(&t, o->mac_set ? "true" : "false");
        text_append(&t, ",\"flags-set\":");
        text_append_u64(&t, o->flags_set);
        text_append(&t, ",\"multicast-added\":[");
        for (size_t i = 0; i < o->n_added; i++) {
                if (i > 0)
                        text_append_char(&t, ',');
                text_append_char(&t, '"');
                text_append(&t, ether_addr_format(&o->added[i], mac));
                text_append_char(&t, '"');
        }
        text_append(&t, "]}");
        if (!text_buf_fits(&t))
                return -ENOBUFS;
        *ret_len = t.len;
        return 0;
}

/* Creates the record whole: a fresh file (never a planted one, never through a link), then renamed, so
 * a crash never leaves a torn record. The temporary name is the thread's: one left by a crash is
 * replaced. The fd is returned in *ret_fd when asked for: after the rename it is the record's. */
static int write_record(int dfd, const char *name, const char *text, size_t len, int *ret_fd) {
        char tmp[128];
        int r;

        snprintf(tmp, sizeof(tmp), ".%s.%lx.tmp", name, (unsigned long)pthread_self());
        _cleanup_close_ int fd =
                openat(dfd, tmp, O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC, 0600);
        if (fd < 0 && errno == EEXIST && unlinkat(dfd, tmp, 0) >= 0)
                fd = openat(dfd, tmp, O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC, 0600);
        if (fd < 0)
                return -errno;
        ssize_t n = write(fd, text, len);
        r = n < 0 ? -errno : (size_t)n != len ? -EIO : 0;
        if (r == 0 && renameat(dfd, tmp, dfd, name) < 0)
                r = -errno;
        if (r < 0) {
                (void)unlinkat(dfd, tmp, 0);
                return r;
        }
        if (ret_fd)
                *ret_fd = TAKE_FD(fd);
        return 0;
}

void host_record_file_close(HostRecordFile *f) {
        if (f)
                *f = (HostRecordFile){ .fd = safe_close(f->fd) };
}

/* The record rewritten through its open fd, if the record's name still leads to that file (not removed,
 * renamed aside or replaced behind our back; the directory not made anew), a regular file smaller than
 * the buffer: one pwrite() at offset 0 replaces all of it. -ESTALE: create it again. */
static int rewrite_record(
        int dfd, const char *name, const HostRecordFile *f, char *text, size_t len, size_t size) {
        struct stat st;

        if (fstatat(dfd, name, &st, AT_SYMLINK_NOFOLLOW) < 0)
                return errno == ENOENT ? -ESTALE : -errno;
        if (!S_ISREG(st.st_mode) || st.st_dev != f->dev || st.st_ino != f->ino || st.st_size < 0 ||
                (size_t)st.st_size >= size)
                return -ESTALE;
        if ((size_t)st.st_size > len) {
                memset(text + len, ' ', (size_t)st.st_size - len);
                len = (size_t)st.st_size;
        }
        ssize_t n = pwrite(f->fd, text, len, 0);
        return n < 0 ? -errno : (size_t)n != len ? -EIO : 0;
}

int host_ownership_save(HostStateDir *d, uint64_t netns, const HostOwnership *o, HostRecordFile *f) {
        char name[96], text[4096]; /* 64 entries: under 1.5 KiB; at most a page, see rewrite_record() */
        size_t len;
        int r, fd = -EBADF;

        r = ownership_name(netns, o->ifindex, "", name, sizeof(name));
        if (r >= 0)
                r = ownership_format(o, text, sizeof(text), &len);
        if (r < 0)
                return r;
        /* The directory is checked for every write, in place too: one that others may write to is
         * reported, not written through. */
        int dfd = state_dir_lock(d);
        if (dfd < 0)
                return dfd;
        if (f && f->fd >= 0 && f->netns == netns && f->ifindex == o->ifindex &&
                rewrite_record(dfd, name, f, text, len, sizeof(text)) == 0) {
                state_dir_unlock(d);
                return 0;
        }
        host_record_file_close(f);
        r = write_record(dfd, name, text, len, f ? &fd : NULL);
        state_dir_unlock(d);
        if (r >= 0 && f) {
                struct stat st;
                if (fstat(fd, &st) < 0) /* then it is created whole again next time */
                        st = (struct stat){};
                *f = (HostRecordFile){
                        .fd = fd, .netns = netns, .ifindex = o->ifindex, .dev = st.st_dev, .ino = st.st_ino
                };
        }
        return r;
}

static void json_tokener_freep(json_tokener **t) {
        if (*t)
                json_tokener_free(*t);
}

static void json_object_putp(json_object **o) {
        json_object_put(*o);
}

static int json_get_int(json_object *root, const char *key, int *ret) {
        json_object *v;
        if (!json_object_object_get_ex(root, key, &v) || !json_object_is_type(v, json_type_int))
                return -EBADMSG;
        *ret = json_object_get_int(v);
        return 0;
}

static int json_get_mac(json_object *v, EtherAddr *ret) {
        if (!json_object_is_type(v, json_type_string))
                return -EBADMSG;
        return ether_addr_parse(json_object_get_string(v), ret) < 0 ? -EBADMSG : 0;
}

/* A corrupt record is kept for the operator; until it is dealt with, the device's ownership is unknown. */
static int set_aside_corrupt(int dfd, const char *name, const char *corrupt) {
        if (renameat(dfd, name, dfd, corrupt) < 0 && errno != ENOENT)
                return -errno;
        return -EBADMSG;
}

int host_ownership_parse(const char *text, size_t size, HostOwnership *ret) {
        HostOwnership o = { .valid = true };
        json_object *v;
        int r, flags, set;

        _cleanup_(json_tokener_freep) json_tokener *tok = json_tokener_new_ex(8);
        if (!tok)
                return -ENOMEM;
        json_tokener_set_flags(tok, JSON_TOKENER_STRICT | JSON_TOKENER_VALIDATE_UTF8);
        _cleanup_(json_object_putp) json_object *root = json_tokener_parse_ex(tok, text, (int)size);
        /* Strict: nothing but white space (the padding of an in-place write) may follow. */
        if (!root || json_tokener_get_parse_end(tok) != size || !json_object_is_type(root, json_type_object))
                return -EBADMSG;

        r = json_get_int(root, "ifindex", &o.ifindex);
        if (r >= 0)
                r = json_get_int(root, "baseline-flags", &flags);
        if (r >= 0)
                r = json_get_int(root, "flags-set", &set);
        if (r >= 0)
                r = json_object_object_get_ex(root, "baseline-mac", &v) ? json_get_mac(v, &o.baseline_mac)
                                                                        : -EBADMSG;
        if (r >= 0)
                r = json_object_object_get_ex(root, "ifname", &v) &&
                                json_object_is_type(v, json_type_string) &&
                                json_object_get_string_len(v) > 0 &&
                                json_object_get_string_len(v) < IF_NAMESIZE &&
                                strlen(json_object_get_string(v)) == (size_t)json_object_get_string_len(v)
                        ? 0
                        : -EBADMSG;
        if (r >= 0)
                strcpy(o.ifname, json_object_get_string(v));
        if (r >= 0)
                r = json_object_object_get_ex(root, "mac-set", &v) &&
                                json_object_is_type(v, json_type_boolean)
                        ? 0
                        : -EBADMSG;
        if (r >= 0)
                o.mac_set = json_object_get_boolean(v);
        if (r >= 0)
                r = json_object_object_get_ex(root, "multicast-added", &v) &&
                                json_object_is_type(v, json_type_array) &&
                                json_object_array_length(v) <= RXFILTER_TABLE_MAX
                        ? 0
                        : -EBADMSG;
        for (size_t i = 0; r >= 0 && i < json_object_array_length(v); i++) {
                EtherAddr a;
                r = json_get_mac(json_object_array_get_idx(v, i), &a);
                if (r >= 0)
                        added_insert(&o, &a);
        }
        if (r < 0 || o.ifindex <= 0)
                return -EBADMSG;

        o.baseline_flags = (unsigned)flags & HOSTDEV_FLAGS_OURS;
        o.flags_set = (unsigned)set & HOSTDEV_FLAGS_OURS;
        *ret = o;
        return 0;
}

static int load_record(int dfd, int ifindex, const char *name, const char *corrupt, const char *ifname,
        HostOwnership *ret) {
        char text[HOST_OWNERSHIP_RECORD_MAX + 1];
        HostOwnership o;

        if (faccessat(dfd, corrupt, F_OK, AT_SYMLINK_NOFOLLOW) == 0)
                return -EBADMSG;
        _cleanup_close_ int fd = openat(dfd, name, O_RDONLY | O_NOFOLLOW | O_NONBLOCK | O_CLOEXEC);
        if (fd < 0)
                return -errno;

        /* A record is a few hundred bytes: anything longer is not one of ours. */
        size_t size = 0;
        for (ssize_t n; size < sizeof(text) && (n = read(fd, text + size, sizeof(text) - size)) != 0;
                size += (size_t)n)
                if (n < 0)
                        return -errno;
        if (size > HOST_OWNERSHIP_RECORD_MAX || host_ownership_parse(text, size, &o) < 0 ||
                o.ifindex != ifindex)
                return set_aside_corrupt(dfd, name, corrupt);
        if (strcmp(o.ifname, ifname) != 0) {
                /* Another device had this index (deleted meanwhile): its record is not this one's. */
                (void)unlinkat(dfd, name, 0);
                return -ESTALE;
        }
        if (host_ownership_is_clean(&o)) {
                /* Kept open while a NIC drove the device, with nothing of ours left: as good as none,
                 * the device's state now is its baseline. */
                (void)unlinkat(dfd, name, 0);
                return -ENOENT;
        }
        *ret = o;
        return 0;
}

int host_ownership_load(
        HostStateDir *d, uint64_t netns, int ifindex, const char *ifname, HostOwnership *ret) {
        char name[96], corrupt[112];
        int r;

        r = ownership_name(netns, ifindex, "", name, sizeof(name));
        if (r >= 0)
                r = ownership_name(netns, ifindex, ".corrupt", corrupt, sizeof(corrupt));
        if (r < 0)
                return r;
        int dfd = state_dir_lock_full(d, true);
        if (dfd < 0)
                return dfd;
        r = load_record(dfd, ifindex, name, corrupt, ifname, ret);
        state_dir_unlock(d);
        return r;
}

int host_ownership_remove(HostStateDir *d, uint64_t netns, int ifindex, HostRecordFile *f) {
        char name[96];

        if (f && f->netns == netns && f->ifindex == ifindex)
                host_record_file_close(f);
        int r = ownership_name(netns, ifindex, "", name, sizeof(name));
        if (r < 0)
                return r;
        int dfd = state_dir_lock(d);
        if (dfd < 0)
                return dfd;
        r = unlinkat(dfd, name, 0) < 0 && errno != ENOENT ? -errno : 0;
        state_dir_unlock(d);
        return r;
}
