"""The pieces of the Redis token store: sealing, locks, pub/sub, Lua scripts, health."""
