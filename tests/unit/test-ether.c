/* test-ether.c: placeholder. */
#include "tests.h"
