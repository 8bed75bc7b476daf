"""The deprecated HTTP+SSE transport (2024-11-05) against the official SDK's sse_app."""

from __future__ import annotations

import anyio
import pytest
from sdkpeer import Inbox, Peer, StaticBearer, list_all_tools, work

from mcpconn import JSONRPCError, SessionExpired
from mcpconn._mcp.session import EraCache

pytestmark = pytest.mark.interop


async def test_legacy_sse_session(peer: Peer, bearer: StaticBearer, inbox: Inbox) -> None:
    async with peer.session("sse", transport="sse") as session:
        assert session.era == "sse"
        assert session.server_info["name"] == "sdk-peer"
        assert {t["name"] for t in await list_all_tools(session)} >= {"echo", "work"}
        result, progress = await work(session, 2)
        assert result["content"][0]["text"] == "did 2 steps"
        assert [p["progress"] for p in progress] == [1, 2]
        assert "notifications/message" in inbox.methods()
        with pytest.raises(JSONRPCError):
            await session.request("no/such/method")
    assert bearer.methods["GET"] == 1
    assert bearer.methods["POST"] >= 4


async def test_auto_falls_back_to_legacy_sse_and_caches_it(
    peer: Peer, bearer: StaticBearer
) -> None:
    cache = EraCache()
    async with peer.session("sse", era_cache=cache) as session:
        assert session.era == "sse"
        await session.request("ping")
    assert cache.get(peer.url("sse")) == "sse"
    posts = bearer.methods["POST"]
    async with peer.session("sse", era_cache=cache) as session:
        assert session.era == "sse"
    # The cached era skips the probing POSTs: only initialize + initialized.
    assert bearer.methods["POST"] - posts == 2


async def test_listen_reports_the_session_gone_when_the_stream_closes(peer: Peer) -> None:
    async with peer.session("sse", transport="sse") as session:
        async with anyio.create_task_group() as tg:
            tg.start_soon(session.listen)
            tg.cancel_scope.cancel()
        # Closing the SSE stream ends the session (the stream *is* the session).
        await session._transport.aclose()  # type: ignore[union-attr]
        with pytest.raises(SessionExpired):
            await session.listen()
