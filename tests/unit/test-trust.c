/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* test-trust.c: trust masks and host-sync policies, to and from strings. */
#include "trust.h"

#include "cleanup.h"
#include "tests.h"

TEST(from_string_all_and_none) {
        ASSERT_INT_EQ(trust_from_string("all", NULL), TRUST_ALL);
        ASSERT_INT_EQ(trust_from_string("none", NULL), TRUST_NONE);
        ASSERT_INT_EQ(trust_from_string("  all ", NULL), TRUST_ALL);
        ASSERT_INT_EQ(trust_from_string(",none,", NULL), TRUST_NONE);
        ASSERT_INT_EQ(TRUST_ALL, 0xf);
}

TEST(from_string_words) {
        ASSERT_INT_EQ(trust_from_string("mac", NULL), TRUST_MAC);
        ASSERT_INT_EQ(trust_from_string("multicast", NULL), TRUST_MULTICAST);
        ASSERT_INT_EQ(trust_from_string("allmulti", NULL), TRUST_ALLMULTI);
        ASSERT_INT_EQ(trust_from_string("promisc", NULL), TRUST_PROMISC);
        ASSERT_INT_EQ(trust_from_string("multicast allmulti", NULL), TRUST_MULTICAST | TRUST_ALLMULTI);
        ASSERT_INT_EQ(trust_from_string("promisc,mac", NULL), TRUST_PROMISC | TRUST_MAC);
        ASSERT_INT_EQ(trust_from_string("mac, multicast ,allmulti,,  promisc", NULL), TRUST_ALL);
        ASSERT_INT_EQ(trust_from_string("\tmac\tpromisc\t", NULL), TRUST_MAC | TRUST_PROMISC);
        /* Repeating a word is harmless. */
        ASSERT_INT_EQ(trust_from_string("mac mac", NULL), TRUST_MAC);
}

TEST(from_string_empty) {
        char *bad = (char *)"untouched";

        ASSERT_ERROR(trust_from_string("", &bad), EINVAL);
        ASSERT_TRUE(bad == NULL);
        ASSERT_ERROR(trust_from_string(" , ,", NULL), EINVAL);
        ASSERT_ERROR(trust_from_string(",", NULL), EINVAL);
        ASSERT_ERROR(trust_from_string("   ", NULL), EINVAL);
        ASSERT_ERROR(trust_from_string(NULL, NULL), EINVAL);
}

TEST(from_string_unknown_word) {
        _cleanup_free_ char *bad = NULL;

        ASSERT_ERROR(trust_from_string("mac, promiscuous multicast", &bad), EINVAL);
        ASSERT_STR_EQ(bad, "promiscuous");
        free(bad);
        bad = NULL;

        ASSERT_ERROR(trust_from_string("MAC", &bad), EINVAL);
        ASSERT_STR_EQ(bad, "MAC");
        free(bad);
        bad = NULL;

        ASSERT_ERROR(trust_from_string("mac;promisc", &bad), EINVAL);
        ASSERT_STR_EQ(bad, "mac;promisc");
        free(bad);
        bad = NULL;

        /* Without a place for the word, still an error. */
        ASSERT_ERROR(trust_from_string("bogus", NULL), EINVAL);
}

TEST(from_string_all_none_stand_alone) {
        _cleanup_free_ char *bad = NULL;

        ASSERT_ERROR(trust_from_string("all mac", &bad), EINVAL);
        ASSERT_STR_EQ(bad, "all");
        free(bad);
        bad = NULL;

        ASSERT_ERROR(trust_from_string("mac,none", &bad), EINVAL);
        ASSERT_STR_EQ(bad, "none");
        free(bad);
        bad = NULL;

        ASSERT_ERROR(trust_from_string("all none", &bad), EINVAL);
        ASSERT_STR_EQ(bad, "all");
        free(bad);
        bad = NULL;

        ASSERT_ERROR(trust_from_string("all all", NULL), EINVAL);

        /* An unknown word is reported before a misplaced "all". */
        ASSERT_ERROR(trust_from_string("all bogus", &bad), EINVAL);
        ASSERT_STR_EQ(bad, "bogus");
}

TEST(from_string_success_leaves_bad_word) {
        char *bad = NULL;

        ASSERT_INT_EQ(trust_from_string("mac", &bad), TRUST_MAC);
        ASSERT_TRUE(bad == NULL);
}

TEST(to_string) {
        static const struct {
                unsigned mask;
                const char *text;
        } vectors[] = {
                { TRUST_NONE, "none" },
                { TRUST_MAC, "mac" },
                { TRUST_PROMISC, "promisc" },
                { TRUST_PROMISC | TRUST_MAC, "mac promisc" },
                { TRUST_ALLMULTI | TRUST_MULTICAST, "multicast allmulti" },
                { TRUST_ALL, "mac multicast allmulti promisc" },
                { 0x10, "none" },
                { 0x10 | TRUST_ALLMULTI, "allmulti" },
        };

        for (size_t i = 0; i < sizeof(vectors) / sizeof(vectors[0]); i++) {
                _cleanup_free_ char *s = trust_to_string(vectors[i].mask);
                ASSERT_STR_EQ(s, vectors[i].text);
        }
}

TEST(to_string_round_trip) {
        for (unsigned mask = 0; mask <= TRUST_ALL; mask++) {
                _cleanup_free_ char *s = trust_to_string(mask);
                ASSERT_TRUE(s);
                ASSERT_INT_EQ(trust_from_string(s, NULL), mask);
        }
}

TEST(capability_to_string) {
        ASSERT_STR_EQ(trust_capability_to_string(TRUST_MAC), "mac");
        ASSERT_STR_EQ(trust_capability_to_string(TRUST_MULTICAST), "multicast");
        ASSERT_STR_EQ(trust_capability_to_string(TRUST_ALLMULTI), "allmulti");
        ASSERT_STR_EQ(trust_capability_to_string(TRUST_PROMISC), "promisc");
        ASSERT_TRUE(trust_capability_to_string(0) == NULL);
        ASSERT_TRUE(trust_capability_to_string(TRUST_MAC | TRUST_PROMISC) == NULL);
        ASSERT_TRUE(trust_capability_to_string(1u << 4) == NULL);
        ASSERT_TRUE(trust_capability_to_string(1u << 31) == NULL);
}

TEST(vlan_policy_strings) {
        ASSERT_INT_EQ(vlan_policy_from_string("improved"), VLAN_POLICY_IMPROVED);
        ASSERT_INT_EQ(vlan_policy_from_string("libvirt"), VLAN_POLICY_LIBVIRT);
        ASSERT_INT_EQ(vlan_policy_from_string("off"), VLAN_POLICY_OFF);
        ASSERT_ERROR(vlan_policy_from_string("Improved"), EINVAL);
        ASSERT_ERROR(vlan_policy_from_string(""), EINVAL);
        ASSERT_ERROR(vlan_policy_from_string(NULL), EINVAL);

        ASSERT_STR_EQ(vlan_policy_to_string(VLAN_POLICY_IMPROVED), "improved");
        ASSERT_STR_EQ(vlan_policy_to_string(VLAN_POLICY_LIBVIRT), "libvirt");
        ASSERT_STR_EQ(vlan_policy_to_string(VLAN_POLICY_OFF), "off");
        ASSERT_TRUE(vlan_policy_to_string(_VLAN_POLICY_MAX) == NULL);
        ASSERT_TRUE(vlan_policy_to_string(_VLAN_POLICY_INVALID) == NULL);
}

TEST(unicast_policy_strings) {
        ASSERT_INT_EQ(unicast_policy_from_string("ignore"), UNICAST_POLICY_IGNORE);
        ASSERT_INT_EQ(unicast_policy_from_string("promisc"), UNICAST_POLICY_PROMISC);
        ASSERT_ERROR(unicast_policy_from_string("off"), EINVAL);
        ASSERT_ERROR(unicast_policy_from_string(""), EINVAL);
        ASSERT_ERROR(unicast_policy_from_string(NULL), EINVAL);

        ASSERT_STR_EQ(unicast_policy_to_string(UNICAST_POLICY_IGNORE), "ignore");
        ASSERT_STR_EQ(unicast_policy_to_string(UNICAST_POLICY_PROMISC), "promisc");
        ASSERT_TRUE(unicast_policy_to_string(_UNICAST_POLICY_MAX) == NULL);
        ASSERT_TRUE(unicast_policy_to_string(_UNICAST_POLICY_INVALID) == NULL);
}
