"""RedisTokenStore in one process: sharing, fencing, encryption, outage, rotation.

Two stores on one Redis stand for two replicas (each has its own replica id).
The multi-process scenarios are in test_replicas.py.
"""

from __future__ import annotations

import logging
import signal
import time
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager

import anyio
import pytest
from redis_server import RedisServer

from mcpconn import Token, TokenProviderError, TokenRequest, TokenSource
from mcpconn._tokens.store import StoredToken
from mcpconn.redis_store import RedisTokenStore

pytestmark = pytest.mark.redis

KEY = bytes(range(32))
OTHER_KEY = bytes(range(1, 33))


class Provider:
    """Mints ``SECRET-...`` tokens valid for an hour by ``clock``; counts calls."""

    def __init__(self, clock: Clock) -> None:
        self.clock = clock
        self.calls = 0

    async def __call__(self, request: TokenRequest) -> Token:
        self.calls += 1
        now = self.clock()
        return Token(f"SECRET-{uuid.uuid4().hex}", expires_at=now + 3600, issued_at=now)


class Clock:
    def __init__(self) -> None:
        self.offset = 0.0

    def __call__(self) -> float:
        return time.time() + self.offset


def namespace() -> str:
    return f"t{uuid.uuid4().hex[:12]}"


class Deployment:
    """Replicas of one deployment: one Redis namespace, one clock, one counting provider."""

    def __init__(self, url: str, **options: object) -> None:
        self.url = url
        self.options = options  # RedisTokenStore options for every replica
        self.ns = namespace()
        self.clock = Clock()
        self.provider = Provider(self.clock)

    @asynccontextmanager
    async def replica(
        self, provider: Callable[[TokenRequest], Awaitable[Token]] | None = None, **options: object
    ) -> AsyncIterator[tuple[TokenSource, RedisTokenStore]]:
        """One replica: a token source on its own store (by default, the shared provider)."""
        options = {"key": KEY, **self.options, **options}
        store = RedisTokenStore(self.url, namespace=self.ns, **options)  # type: ignore[arg-type]
        provider = self.provider if provider is None else provider
        async with TokenSource(provider, store=store, clock=self.clock) as source:
            yield source, store


@pytest.fixture
def deployment(redis_server: RedisServer) -> Deployment:
    return Deployment(redis_server.url)


@asynccontextmanager
async def on_a_breakable_redis(
    server: RedisServer, caplog: pytest.LogCaptureFixture, *, op_timeout: float
) -> AsyncIterator[tuple[Deployment, TokenSource, RedisTokenStore]]:
    """A replica on a Redis the test will break, with the store's log lines captured."""
    caplog.set_level(logging.INFO, logger="mcpconn.redis_store")
    deployment = Deployment(server.url, op_timeout=op_timeout, retry_interval=0.05)
    async with deployment.replica() as (source, store):
        yield deployment, source, store


def fallbacks_logged(caplog: pytest.LogCaptureFixture) -> int:
    """The store's "unavailable" lines: one per outage, however long it lasts."""
    return len([r for r in caplog.records if "unavailable" in r.getMessage()])


async def until_available(store: RedisTokenStore) -> None:
    """Wait (bounded) until the store has noticed on its own that Redis answers again."""
    with anyio.fail_after(10):
        while not store.available:  # noqa: ASYNC110 (the store notices on its own)
            await anyio.sleep(0.02)


async def test_a_token_is_shared_and_compare_and_refresh_works_across_replicas(
    deployment: Deployment,
) -> None:
    provider = deployment.provider
    async with deployment.replica() as (a, _), deployment.replica() as (b, _):
        t1 = await a.get("alice")
        assert (await b.get("alice")).raw == t1.raw
        assert provider.calls == 1
        t2 = await a.refresh("alice", replacing=t1)
        assert t2.raw != t1.raw
        # B saw t1 rejected too: it gets A's replacement, not a second refresh.
        assert (await b.refresh("alice", replacing=t1)).raw == t2.raw
        assert provider.calls == 2
        # Audiences are separate keys.
        t3 = await b.get("alice", "server-x")
        assert t3.raw not in (t1.raw, t2.raw)
        assert provider.calls == 3


async def test_an_expired_shared_token_is_never_served(deployment: Deployment) -> None:
    clock, provider = deployment.clock, deployment.provider
    async with deployment.replica() as (a, _), deployment.replica() as (b, _):
        old = await a.get("alice")
        clock.offset += 7200  # Redis still holds it (TTL by real time), but it is expired
        new = await b.get("alice")
        assert new.raw != old.raw
        assert new.expires_at is not None and new.expires_at > clock()
        assert provider.calls == 2


async def test_publish_wakes_listeners_on_every_replica(deployment: Deployment) -> None:
    clock, provider = deployment.clock, deployment.provider
    heard = anyio.Event()
    async with deployment.replica() as (a, _), deployment.replica() as (b, _):
        b.add_listener(lambda p, aud: heard.set() if p == "alice" else None)
        generation = b.generation("alice")
        a.publish("alice", Token("SECRET-published", expires_at=clock() + 600))
        with anyio.fail_after(5):
            await heard.wait()
            await b.wait_for_new_token("alice", after=generation)
        assert (await b.get("alice")).raw == "SECRET-published"
        assert provider.calls == 0
        # invalidate() reaches the other replica too
        b.invalidate("alice")
        with anyio.fail_after(5):
            while a._cache.get(("alice", None)) is not None:  # noqa: ASYNC110 (another replica)
                await anyio.sleep(0.01)
        assert (await a.get("alice")).raw != "SECRET-published"
        assert provider.calls == 1


async def test_a_late_lock_holder_cannot_overwrite_a_newer_token(
    redis_server: RedisServer, deployment: Deployment, caplog: pytest.LogCaptureFixture
) -> None:
    clock = deployment.clock
    async with deployment.replica(lease=0.5) as (_, late), deployment.replica() as (b, _):
        digest = late._keys.digest(("alice", None))
        lease, _ = await late._exchange.acquire(digest)
        assert lease is not None
        redis = redis_server.client()
        redis.delete(late._keys.name(digest, "lock"))  # the lease ran out (a long GC pause)
        fresh = await b.get("alice")  # B takes the lock with a higher fence
        stale = Token("SECRET-stale", expires_at=clock() + 3600)
        with caplog.at_level(logging.INFO, logger="mcpconn.redis_store"):
            assert await late._exchange.write(digest, lease, StoredToken(stale, clock()))
        assert "newer token landed" in caplog.text
        shared, _ = await late._exchange.load(digest)
        assert shared is not None and shared.token.raw == fresh.raw
        redis.close()


async def test_tokens_are_encrypted_and_bound_to_their_key(
    redis_server: RedisServer, deployment: Deployment
) -> None:
    ns, clock = deployment.ns, deployment.clock
    async with deployment.replica() as (a, store):
        alice = await a.get("alice")
        await a.get("bob")
        async with deployment.replica() as (witness, _):
            heard = anyio.Event()
            witness.add_listener(lambda p, aud: heard.set())
            a.publish("carol", Token("SECRET-carol", expires_at=clock() + 600))
            with anyio.fail_after(5):
                await heard.wait()  # written: the event follows the write in one script
        redis = redis_server.client()
        names = list(redis.scan_iter(f"{ns}:*"))
        assert names
        for name in names:
            assert b"SECRET" not in name and b"alice" not in name
            if redis.type(name) == b"string":
                value = redis.get(name)
                assert value is not None and b"SECRET" not in value
                assert alice.raw.encode() not in value
        # A blob moved to another principal's key does not open.
        a_name = store._keys.name(store._keys.digest(("alice", None)), "token")
        b_name = store._keys.name(store._keys.digest(("bob", None)), "token")
        redis.set(b_name, redis.get(a_name) or b"")
        assert await store._exchange.load(store._keys.digest(("bob", None))) == (None, None)
        redis.close()


async def test_rotated_keys_still_read_old_blobs(deployment: Deployment) -> None:
    provider = deployment.provider
    async with deployment.replica(key=KEY) as (old, _):
        token = await old.get("alice")
    async with deployment.replica(key=OTHER_KEY, old_keys=[KEY]) as (rotated, _):
        assert (await rotated.get("alice")).raw == token.raw
    assert provider.calls == 1
    async with deployment.replica(key=OTHER_KEY) as (forgot, _):
        assert (await forgot.get("alice")).raw != token.raw  # unreadable: asks the provider
    assert provider.calls == 2


async def test_redis_outage_falls_back_with_one_log_line_and_recovers(
    own_redis_server: RedisServer, caplog: pytest.LogCaptureFixture
) -> None:
    async with on_a_breakable_redis(own_redis_server, caplog, op_timeout=0.3) as broken:
        deployment, a, store = broken
        clock = deployment.clock
        first = await a.get("alice")
        own_redis_server.kill()
        for _ in range(3):
            clock.offset += 7200
            token = await a.get("alice")  # never the expired one
            assert token.raw != first.raw
            assert token.expires_at is not None and token.expires_at > clock()
            first = token
        assert deployment.provider.calls == 4
        assert not store.available
        assert fallbacks_logged(caplog) == 1
        assert "SECRET" not in caplog.text

        own_redis_server.start()
        await until_available(store)
        async with deployment.replica() as (b, _):
            heard = anyio.Event()
            a.add_listener(lambda p, aud: heard.set())
            b.publish("alice", Token("SECRET-after", expires_at=clock() + 600))
            with anyio.fail_after(5):
                await heard.wait()  # pub/sub works again
        assert (await a.get("alice")).raw == "SECRET-after"
        assert fallbacks_logged(caplog) == 1
        assert any("reachable again" in r.getMessage() for r in caplog.records)


async def test_a_provider_failure_reaches_the_waiting_replicas(deployment: Deployment) -> None:
    entered, fail = anyio.Event(), anyio.Event()

    async def failing(request: TokenRequest) -> Token:
        entered.set()
        await fail.wait()
        raise ValueError("the identity provider is down")

    counting = deployment.provider
    errors: dict[str, BaseException] = {}

    async def get(name: str, source: TokenSource) -> None:
        with pytest.raises(TokenProviderError) as info:
            await source.get("alice")
        errors[name] = info.value

    async with (
        deployment.replica(failing) as (a, _),
        deployment.replica() as (b, _),
        anyio.create_task_group() as tg,
    ):
        tg.start_soon(get, "a", a)
        with anyio.fail_after(5):
            await entered.wait()  # A holds the lock and is inside its provider
        tg.start_soon(get, "b", b)
        fail.set()
    assert isinstance(errors["a"].__cause__, ValueError)
    assert "another replica" in str(errors["b"])
    assert counting.calls == 0  # B did not hammer the provider too


async def test_a_slow_redis_is_cut_off_and_recovers(
    own_redis_server: RedisServer, caplog: pytest.LogCaptureFixture
) -> None:
    async with on_a_breakable_redis(own_redis_server, caplog, op_timeout=0.2) as broken:
        deployment, a, store = broken
        first = await a.get("alice")
        assert own_redis_server.proc is not None
        own_redis_server.proc.send_signal(signal.SIGSTOP)  # alive but answers nothing
        try:
            deployment.clock.offset += 7200
            with anyio.fail_after(5):  # bounded by op_timeout, not by Redis
                second = await a.get("alice")
            assert second.raw != first.raw
            assert not store.available
        finally:
            own_redis_server.proc.send_signal(signal.SIGCONT)
        await until_available(store)
        deployment.clock.offset += 7200
        third = await a.get("alice")  # Redis answers again: shared again
        assert store.available
        async with deployment.replica() as (b, _):
            assert (await b.get("alice")).raw == third.raw
        assert deployment.provider.calls == 3
        assert fallbacks_logged(caplog) == 1


async def test_a_shared_store_needs_async_with(redis_server: RedisServer) -> None:
    store = RedisTokenStore(redis_server.url, key=KEY, namespace=namespace())
    source = TokenSource(Provider(Clock()), store=store)
    with pytest.raises(RuntimeError, match="async with"):
        await source.get("alice")


@pytest.mark.parametrize("anyio_backend", ["trio"])
async def test_trio_gets_a_clear_error(redis_server: RedisServer) -> None:
    store = RedisTokenStore(redis_server.url, key=KEY, namespace=namespace())
    with pytest.raises(RuntimeError, match="asyncio backend"):
        async with TokenSource(Provider(Clock()), store=store):
            pass


def test_bad_keys_are_refused() -> None:
    with pytest.raises(ValueError, match="16, 24 or 32"):
        RedisTokenStore("redis://127.0.0.1:1/0", key=b"short")
    with pytest.raises(TypeError):
        RedisTokenStore("redis://127.0.0.1:1/0", key="not bytes")  # type: ignore[arg-type]
    store = RedisTokenStore("redis://127.0.0.1:1/0", key=KEY)
    assert "SECRET" not in repr(store) and KEY.hex() not in repr(store)


async def test_provider_records_are_shared_sealed_and_deletable(deployment: Deployment) -> None:
    """mcpconn.oauth keeps refresh tokens and client registrations as store records."""
    import redis.asyncio as aioredis

    name = 'oauth:refresh:["alice", "https://mcp.example.com/mcp"]'
    secret = "SECRET-refresh-" + uuid.uuid4().hex
    async with deployment.replica() as (_, a), deployment.replica() as (_, b):
        assert await a.load_record(name) is None
        await a.save_record(name, secret)
        assert await b.load_record(name) == secret  # the other replica sees it
        raw = aioredis.Redis.from_url(deployment.url)
        try:
            keys = await raw.keys(f"{deployment.ns}:record:*")
            assert len(keys) == 1
            assert b"alice" not in keys[0]  # the name is hashed
            blob = await raw.get(keys[0])
            assert blob is not None and secret.encode() not in blob  # sealed
            # a blob moved to another record's name does not open there
            await raw.set(a._records._key("another record"), blob)
            assert await b.load_record("another record") is None
        finally:
            await raw.aclose()
        await b.save_record(name, None)
        assert await a.load_record(name) is None
        assert secret not in repr(a) and secret not in repr(a._records)
