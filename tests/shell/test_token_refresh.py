"""TokenSource: cancellation, isolation per key, refresh ahead, publish and listeners.

Both modes where it applies (see test_tokens); fakes: token_fakes.py.
"""

from __future__ import annotations

import logging
import time

import anyio
import pytest
from token_fakes import T0, Boom, FakeClock, FakeProvider, claims, mint, open_source

from mcpconn._core.token import Token
from mcpconn._exceptions import TokenProviderError
from mcpconn._tokens.source import TokenRequest, TokenSource


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
