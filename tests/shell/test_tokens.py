"""TokenSource: cache, single flight, compare-and-refresh, provider failures and cooldown.

Most tests run in both modes: entered (``async with``: the source's task group
runs the provider) and unentered (the first caller leads, shielded). Fakes: token_fakes.py.
"""

from __future__ import annotations

from functools import partial

import anyio
import pytest
from token_fakes import T0, Boom, FakeClock, FakeProvider, crowd, mint, open_source

from mcpconn._core.token import Token
from mcpconn._exceptions import MalformedTokenError, ReauthRequired, TokenProviderError
from mcpconn._tokens.source import TokenRequest


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


async def test_a_failure_kept_through_the_cooldown_keeps_no_frames(
    mode: str, clock: FakeClock
) -> None:
    """The kept failure is never raised itself (each caller gets a copy with its own
    traceback); the provider's own error keeps its traceback, for the embedder."""

    async def provider(request: TokenRequest) -> str:
        if request.principal == "bob":
            raise ReauthRequired
        raise Boom

    async with open_source(mode, provider, clock=clock, failure_cooldown=60) as source:
        for _ in range(2):
            with pytest.raises(ReauthRequired) as parked:
                await source.get("bob")
            assert parked.value.__traceback__ is not None
            kept = parked.value.__cause__
            assert isinstance(kept, ReauthRequired) and kept.__traceback__ is None
        with pytest.raises(TokenProviderError) as failed:
            await source.get("alice")
        assert isinstance(failed.value.__cause__, Boom)
        assert failed.value.__cause__.__traceback__ is not None


async def test_publish_ends_the_cooldown(mode: str, clock: FakeClock) -> None:
    async def provider(request: TokenRequest) -> str:
        raise ReauthRequired

    async with open_source(mode, provider, clock=clock, failure_cooldown=60) as source:
        with pytest.raises(ReauthRequired):
            await source.get("alice")
        source.publish("alice", Token("logged-in-again", expires_at=T0 + 3600))
        assert (await source.get("alice")).raw == "logged-in-again"
