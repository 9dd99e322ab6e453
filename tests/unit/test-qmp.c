/* test-qmp.c: placeholder. */
#include "tests.h"
