/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* hostclaim.c: which NIC drives which host device, so that no device is driven by two NICs. */
#include "hostclaim.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "cleanup.h"
#include "textbuf.h"

#define DEVICE_KEY_MAX 48 /* "NETNS-IFINDEX": 20 + 1 + 11 digits */
#define OWNER_KEY_MAX  24 /* the owner's address in hex: 16 digits */

typedef struct HostClaim {
        char device_key[DEVICE_KEY_MAX];
        char owner_key[OWNER_KEY_MAX];
        const void *owner;
        char label[HOST_CLAIM_LABEL_MAX];
} HostClaim;

/* Keys formatted on every trusted job: without printf. */
static void format_device_key(uint64_t netns_cookie, int ifindex, char key[static DEVICE_KEY_MAX]) {
        TextBuf t = { .buf = key, .size = DEVICE_KEY_MAX };
        text_append_u64(&t, netns_cookie);
        text_append_char(&t, '-');
        text_append_i64(&t, ifindex);
}

static void format_owner_key(const void *owner, char key[static OWNER_KEY_MAX]) {
        TextBuf t = { .buf = key, .size = OWNER_KEY_MAX };
        text_append_hex(&t, (uintptr_t)owner, 1);
}

int host_claims_new(HostClaims **ret) {
        HostClaims *c = calloc(1, sizeof(HostClaims));
        if (!c)
                return -ENOMEM;
        pthread_mutex_init(&c->lock, NULL);
        *ret = c;
        return 0;
}

static void claim_drop(HostClaims *c, HostClaim *claim) {
        strmap_remove(&c->by_device, claim->device_key);
        strmap_remove(&c->by_owner, claim->owner_key);
        free(claim);
}

HostClaims *host_claims_free(HostClaims *c) {
        if (!c)
                return NULL;
        for (size_t i = 0; i < c->by_owner.n_buckets; i++)
                free(c->by_owner.entries[i].value);
        strmap_done(&c->by_device);
        strmap_done(&c->by_owner);
        pthread_mutex_destroy(&c->lock);
        free(c);
        return NULL;
}

int host_claims_take(HostClaims *c, uint64_t netns_cookie, int ifindex, const void *owner, const char *guest,
        const char *nic, char holder[static HOST_CLAIM_LABEL_MAX]) {
        char device_key[DEVICE_KEY_MAX], owner_key[OWNER_KEY_MAX];
        int r = 0;

        format_device_key(netns_cookie, ifindex, device_key);
        format_owner_key(owner, owner_key);

        pthread_mutex_lock(&c->lock);
        HostClaim *claim = strmap_get(&c->by_device, device_key);
        if (claim) {
                if (claim->owner != owner) {
                        strscpy(holder, HOST_CLAIM_LABEL_MAX, claim->label);
                        r = -EBUSY;
                }
                goto unlock;
        }

        HostClaim *previous = strmap_get(&c->by_owner, owner_key);
        if (previous)
                claim_drop(c, previous);
        claim = calloc(1, sizeof(HostClaim));
        if (!claim) {
                r = -ENOMEM;
                goto unlock;
        }
        memcpy(claim->device_key, device_key, sizeof(device_key));
        memcpy(claim->owner_key, owner_key, sizeof(owner_key));
        claim->owner = owner;
        TextBuf t = TEXT_BUF(claim->label);
        text_append(&t, "guest ");
        text_append(&t, guest);
        text_append(&t, " nic ");
        text_append(&t, nic);
        r = strmap_put(&c->by_device, claim->device_key, claim);
        if (r >= 0) {
                r = strmap_put(&c->by_owner, claim->owner_key, claim);
                if (r < 0)
                        strmap_remove(&c->by_device, claim->device_key);
        }
        if (r < 0)
                free(claim);
unlock:
        pthread_mutex_unlock(&c->lock);
        return r;
}

void host_claims_release(HostClaims *c, const void *owner) {
        char owner_key[OWNER_KEY_MAX];

        if (!c)
                return;
        format_owner_key(owner, owner_key);
        pthread_mutex_lock(&c->lock);
        HostClaim *claim = strmap_get(&c->by_owner, owner_key);
        if (claim)
                claim_drop(c, claim);
        pthread_mutex_unlock(&c->lock);
}
