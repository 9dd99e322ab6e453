/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* netns.h: opening a network namespace file named by a caller or a config, safely. */
#pragma once

#include <stdbool.h>

#define NETNS_PATH_MAX 4095

/* NULL when path can name a namespace file (absolute, at most NETNS_PATH_MAX bytes, no control
 * characters), else a static string saying why not. No file system access: safe before authorization. */
const char *netns_path_invalid_reason(const char *path);

/* Opens a network namespace file without blocking (a FIFO or a device never stalls the caller) and
 * checks with NS_GET_NSTYPE that it is a network namespace. follow: whether the last component may be
 * a symbolic link (/proc/PID/ns/net is one; a path a caller gave is not followed). Returns 0 and the
 * fd (O_CLOEXEC, read-only) in *ret_fd, or a negative errno: -ELOOP a symbolic link, -EMEDIUMTYPE not
 * a network namespace, or what open() said. */
int netns_open(const char *path, bool follow, int *ret_fd);

/* What netns_open()'s error means, for a person. */
const char *netns_open_strerror(int error);
