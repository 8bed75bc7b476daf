"""The session over Streamable HTTP with sessions, against a scripted fake (httpx.MockTransport).

The fake (fake_mcp.py) streams SSE bodies from async generators, so a reply can hold
back its response, hang, or break mid-stream.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import anyio
import httpx
import pytest
from fake_mcp import (
    TOKEN,
    URL,
    CountingAuth,
    Fake,
    Inbox,
    json_reply,
    msg,
    opened,
    sse,
    sse_reply,
)

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
    SessionExpired,
    SSELimitExceeded,
    TokenSource,
    Unauthorized,
    UnexpectedContentType,
    UnsupportedProtocolVersion,
)
from mcpconn._config import Limits
from mcpconn._core import http_rules
from mcpconn._mcp.server_requests import Incoming
from mcpconn._mcp.session import SessionHandlers

# ---- lifecycle ----------------------------------------------------------------------------


async def test_handshake_headers_session_id_and_delete() -> None:
    fake, auth = Fake(), CountingAuth()
    async with opened(fake, auth=auth) as session:
        assert session.era == "streamable-http"
        assert session.protocol_version == "2025-11-25"
        assert session.server_info == {"name": "fake", "version": "1"}
        assert session.capabilities == {"tools": {}}
        assert session.instructions == "be nice"
        assert await session.request("tools/list") == {"echo": "tools/list"}
    init, initialized, tools, delete = fake.requests
    assert fake.bodies[0]["params"]["protocolVersion"] == "2025-11-25"
    assert fake.bodies[0]["params"]["clientInfo"]["name"] == "mcpconn"
    assert fake.bodies[1] == {"jsonrpc": "2.0", "method": "notifications/initialized"}
    assert init.headers["accept"] == "application/json, text/event-stream"
    assert init.headers["content-type"] == "application/json"
    assert "mcp-session-id" not in init.headers
    assert "mcp-protocol-version" not in init.headers
    for later in (initialized, tools, delete):
        assert later.headers["mcp-session-id"] == "s1"
        assert later.headers["mcp-protocol-version"] == "2025-11-25"
    assert delete.method == "DELETE"
    assert auth.methods == ["POST", "POST", "POST", "DELETE"]


async def test_older_version_is_accepted() -> None:
    async with opened(Fake(version="2025-03-26")) as session:
        assert session.protocol_version == "2025-03-26"


@pytest.mark.parametrize("answer", ["1999-01-01", "2026-07-28", None])
async def test_unsupported_version_is_a_protocol_error_and_the_session_is_deleted(
    answer: str | None,
) -> None:
    fake = Fake(version=answer)  # type: ignore[arg-type]
    with pytest.raises(UnsupportedProtocolVersion, match="protocol version"):
        async with opened(fake):
            pass
    assert [r.method for r in fake.requests] == ["POST", "DELETE"]


async def test_discarded_session_sends_no_delete() -> None:
    fake = Fake()
    async with opened(fake) as session:
        session.discard()
    assert [r.method for r in fake.requests] == ["POST", "POST"]


# ---- SSE replies, notifications, server requests -------------------------------------------


async def test_sse_reply_routes_progress_notifications_and_server_requests() -> None:
    fake, inbox = Fake(), Inbox()
    answered = anyio.Event()

    async def on_request(request: Incoming) -> dict[str, Any]:
        return {"handled": request.method, "params": request.params}

    async def tools_call(request: httpx.Request, body: dict[str, Any]) -> httpx.Response:
        token = body["params"]["_meta"]["progressToken"]
        rid = body["id"]
        return sse_reply(
            sse(
                msg(
                    {
                        "method": "notifications/progress",
                        "params": {"progressToken": token, "progress": 1},
                    }
                ),
                msg({"method": "notifications/message", "params": {"level": "info", "data": "x"}}),
                msg({"id": "s-1", "method": "ping"}),
                msg({"id": "s-2", "method": "sampling/createMessage", "params": {"a": 1}}),
                msg({"id": 999, "result": {}}),  # nobody asked
                msg({"id": rid, "result": {"ok": True}}),
                msg({"id": rid, "result": {"ok": False}}),  # a duplicate, after we are done
            )
        )

    async def reply(request: httpx.Request, body: dict[str, Any]) -> None:
        if len(fake.replies()) == 2:
            answered.set()

    fake.routes["tools/call"] = tools_call
    fake.routes[""] = reply  # responses carry no method
    progress: list[dict[str, Any]] = []
    handlers = SessionHandlers(inbox, on_request=on_request)
    async with opened(fake, handlers=handlers) as session:
        res = await session.request("tools/call", {"name": "t"}, on_progress=progress.append)
        assert res == {"ok": True}
        with anyio.fail_after(5):
            await answered.wait()
        stats = session.statistics()
    assert progress == [{"progressToken": progress[0]["progressToken"], "progress": 1}]
    assert inbox.methods() == ["notifications/progress", "notifications/message"]
    replies = {r["id"]: r for r in fake.replies()}
    assert replies["s-1"]["result"] == {}
    assert replies["s-2"]["result"] == {"handled": "sampling/createMessage", "params": {"a": 1}}
    assert stats.unknown_responses == 1
    assert stats.pending == 0


async def test_server_request_without_handler_gets_method_not_found() -> None:
    fake = Fake()
    answered = anyio.Event()

    async def tools_call(request: httpx.Request, body: dict[str, Any]) -> httpx.Response:
        return sse_reply(
            sse(msg({"id": 7, "method": "roots/list"}), msg({"id": body["id"], "result": {}}))
        )

    async def reply(request: httpx.Request, body: dict[str, Any]) -> None:
        answered.set()

    fake.routes["tools/call"] = tools_call
    fake.routes[""] = reply
    async with opened(fake) as session:
        await session.request("tools/call")
        with anyio.fail_after(5):
            await answered.wait()
    (error,) = fake.replies()
    assert error["id"] == 7
    assert error["error"]["code"] == -32601


async def test_jsonrpc_error_is_typed() -> None:
    fake = Fake()

    async def fail(request: httpx.Request, body: dict[str, Any]) -> httpx.Response:
        err = {"code": -32602, "message": "bad params", "data": {"x": 1}}
        return json_reply({"jsonrpc": "2.0", "id": body["id"], "error": err})

    fake.routes["tools/call"] = fail
    async with opened(fake) as session:
        with pytest.raises(JSONRPCError) as info:
            await session.request("tools/call")
    assert (info.value.code, info.value.message, info.value.data) == (
        -32602,
        "bad params",
        {"x": 1},
    )


# ---- the 404 rule --------------------------------------------------------------------------


async def test_404_with_session_reinitializes_once_and_reissues() -> None:
    fake = Fake()
    calls = 0

    async def expire_first(request: httpx.Request, body: dict[str, Any]) -> httpx.Response | None:
        nonlocal calls
        calls += 1
        return httpx.Response(404) if calls == 1 else None

    fake.routes["tools/list"] = expire_first
    reinit: list[int] = []
    handlers = SessionHandlers(Inbox(), on_reinitialized=lambda: reinit.append(1))
    async with opened(fake, handlers=handlers) as session:
        assert await session.request("tools/list") == {"echo": "tools/list"}
        assert session.session_id == "s2"
        assert session.statistics().reinitializations == 1
    assert reinit == [1]
    assert len(fake.posted("initialize")) == 2
    assert fake.requests[-1].headers["mcp-session-id"] == "s2"


async def test_404_twice_raises_session_expired() -> None:
    fake = Fake()

    async def always_gone(request: httpx.Request, body: dict[str, Any]) -> httpx.Response:
        return httpx.Response(404)

    fake.routes["tools/list"] = always_gone
    async with opened(fake) as session:
        with pytest.raises(SessionExpired):
            await session.request("tools/list")
    assert len(fake.posted("initialize")) == 2


async def test_concurrent_404s_reinitialize_once() -> None:
    fake = Fake()
    release, all_waiting = anyio.Event(), anyio.Event()
    gone = {"s1"}

    async def gated(request: httpx.Request, body: dict[str, Any]) -> httpx.Response | None:
        if request.headers.get("mcp-session-id") in gone:
            if len(fake.posted("tools/list")) == 3:
                all_waiting.set()
            await release.wait()
            return httpx.Response(404)
        return None

    fake.routes["tools/list"] = gated
    results: list[dict[str, Any]] = []
    async with opened(fake) as session:

        async def call() -> None:
            results.append(await session.request("tools/list"))

        async with anyio.create_task_group() as tg:
            for _ in range(3):
                tg.start_soon(call)
            await all_waiting.wait()
            release.set()
    assert len(results) == 3
    assert len(fake.posted("initialize")) == 2


async def test_failed_reinitialize_keeps_the_old_session_so_the_next_request_retries_it() -> None:
    # Regression (chaos soak): a failed re-initialize used to leave the session with no
    # id at all, so every later request and listener GET got 400 "missing session" for good.
    fake = Fake()
    inits = 0

    async def second_init_fails(request: httpx.Request, body: dict[str, Any]) -> Any:
        nonlocal inits
        inits += 1
        return httpx.Response(502) if inits == 2 else None

    async def s1_is_gone(request: httpx.Request, body: dict[str, Any]) -> Any:
        return httpx.Response(404) if request.headers.get("mcp-session-id") == "s1" else None

    fake.routes["initialize"] = second_init_fails
    fake.routes["tools/list"] = s1_is_gone
    async with opened(fake) as session:
        with pytest.raises(ServerError):
            await session.request("tools/list")
        assert session.session_id == "s1"  # still the old one: its 404 retries the re-init
        assert await session.request("tools/list") == {"echo": "tools/list"}
        assert session.session_id == "s2"
    posts = [r for r in fake.requests if r.method == "POST"]
    for body, request in zip(fake.bodies, posts, strict=True):
        carried = request.headers.get("mcp-session-id")
        if body["method"] == "initialize":
            assert carried is None and "mcp-protocol-version" not in request.headers
        else:
            assert carried in {"s1", "s2"}, (body, carried)


# ---- statuses, content types, bodies -------------------------------------------------------


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
