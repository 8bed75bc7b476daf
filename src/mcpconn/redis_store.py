"""Tokens shared by every aggregator replica, in Redis or Valkey.

``pip install 'mcpconn[redis]'``, then::

    store = RedisTokenStore("redis://redis:6379/0", key=KEY_FROM_YOUR_SECRET_STORE)
    async with TokenSource(provider, store=store) as tokens: ...

How it works (docs/deployment.md has the failure modes): each replica keeps a
local view, so ``get()`` of a fresh token never touches Redis. When a token
must change, `RedisTokenStore.exchange` (1) reads the shared token: if another
replica already replaced it, done; (2) else takes the key's lock (a Lua script:
``SET NX PX lease`` plus an ``INCR`` of the key's fencing counter), calls the
provider, and (3) writes with a script that succeeds only if the fencing
counter still equals ours (a holder whose lease ran out, or a refresh overtaken
by a ``publish()``, cannot overwrite the newer token), releasing the lock and
publishing an event that carries the sealed token. Replicas that find the lock
taken wait for that event, polling as a fallback and waking when the lease
runs out; a live holder renews its lease every third of it.

The lock and its fence live in `_redis_lock`, the event channel in
`_redis_pubsub`. Values are AES-GCM blobs bound to their Redis key (`_sealed`)
with a TTL from ``exp``; key names and events carry a hash of (principal,
audience), never the names. Every Redis call is bounded and a failure means
local fallback (`_redis_health`). redis-py's asyncio client needs anyio's
asyncio backend: under trio `run` raises a clear RuntimeError.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import json
import logging
import math
import time
import uuid
from collections.abc import Awaitable, Callable, Iterable
from typing import Any

import anyio
import anyio.abc

try:
    import redis.asyncio as aioredis
except ImportError as exc:  # pragma: no cover - depends on the environment
    raise ImportError(
        "mcpconn.redis_store needs the 'redis' extra: pip install 'mcpconn[redis]'"
    ) from exc

from ._exceptions import MCPConnError, ReauthRequired, TokenProviderError
from ._redis import lua
from ._redis.health import Health, Unavailable
from ._redis.lock import Lease, LeaseLock
from ._redis.pubsub import Listener, Opened, encode
from ._redis.sealed import Sealer, SealError
from ._tokens.store import ChangeCallback, Key, MemoryTokenStore, StoredToken, UsablePredicate

__all__ = ["RedisTokenStore"]

logger = logging.getLogger("mcpconn.redis_store")


def _positive(value: float, name: str) -> float:
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise TypeError(f"{name} must be a number of seconds")
    if not (math.isfinite(value) and value > 0):
        raise ValueError(f"{name} must be a finite number > 0")
    return float(value)


def _count(value: int, name: str) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise ValueError(f"{name} must be an int >= 1")
    return value


class RedisTokenStore(MemoryTokenStore):
    """A `TokenStore` shared through Redis/Valkey; see the module docstring.

    ``redis``: a URL or a ``redis.asyncio.Redis`` client (not closed by us).
    ``key``: the AES-GCM key (16/24/32 bytes) new blobs are sealed with;
    ``old_keys``: keys still accepted for reading (rotation). ``namespace``
    prefixes every Redis key and the pub/sub channel. ``lease``: how long a
    crashed refresher can hold a key's lock. ``op_timeout``: bound on every
    Redis call. ``wait_timeout``: how long a replica waits for another's
    refresh before giving up with `TokenProviderError`. ``failure_ttl``: for
    this long after a replica's provider call failed, the others get the same
    error instead of calling the provider too. ``retry_interval``: how often
    Redis is retried while it is down. ``ttl_without_expiry``: Redis TTL for
    tokens with no known expiry. ``log_interval``: at most one
    down/up warning per this many seconds (flapping Redis).
    ``max_concurrency``: Redis calls in flight per replica (a burst queues).
    """

    needs_task_group = True

    def __init__(
        self,
        redis: str | aioredis.Redis,
        *,
        key: bytes,
        old_keys: Iterable[bytes] = (),
        namespace: str = "mcpconn",
        lease: float = 5.0,
        op_timeout: float = 1.0,
        wait_timeout: float = 30.0,
        failure_ttl: float = 1.0,
        retry_interval: float = 1.0,
        ttl_without_expiry: float = 24 * 3600.0,
        log_interval: float = 60.0,
        max_concurrency: int = 32,
    ) -> None:
        super().__init__()
        self._sealer = Sealer(key, old_keys)
        if not isinstance(namespace, str) or not namespace:
            raise ValueError("namespace must be a non-empty str")
        self._lease = _positive(lease, "lease")
        self._op_timeout = _positive(op_timeout, "op_timeout")
        self._wait_timeout = _positive(wait_timeout, "wait_timeout")
        self._failure_ttl = _positive(failure_ttl, "failure_ttl")
        self._ttl_without_expiry = _positive(ttl_without_expiry, "ttl_without_expiry")
        if isinstance(redis, str):
            self._redis: aioredis.Redis = aioredis.Redis.from_url(
                redis,
                socket_timeout=self._op_timeout,
                socket_connect_timeout=self._op_timeout,
            )
            self._own_client = True
        else:
            pool = getattr(redis, "connection_pool", None)
            if getattr(pool, "connection_kwargs", {}).get("decode_responses"):
                raise ValueError("the Redis client must not use decode_responses=True")
            self._redis = redis
            self._own_client = False
        self._ns = namespace
        self._channel = f"{namespace}:events"
        self._replica = uuid.uuid4().hex
        self._scripts = {
            name: self._redis.register_script(text)
            for name, text in [("publish", lua.PUBLISH), ("delete", lua.DELETE)]
        }
        self._known: dict[str, Key] = {}
        self._outbox: list[tuple[Key, StoredToken | None, bool]] = []
        self._outbox_ready = anyio.Event()
        self._pending: dict[Key, int] = {}
        self._progress = anyio.Event()
        self._on_change: ChangeCallback | None = None
        self._tg: anyio.abc.TaskGroup | None = None
        self._health = Health(
            op_timeout=self._op_timeout,
            retry_interval=_positive(retry_interval, "retry_interval"),
            log_interval=_positive(log_interval, "log_interval"),
            concurrency=_count(max_concurrency, "max_concurrency"),
            queue_timeout=self._wait_timeout,
        )
        self._call = self._health.call
        self._lock = LeaseLock(
            self._redis,
            self._health,
            owner=self._replica,
            lease=self._lease,
            channel=self._channel,
            name=self._name,
        )
        self._listener = Listener(
            self._redis,
            self._health,
            channel=self._channel,
            replica=self._replica,
            unseal=self._open,
            on_event=self._on_event,
            on_resubscribe=self._start_resync,
        )
        self._running = False

    def __repr__(self) -> str:
        state = "up" if self._health.healthy else "down"
        return f"<RedisTokenStore namespace={self._ns!r} redis={state} keys={len(self)}>"

    @property
    def available(self) -> bool:
        """False while Redis is unreachable and the store acts locally."""
        return self._health.healthy

    # -- naming -------------------------------------------------------------------

    def _hash(self, key: Key) -> str:
        material = json.dumps([key[0], key[1]], separators=(",", ":")).encode()
        digest = hashlib.sha256(material).hexdigest()[:32]
        self._known[digest] = key
        return digest

    def _name(self, digest: str, part: str) -> str:
        # The hash tag keeps a key's token, lock and fence in one cluster slot.
        return f"{self._ns}:{{{digest}}}:{part}"

    def _event(self, kind: str, digest: str, blob: bytes | None = None) -> str:
        return encode(self._replica, kind, digest, blob)

    # -- sharing ---------------------------------------------------------------------

    def announce(self, key: Key, entry: StoredToken | None, *, published: bool) -> None:
        self._outbox.append((key, entry, published))
        self._pending[key] = self._pending.get(key, 0) + 1
        self._outbox_ready.set()

    async def exchange(
        self,
        key: Key,
        *,
        usable: UsablePredicate,
        fetch: Callable[[], Awaitable[StoredToken]],
    ) -> StoredToken:
        digest = self._hash(key)
        await self._settle(key)
        try:
            return await self._exchange(key, digest, usable, fetch)
        finally:
            self._listener.disarm(digest)

    async def _exchange(
        self,
        key: Key,
        digest: str,
        usable: UsablePredicate,
        fetch: Callable[[], Awaitable[StoredToken]],
    ) -> StoredToken:
        deadline = anyio.current_time() + self._wait_timeout
        # Events wake us; polling is the fallback, brisk only while pub/sub is down.
        poll = 0.25 if self._listener.subscribed else 0.02
        while True:
            wakeup = self._listener.arm(digest)
            try:
                shared, failed = await self._load(digest, with_failure=True)
                if usable(shared):
                    assert shared is not None
                    return shared
                if failed is not None:
                    raise _failure_error(key, failed)
                lease, pttl = await self._acquire(digest)
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
        fetch: Callable[[], Awaitable[StoredToken]],
    ) -> StoredToken:
        result: StoredToken | None = None
        error: Exception | None = None
        released = False
        try:
            async with anyio.create_task_group() as tg:
                tg.start_soon(self._lock.keep, digest, lease)
                try:
                    opened = None if lease.blob is None else self._open(digest, lease.blob)
                    shared = None if opened is None else opened[1]
                    if usable(shared):  # someone finished just before we took the lock
                        result = shared
                    else:
                        result = await fetch()
                        released = await self._write(digest, lease, result)
                except Exception as exc:  # re-raised below, outside the task group
                    error = exc
                    if isinstance(exc, MCPConnError):
                        await self._record_failure(digest, exc)
                tg.cancel_scope.cancel()
        finally:
            if not released:
                with anyio.CancelScope(shield=True):
                    await self._lock.release(digest, lease, self._event("released", digest))
        if error is not None:
            raise error
        assert result is not None
        return result

    async def _write(self, digest: str, lease: Lease, entry: StoredToken) -> bool:
        """Fenced write of our new token plus release; True when the script ran."""
        ttl = self._ttl_ms(entry)
        if ttl is None:
            return False
        blob = self._seal(digest, entry, published=False)
        token_event = self._event("token", digest, blob)
        released_event = self._event("released", digest)
        try:
            written = await self._lock.write(
                digest, lease, blob, ttl, written=token_event, released=released_event
            )
        except Unavailable:
            return False
        if not written:
            logger.info("a newer token landed during this refresh; not overwriting it")
        return True

    async def _acquire(self, digest: str) -> tuple[Lease | None, int]:
        return await self._lock.acquire(digest)

    async def _load(
        self, digest: str, *, with_failure: bool = False
    ) -> tuple[StoredToken | None, bytes | None]:
        """The shared token, and the failure another replica recorded (if asked)."""
        names = [self._name(digest, "token"), self._name(digest, "failed")]
        if with_failure:
            blob, failed = await self._call(lambda: self._redis.mget(names))
        else:
            blob, failed = await self._call(lambda: self._redis.get(names[0])), None
        opened = None if blob is None else self._open(digest, blob)
        if isinstance(failed, str):  # a client built with decode_responses=True
            failed = failed.encode()
        return (None if opened is None else opened[1]), failed

    async def _record_failure(self, digest: str, error: MCPConnError) -> None:
        """Let the waiting replicas fail fast too, for ``failure_ttl``."""
        kind = "reauth" if isinstance(error, ReauthRequired) else "provider"
        name, ttl = self._name(digest, "failed"), int(self._failure_ttl * 1000)
        with anyio.CancelScope(shield=True), contextlib.suppress(Unavailable):
            await self._call(lambda: self._redis.set(name, kind, px=ttl))

    def _open(self, digest: str, blob: Any) -> Opened | None:
        name = self._name(digest, "token")
        try:
            key, entry, published = self._sealer.open(bytes(blob), bound_to=name.encode())
        except SealError as exc:
            logger.warning("ignoring the shared token at %s: %s", name, exc)
            return None
        return key, entry, published

    def _seal(self, digest: str, entry: StoredToken, *, published: bool) -> bytes:
        key = self._known[digest]
        name = self._name(digest, "token").encode()
        return self._sealer.seal(key, entry, published=published, bound_to=name)

    def _ttl_ms(self, entry: StoredToken) -> int | None:
        """Milliseconds until ``exp`` by this replica's clock; ``None``: already expired."""
        expires_at = entry.token.expires_at
        if expires_at is None:
            return int(self._ttl_without_expiry * 1000)
        ttl = int((expires_at - time.time()) * 1000)
        return ttl if ttl > 0 else None

    async def _settle(self, key: Key) -> None:
        """Wait (bounded) until this replica's queued publish/invalidate for ``key`` ran."""
        with anyio.move_on_after(self._op_timeout * 2):
            while self._pending.get(key):
                await self._progress.wait()

    # -- background work ----------------------------------------------------------------

    async def run(
        self,
        on_change: ChangeCallback,
        *,
        task_status: anyio.abc.TaskStatus[None] = anyio.TASK_STATUS_IGNORED,
    ) -> None:
        try:
            asyncio.get_running_loop()
        except RuntimeError:
            raise RuntimeError(
                "RedisTokenStore needs anyio's asyncio backend (redis-py's asyncio "
                "client); under trio use the default memory store per replica"
            ) from None
        if self._running:
            raise RuntimeError("a RedisTokenStore serves one TokenSource at a time")
        self._running = True
        self._on_change = on_change
        try:
            async with anyio.create_task_group() as tg:
                self._tg = tg
                tg.start_soon(self._write_outbox)
                tg.start_soon(self._health.probe, self._redis.ping)
                await tg.start(self._listener.run)
                task_status.started()
        finally:
            self._tg = None
            self._running = False
            if self._own_client:
                with anyio.move_on_after(self._op_timeout, shield=True):
                    await self._redis.aclose()

    async def _write_outbox(self) -> None:
        while True:
            await self._outbox_ready.wait()
            self._outbox_ready = anyio.Event()
            while self._outbox:
                key, entry, published = self._outbox.pop(0)
                try:
                    await self._write_announced(key, entry, published)
                except Unavailable:
                    pass  # logged once by _mark_down; other replicas miss this one
                finally:
                    left = self._pending.get(key, 1) - 1
                    if left:
                        self._pending[key] = left
                    else:
                        self._pending.pop(key, None)
                    self._progress.set()
                    self._progress = anyio.Event()

    async def _write_announced(self, key: Key, entry: StoredToken | None, published: bool) -> None:
        digest = self._hash(key)
        token_key = self._name(digest, "token")
        failed_key = self._name(digest, "failed")
        if entry is None:
            event = self._event("deleted", digest)
            await self._call(
                lambda: self._scripts["delete"](
                    keys=[token_key, failed_key], args=[self._channel, event]
                )
            )
            return
        ttl = self._ttl_ms(entry)
        if ttl is None:
            return
        blob = self._seal(digest, entry, published=published)
        event = self._event("published" if published else "token", digest, blob)
        fence_key = self._name(digest, "fence")
        await self._call(
            lambda: self._scripts["publish"](
                keys=[token_key, fence_key, failed_key],
                args=[blob, ttl, self._channel, event, lua.FENCE_TTL_MS],
            )
        )

    def _on_event(self, kind: str, digest: str, opened: Opened | None) -> None:
        """Another replica's event, after the waiters for its key were woken."""
        if kind == "deleted":
            key = self._known.get(digest)
            if key is not None and self._on_change is not None:
                self._on_change(key, None, False)
        elif opened is not None and (kind == "published" or digest in self._known):
            self._deliver(digest, opened, kind == "published")

    def _deliver(self, digest: str, opened: Opened, published: bool) -> None:
        key, entry, was_published = opened
        self._known[digest] = key
        if self._on_change is not None:
            self._on_change(key, entry, published or was_published)

    def _start_resync(self) -> None:
        if self._tg is not None:
            self._tg.start_soon(self._resync)

    async def _resync(self) -> None:
        """After a lost subscription: catch up on the keys this replica uses."""
        for digest in list(self._known):
            name = self._name(digest, "token")
            try:
                blob = await self._call(lambda name=name: self._redis.get(name))  # type: ignore[misc]
            except Unavailable:
                return
            opened = None if blob is None else self._open(digest, blob)
            if opened is not None:
                self._deliver(digest, opened, False)


def _failure_error(key: Key, kind: bytes) -> MCPConnError:
    if kind == b"reauth":
        return ReauthRequired(
            "re-authentication required (reported by another replica)", principal=key[0]
        )
    return TokenProviderError(
        "token provider failed on another replica", principal=key[0], audience=key[1]
    )
