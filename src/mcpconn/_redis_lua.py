"""The Lua scripts of the Redis token store: each runs atomically on the server.

Every key of one (principal, audience) shares a hash tag, so the scripts also
work on Redis Cluster (all their keys live in one slot).
"""

from __future__ import annotations

__all__ = ["ACQUIRE", "DELETE", "FENCE_TTL_MS", "PUBLISH", "RELEASE", "RENEW", "WRITE_FENCED"]

FENCE_TTL_MS = 24 * 3600 * 1000

# KEYS: lock, fence. ARGV: owner, lease_ms, fence_ttl_ms. -> {fence or 0, pttl}
ACQUIRE = """
if redis.call('exists', KEYS[1]) == 1 then
  return {0, redis.call('pttl', KEYS[1])}
end
local f = redis.call('incr', KEYS[2])
redis.call('pexpire', KEYS[2], ARGV[3])
redis.call('set', KEYS[1], ARGV[1] .. ':' .. f, 'PX', ARGV[2])
return {f, 0}
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
# KEYS: token, fence, failed. ARGV: fence, blob, ttl_ms, channel, event. The fencing check.
WRITE_FENCED = """
if tonumber(redis.call('get', KEYS[2]) or '0') ~= tonumber(ARGV[1]) then
  return 0
end
redis.call('del', KEYS[3])
redis.call('set', KEYS[1], ARGV[2], 'PX', ARGV[3])
redis.call('publish', ARGV[4], ARGV[5])
return 1
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
