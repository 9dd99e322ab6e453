/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* nlerror.h: netlink error helpers: libnl's NLE_* codes as errnos, and requests that keep the kernel's
 * own errno. */
#pragma once

#include <netlink/msg.h>
#include <netlink/socket.h>

#include "cleanup.h"

DEFINE_POINTER_CLEANUP_FUNC(struct nl_msg, nlmsg_free);

/* A libnl error code (negative NLE_*) as a negative errno; 0 stays 0. */
int nl_errno(int nlerr);

/* nl_send_auto() + nl_wait_for_ack(), except that a kernel error comes back as the kernel's errno:
 * libnl's mapping is lossy (EOVERFLOW, ENOSPC, ... all become NLE_FAILURE). */
int nl_request_ack(struct nl_sock *sk, struct nl_msg *msg);
