/* trust.c: placeholder until written. */
