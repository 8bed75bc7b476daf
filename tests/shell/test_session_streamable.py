"""The session over Streamable HTTP with sessions, against a scripted fake (httpx.MockTransport).

The fake (fake_mcp.py) streams SSE bodies from async generators, so a reply can hold
back its response, hang, or break mid-stream. How a request fails: test_session_failures.
"""

from __future__ import annotations

from typing import Any

import anyio
import httpx
import pytest
from fake_mcp import CountingAuth, Fake, Inbox, json_reply, msg, opened, sse, sse_reply

from mcpconn import JSONRPCError, ServerError, SessionExpired, UnsupportedProtocolVersion
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
