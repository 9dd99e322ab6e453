/* manager.c: placeholder until written. */
