"""One replica refreshes a key at a time: a leased lock with a fencing counter.

A lease alone is not enough: a holder can stall past it (a GC pause, a slow
provider) while another replica takes the lock and stores a newer token. So
every acquire also INCRs the key's fence, and `LeaseLock.write` stores a token
only while the fence still equals the holder's: a late holder's result is
dropped instead of overwriting the newer one. A live holder renews its lease
every third of it (`LeaseLock.keep`), so the lease only bounds a crashed one.
The scripts themselves are in `_redis_lua`.
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable

import anyio
import redis.asyncio as aioredis

from . import lua
from .health import Health, Unavailable

__all__ = ["Lease", "LeaseLock"]


class Lease:
    """A held lock: ``value`` (``owner:fence``) proves it is ours at release."""

    def __init__(self, fence: int, value: str, blob: bytes | None) -> None:
        self.fence = fence
        self.value = value
        self.blob = blob  # the shared token when the lock was taken


class LeaseLock:
    """The lock scripts of one store; ``name(digest, part)`` names a Redis key."""

    def __init__(
        self,
        redis: aioredis.Redis,
        health: Health,
        *,
        owner: str,
        lease: float,
        channel: str,
        name: Callable[[str, str], str],
    ) -> None:
        self._call = health.call
        self._owner = owner
        self._lease = lease
        self._channel = channel
        self._name = name
        self._scripts = {
            script: redis.register_script(text)
            for script, text in [
                ("acquire", lua.ACQUIRE),
                ("renew", lua.RENEW),
                ("release", lua.RELEASE),
                ("write", lua.WRITE),
            ]
        }

    async def acquire(self, digest: str) -> tuple[Lease | None, int]:
        """Our lease, or ``None`` and the holder's remaining lease in ms."""
        owner = self._owner
        keys = [self._name(digest, part) for part in ("lock", "fence", "token")]
        args: list[str | int] = [owner, int(self._lease * 1000), lua.FENCE_TTL_MS]
        reply = await self._call(lambda: self._scripts["acquire"](keys=keys, args=args))
        fence, pttl = int(reply[0]), int(reply[1])
        if fence == 0:
            return None, pttl
        blob = reply[2] if len(reply) > 2 and reply[2] else None
        return Lease(fence, f"{owner}:{fence}", blob), 0

    async def keep(self, digest: str, lease: Lease) -> None:
        """Renew the lease until cancelled or lost."""
        lock = self._name(digest, "lock")
        lease_ms = int(self._lease * 1000)
        while True:
            await anyio.sleep(self._lease / 3)
            try:
                renewed = await self._call(
                    lambda: self._scripts["renew"](keys=[lock], args=[lease.value, lease_ms])
                )
            except Unavailable:
                continue
            if not renewed:
                return  # lost it: the fenced write will refuse our result

    async def release(self, digest: str, lease: Lease, event: str) -> None:
        lock = self._name(digest, "lock")
        with contextlib.suppress(Unavailable):  # else the lease runs out on its own
            await self._call(
                lambda: self._scripts["release"](
                    keys=[lock], args=[lease.value, self._channel, event]
                )
            )

    async def write(
        self, digest: str, lease: Lease, blob: bytes, ttl: int, *, written: str, released: str
    ) -> bool:
        """Store ``blob`` if the fence is still ours, and release; publish an event
        (``written`` or ``released``). False: a newer token won. Raises `Unavailable`."""
        names = [self._name(digest, part) for part in ("token", "fence", "failed", "lock")]
        args: list[str | int | bytes] = [lease.fence, blob, ttl, self._channel]
        args += [written, lease.value, released]
        return bool(await self._call(lambda: self._scripts["write"](keys=names, args=args)))
