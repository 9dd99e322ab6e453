/* test-config.c: placeholder. */
#include "tests.h"
