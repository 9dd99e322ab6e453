/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* test-hostsync.c: ownership-aware plans: only our changes are undone; revert; persistence. */
#include <net/if.h>
#include <sys/stat.h>
#include <unistd.h>

#include "hostsync.h"
#include "tests.h"

static EtherAddr mac(const char *s) {
        EtherAddr a = {};
        (void)ether_addr_parse(s, &a);
        return a;
}

static bool mac_is(const EtherAddr *a, const char *s) {
        EtherAddr b = mac(s);
        return ether_addr_equal(a, &b);
}

static HostLinkState macvtap(unsigned flags) {
        HostLinkState s = {
                .ifindex = 7, .kind = HOSTDEV_KIND_MACVTAP, .flags = flags, .have_multicast = true
        };
        snprintf(s.ifname, sizeof(s.ifname), "mvt0");
        s.mac = mac("02:00:00:00:00:01");
        return s;
}

static HostFilter guest_filter(bool promisc, bool allmulti) {
        HostFilter f = {
                .promisc = promisc, .allmulti = allmulti, .multicast = true, .multicast_list_valid = true
        };
        f.mac = mac("52:54:00:12:34:56");
        return f;
}

static void apply_ok(HostLinkState *s, HostOwnership *o, const HostChange *ch) {
        HostApplyResult ok = {};
        if (ch->set_mac)
                s->mac = ch->mac;
        s->flags = (s->flags & ~ch->flags_mask) | ch->flags;
        hostsync_record(o, ch, &ok);
}

/* hostsync_plan as if everything on the device were ours: the plain diff of device and filter. */
static void plan_all_ours(const HostLinkState *s, const HostFilter *want, unsigned trust, HostChange *ch) {
        HostOwnership o;

        host_ownership_init(&o, s);
        o.flags_set = HOSTDEV_FLAGS_OURS;
        o.n_added = s->n_multicast;
        memcpy(o.added, s->multicast_table, o.n_added * sizeof(EtherAddr));
        o.n_foreign = 0;
        hostsync_plan(s, want, trust, &o, ch);
}

TEST(plan_never_installs_group_or_zero_mac) {
        HostLinkState s = { .kind = HOSTDEV_KIND_MACVTAP, .mac = mac("52:54:00:00:00:01"), .flags = IFF_UP };
        const char *bad[] = { "01:00:5e:00:00:01", "33:33:00:00:00:01", "ff:ff:ff:ff:ff:ff",
                "00:00:00:00:00:00", "53:54:00:00:00:01" };
        HostFilter f = {};
        HostChange ch;

        for (size_t i = 0; i < ELEMENTSOF(bad); i++) {
                f.mac = mac(bad[i]);
                plan_all_ours(&s, &f, TRUST_ALL, &ch);
                ASSERT_FALSE(ch.set_mac);
        }
        f.mac = mac("52:54:00:00:00:02");
        plan_all_ours(&s, &f, TRUST_ALL, &ch);
        ASSERT_TRUE(ch.set_mac);
        ASSERT_TRUE(ether_addr_equal(&ch.mac, &f.mac));
        plan_all_ours(&s, &f, TRUST_ALL & ~TRUST_MAC, &ch);
        ASSERT_FALSE(ch.set_mac);
}

TEST(plan_pure_diff) {
        HostLinkState s = {
                .kind = HOSTDEV_KIND_MACVTAP,
                .mac = mac("52:54:00:00:00:01"),
                .flags = IFF_UP | IFF_BROADCAST | IFF_MULTICAST | IFF_PROMISC,
                .have_multicast = true,
                .n_multicast = 3,
                .multicast_table = { mac("01:00:5e:00:00:01"), mac("01:00:5e:00:00:02"),
                        mac("33:33:00:00:00:fb") },
        };
        HostFilter f = {
                .mac = s.mac,
                .promisc = false,
                .allmulti = true,
                .multicast = true,
                .multicast_list_valid = true,
                .n_multicast = 4,
                /* unsorted, and with a unicast entry a guest has no business asking for */
                .multicast_table = { mac("33:33:ff:00:00:01"), mac("01:00:5e:00:00:02"),
                        mac("02:00:00:00:00:01"), mac("01:00:5e:00:00:01") },
        };
        HostChange ch;

        plan_all_ours(&s, &f, TRUST_ALL, &ch);
        ASSERT_FALSE(ch.set_mac);
        ASSERT_INT_EQ(ch.flags_mask, IFF_PROMISC | IFF_ALLMULTI);
        ASSERT_INT_EQ(ch.flags, IFF_ALLMULTI);
        ASSERT_INT_EQ(ch.n_add, 1);
        ASSERT_TRUE(ether_addr_equal(&ch.add[0], &(EtherAddr){ { 0x33, 0x33, 0xff, 0, 0, 1 } }));
        ASSERT_INT_EQ(ch.n_del, 1);
        ASSERT_TRUE(ether_addr_equal(&ch.del[0], &(EtherAddr){ { 0x33, 0x33, 0, 0, 0, 0xfb } }));

        /* Overflow: the list is not valid, the programmed entries stay. */
        f.multicast_list_valid = false;
        plan_all_ours(&s, &f, TRUST_ALL, &ch);
        ASSERT_INT_EQ(ch.n_add + ch.n_del, 0);

        /* Each capability only moves its own bits. */
        f.multicast = false;
        plan_all_ours(&s, &f, TRUST_MULTICAST, &ch);
        ASSERT_INT_EQ(ch.flags_mask, IFF_MULTICAST);
        ASSERT_INT_EQ(ch.flags, 0);
        plan_all_ours(&s, &f, TRUST_PROMISC, &ch);
        ASSERT_INT_EQ(ch.flags_mask, IFF_PROMISC);
        plan_all_ours(&s, &f, TRUST_NONE, &ch);
        ASSERT_TRUE(host_change_is_empty(&ch));

        /* A tap's MAC and flags are the host's: never planned, whatever the trust. */
        s.kind = HOSTDEV_KIND_TAP;
        f.mac = mac("52:54:00:00:00:09");
        plan_all_ours(&s, &f, TRUST_ALL, &ch);
        ASSERT_TRUE(host_change_is_empty(&ch));
}

TEST(we_never_clear_a_flag_we_did_not_set) {
        /* The administrator turned promisc on before we came: a guest asking for it off can't undo it. */
        HostLinkState s = macvtap(IFF_PROMISC | IFF_MULTICAST);
        HostOwnership o;
        HostChange ch;
        host_ownership_init(&o, &s);

        HostFilter want = guest_filter(false, false);
        hostsync_plan(&s, &want, TRUST_ALL, &o, &ch);
        ASSERT_FALSE(ch.flags_mask & IFF_PROMISC);
        ASSERT_TRUE(ch.set_mac);
}

TEST(we_clear_what_we_set) {
        HostLinkState s = macvtap(IFF_MULTICAST);
        HostOwnership o;
        HostChange ch;
        host_ownership_init(&o, &s);

        HostFilter on = guest_filter(true, true), off = guest_filter(false, false);
        hostsync_plan(&s, &on, TRUST_ALL, &o, &ch);
        ASSERT_INT_EQ(ch.flags_mask, IFF_PROMISC | IFF_ALLMULTI);
        apply_ok(&s, &o, &ch);
        ASSERT_INT_EQ(o.flags_set, IFF_PROMISC | IFF_ALLMULTI);

        hostsync_plan(&s, &off, TRUST_ALL, &o, &ch);
        ASSERT_INT_EQ(ch.flags_mask, IFF_PROMISC | IFF_ALLMULTI);
        ASSERT_INT_EQ(ch.flags, 0);
        apply_ok(&s, &o, &ch);
        ASSERT_INT_EQ(o.flags_set, 0);
        ASSERT_INT_EQ(s.flags, IFF_MULTICAST);
}

TEST(multicast_entries_not_ours_are_kept) {
        HostLinkState s = macvtap(IFF_MULTICAST);
        s.n_multicast = 1;
        s.multicast_table[0] = mac("01:00:5e:00:00:fb"); /* added by an administrator */
        HostOwnership o;
        HostChange ch;
        host_ownership_init(&o, &s);

        HostFilter want = guest_filter(false, false);
        want.n_multicast = 1;
        want.multicast_table[0] = mac("33:33:00:00:00:01");
        hostsync_plan(&s, &want, TRUST_MULTICAST, &o, &ch);
        ASSERT_INT_EQ(ch.n_add, 1);
        ASSERT_INT_EQ(ch.n_del, 0);
        apply_ok(&s, &o, &ch);
        ASSERT_INT_EQ(o.n_added, 1);

        /* The guest leaves its group: ours goes, the administrator's stays. */
        s.n_multicast = 2;
        s.multicast_table[1] = mac("33:33:00:00:00:01");
        want.n_multicast = 0;
        hostsync_plan(&s, &want, TRUST_MULTICAST, &o, &ch);
        ASSERT_INT_EQ(ch.n_del, 1);
        ASSERT_TRUE(ether_addr_equal(&ch.del[0], &want.multicast_table[0]));
        apply_ok(&s, &o, &ch);
        ASSERT_INT_EQ(o.n_added, 0);
}

/* A guest's change is planned against the record, without reading the device's list (which lists every
 * device of the host): the administrator's entries seen at the baseline are never added nor deleted,
 * ours are deleted when the guest leaves. */
TEST(guest_change_is_planned_from_the_record) {
        HostLinkState s = macvtap(IFF_MULTICAST);
        s.n_multicast = 1;
        s.multicast_table[0] = mac("01:00:5e:00:00:fb"); /* an administrator's */
        HostOwnership o;
        HostChange ch;
        host_ownership_init(&o, &s);
        ASSERT_TRUE(o.multicast_known);
        ASSERT_INT_EQ(o.n_foreign, 1);

        s.have_multicast = false; /* from now on the list is not read */
        s.n_multicast = 0;
        HostFilter want = guest_filter(false, false);
        want.n_multicast = 2;
        want.multicast_table[0] = mac("33:33:00:00:00:01");
        want.multicast_table[1] = mac("01:00:5e:00:00:fb");
        hostsync_plan(&s, &want, TRUST_MULTICAST, &o, &ch);
        ASSERT_INT_EQ(ch.n_add, 1);
        ASSERT_TRUE(ether_addr_equal(&ch.add[0], &want.multicast_table[0]));
        ASSERT_INT_EQ(ch.n_del, 0);
        apply_ok(&s, &o, &ch);
        ASSERT_INT_EQ(o.n_added, 1);

        /* Nothing changed: nothing to do, although the list was not read. */
        hostsync_plan(&s, &want, TRUST_MULTICAST, &o, &ch);
        ASSERT_TRUE(host_change_is_empty(&ch));

        /* The guest leaves both: ours goes, the administrator's stays. */
        want.n_multicast = 0;
        hostsync_plan(&s, &want, TRUST_MULTICAST, &o, &ch);
        ASSERT_INT_EQ(ch.n_add, 0);
        ASSERT_INT_EQ(ch.n_del, 1);
        ASSERT_TRUE(mac_is(&ch.del[0], "33:33:00:00:00:01"));
        apply_ok(&s, &o, &ch);
        ASSERT_INT_EQ(o.n_added, 0);

        /* A revert without a read deletes every entry of ours (one already gone is no error). */
        o.n_added = 1;
        o.added[0] = mac("33:33:00:00:00:02");
        hostsync_plan_revert(&s, &o, TRUST_MULTICAST, &ch);
        ASSERT_INT_EQ(ch.n_del, 1);
}

/* A read of the list (baseline, reconcile) corrects the record: an entry of ours someone deleted is no
 * longer ours (a guest still wanting it gets it added again), and the others are the administrator's. */
TEST(reading_the_list_corrects_the_record) {
        HostLinkState s = macvtap(IFF_MULTICAST);
        HostOwnership o;
        HostChange ch;
        host_ownership_init(&o, &s);
        o.n_added = 2;
        o.added[0] = mac("01:00:5e:00:00:01");
        o.added[1] = mac("33:33:00:00:00:01");
        s.n_multicast = 2;
        s.multicast_table[0] = mac("01:00:5e:00:00:7f"); /* added by someone else meanwhile */
        s.multicast_table[1] = mac("33:33:00:00:00:01");
        host_ownership_note_multicast(&o, &s);
        ASSERT_INT_EQ(o.n_added, 1);
        ASSERT_TRUE(mac_is(&o.added[0], "33:33:00:00:00:01"));
        ASSERT_INT_EQ(o.n_foreign, 1);
        ASSERT_TRUE(mac_is(&o.foreign[0], "01:00:5e:00:00:7f"));

        HostFilter want = guest_filter(false, false);
        want.n_multicast = 2;
        want.multicast_table[0] = mac("01:00:5e:00:00:01");
        want.multicast_table[1] = mac("33:33:00:00:00:01");
        hostsync_plan(&s, &want, TRUST_MULTICAST, &o, &ch);
        ASSERT_INT_EQ(ch.n_add, 1);
        ASSERT_TRUE(mac_is(&ch.add[0], "01:00:5e:00:00:01"));
        ASSERT_INT_EQ(ch.n_del, 0); /* someone else's is never ours to delete */
}

TEST(revert_restores_baseline_for_revoked_capabilities_only) {
        HostLinkState s = macvtap(IFF_MULTICAST);
        HostOwnership o;
        HostChange ch;
        host_ownership_init(&o, &s);

        HostFilter want = guest_filter(true, false);
        want.n_multicast = 1;
        want.multicast_table[0] = mac("01:00:5e:01:02:03");
        hostsync_plan(&s, &want, TRUST_ALL, &o, &ch);
        apply_ok(&s, &o, &ch);
        s.n_multicast = 1;
        s.multicast_table[0] = want.multicast_table[0];
        ASSERT_TRUE(o.mac_set);

        /* Revoke mac only: MAC back, promisc and the list stay. */
        hostsync_plan_revert(&s, &o, TRUST_MAC, &ch);
        ASSERT_TRUE(ch.set_mac);
        ASSERT_TRUE(ether_addr_equal(&ch.mac, &o.baseline_mac));
        ASSERT_INT_EQ(ch.flags_mask, 0);
        ASSERT_INT_EQ(ch.n_del, 0);
        apply_ok(&s, &o, &ch);
        ASSERT_FALSE(o.mac_set);

        /* Revoke the rest. */
        hostsync_plan_revert(&s, &o, TRUST_ALL, &ch);
        ASSERT_FALSE(ch.set_mac);
        ASSERT_INT_EQ(ch.flags_mask, IFF_PROMISC);
        ASSERT_INT_EQ(ch.flags, 0);
        ASSERT_INT_EQ(ch.n_del, 1);
        apply_ok(&s, &o, &ch);
        ASSERT_TRUE(host_ownership_is_clean(&o));
}

TEST(failed_attribute_is_not_recorded) {
        HostLinkState s = macvtap(IFF_MULTICAST);
        HostOwnership o;
        HostChange ch;
        host_ownership_init(&o, &s);

        HostFilter want = guest_filter(true, false);
        hostsync_plan(&s, &want, TRUST_ALL, &o, &ch);
        HostApplyResult failed = { .mac = -EBUSY, .promisc = -EPERM };
        hostsync_record(&o, &ch, &failed);
        ASSERT_FALSE(o.mac_set);
        ASSERT_INT_EQ(o.flags_set, 0);
}

/* Issue 12, defect 5: entries added in a job where another entry failed are ours all the same and
 * must be deleted when the guest leaves them; entries deleted are not ours even if a neighbour failed. */
TEST(partial_multicast_apply_is_recorded_entry_by_entry) {
        HostLinkState s = macvtap(IFF_MULTICAST);
        HostOwnership o;
        HostChange ch;
        host_ownership_init(&o, &s);

        HostFilter want = guest_filter(false, false);
        want.n_multicast = 3;
        want.multicast_table[0] = mac("01:00:5e:00:00:01");
        want.multicast_table[1] = mac("01:00:5e:00:00:02");
        want.multicast_table[2] = mac("01:00:5e:00:00:03");
        hostsync_plan(&s, &want, TRUST_ALL, &o, &ch);
        ASSERT_INT_EQ(ch.n_add, 3);
        /* The second add fails: the other two are on the device and ours. */
        HostApplyResult partial = { .multicast = -ENOMEM, .add_failed = 1u << 1 };
        hostsync_record(&o, &ch, &partial);
        ASSERT_INT_EQ(o.n_added, 2);
        s.n_multicast = 2;
        s.multicast_table[0] = ch.add[0];
        s.multicast_table[1] = ch.add[2];

        /* The guest leaves them all: both are deleted, one delete fails and stays ours. */
        want.n_multicast = 0;
        hostsync_plan(&s, &want, TRUST_ALL, &o, &ch);
        ASSERT_INT_EQ(ch.n_del, 2);
        HostApplyResult del_partial = { .multicast = -EIO };
        del_partial.del_failed[0] = 1u << 1;
        hostsync_record(&o, &ch, &del_partial);
        ASSERT_INT_EQ(o.n_added, 1);
        ASSERT_TRUE(ether_addr_equal(&o.added[0], &ch.del[1]));
}

TEST(tap_is_never_planned) {
        HostLinkState s = macvtap(IFF_MULTICAST);
        s.kind = HOSTDEV_KIND_TAP;
        HostOwnership o;
        HostChange ch;
        host_ownership_init(&o, &s);
        o.mac_set = true;
        o.flags_set = IFF_PROMISC;
        s.flags |= IFF_PROMISC;
        HostFilter want = guest_filter(true, true);
        hostsync_plan(&s, &want, TRUST_ALL, &o, &ch);
        ASSERT_TRUE(host_change_is_empty(&ch));
        hostsync_plan_revert(&s, &o, TRUST_ALL, &ch);
        ASSERT_TRUE(host_change_is_empty(&ch));
}

TEST(persistence_round_trip_and_stale_ifindex) {
        char path_dir[] = "/tmp/test-hostsync-XXXXXX";
        ASSERT_TRUE(mkdtemp(path_dir));
        _cleanup_(host_state_dir_freep) HostStateDir *dir = NULL;
        ASSERT_OK(host_state_dir_new(path_dir, &dir));

        HostLinkState s = macvtap(IFF_MULTICAST | IFF_ALLMULTI);
        HostOwnership o, back;
        host_ownership_init(&o, &s);
        o.mac_set = true;
        o.flags_set = IFF_PROMISC;
        o.n_added = 2;
        o.added[0] = mac("01:00:5e:00:00:01");
        o.added[1] = mac("33:33:00:00:00:01");

        ASSERT_OK(host_ownership_save(dir, 4026531840UL, &o, NULL));
        ASSERT_OK(host_ownership_load(dir, 4026531840UL, 7, "mvt0", &back));
        ASSERT_TRUE(ether_addr_equal(&back.baseline_mac, &o.baseline_mac));
        ASSERT_INT_EQ(back.baseline_flags, IFF_MULTICAST | IFF_ALLMULTI);
        ASSERT_TRUE(back.mac_set);
        ASSERT_INT_EQ(back.flags_set, IFF_PROMISC);
        ASSERT_INT_EQ(back.n_added, 2);
        ASSERT_TRUE(ether_addr_equal(&back.added[1], &o.added[1]));
        ASSERT_STR_EQ(back.ifname, "mvt0");

        ASSERT_ERROR(host_ownership_load(dir, 4026531840UL, 8, "mvt0", &back), ENOENT);
        ASSERT_ERROR(host_ownership_load(dir, 1UL, 7, "mvt0", &back), ENOENT);

        /* Another device now has ifindex 7 (the old one was deleted): not its record, which goes. */
        ASSERT_ERROR(host_ownership_load(dir, 4026531840UL, 7, "mvt9", &back), ESTALE);
        ASSERT_ERROR(host_ownership_load(dir, 4026531840UL, 7, "mvt0", &back), ENOENT);

        /* A torn or foreign file is refused, kept aside, and keeps refusing until it is removed. */
        char path[256], corrupt[256];
        snprintf(path, sizeof(path), "%s/4026531840-7.json", path_dir);
        snprintf(corrupt, sizeof(corrupt), "%s/4026531840-7.json.corrupt", path_dir);
        FILE *f = fopen(path, "w");
        fputs("{\"ifindex\": 7, \"baseline-mac\": 5}", f);
        fclose(f);
        ASSERT_ERROR(host_ownership_load(dir, 4026531840UL, 7, "mvt0", &back), EBADMSG);
        ASSERT_OK(access(corrupt, F_OK));
        ASSERT_TRUE(access(path, F_OK) < 0);
        ASSERT_ERROR(host_ownership_load(dir, 4026531840UL, 7, "mvt0", &back), EBADMSG);
        ASSERT_OK(unlink(corrupt));
        ASSERT_ERROR(host_ownership_load(dir, 4026531840UL, 7, "mvt0", &back), ENOENT);

        ASSERT_OK(host_ownership_remove(dir, 4026531840UL, 7, NULL));
        ASSERT_OK(rmdir(path_dir));
}

static ino_t inode_of(const char *path) {
        struct stat st;
        return stat(path, &st) < 0 ? 0 : st.st_ino;
}

/* A record written again goes through the fd kept from its creation, in place: shorter text is padded
 * (and read back as it was written), one removed behind our back is created again, and a record file
 * of another device is never written through it. */
TEST(persistence_rewrites_the_open_record_in_place) {
        char path_dir[] = "/tmp/test-hostsync-XXXXXX", path[256], path8[256];
        ASSERT_TRUE(mkdtemp(path_dir));
        snprintf(path, sizeof(path), "%s/1-7.json", path_dir);
        snprintf(path8, sizeof(path8), "%s/1-8.json", path_dir);
        _cleanup_(host_state_dir_freep) HostStateDir *dir = NULL;
        ASSERT_OK(host_state_dir_new(path_dir, &dir));
        HostRecordFile f = HOST_RECORD_FILE_NULL;
        HostLinkState s = macvtap(IFF_MULTICAST);
        HostOwnership o, back;
        host_ownership_init(&o, &s);
        o.n_added = 3;
        o.added[0] = mac("01:00:5e:00:00:01");
        o.added[1] = mac("01:00:5e:00:00:02");
        o.added[2] = mac("33:33:00:00:00:01");

        ASSERT_OK(host_ownership_save(dir, 1UL, &o, &f));
        ASSERT_TRUE(f.fd >= 0);
        ino_t created = inode_of(path);
        ASSERT_TRUE(created != 0);

        o.n_added = 1; /* shorter: padded over the old text */
        ASSERT_OK(host_ownership_save(dir, 1UL, &o, &f));
        ASSERT_TRUE(inode_of(path) == created);
        ASSERT_OK(host_ownership_load(dir, 1UL, 7, "mvt0", &back));
        ASSERT_INT_EQ(back.n_added, 1);
        ASSERT_TRUE(ether_addr_equal(&back.added[0], &o.added[0]));

        o.n_added = 3; /* longer again */
        ASSERT_OK(host_ownership_save(dir, 1UL, &o, &f));
        ASSERT_TRUE(inode_of(path) == created);
        ASSERT_OK(host_ownership_load(dir, 1UL, 7, "mvt0", &back));
        ASSERT_INT_EQ(back.n_added, 3);

        /* Removed behind our back: the next save creates it again instead of writing to a ghost. */
        ASSERT_OK(unlink(path));
        o.mac_set = true;
        ASSERT_OK(host_ownership_save(dir, 1UL, &o, &f));
        ASSERT_OK(host_ownership_load(dir, 1UL, 7, "mvt0", &back));
        ASSERT_TRUE(back.mac_set);

        /* Renamed aside (as a corrupt record is): the name gets a new file, the one aside stays as it was.
         */
        char aside[300], before[512] = "", after[512] = "";
        snprintf(aside, sizeof(aside), "%s.corrupt", path);
        ASSERT_OK(rename(path, aside));
        FILE *fa = fopen(aside, "re");
        ASSERT_TRUE(fa && fgets(before, sizeof(before), fa));
        fclose(fa);
        o.mac_set = false;
        ASSERT_OK(host_ownership_save(dir, 1UL, &o, &f));
        fa = fopen(aside, "re");
        ASSERT_TRUE(fa && fgets(after, sizeof(after), fa));
        fclose(fa);
        ASSERT_STR_EQ(after, before);
        ASSERT_OK(unlink(aside));
        ASSERT_OK(host_ownership_load(dir, 1UL, 7, "mvt0", &back));
        ASSERT_FALSE(back.mac_set);
        o.mac_set = true;
        ASSERT_OK(host_ownership_save(dir, 1UL, &o, &f));

        /* Another device's record through the same handle: its own file, the first one untouched. */
        HostOwnership other = o;
        other.ifindex = 8;
        ASSERT_OK(host_ownership_save(dir, 1UL, &other, &f));
        ASSERT_INT_EQ(f.ifindex, 8);
        ASSERT_OK(host_ownership_load(dir, 1UL, 8, "mvt0", &back));
        ASSERT_OK(host_ownership_load(dir, 1UL, 7, "mvt0", &back));
        ASSERT_INT_EQ(back.n_added, 3);

        /* Nothing of ours left, written in place while the NIC holds it: read as none, and removed. */
        other.n_added = 0;
        other.mac_set = false;
        ASSERT_OK(host_ownership_save(dir, 1UL, &other, &f));
        ASSERT_OK(access(path8, F_OK));
        ASSERT_ERROR(host_ownership_load(dir, 1UL, 8, "mvt0", &back), ENOENT);
        ASSERT_TRUE(access(path8, F_OK) < 0);

        ASSERT_OK(host_ownership_remove(dir, 1UL, 8, &f));
        ASSERT_TRUE(f.fd < 0);
        ASSERT_TRUE(access(path8, F_OK) < 0);
        ASSERT_OK(host_ownership_remove(dir, 1UL, 7, &f));
        ASSERT_OK(rmdir(path_dir));
}

/* Only white space may follow the record (the padding of an in-place write). */
TEST(persistence_parser_takes_padding_only) {
        static const char record[] =
                "{\"ifindex\":7,\"ifname\":\"mvt0\",\"baseline-mac\":\"52:54:00:00:00:01\","
                "\"baseline-flags\":0,\"mac-set\":false,\"flags-set\":0,"
                "\"multicast-added\":[]}";
        char text[512];
        HostOwnership o;

        ASSERT_OK(host_ownership_parse(record, strlen(record), &o));
        snprintf(text, sizeof(text), "%s    ", record);
        ASSERT_OK(host_ownership_parse(text, strlen(text), &o));
        ASSERT_INT_EQ(o.ifindex, 7);
        snprintf(text, sizeof(text), "%s  x", record);
        ASSERT_ERROR(host_ownership_parse(text, strlen(text), &o), EBADMSG);
        snprintf(text, sizeof(text), "%s {}", record);
        ASSERT_ERROR(host_ownership_parse(text, strlen(text), &o), EBADMSG);
        snprintf(text, sizeof(text), "%s\n", record);
        ASSERT_OK(host_ownership_parse(text, strlen(text), &o));
}

/* Records are written as root: a link planted where the record or its temporary file will be is
 * never followed, and a directory others may write to is refused. */
TEST(persistence_never_follows_planted_links) {
        char path_dir[] = "/tmp/test-hostsync-XXXXXX", victim[] = "/tmp/test-hostsync-victim-XXXXXX";
        char link_path[256];
        ASSERT_TRUE(mkdtemp(path_dir));
        _cleanup_(host_state_dir_freep) HostStateDir *dir = NULL;
        ASSERT_OK(host_state_dir_new(path_dir, &dir));
        int vfd = mkstemp(victim);
        ASSERT_TRUE(vfd >= 0);
        ASSERT_INT_EQ(write(vfd, "precious\n", 9), 9);
        close(vfd);

        HostLinkState s = macvtap(IFF_MULTICAST);
        HostOwnership o;
        host_ownership_init(&o, &s);
        o.mac_set = true;
        snprintf(link_path, sizeof(link_path), "%s/4026531840-7.json", path_dir);
        ASSERT_OK(symlink(victim, link_path));
        ASSERT_OK(host_ownership_save(dir, 4026531840UL, &o, NULL)); /* replaces the link, not its target */
        struct stat st;
        ASSERT_OK(lstat(link_path, &st));
        ASSERT_TRUE(S_ISREG(st.st_mode));
        char buf[32] = {};
        FILE *f = fopen(victim, "re");
        ASSERT_TRUE(f && fgets(buf, sizeof(buf), f));
        fclose(f);
        ASSERT_STR_EQ(buf, "precious\n");

        ASSERT_OK(chmod(path_dir, 0777));
        ASSERT_ERROR(host_ownership_save(dir, 4026531840UL, &o, NULL), EPERM);
        ASSERT_OK(chmod(path_dir, 0700));
        ASSERT_OK(host_ownership_remove(dir, 4026531840UL, 7, NULL));
        ASSERT_OK(unlink(victim));
        ASSERT_OK(rmdir(path_dir));
}

/* Records are written without a JSON library: whatever bytes a device name may hold (a quote, a
 * backslash, a control byte) come back as they were, and the record stays strict JSON. */
TEST(persistence_escapes_device_names) {
        char path_dir[] = "/tmp/test-hostsync-XXXXXX";
        ASSERT_TRUE(mkdtemp(path_dir));
        _cleanup_(host_state_dir_freep) HostStateDir *dir = NULL;
        ASSERT_OK(host_state_dir_new(path_dir, &dir));

        HostLinkState s = macvtap(IFF_MULTICAST);
        snprintf(s.ifname, sizeof(s.ifname), "a\"b\\c\x01d\x7f\xc3\xa9");
        HostOwnership o, back;
        host_ownership_init(&o, &s);
        o.flags_set = IFF_PROMISC | IFF_ALLMULTI;
        for (unsigned i = 0; i < RXFILTER_TABLE_MAX; i++) {
                char m[ETHER_ADDR_STRLEN];
                snprintf(m, sizeof(m), "33:33:00:00:00:%02x", i);
                o.added[o.n_added++] = mac(m);
        }
        ASSERT_OK(host_ownership_save(dir, 1UL, &o, NULL));
        ASSERT_OK(host_ownership_load(dir, 1UL, 7, s.ifname, &back));
        ASSERT_STR_EQ(back.ifname, s.ifname);
        ASSERT_INT_EQ(back.flags_set, IFF_PROMISC | IFF_ALLMULTI);
        ASSERT_INT_EQ(back.n_added, RXFILTER_TABLE_MAX);
        ASSERT_TRUE(ether_addr_equal(&back.added[RXFILTER_TABLE_MAX - 1], &o.added[RXFILTER_TABLE_MAX - 1]));
        ASSERT_OK(host_ownership_remove(dir, 1UL, 7, NULL));
        ASSERT_OK(rmdir(path_dir));
}

/* The directory is opened once and checked on every use: removed, it is made again. */
TEST(persistence_survives_a_removed_directory) {
        char path_dir[] = "/tmp/test-hostsync-XXXXXX", path[256];
        ASSERT_TRUE(mkdtemp(path_dir));
        _cleanup_(host_state_dir_freep) HostStateDir *dir = NULL;
        ASSERT_OK(host_state_dir_new(path_dir, &dir));

        HostLinkState s = macvtap(IFF_MULTICAST);
        HostOwnership o, back;
        host_ownership_init(&o, &s);
        o.mac_set = true;
        ASSERT_OK(host_ownership_save(dir, 1UL, &o, NULL));
        ASSERT_OK(host_ownership_remove(dir, 1UL, 7, NULL));
        ASSERT_OK(rmdir(path_dir));

        ASSERT_OK(host_ownership_save(dir, 1UL, &o, NULL));
        snprintf(path, sizeof(path), "%s/1-7.json", path_dir);
        ASSERT_OK(access(path, F_OK));
        ASSERT_OK(host_ownership_load(dir, 1UL, 7, "mvt0", &back));
        ASSERT_TRUE(back.mac_set);
        ASSERT_OK(host_ownership_remove(dir, 1UL, 7, NULL));
        ASSERT_OK(rmdir(path_dir));
}
