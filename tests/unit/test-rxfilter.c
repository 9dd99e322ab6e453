/* test-rxfilter.c: placeholder. */
#include "tests.h"
