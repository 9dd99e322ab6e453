/* test-hostdev.c: placeholder. */
#include "tests.h"
