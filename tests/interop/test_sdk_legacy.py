"""The deprecated HTTP+SSE transport (2024-11-05) against the official SDK's sse_app."""

from __future__ import annotations

import anyio
import httpx
import pytest
from sdkpeer import Inbox, SDKServers, StaticBearer, list_all_tools

from mcpconn import JSONRPCError, ServerConfig, SessionExpired, Timeouts
from mcpconn._session import EraCache, SessionHandlers, open_session

pytestmark = pytest.mark.interop


def config(url: str, transport: str = "sse") -> ServerConfig:
    timeouts = Timeouts(connect=5.0, request=10.0, read=10.0, close=2.0)
    return ServerConfig(name="sdk", url=url, transport=transport, timeouts=timeouts)  # type: ignore[arg-type]


async def test_legacy_sse_session(
    sdk: SDKServers, client: httpx.AsyncClient, bearer: StaticBearer, inbox: Inbox
) -> None:
    server = sdk("sse")
    progress: list[dict[str, object]] = []
    with anyio.fail_after(20):
        async with open_session(
            client, config(server.url), auth=bearer, handlers=SessionHandlers(inbox)
        ) as session:
            assert session.era == "sse"
            assert session.server_info["name"] == "sdk-peer"
            assert {t["name"] for t in await list_all_tools(session)} >= {"echo", "work"}
            result = await session.request(
                "tools/call",
                {"name": "work", "arguments": {"steps": 2}},
                on_progress=progress.append,
            )
            assert result["content"][0]["text"] == "did 2 steps"
            assert [p["progress"] for p in progress] == [1, 2]
            assert "notifications/message" in inbox.methods()
            with pytest.raises(JSONRPCError):
                await session.request("no/such/method")
    assert bearer.methods["GET"] == 1
    assert bearer.methods["POST"] >= 4


async def test_auto_falls_back_to_legacy_sse_and_caches_it(
    sdk: SDKServers, client: httpx.AsyncClient, bearer: StaticBearer, inbox: Inbox
) -> None:
    server = sdk("sse")
    cache = EraCache()
    with anyio.fail_after(20):
        async with open_session(
            client,
            config(server.url, "auto"),
            auth=bearer,
            handlers=SessionHandlers(inbox),
            era_cache=cache,
        ) as session:
            assert session.era == "sse"
            await session.request("ping")
    assert cache.get(server.url) == "sse"
    posts = bearer.methods["POST"]
    with anyio.fail_after(20):
        async with open_session(
            client,
            config(server.url, "auto"),
            auth=bearer,
            handlers=SessionHandlers(inbox),
            era_cache=cache,
        ) as session:
            assert session.era == "sse"
    # The cached era skips the probing POSTs: only initialize + initialized.
    assert bearer.methods["POST"] - posts == 2


async def test_listen_reports_the_session_gone_when_the_stream_closes(
    sdk: SDKServers, client: httpx.AsyncClient, bearer: StaticBearer, inbox: Inbox
) -> None:
    server = sdk("sse")
    with anyio.fail_after(20):
        async with open_session(
            client, config(server.url), auth=bearer, handlers=SessionHandlers(inbox)
        ) as session:
            async with anyio.create_task_group() as tg:
                tg.start_soon(session.listen)
                tg.cancel_scope.cancel()
            # Closing the SSE stream ends the session (the stream *is* the session).
            await session._transport.aclose()  # type: ignore[union-attr]
            with pytest.raises(SessionExpired):
                await session.listen()
