/* hostdev.c: placeholder until written. */
