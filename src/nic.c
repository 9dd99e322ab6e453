/* nic.c: placeholder until written. */
