/* config.c: placeholder until written. */
