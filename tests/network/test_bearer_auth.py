"""BearerAuth against a real loopback HTTP server that rejects stale tokens."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

import anyio
import httpx
import jwt
import pytest

from helpers.loopback import Headers, LoopbackServer, serve
from mcpconn._core.token import Token
from mcpconn._exceptions import InsecureTransportError
from mcpconn._http import make_client
from mcpconn._tokens.auth import BearerAuth
from mcpconn._tokens.source import TokenRequest, TokenSource

KEY = "a-test-secret-long-enough-for-hs256!"
T0 = 1_900_000_000.0
CHALLENGE = 'Bearer realm="mcp", error="invalid_token", error_description="expired"'


class Issuer:
    """The provider, and the server's idea of which token is currently valid."""

    def __init__(self) -> None:
        self.calls: list[TokenRequest] = []
        self.valid: set[str] = set()
        self.same_again = False

    async def __call__(self, request: TokenRequest) -> str:
        self.calls.append(request)
        if self.same_again and self.valid:
            return next(iter(self.valid))
        raw = jwt.encode({"sub": request.principal, "n": len(self.calls), "exp": T0 + 3600}, KEY)
        self.valid = {raw}
        return raw


def bearer(headers: Headers) -> str | None:
    value = dict(headers).get("authorization", "")
    return value.removeprefix("Bearer ") if value.startswith("Bearer ") else None


@asynccontextmanager
async def setup(
    *, reject_all: bool = False, **auth_kwargs: Any
) -> AsyncIterator[tuple[LoopbackServer, Issuer, TokenSource, httpx.AsyncClient, BearerAuth]]:
    issuer = Issuer()

    async def handler(
        method: str, path: str, headers: Headers, body: bytes
    ) -> tuple[int, Headers, bytes]:
        if reject_all or bearer(headers) not in issuer.valid:
            return 401, [("www-authenticate", CHALLENGE)], b"no"
        return 200, [("content-type", "text/plain")], b"ok:" + body

    source = TokenSource(issuer, clock=lambda: T0)
    auth = BearerAuth(source, "alice", **auth_kwargs)
    async with serve(handler) as server, make_client(auth=auth, timeout=10) as client:
        yield server, issuer, source, client, auth


async def test_stale_token_gets_one_refresh_and_one_retry() -> None:
    async with setup() as (server, issuer, source, client, _auth):
        # The token is fresh by its exp, but the server has revoked it.
        stale = jwt.encode({"sub": "alice", "exp": T0 + 3600, "revoked": True}, KEY)
        source.publish("alice", stale)
        response = await client.post(server.url + "/mcp", content=b"payload")
    assert response.status_code == 200
    assert response.content == b"ok:payload"  # the body was sent again on the retry
    assert [bearer(h) for _, _, h in server.requests] == [stale, *issuer.valid]
    assert [(c.force, c.reason) for c in issuer.calls] == [(True, "token rejected")]
    # the refresh was told what the server said
    assert issuer.calls[0].challenge is not None
    assert issuer.calls[0].challenge.error == "invalid_token"
    assert issuer.calls[0].challenge.error_description == "expired"
    assert [r.status_code for r in response.history] == [401]
    rejected = BearerAuth.rejection(response.history[0])
    assert rejected is not None and rejected.token.raw == stale
    assert BearerAuth.rejection(response) is None  # the retry was accepted


async def test_a_server_that_rejects_everything_gets_exactly_two_requests() -> None:
    async with setup(reject_all=True) as (server, issuer, _source, client, auth):
        response = await client.get(server.url + "/mcp")
    assert response.status_code == 401
    assert len(server.requests) == 2
    assert len(issuer.calls) == 2  # the first token, then one forced refresh
    assert issuer.calls[1].force
    sent = [bearer(h) for _, _, h in server.requests]
    assert sent[0] != sent[1]
    # the response says what was refused last: the refreshed token, and why
    rejection = BearerAuth.rejection(response)
    assert rejection is not None
    assert rejection.token.raw == sent[1]
    assert rejection.challenge is not None
    assert rejection.challenge.error == "invalid_token"
    assert sent[1] not in repr(rejection)  # a fingerprint, never the credential
    assert not hasattr(auth, "last_rejected") and not hasattr(auth, "last_challenge")


async def test_retry_on_401_off_sends_exactly_one_request() -> None:
    async with setup(reject_all=True, retry_on_401=False) as (server, issuer, _, client, _auth):
        response = await client.get(server.url + "/mcp")
    assert response.status_code == 401
    assert len(server.requests) == 1
    assert len(issuer.calls) == 1
    rejection = BearerAuth.rejection(response)
    assert rejection is not None and rejection.token.raw == bearer(server.requests[0][2])
    assert rejection.challenge is not None


async def test_retry_on_401_is_a_switch_that_can_be_flipped() -> None:
    async with setup(reject_all=True) as (server, _, _, client, auth):
        auth.retry_on_401 = False
        await client.get(server.url + "/mcp")
        auth.retry_on_401 = True
        await client.get(server.url + "/mcp")
    assert len(server.requests) == 3


async def test_no_retry_when_the_provider_hands_back_the_same_token() -> None:
    async with setup(reject_all=True) as (server, issuer, _, client, _auth):
        issuer.same_again = True
        response = await client.get(server.url + "/mcp")
    assert response.status_code == 401
    assert len(server.requests) == 1
    assert len(issuer.calls) == 2


async def test_every_request_reads_the_current_token() -> None:
    async with setup() as (server, _issuer, source, client, _auth):
        assert (await client.get(server.url + "/a")).status_code == 200
        newer = await source.refresh("alice", replacing=None)  # e.g. another task refreshed
        assert (await client.get(server.url + "/b")).status_code == 200
    assert [bearer(h) for _, _, h in server.requests][-1] == newer.raw
    assert len(server.requests) == 2


async def test_concurrent_401s_share_one_refresh() -> None:
    async with setup() as (server, issuer, source, client, _auth):
        stale = Token("revoked-credential", expires_at=T0 + 3600)
        source.publish("alice", stale)
        statuses: list[int] = []

        async def one() -> None:
            statuses.append((await client.get(server.url + "/mcp")).status_code)

        with anyio.fail_after(10):
            async with anyio.create_task_group() as tg:
                for _ in range(20):
                    tg.start_soon(one)
    assert statuses == [200] * 20
    assert len(issuer.calls) == 1


async def test_insecure_http_to_a_remote_host_is_refused() -> None:
    source = TokenSource(Issuer(), clock=lambda: T0)
    async with httpx.AsyncClient(auth=BearerAuth(source, "alice")) as client:
        with pytest.raises(InsecureTransportError, match="plain http") as info:
            await client.get("http://mcp.example.com/mcp")
    assert source.statistics().provider_calls == 0  # no token was even fetched
    assert "Bearer" not in str(info.value)


async def test_insecure_http_can_be_allowed_explicitly() -> None:
    seen: list[str | None] = []

    def handler(request: httpx.Request) -> httpx.Response:
        seen.append(request.headers.get("authorization"))
        return httpx.Response(200)

    source = TokenSource(Issuer(), clock=lambda: T0)
    auth = BearerAuth(source, "alice", allow_insecure_http=True)
    async with httpx.AsyncClient(auth=auth, transport=httpx.MockTransport(handler)) as client:
        assert (await client.get("http://mcp.example.com/mcp")).status_code == 200
        assert (await client.get("https://mcp.example.com/mcp")).status_code == 200
    assert all(s is not None and s.startswith("Bearer ey") for s in seen)


def test_the_sync_flow_is_refused() -> None:
    auth = BearerAuth(TokenSource(Issuer()), "alice")
    transport = httpx.MockTransport(lambda request: httpx.Response(200))
    with (
        httpx.Client(auth=auth, transport=transport) as client,
        pytest.raises(RuntimeError, match="async-only"),
    ):
        client.get("https://mcp.example.com/")


@pytest.mark.parametrize(
    ("host", "allowed"),
    [
        ("127.0.0.1", True),
        ("127.255.0.9", True),
        ("[::1]", True),
        ("[::ffff:127.0.0.1]", True),
        ("localhost", True),
        ("LOCALHOST", True),
        ("api.localhost", False),  # a resolver could send it off the machine
        ("10.0.0.1", False),
        ("128.0.0.1", False),
        ("[::2]", False),
        ("localhost.example.com", False),
        ("example.com", False),
    ],
)
async def test_plain_http_is_allowed_only_to_loopback(host: str, allowed: bool) -> None:
    source = TokenSource(Issuer(), clock=lambda: T0)
    transport = httpx.MockTransport(lambda request: httpx.Response(204))
    async with httpx.AsyncClient(auth=BearerAuth(source, "alice"), transport=transport) as client:
        if allowed:
            assert (await client.get(f"http://{host}:8080/mcp")).status_code == 204
        else:
            with pytest.raises(InsecureTransportError):
                await client.get(f"http://{host}:8080/mcp")
        # https is always fine.
        assert (await client.get(f"https://{host}/mcp")).status_code == 204


def test_repr_shows_no_token() -> None:
    auth = BearerAuth(TokenSource(Issuer()), "alice", audience="srv")
    assert repr(auth) == "<BearerAuth principal='alice' audience='srv' retry_on_401=True>"


async def test_a_challenge_echoing_either_refused_token_does_not_carry_it() -> None:
    seen: list[str] = []

    async def handler(
        method: str, path: str, headers: Headers, body: bytes
    ) -> tuple[int, Headers, bytes]:
        seen.append(bearer(headers) or "")
        # the second answer echoes the token of the *first* request back
        return 401, [("www-authenticate", f'Bearer error="{seen[0]}", scope="{seen[0]}"')], b""

    minted: list[str] = []

    async def opaque(request: TokenRequest) -> Token:  # not JWT-shaped: only we know it
        minted.append(f"opaque{len(minted)}credential")
        return Token(minted[-1], expires_at=T0 + 3600)

    source = TokenSource(opaque, clock=lambda: T0)
    auth = BearerAuth(source, "alice")
    async with serve(handler) as server, httpx.AsyncClient(auth=auth, timeout=10) as client:
        response = await client.get(server.url + "/mcp")
    assert seen == minted and len(seen) == 2
    rejection = BearerAuth.rejection(response)
    assert rejection is not None and rejection.token.raw == seen[1]
    assert rejection.challenge is not None
    shown = f"{rejection.challenge.params} {rejection.challenge!r} {rejection!r}"
    assert seen[0] not in shown and seen[1] not in shown
