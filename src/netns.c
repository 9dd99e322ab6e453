/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* netns.c: opening a network namespace file named by a caller or a config, safely. */
#include "netns.h"

#include <errno.h>
#include <fcntl.h>
#include <linux/nsfs.h>
#include <sched.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/stat.h>

#include "cleanup.h"
#include "escape.h"

const char *netns_path_invalid_reason(const char *path) {
        if (path[0] != '/')
                return "not an absolute path";
        if (strlen(path) > NETNS_PATH_MAX)
                return "the path is too long";
        if (has_control_chars(path))
                return "the path contains control characters";
        return NULL;
}

int netns_open(const char *path, bool follow, int *ret_fd) {
        _cleanup_close_ int fd = -EBADF;
        struct stat st;

        /* O_NONBLOCK: opening a FIFO for reading would wait for a writer. O_NOCTTY: a terminal must not
         * become ours. Namespace files are regular files of nsfs; anything else fails NS_GET_NSTYPE. */
        fd = open(path, O_RDONLY | O_CLOEXEC | O_NONBLOCK | O_NOCTTY | (follow ? 0 : O_NOFOLLOW));
        if (fd < 0)
                return -errno;
        if (fstat(fd, &st) < 0)
                return -errno;
        if (!S_ISREG(st.st_mode))
                return -EMEDIUMTYPE;
        int type = ioctl(fd, NS_GET_NSTYPE);
        if (type < 0)
                return errno == ENOTTY || errno == EINVAL ? -EMEDIUMTYPE : -errno;
        if (type != CLONE_NEWNET)
                return -EMEDIUMTYPE;
        *ret_fd = TAKE_FD(fd);
        return 0;
}

const char *netns_open_strerror(int error) {
        switch (error) {
        case -ELOOP:
                return "it is a symbolic link (give the namespace file itself, such as /run/netns/NAME)";
        case -EMEDIUMTYPE:
                return "not a network namespace";
        default:
                return strerror(-error);
        }
}
