/* test-qmp-events.c: placeholder. */
#include "tests.h"
