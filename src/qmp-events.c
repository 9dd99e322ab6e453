/* qmp-events.c: placeholder until written. */
