/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* hostfdb.h: the bridge FDB of a tap that is a bridge port: its static entry follows the guest's MAC. */
#pragma once

#include "ether.h"
#include "hostns.h"

/* 1 if ifindex is a bridge port with learning off (its FDB entries are static: they must follow the
 * guest's MAC), 0 if not a bridge port or learning is on. */
int hostfdb_port_is_static(HostContext *c, int ifindex);
/* Moves the port's static FDB entry from old_mac to new_mac (libnl neighbour API, AF_BRIDGE). 0 when
 * moved, 1 when the port has no entry for old_mac (nothing to move), negative errno on failure. */
int hostfdb_move(HostContext *c, int ifindex, const EtherAddr *old_mac, const EtherAddr *new_mac);
