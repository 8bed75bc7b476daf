"""TokenSource: cache, single flight, compare-and-refresh, failures, cancellation.

Most tests run in both modes: entered (``async with``: the source's task group
runs the provider) and unentered (the first caller leads, shielded).
"""

from __future__ import annotations

import logging
import math
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from functools import partial
from typing import Any

import anyio
import jwt
import pytest

from mcpconn._core.token import Token
from mcpconn._exceptions import (
    ConnectionClosed,
    MalformedTokenError,
    ReauthRequired,
    TokenProviderError,
)
from mcpconn._tokens.source import TokenRequest, TokenSource, TokenSourceStatistics

KEY = "a-test-secret-long-enough-for-hs256!"
T0 = 1_900_000_000.0


def mint(**claims: Any) -> str:
    return jwt.encode(claims, KEY, algorithm="HS256")


def claims(token: Token) -> dict[str, Any]:
    return jwt.decode(token.raw, options={"verify_signature": False})


class FakeClock:
    def __init__(self) -> None:
        self.now = T0

    def __call__(self) -> float:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += seconds


class FakeProvider:
    """Mints a JWT per call; after ``hold()``, every call waits for ``release()``."""

    def __init__(self, clock: FakeClock, lifetime: int = 3600) -> None:
        self.clock = clock
        self.lifetime = lifetime
        self.calls: list[TokenRequest] = []
        self.started = anyio.Event()
        self.gate: anyio.Event | None = None

    async def __call__(self, request: TokenRequest) -> str | Token:
        self.calls.append(request)
        self.started.set()
        if self.gate is not None:
            await self.gate.wait()
        now = int(self.clock())
        return mint(
            sub=request.principal,
            aud=request.audience,
            n=len(self.calls),
            iat=now,
            exp=now + self.lifetime,
        )

    def hold(self) -> None:
        """Hold the calls from now on; ``started`` fires when the next one begins."""
        self.gate = anyio.Event()
        self.started = anyio.Event()

    def release(self) -> None:
        assert self.gate is not None
        self.gate.set()


@pytest.fixture(params=["entered", "unentered"])
def mode(request: pytest.FixtureRequest) -> str:
    return str(request.param)


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock()


@pytest.fixture
def provider(clock: FakeClock) -> FakeProvider:
    return FakeProvider(clock)


@asynccontextmanager
async def open_source(mode: str, provider: Any, **kwargs: Any) -> AsyncIterator[TokenSource]:
    source = TokenSource(provider, **kwargs)
    if mode == "entered":
        async with source:
            yield source
    else:
        yield source


@asynccontextmanager
async def crowd(
    provider: FakeProvider, call: Callable[[], Awaitable[Token]], size: int = 1000
) -> AsyncIterator[list[Token]]:
    """``size`` concurrent ``call()``s on a held provider; the body runs once all of them wait.

    Leaving the block releases the provider and waits for every call: the list
    then holds their results.
    """
    provider.hold()
    results: list[Token] = []

    async def one() -> None:
        results.append(await call())

    with anyio.fail_after(10):
        async with anyio.create_task_group() as tg:
            for _ in range(size):
                tg.start_soon(one)
            await provider.started.wait()
            await anyio.wait_all_tasks_blocked()
            yield results
            provider.release()


async def test_get_caches_a_fresh_token(
    mode: str, clock: FakeClock, provider: FakeProvider
) -> None:
    async with open_source(mode, provider, clock=clock) as source:
        first = await source.get("alice")
        clock.advance(60)
        assert await source.get("alice") is first
    assert len(provider.calls) == 1
    assert provider.calls[0] == TokenRequest("alice", force=False, reason="no cached token")


async def test_seed_regression_expired_id_token_is_never_returned(
    mode: str, clock: FakeClock, provider: FakeProvider
) -> None:
    # The seed stored an ID-only token with no ExpiresAt and forwarded it forever.
    expired_id_token = mint(sub="alice", aud="muster", exp=int(T0) - 60)
    async with open_source(mode, provider, clock=clock) as source:
        source.publish("alice", expired_id_token)
        token = await source.get("alice")
        assert token.raw != expired_id_token
        assert token.expires_at is not None
        assert token.expires_at > clock()
    assert [c.force for c in provider.calls] == [True]
    assert provider.calls[0].reason == "cached token expired"


async def test_seed_regression_token_that_expires_while_idle_is_refreshed_first(
    mode: str, clock: FakeClock, provider: FakeProvider
) -> None:
    async with open_source(mode, provider, clock=clock) as source:
        before = await source.get("alice")
        clock.advance(80 * 60)  # the seed's 80-minute idle gap; tokens live 60
        after = await source.get("alice")
    assert not after.same_credential(before)
    assert after.expires_at is not None
    assert after.expires_at - clock() > 30
    assert len(provider.calls) == 2
    assert provider.calls[1].force


async def test_token_inside_the_margin_is_not_served(
    mode: str, clock: FakeClock, provider: FakeProvider
) -> None:
    async with open_source(mode, provider, clock=clock, margin=30) as source:
        before = await source.get("alice")
        clock.advance(3600 - 30)  # exactly at the margin
        assert not (await source.get("alice")).same_credential(before)


async def test_1000_concurrent_gets_on_an_expired_token_make_one_call(
    mode: str, clock: FakeClock, provider: FakeProvider
) -> None:
    async with open_source(mode, provider, clock=clock) as source:
        source.publish("alice", Token("old-credential", expires_at=T0 + 10))
        clock.advance(60)
        async with crowd(provider, partial(source.get, "alice")) as results:
            assert source.statistics().in_flight == 1
    assert len(provider.calls) == 1
    assert len(results) == 1000
    assert len({t.raw for t in results}) == 1
    assert results[0].raw != "old-credential"


async def test_1000_concurrent_refreshes_replacing_the_same_token_make_one_call(
    mode: str, clock: FakeClock, provider: FakeProvider
) -> None:
    async with open_source(mode, provider, clock=clock) as source:
        rejected = await source.get("alice")
        async with crowd(provider, partial(source.refresh, "alice", replacing=rejected)) as results:
            pass  # all of them wait on the one held refresh
        # Compare-and-refresh: the old token is gone, so no further call.
        late = await source.refresh("alice", replacing=rejected)
    assert len(provider.calls) == 2  # the first get, then one shared refresh
    assert provider.calls[1] == TokenRequest("alice", force=True, reason="token rejected")
    assert {t.raw for t in results} == {late.raw}
    assert not late.same_credential(rejected)


async def test_refresh_replacing_an_old_token_returns_the_new_one_without_a_call(
    mode: str, clock: FakeClock, provider: FakeProvider
) -> None:
    async with open_source(mode, provider, clock=clock) as source:
        old = await source.get("alice")
        new = await source.refresh("alice", replacing=old)
        assert await source.refresh("alice", replacing=old) is new
        assert await source.refresh("alice", replacing=Token("never-seen")) is new
        assert source.statistics().provider_calls == 2
        # replacing=None refreshes whatever is cached.
        newest = await source.refresh("alice", replacing=None)
    assert not newest.same_credential(new)
    assert len(provider.calls) == 3


async def test_get_waits_for_a_forced_refresh_instead_of_serving_the_rejected_token(
    mode: str, clock: FakeClock, provider: FakeProvider
) -> None:
    got: list[Token] = []
    async with open_source(mode, provider, clock=clock) as source:
        rejected = await source.get("alice")
        provider.hold()

        async def getter() -> None:
            got.append(await source.get("alice"))

        with anyio.fail_after(5):
            async with anyio.create_task_group() as tg:
                tg.start_soon(partial(source.refresh, "alice", replacing=rejected))
                await provider.started.wait()
                tg.start_soon(getter)
                await anyio.wait_all_tasks_blocked()
                assert got == []
                provider.release()
    assert len(got) == 1
    assert not got[0].same_credential(rejected)
    assert len(provider.calls) == 2


class Boom(Exception):
    pass


async def test_provider_raising_is_a_provider_error_chained_to_the_cause(mode: str) -> None:
    async def provider(request: TokenRequest) -> str:
        raise Boom("the identity provider is down")

    async with open_source(mode, provider) as source:
        with pytest.raises(TokenProviderError, match="raised Boom") as info:
            await source.get("alice", "srv")
    assert isinstance(info.value.__cause__, Boom)
    assert info.value.principal == "alice"
    assert info.value.audience == "srv"


async def test_provider_raising_timeout_error_is_not_called_a_timeout(mode: str) -> None:
    async def provider(request: TokenRequest) -> str:
        raise TimeoutError

    async with open_source(mode, provider) as source:
        with pytest.raises(TokenProviderError, match="raised TimeoutError"):
            await source.get("alice")


async def test_a_hanging_provider_is_cut_off(mode: str) -> None:
    cancelled = anyio.Event()

    async def provider(request: TokenRequest) -> str:
        try:
            await anyio.sleep_forever()
        finally:
            cancelled.set()
        return "unreachable"  # pragma: no cover

    async with open_source(mode, provider, provider_timeout=0.05) as source:
        with anyio.fail_after(5), pytest.raises(TokenProviderError, match="timed out"):
            await source.get("alice")
    assert cancelled.is_set()


@pytest.mark.parametrize(
    "garbage",
    [
        None,
        "",
        "   ",
        42,
        b"bytes-credential",
        ["a"],
        "has whitespace inside",
        "eyJhbGciOiJIUzI1NiJ9.not-json!.sig",
    ],
)
async def test_provider_returning_garbage_is_a_provider_error(
    mode: str, clock: FakeClock, garbage: object
) -> None:
    async def provider(request: TokenRequest) -> object:
        return garbage

    async with open_source(mode, provider, clock=clock) as source:
        with pytest.raises(TokenProviderError, match="returned") as info:
            await source.get("alice")
    if isinstance(garbage, str) and garbage.strip():
        assert garbage not in str(info.value)
        assert isinstance(info.value.__cause__, MalformedTokenError)


@pytest.mark.parametrize("as_token", [False, True])
async def test_provider_returning_an_expired_token_is_a_provider_error(
    mode: str, clock: FakeClock, as_token: bool
) -> None:
    raw = mint(sub="alice", exp=int(T0) - 1)

    async def provider(request: TokenRequest) -> str | Token:
        return Token.from_jwt(raw) if as_token else raw

    async with open_source(mode, provider, clock=clock) as source:
        with pytest.raises(TokenProviderError, match="expired") as info:
            await source.get("alice")
    assert raw not in str(info.value)
    assert source.statistics().keys == 0


async def test_provider_may_return_a_token_object(mode: str, clock: FakeClock) -> None:
    async def provider(request: TokenRequest) -> Token:
        return Token("opaque-credential", expires_at=clock() + 600)

    async with open_source(mode, provider, clock=clock) as source:
        token = await source.get("alice")
    assert token == Token("opaque-credential", expires_at=T0 + 600)


async def test_reauth_required_propagates_with_the_principal(mode: str) -> None:
    async def provider(request: TokenRequest) -> str:
        raise ReauthRequired("the refresh token was revoked")

    async with open_source(mode, provider) as source:
        with pytest.raises(ReauthRequired) as info:
            await source.get("alice")
    assert info.value.principal == "alice"
    assert isinstance(info.value.__cause__, ReauthRequired)
    assert "alice" in str(info.value)


async def test_failure_cooldown_spares_the_provider(mode: str, clock: FakeClock) -> None:
    calls = 0

    async def provider(request: TokenRequest) -> str:
        nonlocal calls
        calls += 1
        if calls == 1:
            raise Boom
        return mint(sub="alice", exp=int(clock()) + 3600)

    async with open_source(mode, provider, clock=clock, failure_cooldown=5) as source:
        with pytest.raises(TokenProviderError) as first:
            await source.get("alice")
        clock.advance(4.9)
        for _ in range(3):
            with pytest.raises(TokenProviderError) as again:
                await source.get("alice")
            assert again.value is not first.value
            assert str(again.value) == str(first.value)
            assert isinstance(again.value.__cause__, Boom)
        assert calls == 1
        clock.advance(0.1)
        await source.get("alice")
    assert calls == 2
    stats = source.statistics()
    assert (stats.provider_calls, stats.failures, stats.refreshes) == (2, 1, 1)


async def test_reauth_required_also_cools_down(mode: str, clock: FakeClock) -> None:
    calls = 0

    async def provider(request: TokenRequest) -> str:
        nonlocal calls
        calls += 1
        raise ReauthRequired

    async with open_source(mode, provider, clock=clock) as source:
        for _ in range(3):
            with pytest.raises(ReauthRequired):
                await source.get("alice")
    assert calls == 1


async def test_publish_ends_the_cooldown(mode: str, clock: FakeClock) -> None:
    async def provider(request: TokenRequest) -> str:
        raise ReauthRequired

    async with open_source(mode, provider, clock=clock, failure_cooldown=60) as source:
        with pytest.raises(ReauthRequired):
            await source.get("alice")
        source.publish("alice", Token("logged-in-again", expires_at=T0 + 3600))
        assert (await source.get("alice")).raw == "logged-in-again"


async def test_cancelling_a_waiter_mid_refresh_spares_the_others(
    mode: str, clock: FakeClock, provider: FakeProvider
) -> None:
    provider.hold()
    results: list[Token] = []
    cancelled_waiter_done = anyio.Event()
    async with open_source(mode, provider, clock=clock) as source:

        async def cancelled_waiter(scope: anyio.CancelScope) -> None:
            try:
                with scope:
                    results.append(await source.get("alice"))
            finally:
                cancelled_waiter_done.set()

        async def waiter() -> None:
            results.append(await source.get("alice"))

        scope = anyio.CancelScope()
        with anyio.fail_after(10):
            async with anyio.create_task_group() as tg:
                # First in: in unentered mode this one leads the provider call.
                tg.start_soon(cancelled_waiter, scope)
                await provider.started.wait()
                for _ in range(3):
                    tg.start_soon(waiter)
                await anyio.wait_all_tasks_blocked()
                scope.cancel()
                if mode == "entered":
                    # Waiters only wait: cancellation is immediate.
                    await cancelled_waiter_done.wait()
                    assert source.statistics().in_flight == 1
                provider.release()
    assert scope.cancelled_caught
    assert len(results) == 3
    assert len({t.raw for t in results}) == 1
    assert len(provider.calls) == 1


async def test_a_hanging_provider_for_one_principal_does_not_delay_another(mode: str) -> None:
    alice_started = anyio.Event()
    release_alice = anyio.Event()

    async def provider(request: TokenRequest) -> str:
        if request.principal == "alice":
            alice_started.set()
            await release_alice.wait()
        return mint(sub=request.principal, exp=int(time.time()) + 3600)

    async with open_source(mode, provider) as source:
        with anyio.fail_after(10):
            async with anyio.create_task_group() as tg:
                tg.start_soon(source.get, "alice")
                await alice_started.wait()
                bob = await source.get("bob")  # completes while alice's call hangs
                assert not release_alice.is_set()
                assert claims(bob)["sub"] == "bob"
                assert source.statistics().in_flight == 1
                release_alice.set()


async def test_tokens_never_cross_keys(mode: str, clock: FakeClock, provider: FakeProvider) -> None:
    keys = [
        ("alice", None),
        ("alice", "srv-a"),
        ("alice", "srv-b"),
        ("bob", None),
        ("bob", "srv-a"),
    ]
    async with open_source(mode, provider, clock=clock) as source:
        first = {key: await source.get(*key) for key in keys}
        again = {key: await source.get(*key) for key in keys}
        source.invalidate("alice", "srv-a")
        replaced = await source.get("alice", "srv-a")
    assert first == again
    assert len({t.raw for t in first.values()}) == len(keys)
    for (principal, audience), token in first.items():
        assert (claims(token)["sub"], claims(token).get("aud")) == (principal, audience)
    assert (claims(replaced)["sub"], claims(replaced)["aud"]) == ("alice", "srv-a")
    assert [(c.principal, c.audience) for c in provider.calls] == [*keys, ("alice", "srv-a")]
    assert source.statistics().keys == len(keys)


async def test_refresh_ahead_serves_the_current_token_and_refreshes_once_in_the_background(
    clock: FakeClock, provider: FakeProvider
) -> None:
    async with TokenSource(provider, clock=clock) as source:
        current = await source.get("alice")
        generation = source.generation("alice")
        clock.advance(3600 - 30 - 299)  # inside the 5-minute window
        provider.hold()
        for _ in range(50):
            assert await source.get("alice") is current  # no waiting
        with anyio.fail_after(5):
            await provider.started.wait()
            await anyio.wait_all_tasks_blocked()
        assert await source.get("alice") is current
        assert len(provider.calls) == 2
        assert provider.calls[1] == TokenRequest(
            "alice", force=False, reason="refresh ahead of expiry"
        )
        provider.release()
        with anyio.fail_after(5):
            await source.wait_for_new_token("alice", after=generation)
        new = await source.get("alice")
    assert not new.same_credential(current)
    assert len(provider.calls) == 2


async def test_unentered_source_serves_the_stale_window_and_refreshes_at_the_margin(
    clock: FakeClock, provider: FakeProvider
) -> None:
    source = TokenSource(provider, clock=clock)
    current = await source.get("alice")
    clock.advance(3600 - 30 - 100)
    assert await source.get("alice") is current
    assert len(provider.calls) == 1
    clock.advance(100)
    assert not (await source.get("alice")).same_credential(current)


async def test_a_provider_handing_back_the_same_credential_is_not_hammered(
    clock: FakeClock,
) -> None:
    calls: list[TokenRequest] = []
    raw = mint(sub="alice", iat=int(T0), exp=int(T0) + 3600)

    async def provider(request: TokenRequest) -> str:
        calls.append(request)
        return raw

    async with TokenSource(provider, clock=clock) as source:
        await source.get("alice")
        clock.advance(3600 - 30 - 100)
        for _ in range(20):
            await source.get("alice")
            await anyio.wait_all_tasks_blocked()
        assert len(calls) == 2  # one background try, then nothing until the margin
        assert source.generation("alice") == 1
        clock.advance(100)
        with pytest.raises(TokenProviderError, match="expired"):
            await source.get("alice")


async def test_background_refresh_failure_keeps_serving_the_current_token(
    clock: FakeClock,
) -> None:
    fail = True

    async def provider(request: TokenRequest) -> str:
        if fail and request.reason == "refresh ahead of expiry":
            raise Boom
        return mint(sub="alice", exp=int(clock()) + 3600)

    async with TokenSource(provider, clock=clock) as source:
        current = await source.get("alice")
        clock.advance(3600 - 30 - 100)
        assert await source.get("alice") is current
        await anyio.wait_all_tasks_blocked()
        assert source.statistics().failures == 1
        assert await source.get("alice") is current  # still served; cooling down
        clock.advance(2)
        fail = False
        generation = source.generation("alice")
        assert await source.get("alice") is current  # starts a new background try
        with anyio.fail_after(5):
            await source.wait_for_new_token("alice", after=generation)


async def test_refresh_ahead_timer_refreshes_with_no_traffic() -> None:
    calls: list[TokenRequest] = []

    async def provider(request: TokenRequest) -> Token:
        calls.append(request)
        return Token(f"credential-{len(calls)}", expires_at=time.time() + 0.4)

    # Real time, millisecond policy: the window opens 0.2 s after each token arrives.
    async with TokenSource(provider, margin=0.1, stale_window=0.1, refresh_ahead=True) as source:
        first = await source.get("alice")
        with anyio.fail_after(5):
            generation = await source.wait_for_new_token("alice", after=1)
        assert generation >= 2
        assert calls[1] == TokenRequest("alice", force=False, reason="refresh-ahead timer")
        assert not (await source.get("alice")).same_credential(first)


async def test_refresh_ahead_timer_needs_the_source_entered() -> None:
    source = TokenSource(FakeProvider(FakeClock()), refresh_ahead=True)
    with pytest.raises(RuntimeError, match="async with"):
        await source.get("alice")


async def test_publish_wakes_waiters_and_listeners(mode: str, clock: FakeClock) -> None:
    heard: list[tuple[str, str | None]] = []
    async with open_source(mode, FakeProvider(clock), clock=clock) as source:
        remove = source.add_listener(lambda p, a: heard.append((p, a)))
        assert source.generation("alice", "srv") == 0
        woke: list[int] = []

        async def waiter() -> None:
            woke.append(await source.wait_for_new_token("alice", "srv", after=0))

        with anyio.fail_after(5):
            async with anyio.create_task_group() as tg:
                tg.start_soon(waiter)
                await anyio.wait_all_tasks_blocked()
                source.publish("bob", Token("other-key", expires_at=T0 + 60), "srv")
                source.publish("alice", Token("credential-1", expires_at=T0 + 60))
                await anyio.wait_all_tasks_blocked()
                assert woke == []  # other keys do not wake it
                source.publish("alice", Token("credential-2", expires_at=T0 + 60), "srv")
        assert woke == [1]
        assert (await source.get("alice", "srv")).raw == "credential-2"
        await source.refresh("alice", "srv", replacing=None)
        assert source.generation("alice", "srv") == 2
        remove()
        source.publish("alice", Token("credential-3"), "srv")
    # listeners hear of publish() only: a refresh must not wake parked connections
    assert heard == [("bob", "srv"), ("alice", None), ("alice", "srv")]


async def test_a_failing_listener_does_not_break_publish(
    clock: FakeClock, caplog: pytest.LogCaptureFixture
) -> None:
    source = TokenSource(FakeProvider(clock), clock=clock)

    def bad(principal: str, audience: str | None) -> None:
        raise Boom

    source.add_listener(bad)
    with caplog.at_level(logging.ERROR, logger="mcpconn.tokens"):
        source.publish("alice", Token("credential", expires_at=T0 + 60))
    assert (await source.get("alice")).raw == "credential"
    assert "listener" in caplog.text


async def test_publish_during_a_refresh_wins(
    mode: str, clock: FakeClock, provider: FakeProvider
) -> None:
    provider.hold()
    results: list[Token] = []
    async with open_source(mode, provider, clock=clock) as source:

        async def one() -> None:
            results.append(await source.get("alice"))

        with anyio.fail_after(5):
            async with anyio.create_task_group() as tg:
                tg.start_soon(one)
                tg.start_soon(one)
                await provider.started.wait()
                source.publish("alice", Token("published", expires_at=T0 + 3600))
                provider.release()
        assert (await source.get("alice")).raw == "published"
    assert [t.raw for t in results] == ["published", "published"]


async def test_invalidate_forgets_the_token(
    mode: str, clock: FakeClock, provider: FakeProvider
) -> None:
    async with open_source(mode, provider, clock=clock) as source:
        first = await source.get("alice")
        source.invalidate("alice")
        assert source.statistics().keys == 0
        assert not (await source.get("alice")).same_credential(first)
    assert [c.force for c in provider.calls] == [False, False]


async def test_statistics_snapshot(clock: FakeClock) -> None:
    source = TokenSource(FakeProvider(clock), clock=clock)
    assert source.statistics() == TokenSourceStatistics(0, 0, 0, 0, 0)
    await source.get("alice")
    await source.get("bob", "srv")
    stats = source.statistics()
    assert stats == TokenSourceStatistics(
        provider_calls=2, refreshes=2, failures=0, keys=2, in_flight=0
    )
    with pytest.raises(AttributeError):
        stats.keys = 5  # type: ignore[misc]


async def test_a_closed_source_refuses_calls(clock: FakeClock) -> None:
    source = TokenSource(FakeProvider(clock), clock=clock)
    async with source:
        await source.get("alice")
    with pytest.raises(ConnectionClosed):
        await source.get("alice")
    with pytest.raises(ConnectionClosed):
        source.publish("alice", Token("x"))
    with pytest.raises(RuntimeError):
        async with source:
            pass  # pragma: no cover


async def test_closing_during_a_refresh_releases_the_waiters(
    clock: FakeClock, provider: FakeProvider
) -> None:
    provider.hold()
    errors: list[BaseException] = []
    source = TokenSource(provider, clock=clock)

    async def waiter() -> None:
        try:
            await source.get("alice")
        except ConnectionClosed as exc:
            errors.append(exc)

    with anyio.fail_after(5):
        async with anyio.create_task_group() as tg, source:
            tg.start_soon(waiter)
            await provider.started.wait()
    assert len(errors) == 1


async def test_closing_wakes_token_waiters(clock: FakeClock) -> None:
    source = TokenSource(FakeProvider(clock), clock=clock)
    raised: list[BaseException] = []

    async def waiter() -> None:
        try:
            await source.wait_for_new_token("alice", after=0)
        except ConnectionClosed as exc:
            raised.append(exc)

    with anyio.fail_after(5):
        async with anyio.create_task_group() as tg, source:
            tg.start_soon(waiter)
            await anyio.wait_all_tasks_blocked()
    assert len(raised) == 1


@pytest.mark.parametrize(
    "kwargs",
    [
        {"provider_timeout": 0},
        {"provider_timeout": math.inf},
        {"provider_timeout": math.nan},
        {"failure_cooldown": -1},
        {"margin": -1},
        {"max_age": 0},
    ],
)
def test_nonsense_settings_are_rejected(kwargs: dict[str, Any]) -> None:
    with pytest.raises(ValueError, match="finite"):
        TokenSource(FakeProvider(FakeClock()), **kwargs)


async def test_max_age_bounds_an_opaque_token(mode: str, clock: FakeClock) -> None:
    calls = 0

    async def provider(request: TokenRequest) -> str:
        nonlocal calls
        calls += 1
        return f"opaque-{calls}"

    async with open_source(mode, provider, clock=clock, max_age=600) as source:
        assert (await source.get("alice")).raw == "opaque-1"
        clock.advance(500)
        assert (await source.get("bob")).raw == "opaque-2"
        clock.advance(100)
        assert (await source.get("alice")).raw == "opaque-3"


async def test_no_token_in_reprs_messages_or_logs(
    clock: FakeClock, caplog: pytest.LogCaptureFixture
) -> None:
    secret = mint(sub="alice", exp=int(T0) - 5)
    fresh = mint(sub="alice", exp=int(T0) + 3600)
    answers: list[object] = [secret, Boom(fresh), fresh]

    async def provider(request: TokenRequest) -> str:
        answer = answers.pop(0)
        if isinstance(answer, BaseException):
            raise answer
        assert isinstance(answer, str)
        return answer

    texts: list[str] = []
    with caplog.at_level(logging.DEBUG):
        async with TokenSource(provider, clock=clock, failure_cooldown=0) as source:
            for _ in range(2):
                with pytest.raises(TokenProviderError) as info:
                    await source.get("alice")
                texts += [str(info.value), repr(info.value)]
            token = await source.get("alice")
            texts += [repr(source), str(source), repr(source.statistics()), repr(token)]
            texts += [str(token), repr(TokenRequest("alice"))]
    texts += [r.getMessage() for r in caplog.records]
    assert any("alice" in t for t in texts)
    for text in texts:
        for raw in (secret, fresh):
            assert raw not in text
            assert raw.split(".")[1] not in text


async def test_an_expired_token_landing_during_a_flight_never_wins_over_the_fresh_one() -> None:
    """A token that lands while the provider is asked (a publish, or another replica's
    token arriving late over pub/sub) is kept only if it may be served: an expired one
    must not be handed out instead of the provider's fresh answer."""
    asked, release = anyio.Event(), anyio.Event()

    async def slow(request: TokenRequest) -> Token:
        asked.set()
        await release.wait()
        return Token("fresh-from-the-provider", expires_at=time.time() + 3600)

    got: list[Token] = []
    async with TokenSource(slow) as tokens, anyio.create_task_group() as tg:

        async def get() -> None:
            got.append(await tokens.get("alice"))

        tg.start_soon(get)
        with anyio.fail_after(5):
            await asked.wait()
        tokens.publish("alice", Token("expired-landing", expires_at=time.time() - 10))
        release.set()
    assert [t.raw for t in got] == ["fresh-from-the-provider"]
