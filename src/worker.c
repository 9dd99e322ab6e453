/* worker.c: placeholder until written. */
