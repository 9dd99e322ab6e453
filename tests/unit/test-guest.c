/* test-guest.c */
#include "tests.h"
