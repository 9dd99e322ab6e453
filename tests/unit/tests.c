/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* tests.c: runs every registered TEST in order and prints TAP; exit status 1 if any failed. */
#include "tests.h"

TestCase *test_list = NULL;
bool test_failed = false;
const char *test_skip_reason = NULL;

int main(int argc, char **argv) {
        unsigned n = 0, failed = 0;
        const char *only = argc > 1 ? argv[1] : NULL;

        for (TestCase *t = test_list; t; t = t->next)
                if (!only || strcmp(only, t->name) == 0)
                        n++;
        printf("1..%u\n", n);

        unsigned i = 0;
        for (TestCase *t = test_list; t; t = t->next) {
                if (only && strcmp(only, t->name) != 0)
                        continue;
                test_failed = false;
                test_skip_reason = NULL;
                fflush(stdout);
                t->func();
                i++;
                if (test_failed) {
                        failed++;
                        printf("not ok %u - %s\n", i, t->name);
                } else if (test_skip_reason)
                        printf("ok %u - %s # SKIP %s\n", i, t->name, test_skip_reason);
                else
                        printf("ok %u - %s\n", i, t->name);
                fflush(stdout);
        }
        return failed ? 1 : 0;
}
