/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* hostclaim.h: which NIC drives which host device, so that no device is driven by two NICs. */
#pragma once

#include <pthread.h>
#include <stdint.h>

#include "strmap.h"

#define HOST_CLAIM_LABEL_MAX 384 /* "guest NAME nic ID", both bounded (200 + 128 bytes) */

/* Shared by the worker threads: a job claims its device before it changes anything. */
typedef struct HostClaims {
        pthread_mutex_t lock;
        StrMap by_device; /* "NETNS-IFINDEX" → HostClaim */
        StrMap by_owner; /* the owner's address in hex → the same HostClaim: an owner holds one device */
} HostClaims;

int host_claims_new(HostClaims **ret);
HostClaims *host_claims_free(HostClaims *c);

/* Claims the device (netns_cookie, ifindex) for owner, NIC nic of guest guest ("guest G nic N" in
 * messages). 0 when it is now (or was already) owner's, releasing the device owner held before; -EBUSY
 * when another owner holds it, with that owner's label in holder; -ENOMEM. */
int host_claims_take(HostClaims *c, uint64_t netns_cookie, int ifindex, const void *owner, const char *guest,
        const char *nic, char holder[static HOST_CLAIM_LABEL_MAX]);
/* Releases owner's device, if any (the NIC is gone). */
void host_claims_release(HostClaims *c, const void *owner);
