"""The Lua scripts of the Redis token store: each runs atomically on the server.

Every key of one (principal, audience) shares a hash tag, so the scripts also
work on Redis Cluster (all their keys live in one slot). Key roles: ``token``
(the sealed blob), ``lock`` (``owner:fence``, with the lease as TTL),
``fence`` (the key's fencing counter), ``failed`` (a short-lived marker of a
failed provider call).
"""

from __future__ import annotations

__all__ = ["ACQUIRE", "DELETE", "FENCE_TTL_MS", "PUBLISH", "RELEASE", "RENEW", "WRITE"]

FENCE_TTL_MS = 24 * 3600 * 1000

# KEYS: lock, fence, token. ARGV: owner, lease_ms, fence_ttl_ms.
# -> {fence, 0, blob or false} when acquired, {0, pttl} when someone holds it. The
# blob read in the same atomic step saves the holder a round trip.
ACQUIRE = """
if redis.call('exists', KEYS[1]) == 1 then
  return {0, redis.call('pttl', KEYS[1])}
end
local f = redis.call('incr', KEYS[2])
redis.call('pexpire', KEYS[2], ARGV[3])
redis.call('set', KEYS[1], ARGV[1] .. ':' .. f, 'PX', ARGV[2])
return {f, 0, redis.call('get', KEYS[3])}
"""
# KEYS: lock. ARGV: value, lease_ms.
RENEW = """
if redis.call('get', KEYS[1]) == ARGV[1] then
  return redis.call('pexpire', KEYS[1], ARGV[2])
end
return 0
"""
# KEYS: lock. ARGV: value, channel, event.
RELEASE = """
if redis.call('get', KEYS[1]) == ARGV[1] then
  redis.call('del', KEYS[1])
end
redis.call('publish', ARGV[2], ARGV[3])
return 1
"""
# KEYS: token, fence, failed, lock. ARGV: fence, blob, ttl_ms, channel, token_event,
# lock_value, released_event. The fencing check: the write happens only if nobody
# took the lock or published since we acquired. The lock is released either way.
WRITE = """
local written = 0
if tonumber(redis.call('get', KEYS[2]) or '0') == tonumber(ARGV[1]) then
  redis.call('del', KEYS[3])
  redis.call('set', KEYS[1], ARGV[2], 'PX', ARGV[3])
  written = 1
end
if redis.call('get', KEYS[4]) == ARGV[6] then
  redis.call('del', KEYS[4])
end
if written == 1 then
  redis.call('publish', ARGV[4], ARGV[5])
else
  redis.call('publish', ARGV[4], ARGV[7])
end
return written
"""
# KEYS: token, fence, failed. ARGV: blob, ttl_ms, channel, event, fence_ttl_ms. A
# publish() outranks every refresh already running: it takes a new fence.
PUBLISH = """
redis.call('del', KEYS[3])
redis.call('incr', KEYS[2])
redis.call('pexpire', KEYS[2], ARGV[5])
redis.call('set', KEYS[1], ARGV[1], 'PX', ARGV[2])
redis.call('publish', ARGV[3], ARGV[4])
return 1
"""
# KEYS: token, failed. ARGV: channel, event.
DELETE = """
redis.call('del', KEYS[1], KEYS[2])
redis.call('publish', ARGV[1], ARGV[2])
return 1
"""
