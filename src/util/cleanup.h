/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* cleanup.h: scope-bound cleanup attributes and ownership transfer helpers. */
#pragma once

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#define _cleanup_(f)   __attribute__((cleanup(f)))
#define _unused_       __attribute__((unused))
#define _printf_(a, b) __attribute__((format(printf, a, b)))
#define _noreturn_     __attribute__((noreturn))

#define ELEMENTSOF(x) (sizeof(x) / sizeof((x)[0]))

/* Hands a pointer out of a cleanup-scoped variable: the variable becomes NULL. */
#define TAKE_PTR(p)                        \
        ({                                 \
                __typeof__(p) _took = (p); \
                (p) = NULL;                \
                _took;                     \
        })
#define TAKE_FD(fd)               \
        ({                        \
                int _took = (fd); \
                (fd) = -EBADF;    \
                _took;            \
        })

/* Defines name##p(type *p) calling func(*p) when *p is set, for use with _cleanup_. */
#define DEFINE_POINTER_CLEANUP_FUNC(type, func) \
        static inline void func##p(type **p) {  \
                if (*p)                         \
                        func(*p);               \
        }

/* free() that returns NULL, for `p = mfree(p);`. */
static inline void *mfree(void *p) {
        free(p);
        return NULL;
}

/* Replaces *p with a copy of s (NULL allowed). Returns 0 or -ENOMEM (then *p is unchanged). */
static inline int free_and_strdup(char **p, const char *s) {
        char *copy = NULL;
        if (s && !(copy = strdup(s)))
                return -ENOMEM;
        free(*p);
        *p = copy;
        return 0;
}

static inline void freep(void *p) {
        free(*(void **)p);
}
#define _cleanup_free_ _cleanup_(freep)

static inline int safe_close(int fd) {
        if (fd >= 0)
                (void)close(fd);
        return -EBADF;
}
static inline void closep(int *fd) {
        safe_close(*fd);
}
#define _cleanup_close_ _cleanup_(closep)

static inline void fclosep(FILE **f) {
        if (*f)
                fclose(*f);
}
#define _cleanup_fclose_ _cleanup_(fclosep)

#include <dirent.h>
static inline void closedirp(DIR **d) {
        if (*d)
                closedir(*d);
}
