/* qmp.c: placeholder until written. */
