"""What a quiet connection does and keeps: one task, no request object, lists served
from the cache for their TTL (more of what it keeps: `test_idle_memory`)."""

from __future__ import annotations

import gc
from typing import Any

import anyio
import httpx
import pytest
from surface_client import FAST, connected

from mcpconn import ServerConfig, State, Supervisor, TokenSource
from mcpconn.testing import JWTProvider, MockServer


@pytest.mark.parametrize(("ttl_ms", "fetches"), [(None, 1), (60_000, 1), (0, 2)])
async def test_2026_list_ttl_is_honoured_without_a_listener(
    ttl_ms: int | None, fetches: int
) -> None:
    async with (
        MockServer(list_ttl_ms=ttl_ms) as server,
        connected(server, protocol_version="2026-07-28", listen=False) as (_, conn),
    ):
        with anyio.fail_after(10):
            first = await conn.list_tools()
            assert await conn.list_tools() == first
        assert server.stats().by_rpc_method.get("tools/list") == fetches


def test_the_list_cache_expires_after_the_smallest_page_ttl() -> None:
    from mcpconn._mcp.lists import ListCache

    cache = ListCache()
    pages = iter(
        [
            {"tools": [{"name": "a"}], "nextCursor": "2", "ttlMs": 5000},
            {"tools": [{"name": "b"}], "ttlMs": 1000},
        ]
    )

    async def request(method: str, params: Any) -> dict[str, Any]:
        return next(pages)

    anyio.run(cache.fetch, "tools", request, lambda: 100.0)
    assert cache.cached("tools", 100.9) == [{"name": "a"}, {"name": "b"}]
    assert cache.cached("tools", 101.0) is None


def client_tasks() -> list[str]:
    """The client's running tasks by name (the mock server runs in this loop too)."""
    return [
        task.name
        for task in anyio.get_running_tasks()
        if task.name.startswith("mcpconn.") and not task.name.startswith("mcpconn.testing")
    ]


@pytest.mark.parametrize("version", ["2025-11-25", "2026-07-28"])
async def test_an_idle_listening_connection_runs_one_task(version: str) -> None:
    """The connection's task holds the session and runs the listener itself: no runner
    task beside it, no listener task, no subscription watcher task (memory per idle
    listener). The supervisor adds one task for all of them: the listener reads' timer."""
    async with MockServer() as server:
        async with Supervisor(TokenSource(JWTProvider(server.issuer))) as sup:
            await anyio.wait_all_tasks_blocked()
            before = client_tasks()
            config = ServerConfig("mock", server.url, backoff=FAST, protocol_version=version)
            conn = await sup.connect(config, "ann")
            with anyio.fail_after(10):
                await conn.wait_for(State.READY)
                await server.wait_for_streams(1, principal="ann")
                await conn.subscribe_resource("mock://readme")  # 2026: re-listens
                relistens = 2 if version == "2026-07-28" else 0
                await server.wait_until(
                    lambda s: s.by_rpc_method.get("subscriptions/listen", 0) >= relistens
                )
                await server.wait_for_streams(1, principal="ann")
            await anyio.wait_all_tasks_blocked()
            assert before == []
            assert sorted(client_tasks()) == [
                "mcpconn._http.deadlines.ReadDeadlines.run",
                "mcpconn._supervision.connection.Connection.run",
            ]
            await conn.aclose()


@pytest.mark.parametrize("version", ["2025-11-25", "2026-07-28"])
async def test_an_idle_listener_keeps_no_request_object(version: str) -> None:
    """A stream held for hours keeps nothing of the request that opened it (memory)."""
    async with MockServer() as server, connected(server, protocol_version=version) as (_, conn):
        with anyio.fail_after(10):
            await server.wait_for_streams(1, principal="ann")
        await anyio.wait_all_tasks_blocked()
        gc.collect()
        ours = httpx.URL(server.url)
        held = [
            o
            for o in gc.get_objects()  # other tests of this process may have left theirs
            if isinstance(o, httpx.Request) and o.url.netloc == ours.netloc
        ]
        assert held == []
        assert conn.state is State.READY
