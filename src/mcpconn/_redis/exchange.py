"""One provider call per key across replicas: the locked exchange behind `RedisTokenStore`.

(1) Read the shared token: if another replica already replaced it, done. (2) Else
take the key's lock (`LeaseLock`: ``SET NX PX`` plus the fencing counter), call the
provider, and (3) write with a script that succeeds only while the fence is still
ours, releasing the lock and announcing the sealed token. A replica that finds the
lock taken waits for that event, polling as a fallback and waking when the lease
runs out. A failed provider call is marked for ``failure_ttl`` so the waiting
replicas fail fast too. Redis being down means the caller fetches on its own.
"""

from __future__ import annotations

import contextlib
import logging

import anyio
import redis.asyncio as aioredis

from .._exceptions import MCPConnError, ReauthRequired, TokenProviderError
from .._tokens.store import Fetch, Key, StoredToken, UsablePredicate
from .health import Health, Unavailable
from .keyspace import Keyspace
from .lock import Lease, LeaseLock
from .pubsub import Listener

__all__ = ["LockedExchange"]

logger = logging.getLogger("mcpconn.redis_store")


class LockedExchange:
    """``await exchange(key, digest, usable, fetch)``: a usable shared token, or ours."""

    def __init__(
        self,
        redis: aioredis.Redis,
        health: Health,
        keys: Keyspace,
        lock: LeaseLock,
        listener: Listener,
        *,
        wait_timeout: float,
        failure_ttl: float,
    ) -> None:
        self._redis = redis
        self._health = health
        self._keys = keys
        self._lock = lock
        self._listener = listener
        self._wait_timeout = wait_timeout
        self._failure_ttl = failure_ttl

    async def __call__(
        self,
        key: Key,
        digest: str,
        usable: UsablePredicate,
        fetch: Fetch,
    ) -> StoredToken:
        deadline = anyio.current_time() + self._wait_timeout
        # Events wake us; polling is the fallback, brisk only while pub/sub is down.
        poll = 0.25 if self._listener.subscribed else 0.02
        while True:
            wakeup = self._listener.arm(digest)
            try:
                shared, failed = await self.load(digest, with_failure=True)
                if usable(shared):
                    assert shared is not None
                    return shared
                if failed is not None:
                    raise _failure_error(key, failed)
                lease, pttl = await self.acquire(digest)
            except Unavailable:
                return await fetch()
            if lease is not None:
                return await self._fetch_holding(digest, lease, usable, fetch)
            remaining = deadline - anyio.current_time()
            if remaining <= 0:
                raise TokenProviderError(
                    "timed out waiting for another replica's token refresh",
                    principal=key[0],
                    audience=key[1],
                )
            # Wake on the holder's event, at lease expiry, or on the next poll.
            wait = min(poll, remaining, max(pttl, 1) / 1000 + 0.002)
            with anyio.move_on_after(wait):
                await wakeup.event.wait()
            if usable(wakeup.entry):
                assert wakeup.entry is not None
                return wakeup.entry
            poll = min(poll * 2, 0.5)

    async def _fetch_holding(
        self,
        digest: str,
        lease: Lease,
        usable: UsablePredicate,
        fetch: Fetch,
    ) -> StoredToken:
        result: StoredToken | None = None
        error: Exception | None = None
        released = False
        try:
            async with anyio.create_task_group() as tg:
                tg.start_soon(self._lock.keep, digest, lease)
                try:
                    opened = None if lease.blob is None else self._keys.open(digest, lease.blob)
                    shared = None if opened is None else opened[1]
                    if usable(shared):  # someone finished just before we took the lock
                        result = shared
                    else:
                        result = await fetch()
                        released = await self.write(digest, lease, result)
                except Exception as exc:  # re-raised below, outside the task group
                    error = exc
                    if isinstance(exc, MCPConnError):
                        await self._record_failure(digest, exc)
                tg.cancel_scope.cancel()
        finally:
            if not released:
                with anyio.CancelScope(shield=True):
                    await self._lock.release(digest, lease, self._keys.event("released", digest))
        if error is not None:
            raise error
        assert result is not None
        return result

    async def write(self, digest: str, lease: Lease, entry: StoredToken) -> bool:
        """Fenced write of our new token plus release; True when the script ran."""
        ttl = self._keys.ttl_ms(entry)
        if ttl is None:
            return False
        blob = self._keys.seal(digest, entry, published=False)
        token_event = self._keys.event("token", digest, blob)
        released_event = self._keys.event("released", digest)
        try:
            written = await self._lock.write(
                digest, lease, blob, ttl, written=token_event, released=released_event
            )
        except Unavailable:
            return False
        if not written:
            logger.info("a newer token landed during this refresh; not overwriting it")
        return True

    async def acquire(self, digest: str) -> tuple[Lease | None, int]:
        return await self._lock.acquire(digest)

    async def load(
        self, digest: str, *, with_failure: bool = False
    ) -> tuple[StoredToken | None, bytes | None]:
        """The shared token, and the failure another replica recorded (if asked)."""
        names = [self._keys.name(digest, "token"), self._keys.name(digest, "failed")]
        if with_failure:
            blob, failed = await self._health.call(lambda: self._redis.mget(names))
        else:
            blob, failed = await self._health.call(lambda: self._redis.get(names[0])), None
        opened = None if blob is None else self._keys.open(digest, blob)
        if isinstance(failed, str):  # a client built with decode_responses=True
            failed = failed.encode()
        return (None if opened is None else opened[1]), failed

    async def _record_failure(self, digest: str, error: MCPConnError) -> None:
        """Let the waiting replicas fail fast too, for ``failure_ttl``."""
        kind = "reauth" if isinstance(error, ReauthRequired) else "provider"
        name, ttl = self._keys.name(digest, "failed"), int(self._failure_ttl * 1000)
        with anyio.CancelScope(shield=True), contextlib.suppress(Unavailable):
            await self._health.call(lambda: self._redis.set(name, kind, px=ttl))


def _failure_error(key: Key, kind: bytes) -> MCPConnError:
    if kind == b"reauth":
        return ReauthRequired(
            "re-authentication required (reported by another replica)", principal=key[0]
        )
    return TokenProviderError(
        "token provider failed on another replica", principal=key[0], audience=key[1]
    )
