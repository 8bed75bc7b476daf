"""How a request over Streamable HTTP fails: every status, content type and body, one error.

Against the scripted fake (fake_mcp.py): each failure is one typed `MCPConnError` with
no token in it, a redirect is never followed, and bodies and lines are bounded.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import httpx
import pytest
from fake_mcp import TOKEN, URL, CountingAuth, Fake, json_reply, opened, sse, sse_reply

import mcpconn._tokens.auth as auth_module
from mcpconn import (
    BearerAuth,
    ConnectError,
    HTTPStatusError,
    InvalidMessage,
    JSONRPCError,
    MethodNotAllowed,
    NetworkError,
    ProtocolError,
    RateLimited,
    ReadTimeout,
    ServerError,
    SSELimitExceeded,
    TokenSource,
    Unauthorized,
    UnexpectedContentType,
)
from mcpconn._config import Limits
from mcpconn._core import http_rules


@pytest.mark.parametrize(
    ("response", "error"),
    [
        (
            httpx.Response(401, headers={"www-authenticate": 'Bearer error="invalid_token"'}),
            Unauthorized,
        ),
        (httpx.Response(429, headers={"retry-after": "7"}), RateLimited),
        (httpx.Response(503), RateLimited),
        (httpx.Response(500), ServerError),
        (httpx.Response(302, headers={"location": "http://elsewhere/"}), HTTPStatusError),
        (httpx.Response(405), MethodNotAllowed),
        (
            httpx.Response(200, text="<html>", headers={"content-type": "text/html"}),
            UnexpectedContentType,
        ),
        (
            httpx.Response(200, text="not json", headers={"content-type": "application/json"}),
            InvalidMessage,
        ),
        (json_reply({"jsonrpc": "2.0", "method": "notifications/x"}), InvalidMessage),
        (httpx.Response(202), ProtocolError),
    ],
)
async def test_request_failures_are_typed(response: httpx.Response, error: type[Exception]) -> None:
    fake = Fake()

    async def fail(request: httpx.Request, body: dict[str, Any]) -> httpx.Response:
        return response

    fake.routes["tools/list"] = fail
    async with opened(fake, auth=CountingAuth()) as session:
        with pytest.raises(error) as info:
            await session.request("tools/list")
    assert TOKEN not in str(info.value)
    assert TOKEN not in repr(info.value)
    if isinstance(info.value, RateLimited) and info.value.status_code == 429:
        assert info.value.retry_after == 7
    if isinstance(info.value, Unauthorized):
        assert info.value.challenge is not None
        assert info.value.challenge.error == "invalid_token"
    # A redirect is never followed.
    assert all(r.url == httpx.URL(URL) for r in fake.requests)


async def test_a_401_through_bearer_auth_carries_the_refused_token_and_one_parsed_challenge(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    parsed: list[object] = []
    real = http_rules.parse_www_authenticate

    def counting(value: Any, *args: Any) -> Any:
        parsed.append(value)
        return real(value, *args)

    monkeypatch.setattr(auth_module, "parse_www_authenticate", counting)
    monkeypatch.setattr(http_rules, "parse_www_authenticate", counting)
    fake = Fake()
    seen: list[str] = []

    async def refuse(request: httpx.Request, body: dict[str, Any]) -> httpx.Response:
        seen.append(request.headers["authorization"].removeprefix("Bearer "))
        challenge = 'Bearer error="invalid_token", error_description="revoked"'
        return httpx.Response(401, headers={"www-authenticate": challenge})

    fake.routes["tools/list"] = refuse
    source = TokenSource(lambda request: _token(f"credential-{request.force}"))
    auth = BearerAuth(source, "alice", retry_on_401=False)
    async with opened(fake, auth=auth) as session:
        parsed.clear()
        with pytest.raises(Unauthorized) as info:
            await session.request("tools/list")
    error = info.value
    assert error.rejected is not None and error.rejected.raw == seen[-1]
    assert error.challenge is not None and error.challenge.error == "invalid_token"
    assert len(parsed) == 1  # by the auth flow; the transport reused it
    assert seen[-1] not in str(error) and seen[-1] not in repr(error)


async def _token(raw: str) -> str:
    return raw


async def test_400_with_a_jsonrpc_error_body_is_that_error() -> None:
    fake = Fake()

    async def bad(request: httpx.Request, body: dict[str, Any]) -> httpx.Response:
        err = {"jsonrpc": "2.0", "id": body["id"], "error": {"code": -32600, "message": "no"}}
        return httpx.Response(400, json=err)

    fake.routes["tools/list"] = bad
    async with opened(fake) as session:
        with pytest.raises(JSONRPCError) as info:
            await session.request("tools/list")
    assert info.value.code == -32600


async def test_oversized_json_body_is_refused() -> None:
    fake = Fake()

    async def big(request: httpx.Request, body: dict[str, Any]) -> httpx.Response:
        async def chunks() -> AsyncIterator[bytes]:
            yield b'{"jsonrpc": "2.0", "id": 2, "result": {"pad": "'
            for _ in range(100):
                yield b"x" * 1000
            yield b'"}}'

        return httpx.Response(200, content=chunks(), headers={"content-type": "application/json"})

    fake.routes["tools/list"] = big
    limits = Limits(max_json_response_bytes=10_000)
    async with opened(fake, limits=limits) as session:
        with pytest.raises(ProtocolError, match="limit"):
            await session.request("tools/list")


async def test_garbage_on_the_request_stream_fails_that_request() -> None:
    fake = Fake()

    async def garbage(request: httpx.Request, body: dict[str, Any]) -> httpx.Response:
        return sse_reply(sse("data: {not json"))

    fake.routes["tools/list"] = garbage
    async with opened(fake) as session:
        with pytest.raises(InvalidMessage):
            await session.request("tools/list")


async def test_oversized_sse_line_fails_the_request() -> None:
    fake = Fake()

    async def huge(request: httpx.Request, body: dict[str, Any]) -> httpx.Response:
        return sse_reply(b"data: " + b"x" * 5000 + b"\n\n")

    fake.routes["tools/list"] = huge
    async with opened(fake, limits=Limits(max_sse_line_bytes=1000)) as session:
        with pytest.raises(SSELimitExceeded):
            await session.request("tools/list")


@pytest.mark.parametrize(
    ("exc", "error"),
    [
        (httpx.ConnectError("refused"), ConnectError),
        (httpx.ConnectTimeout("slow"), ConnectError),
        (httpx.WriteTimeout("slow"), NetworkError),
        (httpx.RemoteProtocolError("reset"), NetworkError),
        (httpx.ReadError("reset"), NetworkError),
        (httpx.ReadTimeout("stalled"), ReadTimeout),
    ],
)
async def test_httpx_errors_are_translated_once_with_cause(
    exc: Exception, error: type[Exception]
) -> None:
    fake = Fake()

    async def boom(request: httpx.Request, body: dict[str, Any]) -> httpx.Response:
        raise exc

    fake.routes["tools/list"] = boom
    async with opened(fake) as session:
        with pytest.raises(error) as info:
            await session.request("tools/list")
    assert type(info.value) is error  # the most specific class
    assert info.value.__cause__ is exc


async def test_stalled_stream_is_a_read_timeout() -> None:
    fake = Fake()

    async def stall(request: httpx.Request, body: dict[str, Any]) -> httpx.Response:
        async def body_() -> AsyncIterator[bytes]:
            yield b": keep-alive\n\n"
            raise httpx.ReadTimeout("no data")

        return sse_reply(body_())

    fake.routes["tools/list"] = stall
    async with opened(fake) as session:
        with pytest.raises(ReadTimeout):
            await session.request("tools/list")
