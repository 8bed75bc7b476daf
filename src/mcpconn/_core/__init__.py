"""The sans-IO core: every decision, no I/O, no clock, no randomness (they are parameters)."""
