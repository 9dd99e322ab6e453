/* test-worker.c: placeholder. */
#include "tests.h"
