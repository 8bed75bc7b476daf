"""Tokens shared by every aggregator replica, in Redis or Valkey.

``pip install 'mcpconn[redis]'``, then::

    store = RedisTokenStore("redis://redis:6379/0", key=KEY_FROM_YOUR_SECRET_STORE)
    async with TokenSource(provider, store=store) as tokens: ...

How it works (docs/deployment.md has the failure modes): each replica keeps a
local view, so ``get()`` of a fresh token never touches Redis. When a token
must change, `RedisTokenStore.exchange` runs the locked exchange
(`_redis/exchange.py`): a usable shared token wins; otherwise one replica takes
the key's fenced lock (`_redis/lock.py`), calls the provider and writes, and
the others wait for its event on the channel (`_redis/pubsub.py`). A local
``publish()`` or ``invalidate()`` is queued and written by ``run``. Values are
AES-GCM blobs bound to their Redis key (`_redis/sealed.py`), named by a hash
of (principal, audience) (`_redis/keyspace.py`). Every Redis call is bounded
and a failure means local fallback (`_redis/health.py`). redis-py's asyncio
client needs anyio's asyncio backend: under trio `run` raises a clear
RuntimeError.
"""

from __future__ import annotations

import asyncio
import logging
import uuid
from collections.abc import Iterable

import anyio
import anyio.abc

try:
    import redis.asyncio as aioredis
except ImportError as exc:  # pragma: no cover - depends on the environment
    raise ImportError(
        "mcpconn.redis_store needs the 'redis' extra: pip install 'mcpconn[redis]'"
    ) from exc

from ._core.settings import number, whole_number
from ._redis import lua
from ._redis.exchange import LockedExchange
from ._redis.health import Health, Unavailable
from ._redis.keyspace import Keyspace
from ._redis.lock import LeaseLock
from ._redis.pubsub import Listener, Opened
from ._redis.records import SealedRecords
from ._redis.sealed import Sealer
from ._tokens.store import (
    ChangeCallback,
    Fetch,
    Key,
    MemoryTokenStore,
    StoredToken,
    UsablePredicate,
)

__all__ = ["RedisTokenStore"]

logger = logging.getLogger("mcpconn.redis_store")


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
        self._lease = number(lease, "lease", above=True)
        self._op_timeout = number(op_timeout, "op_timeout", above=True)
        self._wait_timeout = number(wait_timeout, "wait_timeout", above=True)
        self._failure_ttl = number(failure_ttl, "failure_ttl", above=True)
        ttl_without_expiry = number(ttl_without_expiry, "ttl_without_expiry", above=True)
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
        self._keys = Keyspace(
            namespace,
            replica=uuid.uuid4().hex,
            sealer=self._sealer,
            ttl_without_expiry=ttl_without_expiry,
        )
        self._channel = self._keys.channel
        self._scripts = {
            name: self._redis.register_script(text)
            for name, text in [("publish", lua.PUBLISH), ("delete", lua.DELETE)]
        }
        self._outbox: list[tuple[Key, StoredToken | None, bool]] = []
        self._outbox_ready = anyio.Event()
        self._pending: dict[Key, int] = {}
        self._progress = anyio.Event()
        self._on_change: ChangeCallback | None = None
        self._tg: anyio.abc.TaskGroup | None = None
        self._health = Health(
            op_timeout=self._op_timeout,
            retry_interval=number(retry_interval, "retry_interval", above=True),
            log_interval=number(log_interval, "log_interval", above=True),
            concurrency=whole_number(max_concurrency, "max_concurrency"),
            queue_timeout=self._wait_timeout,
        )
        self._call = self._health.call
        self._lock = LeaseLock(
            self._redis,
            self._health,
            owner=self._keys.replica,
            lease=self._lease,
            channel=self._channel,
            name=self._keys.name,
        )
        self._listener = Listener(
            self._redis,
            self._health,
            channel=self._channel,
            replica=self._keys.replica,
            unseal=self._keys.open,
            on_event=self._on_event,
            on_resubscribe=self._start_resync,
        )
        self._running = False
        self._records = SealedRecords(self._redis, self._health, self._sealer, namespace)
        self._exchange = LockedExchange(
            self._redis,
            self._health,
            self._keys,
            self._lock,
            self._listener,
            wait_timeout=self._wait_timeout,
            failure_ttl=self._failure_ttl,
        )

    def __repr__(self) -> str:
        state = "up" if self._health.healthy else "down"
        return (
            f"<RedisTokenStore namespace={self._keys.namespace!r} redis={state} keys={len(self)}>"
        )

    async def load_record(self, name: str) -> str | None:
        """Shared and sealed (`SealedRecords`): refresh tokens, client registrations."""
        return await self._records.load(name)

    async def save_record(self, name: str, value: str | None) -> None:
        await self._records.save(name, value)

    @property
    def available(self) -> bool:
        """False while Redis is unreachable and the store acts locally."""
        return self._health.healthy

    # -- sharing ---------------------------------------------------------------------

    def announce(self, key: Key, entry: StoredToken | None, *, published: bool) -> None:
        self._outbox.append((key, entry, published))
        self._pending[key] = self._pending.get(key, 0) + 1
        self._outbox_ready.set()

    async def exchange(self, key: Key, *, usable: UsablePredicate, fetch: Fetch) -> StoredToken:
        digest = self._keys.digest(key)
        await self._settle(key)
        try:
            return await self._exchange(key, digest, usable, fetch)
        finally:
            self._listener.disarm(digest)

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
        digest = self._keys.digest(key)
        token_key = self._keys.name(digest, "token")
        failed_key = self._keys.name(digest, "failed")
        if entry is None:
            event = self._keys.event("deleted", digest)
            await self._call(
                lambda: self._scripts["delete"](
                    keys=[token_key, failed_key], args=[self._channel, event]
                )
            )
            return
        ttl = self._keys.ttl_ms(entry)
        if ttl is None:
            return
        blob = self._keys.seal(digest, entry, published=published)
        event = self._keys.event("published" if published else "token", digest, blob)
        fence_key = self._keys.name(digest, "fence")
        await self._call(
            lambda: self._scripts["publish"](
                keys=[token_key, fence_key, failed_key],
                args=[blob, ttl, self._channel, event, lua.FENCE_TTL_MS],
            )
        )

    def _on_event(self, kind: str, digest: str, opened: Opened | None) -> None:
        """Another replica's event, after the waiters for its key were woken."""
        if kind == "deleted":
            key = self._keys.known.get(digest)
            if key is not None and self._on_change is not None:
                self._on_change(key, None, False)
        elif opened is not None and (kind == "published" or digest in self._keys.known):
            self._deliver(digest, opened, kind == "published")

    def _deliver(self, digest: str, opened: Opened, published: bool) -> None:
        key, entry, was_published = opened
        self._keys.known[digest] = key
        if self._on_change is not None:
            self._on_change(key, entry, published or was_published)

    def _start_resync(self) -> None:
        if self._tg is not None:
            self._tg.start_soon(self._resync)

    async def _resync(self) -> None:
        """After a lost subscription: catch up on the keys this replica uses."""
        for digest in list(self._keys.known):
            name = self._keys.name(digest, "token")
            try:
                blob = await self._call(lambda name=name: self._redis.get(name))  # type: ignore[misc]
            except Unavailable:
                return
            opened = None if blob is None else self._keys.open(digest, blob)
            if opened is not None:
                self._deliver(digest, opened, False)
