/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* guestnetctl-term.c: colours, the pager and the polkit agent, all only when a terminal is there. */
#include "guestnetctl-term.h"

#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include "cleanup.h"

#define PKTTYAGENT                "/usr/bin/pkttyagent"
#define POLKIT_AGENT_TIMEOUT_MSEC 5000

static pid_t pager_pid;

bool colors_enabled(void) {
        static int cached = -1;

        if (cached < 0) {
                const char *term = getenv("TERM");
                cached =
                        isatty(STDOUT_FILENO) && !getenv("NO_COLOR") && !(term && strcmp(term, "dumb") == 0);
        }
        return cached;
}

const char *ansi(const char *sequence) {
        return colors_enabled() ? sequence : "";
}

static _noreturn_ void pager_exec(const char *pager) {
        if (pager) {
                execl("/bin/sh", "sh", "-c", pager, (char *)NULL);
                _exit(EXIT_FAILURE);
        }
        /* F: quit when it fits on one screen, R: pass colours, S: chop long lines, X: keep the output on
         * the screen afterwards, M: verbose prompt, K: quit on ^C. */
        (void)setenv("LESS", "FRSXMK", 0);
        execlp("less", "less", (char *)NULL);
        execlp("more", "more", (char *)NULL);
        execlp("cat", "cat", (char *)NULL);
        _exit(EXIT_FAILURE);
}

int pager_open(void) {
        const char *pager = getenv("PAGER");
        int fd[2];
        pid_t pid;

        if (pager_pid > 0)
                return 1;
        if (!isatty(STDOUT_FILENO))
                return 0;
        if (pager && (pager[0] == '\0' || strcmp(pager, "cat") == 0))
                return 0;

        fflush(stdout);
        if (pipe2(fd, O_CLOEXEC) < 0)
                return -errno;
        pid = fork();
        if (pid < 0) {
                int r = -errno;
                safe_close(fd[0]);
                safe_close(fd[1]);
                return r;
        }
        if (pid == 0) {
                if (dup2(fd[0], STDIN_FILENO) < 0)
                        _exit(EXIT_FAILURE);
                pager_exec(pager);
        }
        safe_close(fd[0]);
        if (dup2(fd[1], STDOUT_FILENO) < 0) {
                int r = -errno;
                safe_close(fd[1]);
                (void)kill(pid, SIGTERM);
                (void)waitpid(pid, NULL, 0);
                return r;
        }
        safe_close(fd[1]);
        pager_pid = pid;
        return 1;
}

void pager_close(void) {
        if (pager_pid <= 0)
                return;
        fflush(stdout);
        /* The pager sees the end of its input only when our last copy of the pipe is closed. */
        (void)close(STDOUT_FILENO);
        while (waitpid(pager_pid, NULL, 0) < 0 && errno == EINTR)
                ;
        pager_pid = 0;
}

pid_t polkit_agent_open(void) {
        char notify_arg[16], process_arg[32];
        struct pollfd p;
        int fd[2];
        pid_t pid, parent = getpid();

        if (!isatty(STDIN_FILENO) || access(PKTTYAGENT, X_OK) < 0)
                return 0;
        if (pipe2(fd, O_CLOEXEC) < 0)
                return 0;
        pid = fork();
        if (pid < 0) {
                safe_close(fd[0]);
                safe_close(fd[1]);
                return 0;
        }
        if (pid == 0) {
                /* The notify fd must survive exec; everything else we hold is O_CLOEXEC. */
                int notify = fcntl(fd[1], F_DUPFD, 3);
                if (notify < 0)
                        _exit(EXIT_FAILURE);
                snprintf(notify_arg, sizeof(notify_arg), "%d", notify);
                snprintf(process_arg, sizeof(process_arg), "%d", (int)parent);
                execl(PKTTYAGENT, PKTTYAGENT, "--notify-fd", notify_arg, "--fallback", "--process",
                        process_arg, (char *)NULL);
                _exit(EXIT_FAILURE);
        }
        safe_close(fd[1]);
        /* pkttyagent closes the notify fd once it is registered with polkit (or exits when it cannot). */
        p = (struct pollfd){ .fd = fd[0], .events = POLLIN };
        while (poll(&p, 1, POLKIT_AGENT_TIMEOUT_MSEC) < 0 && errno == EINTR)
                ;
        safe_close(fd[0]);
        return pid;
}

void polkit_agent_close(pid_t pid) {
        if (pid <= 0)
                return;
        (void)kill(pid, SIGTERM);
        while (waitpid(pid, NULL, 0) < 0 && errno == EINTR)
                ;
}
