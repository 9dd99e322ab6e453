/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* test-hostclaim.c: one NIC per host device; the holder is named to the NIC that is refused. */
#include "hostclaim.h"
#include "tests.h"

TEST(a_device_is_driven_by_one_nic_until_it_lets_go) {
        HostClaims *c;
        char holder[HOST_CLAIM_LABEL_MAX] = "";
        int first, second; /* owners: only their addresses matter */

        ASSERT_OK(host_claims_new(&c));
        ASSERT_OK(host_claims_take(c, 4096, 7, &first, "vm1", "net0", holder));
        ASSERT_OK(host_claims_take(c, 4096, 7, &first, "vm1", "net0", holder)); /* again: still ours */

        ASSERT_ERROR(host_claims_take(c, 4096, 7, &second, "vm2", "net1", holder), EBUSY);
        ASSERT_STR_EQ(holder, "guest vm1 nic net0");
        /* The same ifindex in another namespace is another device. */
        ASSERT_OK(host_claims_take(c, 8192, 7, &second, "vm2", "net1", holder));

        /* An owner holds one device: taking another lets go of the first. */
        ASSERT_OK(host_claims_take(c, 4096, 8, &first, "vm1", "net0", holder));
        ASSERT_ERROR(host_claims_take(c, 4096, 8, &second, "vm2", "net1", holder), EBUSY);
        ASSERT_OK(host_claims_take(c, 8192, 7, &second, "vm2", "net1", holder));
        char third;
        ASSERT_OK(host_claims_take(c, 4096, 7, &third, "vm3", "net2", holder));

        host_claims_release(c, &first);
        ASSERT_OK(host_claims_take(c, 4096, 8, &second, "vm2", "net1", holder));
        ASSERT_ERROR(host_claims_take(c, 4096, 8, &third, "vm3", "net2", holder), EBUSY);
        ASSERT_STR_EQ(holder, "guest vm2 nic net1");
        host_claims_release(c, &first); /* holds nothing: nothing happens */
        host_claims_free(c);
}
