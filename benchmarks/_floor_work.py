"""The work of each (figure, client) of bench_floors, run in its own child process.

Every function takes the `bench_floors.Child` (URLs, the issuer, N, the payload size)
and returns the figures as a flat dict: client CPU by ``time.process_time()``, the
server's CPU over the same window, RSS deltas. Notifications are in `_floor_notify`.
"""

from __future__ import annotations

import gc
import json
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from typing import Any

import anyio
import anyio.lowlevel
import httpx
from _baselines import (
    NaiveSession,
    bare_discover,
    bare_reconnect,
    open_listen_stream,
    sdk_session,
)
from _floors import McpFloor
from _harness import percentile, rss_bytes

WARM = 20
WAVE = 100


def _supervisor(child: Any, tokens: Any, **kwargs: Any) -> Any:
    """mcpconn's Supervisor; for ``mcpconn-httpcore`` on httpx's own transport (sharded),
    for ``mcpconn-stdlib-json`` decoding with ``json.loads`` even when orjson is installed."""
    from mcpconn import Supervisor
    from mcpconn._core import jsonrpc
    from mcpconn._http.shards import ClientShards

    if child.kind == "mcpconn-stdlib-json":
        jsonrpc.loads = json.loads

    sup = Supervisor(tokens, **kwargs)
    if child.kind == "mcpconn-httpcore":
        sup._shards = ClientShards(32, h11=False)
    return sup


# ---- tool calls -------------------------------------------------------------------------


async def _per_call(child: Any, call: Callable[[], Awaitable[Any]]) -> dict[str, Any]:
    for _ in range(WARM):
        await call()
    gc.collect()
    cpu0, server0, t0 = time.process_time(), child.server_cpu(), time.perf_counter()
    for _ in range(child.n):
        await call()
    cpu, server = time.process_time() - cpu0, child.server_cpu() - server0
    wall = time.perf_counter() - t0
    n = child.n
    return {"cpu_us": 1e6 * cpu / n, "server_cpu_us": 1e6 * server / n, "wall_us": 1e6 * wall / n}


async def _toolcall_floor(child: Any) -> dict[str, Any]:
    floor = await McpFloor.connect(child.kind, child.url, child.token("tc-floor"))
    await floor.initialize()
    try:
        return await _per_call(child, lambda: floor.call_tool("echo", {"text": "x"}))
    finally:
        await floor.client.aclose()


toolcall_raw = toolcall_h11 = _toolcall_floor


async def toolcall_httpx(child: Any) -> dict[str, Any]:
    async with httpx.AsyncClient(timeout=60) as client:
        session = NaiveSession(client, child.url, child.token("tc-httpx"))
        await session.initialize()
        return await _per_call(child, lambda: session.call_tool("echo", {"text": "x"}))


async def toolcall_mcpconn(child: Any) -> dict[str, Any]:
    from mcpconn import ServerConfig, State, TokenSource
    from mcpconn.testing import JWTProvider

    async with (
        TokenSource(JWTProvider(child.issuer, lifetime=3600)) as tokens,
        _supervisor(child, tokens) as sup,
    ):
        config = ServerConfig("mock", child.url, transport="streamable-http", listen=False)
        conn = await sup.connect(config, "tc-ours")
        with anyio.fail_after(20):
            await conn.wait_for(State.READY)
        return await _per_call(child, lambda: conn.call_tool("echo", {"text": "x"}))


async def toolcall_sdk(child: Any) -> dict[str, Any]:
    async with sdk_session(child.url, child.token("tc-sdk")) as session:
        return await _per_call(child, lambda: session.call_tool("echo", {"text": "x"}))


# ---- idle listener streams ----------------------------------------------------------------


async def _idle(
    child: Any, open_one: Callable[[int, anyio.Event], Awaitable[None]]
) -> dict[str, Any]:
    """Warm up with one stream, read RSS, open N more in waves, read RSS again."""
    async with anyio.create_task_group() as tg:
        warm = anyio.Event()
        tg.start_soon(open_one, -1, warm)
        with anyio.fail_after(30):
            await warm.wait()
        await child.wait_streams(1)
        gc.collect()
        rss0, server0, t0 = rss_bytes(), child.server_cpu(), time.perf_counter()
        for start in range(0, child.n, WAVE):
            events = [anyio.Event() for _ in range(min(WAVE, child.n - start))]
            for i, event in enumerate(events):
                tg.start_soon(open_one, start + i, event)
            with anyio.fail_after(120):
                for event in events:
                    await event.wait()
        await child.wait_streams(child.n + 1)
        connect_s = time.perf_counter() - t0
        await anyio.sleep(1.0)
        gc.collect()
        rss1, server = rss_bytes(), child.server_cpu() - server0
        tg.cancel_scope.cancel()
    return {"kib": (rss1 - rss0) / child.n / 1024, "connect_s": connect_s, "server_cpu_s": server}


async def _idle_floor(child: Any) -> dict[str, Any]:
    async def open_one(i: int, opened: anyio.Event) -> None:
        floor = await McpFloor.connect(child.kind, child.url, child.token(f"u{i:05d}"))
        try:
            await floor.discover()  # as mcpconn must: the server's answer says not to reuse it
            if await floor.open_listen() == 200:
                opened.set()
            async for _ in floor.client.chunks():
                pass
        finally:
            await floor.client.aclose()

    return await _idle(child, open_one)


idle_raw = idle_h11 = _idle_floor


@asynccontextmanager
async def _shards(n: int) -> AsyncIterator[list[httpx.AsyncClient]]:
    """Bare httpx with a client per 32 connections (httpcore scans its whole pool)."""
    limits = httpx.Limits(max_connections=None, max_keepalive_connections=64)
    clients = [
        httpx.AsyncClient(timeout=None, limits=limits, verify=False)
        for _ in range(max(1, n // 32 + 1))
    ]
    try:
        yield clients
    finally:
        for client in clients:
            await client.aclose()


async def idle_httpx(child: Any) -> dict[str, Any]:
    async with _shards(child.n) as clients:

        async def open_one(i: int, opened: anyio.Event) -> None:
            client = clients[(i + 1) % len(clients)]
            token = child.token(f"u{i:05d}")
            await bare_discover(client, child.url, token)
            async with open_listen_stream(client, child.url, token) as response:
                if response.status_code == 200:
                    opened.set()
                async for _ in response.aiter_bytes():
                    pass

        return await _idle(child, open_one)


async def idle_mcpconn(child: Any) -> dict[str, Any]:
    from mcpconn import ServerConfig, State, TokenSource
    from mcpconn._supervision.supervisor import StormControl
    from mcpconn.testing import JWTProvider

    storm = StormControl(connect_rate=1000.0, connect_burst=200.0)
    config = ServerConfig("mock", child.url, transport="auto")
    async with (
        TokenSource(JWTProvider(child.issuer, lifetime=3600)) as tokens,
        _supervisor(child, tokens, storm_control=storm) as sup,
    ):

        async def open_one(i: int, opened: anyio.Event) -> None:
            conn = await sup.connect(config, f"u{i:05d}")
            await conn.wait_for(State.READY)
            opened.set()

        return await _idle(child, open_one)


# ---- reconnects -----------------------------------------------------------------------------


async def _at_once(
    child: Any, one: Callable[[float, list[float]], Awaitable[None]]
) -> dict[str, Any]:
    done: list[float] = []
    server0, cpu0 = child.server_cpu(), time.process_time()
    with anyio.move_on_after(120):
        async with anyio.create_task_group() as tg:
            started = anyio.current_time()
            for _ in range(child.n):
                tg.start_soon(one, started, done)
    server, cpu = child.server_cpu() - server0, time.process_time() - cpu0
    return {
        "ok": len(done),
        "p50_s": percentile(done, 50),
        "p99_s": percentile(done, 99),
        "client_cpu_s": cpu,
        "server_cpu_s": server,
    }


async def _reconnect_floor(child: Any) -> dict[str, Any]:
    token = child.token("returning-user")

    async def one(started: float, done: list[float]) -> None:
        floor = await McpFloor.connect(child.kind, child.url, token)
        try:
            await floor.discover()
            if await floor.open_listen() == 200:
                done.append(anyio.current_time() - started)
        finally:
            await floor.client.aclose()

    return await _at_once(child, one)


reconnect_raw = reconnect_h11 = _reconnect_floor


async def reconnect_httpx(child: Any) -> dict[str, Any]:
    token = child.token("returning-user")
    counter = iter(range(1 << 30))
    async with _shards(child.n) as clients:

        async def one(started: float, done: list[float]) -> None:
            # one client (shard) per reconnect: its two requests share one pool
            client = clients[next(counter) % len(clients)]
            answered: list[float] = []
            await bare_reconnect(client, child.url, token, started, answered)
            done.append(anyio.current_time() - started)

        return await _at_once(child, one)


async def reconnect_mcpconn(child: Any) -> dict[str, Any]:
    """N parked listeners of one principal; one publish; seconds until each is READY."""
    from mcpconn import Backoff, ServerConfig, State, TokenSource
    from mcpconn.testing import JWTProvider

    principal = "returning-user"
    await child.control("revoke", principal=principal)
    backoff = Backoff(initial=0.05, max_delay=0.2, auth_attempts=2)
    async with (
        TokenSource(JWTProvider(child.issuer, lifetime=600)) as tokens,
        _supervisor(child, tokens, backoff=backoff) as sup,
    ):
        configs = [ServerConfig(f"srv{i:04d}", child.url, transport="auto") for i in range(child.n)]
        conns = [await sup.connect(cfg, principal) for cfg in configs]
        with anyio.fail_after(120):
            for conn in conns:
                await conn.wait_for(State.NEEDS_REAUTH)
        await child.control("restore", principal=principal)
        waiting = iter(conns)

        async def one(started: float, done: list[float]) -> None:
            conn = next(waiting)
            await conn.wait_for(State.READY)
            done.append(anyio.current_time() - started)

        token = child.token(principal)

        async def publish_soon() -> None:
            await anyio.lowlevel.checkpoint()  # every watcher started first
            tokens.publish(principal, token)

        async with anyio.create_task_group() as tg:
            tg.start_soon(publish_soon)
            return await _at_once(child, one)


toolcall_mcpconn_httpcore = toolcall_mcpconn
idle_mcpconn_httpcore = idle_mcpconn
reconnect_mcpconn_httpcore = reconnect_mcpconn
