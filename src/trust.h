/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* trust.h: per-NIC capability trust and the host-sync policies. */
#pragma once

#include <errno.h>
#include <stdbool.h>
#include <stddef.h>

typedef enum Trust {
        TRUST_MAC = 1 << 0, /* the guest may set the host device's MAC */
        TRUST_MULTICAST = 1 << 1, /* ... its multicast list and IFF_MULTICAST */
        TRUST_ALLMULTI = 1 << 2, /* ... IFF_ALLMULTI */
        TRUST_PROMISC = 1 << 3, /* ... IFF_PROMISC */
        TRUST_NONE = 0,
        TRUST_ALL = TRUST_MAC | TRUST_MULTICAST | TRUST_ALLMULTI | TRUST_PROMISC,
} Trust;

/* Parses "all", "none" or a list of capability names separated by spaces or commas.
 * Returns the mask (>= 0) or -EINVAL, with *ret_bad_word (if given) set to the offending word (static
 * storage not used: the caller frees it). */
int trust_from_string(const char *s, char **ret_bad_word);
/* Formats a mask as "mac multicast ..." ("none" for 0). Returns a malloc'd string or NULL. */
char *trust_to_string(unsigned trust);
/* Capability name for one bit, NULL if not exactly one known bit. */
const char *trust_capability_to_string(unsigned bit);
#define TRUST_CAPABILITIES_ALLOWED "all, none, or a list of: mac multicast allmulti promisc"

typedef enum VlanPolicy {
        VLAN_POLICY_IMPROVED, /* real VIDs ask for promisc; VID 0 and vlan "all" do not */
        VLAN_POLICY_LIBVIRT, /* any VLAN entry forces promisc, as libvirt does */
        VLAN_POLICY_OFF, /* VLANs never affect the host device */
        _VLAN_POLICY_MAX,
        _VLAN_POLICY_INVALID = -EINVAL,
} VlanPolicy;

typedef enum UnicastPolicy {
        UNICAST_POLICY_IGNORE, /* as libvirt: unicast table and mode are not applied */
        UNICAST_POLICY_PROMISC, /* extra unicast addresses (guest bridge, macvlan) ask for promisc */
        _UNICAST_POLICY_MAX,
        _UNICAST_POLICY_INVALID = -EINVAL,
} UnicastPolicy;

VlanPolicy vlan_policy_from_string(const char *s);
const char *vlan_policy_to_string(VlanPolicy p);
UnicastPolicy unicast_policy_from_string(const char *s);
const char *unicast_policy_to_string(UnicastPolicy p);
