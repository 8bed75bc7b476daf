"""Broken token providers, end to end through the supervisor against the mock server.

What mcpconn can detect about a provider's answer: it raised, it hung, it
returned no string, an empty or malformed one, or a JWT whose (unverified)
``exp`` is already past. What it cannot detect: a well-formed token that is
wrong (another principal's, another issuer's, revoked). mcpconn never verifies
a JWT, so such a token is sent once and the *server* decides: a 401, the one
forced refresh, the bounded auth attempts, then NEEDS_REAUTH. Whatever the
provider does, no request leaves without a token and no expired token is sent.
"""

from __future__ import annotations

import time
from collections.abc import Awaitable, Callable
from typing import Any

import anyio
import jwt
import pytest

import mcpconn
from mcpconn import (
    ServerConfig,
    State,
    StormControl,
    Token,
    TokenRequest,
)
from mcpconn.testing import JWTIssuer, JWTProvider, MockServer

from ._raw import FAST, no_leaks
from ._supervised import connected, supervised

Provider = Callable[[TokenRequest], Awaitable[Any]]


def cfg(server: MockServer, name: str = "mock", **kwargs: Any) -> ServerConfig:
    kwargs.setdefault("transport", "streamable-http")
    kwargs.setdefault("protocol_version", "2025-11-25")
    kwargs.setdefault("listen", False)
    return ServerConfig(name, server.url, **kwargs)


def unsigned(claims: dict[str, Any]) -> str:
    return jwt.encode(claims, "not-the-servers-secret-but-long-enough-32b", algorithm="HS256")


# ---- providers that fail in a way we can see ----------------------------------------


def raising(request: TokenRequest) -> Awaitable[Any]:
    raise RuntimeError("the identity provider is down")


async def hanging(request: TokenRequest) -> Any:
    await anyio.sleep_forever()


def returning(value: Any) -> Provider:
    async def provider(request: TokenRequest) -> Any:
        return value

    return provider


NOW = time.time()
VISIBLE: dict[str, Provider] = {
    "raises": raising,
    "hangs": hanging,
    "returns-None": returning(None),
    "returns-empty": returning(""),
    "returns-an-int": returning(42),
    "returns-malformed-jwt": returning("eyJhbGciOiJIUzI1NiJ9.%%%.sig"),
    "returns-expired-jwt": returning(unsigned({"sub": "alice", "exp": int(NOW) - 60})),
    "returns-negative-exp": returning(unsigned({"sub": "alice", "exp": -1})),
    # beyond year 9999 is not a NumericDate we accept: malformed, not "valid forever"
    "returns-exp-beyond-9999": returning(unsigned({"sub": "alice", "exp": 10**13})),
    "returns-token-with-whitespace": returning("abc def\r\nX-Injected: 1"),
}


@pytest.mark.parametrize("kind", sorted(VISIBLE))
async def test_a_visibly_broken_provider_sends_nothing_and_backs_off(kind: str) -> None:
    async with no_leaks(), MockServer() as server:
        quick_to_fail = {"provider_timeout": 0.2, "failure_cooldown": 0}
        async with supervised(VISIBLE[kind], source_options=quick_to_fail) as sup:
            conn = await sup.connect(cfg(server), "alice")
            changes = sup.state_changes()
            with anyio.fail_after(10):
                while not (
                    isinstance(conn.last_error, mcpconn.TokenProviderError)
                    and conn.state is State.BACKOFF
                ):
                    await changes.__anext__()
            await changes.aclose()
            assert isinstance(conn.last_error, mcpconn.TokenProviderError)
            assert conn.last_error.principal == "alice"
            # a provider failure is not an auth failure: never parked, never a 401
            assert sup.statistics().unauthorized == 0
        # nothing was sent without a (valid, unexpired) token
        assert server.stats().requests_total == 0


async def test_a_far_future_exp_is_accepted_and_repr_stays_safe() -> None:
    async with MockServer() as server:
        raw = server.issuer.mint("alice", lifetime=200 * 365 * 86400)  # two centuries

        async with supervised(returning(raw)) as sup:
            conn = await connected(sup, cfg(server))
            assert "far" in str(await conn.call_tool("echo", {"text": "far"}))
            token = await sup.tokens.get("alice")
            assert raw not in repr(token) and raw not in repr(sup.tokens) and raw not in repr(conn)


async def test_a_token_mcpconn_cannot_judge_is_rejected_by_the_server_and_parks() -> None:
    # Another issuer's token for another principal: well formed, unexpired, wrong.
    # mcpconn does not verify signatures (it cannot: it has no keys), so the server's
    # 401 is the only signal; the bounded 401 path ends in NEEDS_REAUTH.
    other = JWTIssuer()
    async with no_leaks(), MockServer() as server:
        calls = 0

        async def provider(request: TokenRequest) -> str:
            nonlocal calls
            calls += 1
            return other.mint("mallory", lifetime=600)

        async with supervised(provider, source_options={"failure_cooldown": 0}) as sup:
            conn = await connected(sup, cfg(server), state=State.NEEDS_REAUTH)
            assert isinstance(conn.last_error, mcpconn.Unauthorized)
            seen = server.stats().requests_total
            assert seen == 1 + 1 + FAST.auth_attempts
            assert calls == seen  # each attempt asked the provider again


async def test_hundreds_wait_on_one_slow_refresh() -> None:
    async with no_leaks(), MockServer() as server:
        issuer = server.issuer
        calls = 0

        async def slow(request: TokenRequest) -> str:
            nonlocal calls
            calls += 1
            await anyio.sleep(0.3)
            return issuer.mint(request.principal, lifetime=600)

        storm = StormControl(connect_rate=1e6, connect_burst=1e6)
        got: list[Token] = []
        async with supervised(slow, storm_control=storm) as sup:
            tokens = sup.tokens

            async def waiter() -> None:
                got.append(await tokens.get("alice"))

            with anyio.fail_after(20):
                async with anyio.create_task_group() as tg:
                    conns = [await sup.connect(cfg(server, f"s{i}"), "alice") for i in range(20)]
                    for _ in range(300):
                        tg.start_soon(waiter)
                for conn in conns:
                    await conn.wait_for(State.READY)
            assert calls == 1  # single flight: one provider call for 320 waiters
            assert len(got) == 300 and len({t.raw for t in got}) == 1
            assert sup.statistics().by_state[State.READY] == 20


async def test_a_provider_that_fails_transiently_recovers_without_touching_auth() -> None:
    async with no_leaks(), MockServer() as server:
        inner = JWTProvider(server.issuer)
        failures = 3

        async def flaky(request: TokenRequest) -> str:
            nonlocal failures
            if failures:
                failures -= 1
                raise ConnectionError("identity provider hiccup")
            return await inner(request)

        async with supervised(flaky, source_options={"failure_cooldown": 0}) as sup:
            conn = await connected(sup, cfg(server))
            assert "ok" in str(await conn.call_tool("echo", {"text": "ok"}))
            assert failures == 0
            stats = sup.statistics()
            assert stats.unauthorized == 0 and stats.parks == 0
            assert stats.transient_failures >= 3
            assert server.stats().unauthorized_total == 0


async def test_clock_skew_the_server_says_expired_the_401_path_recovers() -> None:
    async with no_leaks(), MockServer() as server:
        lifetimes = [20.0]  # the first token is short; the refreshed one is long

        async def provider(request: TokenRequest) -> str:
            life = lifetimes.pop(0) if lifetimes else 600.0
            return server.issuer.mint(request.principal, lifetime=life)

        async with supervised(provider, source_options={"margin": 1.0}) as sup:
            tokens = sup.tokens
            conn = await connected(sup, cfg(server))
            with anyio.fail_after(10):
                first = await tokens.get("alice")
                server.clock_offset = 60.0  # the server's clock runs a minute ahead
                # by our clock the token has ~19 s left; by the server's it is dead
                assert first.expires_at is not None and first.expires_at > time.time() + 5
                result = await conn.call_tool("echo", {"text": "skewed"})
            assert "skewed" in str(result)
            assert server.stats().unauthorized_total == 1  # one 401, one refresh, done
            assert conn.state is State.READY
            assert not (await tokens.get("alice")).same_credential(first)


async def test_a_provider_that_says_reauth_parks_at_once_and_a_publish_wakes_it() -> None:
    async with no_leaks(), MockServer() as server:
        provider = JWTProvider(server.issuer)
        provider.revoke("alice")
        async with supervised(provider) as sup:
            conn = await connected(sup, cfg(server), state=State.NEEDS_REAUTH)
            with anyio.fail_after(10):
                assert server.stats().requests_total == 0
                sup.tokens.publish("alice", Token.from_jwt(server.mint("alice"), now=time.time()))
                await conn.wait_for(State.READY)
