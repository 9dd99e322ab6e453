/* rxfilter.c: placeholder until written. */
