"""The notifications figure of bench_floors: one listener stream flooded by the server.

Each client reads M notifications of about 200 B or 2 KB (structured params, the shape of
real ones), ``json.loads`` (or mcpconn's decoder) included; client CPU by
``time.process_time()``, the server's CPU over the same window beside it.
"""

from __future__ import annotations

import gc
import json
import time
from collections.abc import Awaitable, Callable
from typing import Any

import anyio
import httpx
from _baselines import NaiveSession, open_get_listener
from _floors import McpFloor, sse_messages

# ---- notifications ---------------------------------------------------------------------------


def _params(size: int) -> dict[str, Any]:
    """Params that make the whole JSON-RPC message about ``size`` bytes: small objects
    (a URI, a number, a flag), the shape of real notifications, not one long string."""
    items: list[dict[str, Any]] = []
    params: dict[str, Any] = {"items": items}
    base = len(json.dumps({"jsonrpc": "2.0", "method": "notifications/message", "params": params}))
    while base < size - 35:
        item = {"uri": f"file:///r/{len(items)}.txt", "size": 1000 * len(items), "ok": True}
        items.append(item)
        base += len(json.dumps(item)) + 2
    return params


async def _drain(child: Any, who: str, read: Callable[[], Awaitable[int]]) -> dict[str, Any]:
    await child.wait_streams(1, who)
    gc.collect()
    cpu0, server0, t0 = time.process_time(), child.server_cpu(), time.perf_counter()
    async with anyio.create_task_group() as tg:
        tg.start_soon(
            lambda: child.control(
                "emit",
                principal=who,
                count=child.n,
                method="notifications/message",
                params=_params(child.size),
            )
        )
        received = await read()
    wall, cpu = time.perf_counter() - t0, time.process_time() - cpu0
    server = child.server_cpu() - server0
    n = child.n
    message = {"jsonrpc": "2.0", "method": "notifications/message", "params": _params(child.size)}
    return {
        "message_bytes": len(json.dumps(message)),
        "rate": n / wall,
        "us": 1e6 * cpu / n,
        "server_cpu_us": 1e6 * server / n,
        "received": received,
    }


async def _notify_floor(child: Any) -> dict[str, Any]:
    who = f"nf-{child.kind}-{child.size}-{time.time_ns()}"
    floor = await McpFloor.connect(child.kind, child.url, child.token(who))
    await floor.initialize()
    await floor.open_get_listener()

    async def read() -> int:
        received = 0
        buffer = bytearray()
        async for chunk in floor.client.chunks():
            for message in sse_messages(buffer, chunk):
                if message.get("method") == "notifications/message":
                    received += 1
            if received >= child.n:
                break
        return received

    try:
        return await _drain(child, who, read)
    finally:
        await floor.client.aclose()


notify_raw = notify_h11 = _notify_floor


async def notify_httpx_sse(child: Any) -> dict[str, Any]:
    from httpx_sse import EventSource

    who = f"nf-sse-{child.size}-{time.time_ns()}"
    token = child.token(who)
    async with httpx.AsyncClient(timeout=60) as client:
        session = NaiveSession(client, child.url, token)
        await session.initialize()
        async with open_get_listener(client, child.url, token, session.session_id) as response:

            async def read() -> int:
                received = 0
                async for event in EventSource(response).aiter_sse():
                    if event.data:
                        message = json.loads(event.data)
                        if message.get("method") == "notifications/message":
                            received += 1
                            if received >= child.n:
                                break
                return received

            return await _drain(child, who, read)


async def notify_mcpconn(child: Any) -> dict[str, Any]:
    import _floor_work

    from mcpconn import Limits, ServerConfig, State, TokenSource
    from mcpconn.testing import JWTProvider

    who = f"nf-ours-{child.size}-{time.time_ns()}"
    limits = Limits(notification_buffer=1 << 20)
    # the session era's GET listener: the very stream the floors read
    config = ServerConfig(
        "mock",
        child.url,
        transport="streamable-http",
        protocol_version="2025-11-25",
        limits=limits,
    )
    async with (
        TokenSource(JWTProvider(child.issuer, lifetime=3600)) as tokens,
        _floor_work._supervisor(child, tokens) as sup,
    ):
        conn = await sup.connect(config, who)
        notes = conn.notifications()
        with anyio.fail_after(20):
            await conn.wait_for(State.READY)

        async def read() -> int:
            received = 0
            async for note in notes:
                if note.get("method") == "notifications/message":
                    received += 1
                    if received + notes.dropped >= child.n:
                        break
            return received

        try:
            return await _drain(child, who, read)
        finally:
            await notes.aclose()


notify_mcpconn_httpcore = notify_mcpconn_stdlib_json = notify_mcpconn
