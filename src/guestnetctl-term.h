/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* guestnetctl-term.h: what guestnetctl does differently on a terminal: colours, the pager, a polkit agent.
 */
#pragma once

#include <stdbool.h>
#include <sys/types.h>

/* Whether stdout gets ANSI colours: it is a terminal, NO_COLOR is unset and TERM is not "dumb". */
bool colors_enabled(void);

#define ANSI_NORMAL    "\x1B[0m"
#define ANSI_BOLD      "\x1B[1m"
#define ANSI_RED       "\x1B[0;31m"
#define ANSI_GREEN     "\x1B[0;32m"
#define ANSI_YELLOW    "\x1B[0;33m"
#define ANSI_GREY      "\x1B[0;38;5;245m"
#define ANSI_UNDERLINE "\x1B[0;4m"

/* The escape sequence, or "" when colours are off. */
const char *ansi(const char *sequence);

/* Sends stdout through $PAGER (or "less" with LESS=FRSXMK unless LESS is set) when stdout is a
 * terminal; PAGER set to "" or "cat" means no pager. 1 when a pager runs, 0 when not, negative errno
 * on failure. pager_close() flushes stdout, ends the pipe and waits for the pager. */
int pager_open(void);
void pager_close(void);

/* When stdin is a terminal and pkttyagent is installed, starts it for this process and waits until it
 * is registered, so that interactive authorization can ask for a password. Returns its pid, 0 when none
 * was started; failures only mean no agent (nothing to report: polkit then answers as without one). */
pid_t polkit_agent_open(void);
void polkit_agent_close(pid_t pid);
