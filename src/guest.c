/* guest.c: placeholder until written. */
