/* test-trust.c: placeholder. */
#include "tests.h"
