"""Tokens stay secret and go only where they belong.

The session-wide guard in tests/conftest.py already fails any test during which
a log record (any logger, any level) carried a JWT-shaped string or a raw token
registered with ``leak_guard``; the scenarios here run with DEBUG logging on and
also check every other surface a token could leak through: exception ``str``
and ``repr``, object ``repr``, state-change events and statistics.
"""

from __future__ import annotations

import logging
import time
from typing import Any

import anyio
import anyio.lowlevel
import httpx
import pytest

import mcpconn
from mcpconn import ServerConfig, State, Supervisor, Token, TokenRequest, TokenSource
from mcpconn._tokens.view import KeyState
from mcpconn.testing import Fault, JWTProvider, MockServer, Tool

from ._raw import FAST, RawRequest, RawServer, head, no_leaks, raw_server, surfaces
from ._supervised import connected, recorded_changes, supervised


def cfg(server: MockServer | RawServer, name: str = "mock", **kwargs: Any) -> ServerConfig:
    kwargs.setdefault("transport", "streamable-http")
    kwargs.setdefault("protocol_version", "2025-11-25")
    return ServerConfig(name, server.url, **kwargs)


async def test_no_token_in_any_surface_through_expiry_rejection_parking_and_recovery(
    leak_guard: Any,
) -> None:
    async with no_leaks(), MockServer() as server:
        provider = JWTProvider(server.issuer, lifetime=60)
        reauths: list[mcpconn.ReauthRequired] = []
        async with supervised(provider, on_reauth_required=reauths.append) as sup:
            tokens = sup.tokens
            async with recorded_changes(sup) as changes:
                conn = await connected(sup, cfg(server))
                with anyio.fail_after(10):
                    await conn.call_tool("echo", {"text": "hello"})
                    # a server-side rejection, the forced refresh, backoff, parking
                    server.revoke("alice")
                    server.faults.add(Fault.unauthorized(), times=1)
                    with pytest.raises(mcpconn.MCPConnError) as rejected:
                        await conn.call_tool("echo", {"text": "x"})
                    await conn.wait_for(State.NEEDS_REAUTH)
                    with pytest.raises(mcpconn.ReauthRequired) as parked:
                        await conn.call_tool("echo", {"text": "x"})
                    # the user logs in again
                    server.restore("alice")
                    fresh = server.mint("alice")
                    tokens.publish("alice", fresh)
                    await conn.wait_for(State.READY)
                    await conn.call_tool("echo", {"text": "back"})
            minted = {fresh, *(t.raw for t in [await tokens.get("alice")])}
            for raw in minted:
                leak_guard.register(raw)
            texts = surfaces(
                rejected.value,
                parked.value,
                conn.last_error,
                conn,
                sup,
                tokens,
                await tokens.get("alice"),
                *reauths,
                sup.statistics(),
                tokens.statistics(),
                *changes,
            )
            assert changes and reauths
        for text in texts:
            assert leak_guard.find(text) is None, "a token leaked into str()/repr()"


async def test_a_provider_exception_quoting_the_token_does_not_leak_it(leak_guard: Any) -> None:
    secret = "opaque-secret-" + "q7" * 16
    leak_guard.register(secret)

    async def provider(request: TokenRequest) -> str:
        raise RuntimeError(f"refresh failed for token {secret}")

    async with no_leaks(), MockServer() as server:
        async with (
            TokenSource(provider, failure_cooldown=0) as tokens,
            Supervisor(tokens, backoff=FAST) as sup,
        ):
            changes = sup.state_changes()
            conn = await sup.connect(cfg(server), "alice")
            with anyio.fail_after(10):
                while not isinstance(conn.last_error, mcpconn.TokenProviderError):
                    await changes.__anext__()
            await changes.aclose()
            error = conn.last_error
            assert error is not None
            # our own message never quotes it; the provider's exception is kept as the cause
            assert secret not in str(error) and secret not in repr(error)
            assert isinstance(error.__cause__, RuntimeError)
        assert server.stats().requests_total == 0


async def test_a_server_echoing_the_token_back_does_not_get_it_logged(
    leak_guard: Any, caplog: pytest.LogCaptureFixture
) -> None:
    # httpcore logs response headers verbatim at DEBUG: that is documented in SECURITY.md
    # (keep httpcore at INFO in production); this test is about mcpconn's own surfaces.
    caplog.set_level(logging.INFO, logger="httpcore")

    async def echo_back(stream: Any, req: RawRequest) -> None:
        token = req.headers["authorization"].removeprefix("Bearer ")
        challenge = f'Bearer error="{token}", error_description="{token}", scope="{token}"'
        await stream.send(head(401, {"www-authenticate": challenge, "content-length": "0"}))

    async with (
        no_leaks(),
        MockServer() as issuer_server,
        raw_server(on_initialize=echo_back) as raw,
    ):
        async with supervised(JWTProvider(issuer_server.issuer)) as sup:
            conn = await connected(sup, cfg(raw, "echo"), state=State.NEEDS_REAUTH)
            with pytest.raises(mcpconn.ReauthRequired) as info:
                await conn.call_tool("echo", {})
            texts = surfaces(conn.last_error, info.value)
        # the guard fails this test if a log line carried the echoed token; and:
        for text in texts:
            assert leak_guard.find(text) is None


async def test_forward_token_false_servers_never_see_a_token() -> None:
    async with MockServer(require_auth=False) as open_server, MockServer() as authed:
        provider = JWTProvider(authed.issuer)
        async with (
            TokenSource(provider) as tokens,
            Supervisor(tokens, backoff=FAST) as sup,
        ):
            public = await sup.connect(cfg(open_server, "public", forward_token=False), "alice")
            private = await sup.connect(cfg(authed, "private"), "alice")
            with anyio.fail_after(10):
                await public.wait_for(State.READY)
                await private.wait_for(State.READY)
                await public.call_tool("echo", {"text": "x"})
                await private.call_tool("echo", {"text": "y"})
        records = open_server.records
        assert records and not any(r.token_present for r in records)
        assert authed.records and all(r.token_present for r in authed.records)


async def test_many_principals_concurrently_never_cross() -> None:
    async def whoami(arguments: dict[str, Any], ctx: Any) -> dict[str, Any]:
        await anyio.lowlevel.checkpoint()  # interleave with the other principals' calls
        return {"content": [{"type": "text", "text": str(ctx.principal)}], "isError": False}

    principals = [f"user{i:02d}" for i in range(20)]
    async with no_leaks(), MockServer(tools=[Tool("whoami", whoami)]) as server:
        async with (
            TokenSource(JWTProvider(server.issuer)) as tokens,
            Supervisor(tokens, backoff=FAST) as sup,
        ):
            conns = {p: await sup.connect(cfg(server, listen=False), p) for p in principals}
            answers: dict[str, list[str]] = {p: [] for p in principals}

            async def calls(principal: str) -> None:
                conn = conns[principal]
                for _ in range(3):
                    result = await conn.call_tool("whoami", {})
                    answers[principal].append(result["content"][0]["text"])

            with anyio.fail_after(30):
                async with anyio.create_task_group() as tg:
                    for p in principals:
                        tg.start_soon(calls, p)
        for principal, seen in answers.items():
            assert seen == [principal] * 3, f"{principal} saw {set(seen)}"
        by_principal = server.stats().by_principal
        assert set(by_principal) <= set(principals)
        assert server.stats().expired_tokens_seen == 0


async def test_authorization_never_follows_a_redirect_even_with_a_following_client() -> None:
    async with no_leaks(), raw_server() as elsewhere:

        async def redirect(stream: Any, req: RawRequest) -> None:
            await stream.send(head(307, {"location": elsewhere.url, "content-length": "0"}))

        async with raw_server(on_initialize=redirect) as raw, MockServer() as mock:
            async with (
                httpx.AsyncClient(follow_redirects=True) as client,
                TokenSource(JWTProvider(mock.issuer)) as tokens,
                Supervisor(tokens, backoff=FAST, client=client) as sup,
            ):
                config = ServerConfig(
                    "r", raw.url, transport="streamable-http", protocol_version="2025-11-25"
                )
                conn = await sup.connect(config, "alice")
                with anyio.fail_after(10):
                    await raw.wait(lambda r: r.count("POST") >= 2)
                assert isinstance(conn.last_error, mcpconn.HTTPStatusError)
        assert elsewhere.requests == []


@pytest.mark.parametrize(
    "url",
    [
        "http://mcp.example.com/mcp",
        "http://10.0.0.7:8080/mcp",
        "http://127.0.0.1.nip.io/mcp",
        "http://localhost.example.org/mcp",
        "http://[2001:db8::1]/mcp",
    ],
)
async def test_a_bearer_over_plain_http_to_a_remote_host_is_refused_before_any_traffic(
    url: str,
) -> None:
    sent: list[httpx.Request] = []

    def record(request: httpx.Request) -> httpx.Response:
        sent.append(request)
        return httpx.Response(503)

    calls = 0

    async def provider(request: TokenRequest) -> str:
        nonlocal calls
        calls += 1
        return "opaque-token-for-the-insecure-test"

    async with (
        httpx.AsyncClient(transport=httpx.MockTransport(record)) as client,
        TokenSource(provider) as tokens,
        Supervisor(tokens, backoff=FAST, client=client) as sup,
    ):
        config = ServerConfig("remote", url, transport="streamable-http")
        conn = await sup.connect(config, "alice")
        with anyio.fail_after(10):
            await conn.wait_for(State.FAILED)
        assert isinstance(conn.last_error, mcpconn.InsecureTransportError)
        with pytest.raises(mcpconn.ConnectionClosed):
            await conn.call_tool("echo", {})
    assert sent == []  # refused before any request: no DNS, no socket, no bytes
    assert calls == 0  # and before the token was even fetched


async def test_allow_insecure_http_lets_the_embedder_opt_in() -> None:
    sent: list[httpx.Request] = []

    def record(request: httpx.Request) -> httpx.Response:
        sent.append(request)
        return httpx.Response(503)

    async def provider(request: TokenRequest) -> str:
        return "opaque-token-for-the-opt-in-test"

    async with (
        httpx.AsyncClient(transport=httpx.MockTransport(record)) as client,
        TokenSource(provider) as tokens,
        Supervisor(tokens, backoff=FAST, client=client) as sup,
    ):
        config = ServerConfig(
            "remote",
            "http://mcp.example.com/mcp",
            allow_insecure_http=True,
            transport="streamable-http",
            protocol_version="2025-11-25",
        )
        conn = await sup.connect(config, "alice")
        with anyio.fail_after(10):
            while not sent:
                await conn.wait_for(State.BACKOFF)
    assert sent[0].headers["authorization"] == "Bearer opaque-token-for-the-opt-in-test"


def test_reprs_of_token_values_never_show_the_credential() -> None:
    raw = "opaque-" + "z" * 40
    token = Token.from_jwt(raw, now=time.time())
    for text in (repr(token), str(token), f"{token}", f"{token!r}"):
        assert raw not in text
    err = mcpconn.TokenProviderError("provider failed", principal="alice")
    assert raw not in repr(err)
    # the token source's per-key bookkeeping remembers a raw credential, never shows it
    assert raw not in repr(KeyState(ahead_for=raw))
