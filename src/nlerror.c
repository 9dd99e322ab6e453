/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* nlerror.c: netlink error helpers: libnl's NLE_* codes as errnos, requests keeping the kernel errno. */
#include "nlerror.h"

#include <errno.h>
#include <linux/netlink.h>
#include <netlink/errno.h>
#include <netlink/handlers.h>
#include <stdlib.h>

DEFINE_POINTER_CLEANUP_FUNC(struct nl_cb, nl_cb_put);

/* libnl folds kernel errnos into its own NLE_* codes (nl_syserr2nlerr) and offers no inverse. Kernel
 * errors are taken verbatim from the NLMSG_ERROR (see nl_request_ack); this covers libnl's own. */
int nl_errno(int nlerr) {
        switch (abs(nlerr)) {
        case NLE_SUCCESS:
                return 0;
        case NLE_INTR:
                return -EINTR;
        case NLE_BAD_SOCK:
                return -EBADF;
        case NLE_AGAIN:
        case NLE_DUMP_INTR:
                return -EAGAIN;
        case NLE_NOMEM:
        case NLE_MSG_OVERFLOW:
                return -ENOMEM;
        case NLE_EXIST:
                return -EEXIST;
        case NLE_INVAL:
        case NLE_OBJ_MISMATCH:
                return -EINVAL;
        case NLE_RANGE:
                return -ERANGE;
        case NLE_MSGSIZE:
        case NLE_MSG_TRUNC:
        case NLE_ATTRSIZE:
                return -EMSGSIZE;
        case NLE_OPNOTSUPP:
        case NLE_SRCRT_NOSUPPORT:
        case NLE_MSGTYPE_NOSUPPORT:
                return -EOPNOTSUPP;
        case NLE_AF_NOSUPPORT:
        case NLE_AF_MISMATCH:
                return -EAFNOSUPPORT;
        case NLE_OBJ_NOTFOUND:
        case NLE_NOCACHE:
                return -ENOENT;
        case NLE_NOATTR:
        case NLE_MISSING_ATTR:
        case NLE_SEQ_MISMATCH:
        case NLE_MSG_TOOSHORT:
        case NLE_PARSE_ERR:
                return -EBADMSG;
        case NLE_NOADDR:
                return -EADDRNOTAVAIL;
        case NLE_BUSY:
                return -EBUSY;
        case NLE_PROTO_MISMATCH:
                return -EPROTONOSUPPORT;
        case NLE_NOACCESS:
                return -EACCES;
        case NLE_PERM:
        case NLE_IMMUTABLE:
                return -EPERM;
        case NLE_NODEV:
                return -ENODEV;
        default:
                return -EIO;
        }
}

static int nl_error_handler(struct sockaddr_nl *who, struct nlmsgerr *e, void *arg) {
        *(int *)arg = e->error; /* the kernel's own negative errno */
        return NL_STOP;
}

static int nl_ack_handler(struct nl_msg *msg, void *arg) {
        return NL_STOP;
}

int nl_request_ack(struct nl_sock *sk, struct nl_msg *msg) {
        _cleanup_(nl_cb_putp) struct nl_cb *cb = NULL;
        struct nl_cb *sk_cb;
        int r, kernel_error = 0;

        r = nl_send_auto(sk, msg);
        if (r < 0)
                return nl_errno(r);

        sk_cb = nl_socket_get_cb(sk);
        cb = nl_cb_clone(sk_cb);
        nl_cb_put(sk_cb);
        if (!cb)
                return -ENOMEM;
        nl_cb_set(cb, NL_CB_ACK, NL_CB_CUSTOM, nl_ack_handler, NULL);
        nl_cb_err(cb, NL_CB_CUSTOM, nl_error_handler, &kernel_error);

        r = nl_recvmsgs(sk, cb);
        if (kernel_error < 0)
                return kernel_error;
        if (r < 0)
                return nl_errno(r);
        return 0;
}
