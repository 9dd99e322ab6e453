/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* test-ether.c: Ethernet address parsing, formatting, classification and ordering. */
#include "ether.h"

#include "tests.h"

static EtherAddr mac(uint8_t a, uint8_t b, uint8_t c, uint8_t d, uint8_t e, uint8_t f) {
        return (EtherAddr){ { a, b, c, d, e, f } };
}

TEST(parse_lower_case) {
        EtherAddr a, want = mac(0x52, 0x54, 0x00, 0x12, 0x34, 0x56);

        ASSERT_OK(ether_addr_parse("52:54:00:12:34:56", &a));
        ASSERT_TRUE(ether_addr_equal(&a, &want));
}

TEST(parse_upper_and_mixed_case) {
        EtherAddr a, b, want = mac(0x52, 0x54, 0x00, 0xab, 0xcd, 0xef);

        ASSERT_OK(ether_addr_parse("52:54:00:AB:CD:EF", &a));
        ASSERT_TRUE(ether_addr_equal(&a, &want));
        ASSERT_OK(ether_addr_parse("52:54:00:aB:Cd:eF", &b));
        ASSERT_TRUE(ether_addr_equal(&b, &want));
}

TEST(parse_extremes) {
        EtherAddr a, zero = mac(0, 0, 0, 0, 0, 0), bcast = mac(0xff, 0xff, 0xff, 0xff, 0xff, 0xff);

        ASSERT_OK(ether_addr_parse("00:00:00:00:00:00", &a));
        ASSERT_TRUE(ether_addr_equal(&a, &zero));
        ASSERT_OK(ether_addr_parse("ff:ff:ff:ff:ff:ff", &a));
        ASSERT_TRUE(ether_addr_equal(&a, &bcast));
}

TEST(parse_rejects_malformed) {
        static const char *const bad[] = {
                "",
                "52:54:00:12:34",
                "52:54:00:12:34:",
                "52:54:00:12:34:5",
                "52:54:00:12:34:56:",
                "52:54:00:12:34:56:78",
                "52:54:00:12:34:567",
                "52:54:00:12:34:56 ",
                " 52:54:00:12:34:56",
                "zz:54:00:12:34:56",
                "52:54:00:12:34:5g",
                "52-54-00-12-34-56",
                "52.54.00.12.34.56",
                "525400123456",
                "5:254:00:12:34:56",
                "52:54:0:012:34:56",
                "+2:54:00:12:34:56",
        };
        EtherAddr sentinel = mac(1, 2, 3, 4, 5, 6);

        for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
                EtherAddr a = sentinel;
                int r = ether_addr_parse(bad[i], &a);
                if (r != -EINVAL)
                        TEST_FAIL("\"%s\" parsed: %d", bad[i], r);
                /* The result is untouched on failure. */
                ASSERT_TRUE(ether_addr_equal(&a, &sentinel));
        }
        EtherAddr a;
        ASSERT_ERROR(ether_addr_parse(NULL, &a), EINVAL);
}

TEST(format_lower_case_round_trip) {
        char buf[ETHER_ADDR_STRLEN];
        EtherAddr a = mac(0x52, 0x54, 0x00, 0xab, 0xcd, 0xef), b;

        ASSERT_STR_EQ(ether_addr_format(&a, buf), "52:54:00:ab:cd:ef");
        ASSERT_TRUE(ether_addr_format(&a, buf) == buf);
        ASSERT_INT_EQ(strlen(buf), ETHER_ADDR_STRLEN - 1);
        ASSERT_OK(ether_addr_parse(buf, &b));
        ASSERT_TRUE(ether_addr_equal(&a, &b));

        a = mac(0, 0, 0, 0, 0, 0x0f);
        ASSERT_STR_EQ(ether_addr_format(&a, buf), "00:00:00:00:00:0f");
}

TEST(classify) {
        EtherAddr guest = mac(0x52, 0x54, 0x00, 0x12, 0x34, 0x56);
        EtherAddr ipv6_mc = mac(0x33, 0x33, 0x00, 0x00, 0x00, 0x01);
        EtherAddr ipv4_mc = mac(0x01, 0x00, 0x5e, 0x00, 0x00, 0x01);
        EtherAddr bcast = mac(0xff, 0xff, 0xff, 0xff, 0xff, 0xff);
        EtherAddr zero = mac(0, 0, 0, 0, 0, 0);
        EtherAddr local = mac(0x02, 0, 0, 0, 0, 1);

        ASSERT_FALSE(ether_addr_is_multicast(&guest));
        ASSERT_TRUE(ether_addr_is_multicast(&ipv6_mc));
        ASSERT_TRUE(ether_addr_is_multicast(&ipv4_mc));
        ASSERT_TRUE(ether_addr_is_multicast(&bcast));
        ASSERT_FALSE(ether_addr_is_multicast(&zero));
        ASSERT_FALSE(ether_addr_is_multicast(&local));

        ASSERT_TRUE(ether_addr_is_zero(&zero));
        ASSERT_FALSE(ether_addr_is_zero(&guest));
        ASSERT_FALSE(ether_addr_is_zero(&local));

        ASSERT_TRUE(ether_addr_is_valid_unicast(&guest));
        ASSERT_TRUE(ether_addr_is_valid_unicast(&local));
        ASSERT_FALSE(ether_addr_is_valid_unicast(&zero));
        ASSERT_FALSE(ether_addr_is_valid_unicast(&ipv6_mc));
        ASSERT_FALSE(ether_addr_is_valid_unicast(&bcast));
}

TEST(equal_and_compare) {
        EtherAddr a = mac(0x01, 0x00, 0x5e, 0x00, 0x00, 0x01);
        EtherAddr b = mac(0x33, 0x33, 0x00, 0x00, 0x00, 0x01);
        EtherAddr c = mac(0x33, 0x33, 0xff, 0x12, 0x34, 0x56);
        EtherAddr a2 = a;

        ASSERT_TRUE(ether_addr_equal(&a, &a2));
        ASSERT_FALSE(ether_addr_equal(&a, &b));
        ASSERT_INT_EQ(ether_addr_compare(&a, &a2), 0);
        /* Byte order, most significant byte first. */
        ASSERT_TRUE(ether_addr_compare(&a, &b) < 0);
        ASSERT_TRUE(ether_addr_compare(&b, &a) > 0);
        ASSERT_TRUE(ether_addr_compare(&b, &c) < 0);
        /* The last byte decides when the rest is equal. */
        EtherAddr d = mac(0x33, 0x33, 0xff, 0x12, 0x34, 0x57);
        ASSERT_TRUE(ether_addr_compare(&c, &d) < 0);
}

TEST(compare_sorts_with_qsort) {
        EtherAddr t[] = {
                mac(0x33, 0x33, 0xff, 0x12, 0x34, 0x56),
                mac(0x01, 0x00, 0x5e, 0x00, 0x00, 0x01),
                mac(0x33, 0x33, 0x00, 0x00, 0x00, 0x01),
        };
        char buf[ETHER_ADDR_STRLEN];

        qsort(t, 3, sizeof(EtherAddr), ether_addr_compare);
        ASSERT_STR_EQ(ether_addr_format(&t[0], buf), "01:00:5e:00:00:01");
        ASSERT_STR_EQ(ether_addr_format(&t[1], buf), "33:33:00:00:00:01");
        ASSERT_STR_EQ(ether_addr_format(&t[2], buf), "33:33:ff:12:34:56");
}
