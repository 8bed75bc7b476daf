"""Resumption (EventStore + close_sse_stream) and session expiry (idle timeout -> 404)."""

from __future__ import annotations

import anyio
import httpx
import pytest
from sdkpeer import IDLE_SECONDS, Inbox, SDKServers, StaticBearer

from mcpconn import ServerConfig, StreamEnded, Timeouts
from mcpconn._session import SessionHandlers, open_session

pytestmark = pytest.mark.interop


def config(url: str) -> ServerConfig:
    timeouts = Timeouts(connect=5.0, request=10.0, read=10.0, close=2.0)
    return ServerConfig(name="sdk", url=url, protocol_version="2025-11-25", timeouts=timeouts)


async def test_post_stream_closed_mid_call_is_resumed_with_last_event_id(
    sdk: SDKServers, client: httpx.AsyncClient, bearer: StaticBearer, inbox: Inbox
) -> None:
    server = sdk("resumable")
    progress: list[dict[str, object]] = []
    with anyio.fail_after(20):
        async with open_session(
            client, config(server.url), auth=bearer, handlers=SessionHandlers(inbox)
        ) as session:
            result = await session.request(
                "tools/call", {"name": "interrupted", "arguments": {}}, on_progress=progress.append
            )
            assert result["content"][0]["text"] == "resumed"
            assert [p["message"] for p in progress] == ["before the break", "after the break"]
            stats = session.statistics()
            assert stats.resumptions == 1
            assert stats.pending == 0
    assert bearer.methods["GET"] == 1  # the resumption GET carried the token too


async def test_idle_session_expiry_reinitializes_once_and_reissues(
    sdk: SDKServers, client: httpx.AsyncClient, bearer: StaticBearer, inbox: Inbox
) -> None:
    server = sdk("idle")
    reinitialized: list[None] = []
    handlers = SessionHandlers(inbox, on_reinitialized=lambda: reinitialized.append(None))
    with anyio.fail_after(20):
        async with open_session(client, config(server.url), auth=bearer, handlers=handlers) as s:
            first = s.session_id
            # The scenario itself needs the server's idle timer to run out.
            await anyio.sleep(IDLE_SECONDS * 2)
            result = await s.request("tools/call", {"name": "echo", "arguments": {"text": "x"}})
            assert result["content"][0]["text"] == "x"
            assert reinitialized == [None]
            assert s.session_id not in (None, first)
            assert s.statistics().reinitializations == 1


async def test_listener_resumes_after_clean_end_and_survives_expiry(
    sdk: SDKServers, client: httpx.AsyncClient, bearer: StaticBearer, inbox: Inbox
) -> None:
    server = sdk("idle")
    reinitialized: list[None] = []
    handlers = SessionHandlers(inbox, on_reinitialized=lambda: reinitialized.append(None))
    with anyio.fail_after(20):
        async with open_session(client, config(server.url), auth=bearer, handlers=handlers) as s:
            await anyio.sleep(IDLE_SECONDS * 2)
            # The expired session's GET is a 404: re-initialize, then "listen again".
            with pytest.raises(StreamEnded) as info:
                await s.listen()
            assert info.value.retry is None
            assert reinitialized == [None]
            await s.request("ping")
