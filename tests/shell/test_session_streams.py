"""Streams over Streamable HTTP: timeouts and cancellation, POST-stream resumption, the GET
listener (MockTransport fakes from fake_mcp)."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import anyio
import httpx
import pytest
from fake_mcp import (
    CountingAuth,
    Fake,
    Inbox,
    an_empty_stream,
    msg,
    opened,
    sse,
    sse_reply,
)

from mcpconn import (
    MethodNotAllowed,
    RequestTimeout,
    SessionReinitialized,
    StreamEnded,
    TransportError,
)
from mcpconn._core.classify import classify
from mcpconn._core.machine import Input
from mcpconn._mcp.session import SessionHandlers

# ---- timeouts and cancellation -------------------------------------------------------------


async def test_timeout_sends_cancelled_and_the_late_response_is_ignored() -> None:
    fake = Fake()
    late = anyio.Event()

    async def hang(request: httpx.Request, body: dict[str, Any]) -> httpx.Response:
        async def body_() -> AsyncIterator[bytes]:
            yield b": open\n\n"
            await anyio.sleep_forever()
            yield b""  # pragma: no cover

        return sse_reply(body_())

    async def listener(request: httpx.Request) -> httpx.Response:
        async def body_() -> AsyncIterator[bytes]:
            await late.wait()
            yield sse(msg({"id": 2, "result": {"late": True}}))

        return sse_reply(body_())

    fake.routes["tools/call"] = hang
    fake.get = listener
    async with opened(fake) as session:
        with pytest.raises(RequestTimeout):
            await session.request("tools/call", timeout=0.05)
        (cancelled,) = fake.posted("notifications/cancelled")
        assert cancelled["params"] == {"requestId": 2, "reason": "timeout"}
        late.set()
        with pytest.raises(StreamEnded):
            await session.listen()
        assert session.statistics().unknown_responses == 1


async def test_closed_session_refuses_requests() -> None:
    from mcpconn import ConnectionClosed

    async with opened(Fake()) as session:
        pass
    with pytest.raises(ConnectionClosed):
        await session.request("ping")


# ---- resumption ----------------------------------------------------------------------------


async def test_broken_post_stream_resumes_with_last_event_id_after_retry() -> None:
    fake = Fake()
    progress: list[dict[str, Any]] = []

    async def breaks(request: httpx.Request, body: dict[str, Any]) -> httpx.Response:
        token = body["params"]["_meta"]["progressToken"]

        async def body_() -> AsyncIterator[bytes]:
            yield sse("id: e0\nretry: 1\ndata:")  # priming event: an id, no message
            note = {
                "method": "notifications/progress",
                "params": {"progressToken": token, "progress": 1},
            }
            yield sse(msg(note, "e1"))
            raise httpx.RemoteProtocolError("peer closed")

        return sse_reply(body_())

    async def resume(request: httpx.Request) -> httpx.Response:
        assert request.headers["last-event-id"] == "e1"
        return sse_reply(sse(msg({"id": 2, "result": {"resumed": True}}, "e2")))

    fake.routes["tools/call"] = breaks
    fake.get = resume
    async with opened(fake) as session:
        res = await session.request("tools/call", {}, on_progress=progress.append)
        assert res == {"resumed": True}
        assert session.statistics().resumptions == 1
    assert len(progress) == 1


async def test_stream_ending_without_response_or_event_id_is_a_transport_error() -> None:
    fake = Fake()
    fake.routes["tools/list"] = an_empty_stream
    async with opened(fake) as session:
        with pytest.raises(TransportError, match="before the response"):
            await session.request("tools/list")


async def test_resumption_is_bounded() -> None:
    fake = Fake()

    async def primed(request: httpx.Request, body: dict[str, Any]) -> httpx.Response:
        return sse_reply(sse("id: p\ndata:"))

    async def resume(request: httpx.Request) -> httpx.Response:
        return sse_reply(sse("id: p\ndata:"))

    fake.routes["tools/list"] = primed
    fake.get = resume
    async with opened(fake) as session:
        with pytest.raises(TransportError):
            await session.request("tools/list")
    assert [r.method for r in fake.requests].count("GET") == 3


# ---- the GET listener ----------------------------------------------------------------------


async def test_listener_405_is_method_not_allowed() -> None:
    async with opened(Fake()) as session:
        with pytest.raises(MethodNotAllowed):
            await session.listen()


async def test_listener_delivers_skips_garbage_and_resumes() -> None:
    fake, inbox = Fake(), Inbox()
    seen: list[str | None] = []

    async def listener(request: httpx.Request) -> httpx.Response:
        seen.append(request.headers.get("last-event-id"))
        return sse_reply(
            sse(
                "retry: 250",
                msg({"method": "notifications/tools/list_changed"}, "a1"),
                "id: a2\ndata: garbage",
                "event: other\ndata: {}",
            )
        )

    fake.get = listener
    auth = CountingAuth()
    async with opened(fake, auth=auth, handlers=SessionHandlers(inbox)) as session:
        for _ in range(2):
            with pytest.raises(StreamEnded) as info:
                await session.listen()
            assert info.value.retry == 0.25
        assert session.statistics().skipped_messages == 2
    assert seen == [None, "a2"]
    assert inbox.methods() == ["notifications/tools/list_changed"] * 2
    assert auth.methods.count("GET") == 2


async def test_listener_404_reinitializes_and_ends_the_stream() -> None:
    fake = Fake()

    async def gone(request: httpx.Request) -> httpx.Response:
        return httpx.Response(404)

    fake.get = gone
    async with opened(fake) as session:
        with pytest.raises(StreamEnded):
            await session.listen()
        assert session.session_id == "s2"


async def test_listener_404_ends_with_session_reinitialized_and_the_next_listen_uses_it() -> None:
    fake = Fake()
    sent_ids: list[str | None] = []

    async def gone_once(request: httpx.Request) -> httpx.Response:
        sent_ids.append(request.headers.get("mcp-session-id"))
        return httpx.Response(404) if len(sent_ids) == 1 else sse_reply(sse("retry: 250"))

    fake.get = gone_once
    reinit: list[int] = []
    handlers = SessionHandlers(Inbox(), on_reinitialized=lambda: reinit.append(1))
    async with opened(fake, handlers=handlers) as session:
        with pytest.raises(SessionReinitialized) as info:
            await session.listen()
        assert info.value.retry is None
        fact = classify(info.value, during="listen")
        assert (fact.input, fact.retry) == (Input.STREAM_ENDED, None)  # listen again at once
        assert reinit == [1]
        with pytest.raises(StreamEnded) as ended:
            await session.listen()
        assert type(ended.value) is StreamEnded and ended.value.retry == 0.25
    assert sent_ids == ["s1", "s2"]


async def test_caller_cancellation_sends_cancelled_in_the_background() -> None:
    fake = Fake()
    posted = anyio.Event()

    async def hang(request: httpx.Request, body: dict[str, Any]) -> httpx.Response:
        await anyio.sleep_forever()
        raise AssertionError  # pragma: no cover

    async def cancelled(request: httpx.Request, body: dict[str, Any]) -> None:
        posted.set()

    fake.routes["tools/call"] = hang
    fake.routes["notifications/cancelled"] = cancelled
    async with opened(fake) as session:
        with anyio.move_on_after(0.05):  # the caller gives up; the request timeout is far
            await session.request("tools/call", timeout=30)
        with anyio.fail_after(5):
            await posted.wait()
        assert session.statistics().pending == 0
    (note,) = fake.posted("notifications/cancelled")
    assert note["params"]["reason"] == "cancelled"


async def test_requests_in_flight_fail_when_the_session_closes() -> None:
    from mcpconn import ConnectionClosed

    fake = Fake()
    entered = anyio.Event()

    async def hang(request: httpx.Request, body: dict[str, Any]) -> httpx.Response:
        entered.set()
        await anyio.sleep_forever()
        raise AssertionError  # pragma: no cover

    fake.routes["tools/call"] = hang
    outcome: list[Exception] = []
    with anyio.fail_after(5):
        async with anyio.create_task_group() as tg, opened(fake) as session:

            async def call() -> None:
                try:
                    await session.request("tools/call")
                except Exception as exc:
                    outcome.append(exc)

            tg.start_soon(call)
            await entered.wait()
    assert [type(e) for e in outcome] == [ConnectionClosed]
