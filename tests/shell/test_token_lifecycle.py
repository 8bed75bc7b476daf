"""TokenSource: statistics, closing, settings, opaque tokens, secrecy, and late arrivals.

Fakes: token_fakes.py.
"""

from __future__ import annotations

import logging
import math
import time
from typing import Any

import anyio
import pytest
from token_fakes import T0, Boom, FakeClock, FakeProvider, mint, open_source

from mcpconn._core.token import Token
from mcpconn._exceptions import ConnectionClosed, TokenProviderError
from mcpconn._tokens.source import TokenRequest, TokenSource, TokenSourceStatistics


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
