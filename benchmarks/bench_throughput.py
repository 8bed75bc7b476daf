"""Scenario 6, throughput: notifications over one stream, and tool calls.

Notifications: the mock server floods M notifications (with backpressure) down
one GET listener stream, read three ways in the same run: mcpconn's
``conn.notifications()`` (SSE decoding + JSON decoding + dispatch), httpx-sse's
``aiter_sse()`` with ``json.loads`` of every event (the same work, bare) and raw
``aiter_bytes()``. The server process may be the bottleneck on a small machine,
so client CPU seconds per notification are reported next to the rates. Target:
mcpconn >= 1.0x httpx-sse + json.loads.

Tool calls: K sequential ``tools/call`` through mcpconn and through the official
SDK's streamable HTTP client (``mcp`` package), client CPU time per call.
Target: mcpconn <= half of the SDK's.
"""

from __future__ import annotations

import argparse
import json
import time
from collections.abc import Awaitable, Callable
from typing import Any

import anyio
import httpx
from _baselines import ACCEPT, NaiveSession, open_get_listener, sdk_session
from _harness import MockProcess, Result, run_scenario

from mcpconn import Limits, ServerConfig, State, Supervisor, TokenSource
from mcpconn.testing import JWTIssuer, JWTProvider


def _cpu() -> float:
    return time.process_time()


async def _flood(mock: MockProcess, principal: str, count: int) -> None:
    await mock.post("emit", principal=principal, count=count, method="notifications/message")


async def _wait_stream(mock: MockProcess, principal: str) -> None:
    with anyio.fail_after(20):
        await mock.poll_until(
            lambda s: s["open_streams_by_principal"].get(principal, 0) >= 1, interval=0.05
        )


async def _ours(mock: MockProcess, tokens: TokenSource, m: int) -> dict[str, Any]:
    limits = Limits(notification_buffer=1 << 20)
    async with Supervisor(tokens) as sup:
        config = ServerConfig("mock", mock.url, transport="streamable-http", limits=limits)
        conn = await sup.connect(config, "tp-ours")
        notes = conn.notifications()
        with anyio.fail_after(20):
            await conn.wait_for(State.READY)
        await _wait_stream(mock, "tp-ours")
        received = 0
        cpu0, t0 = _cpu(), anyio.current_time()
        async with anyio.create_task_group() as tg:
            tg.start_soon(_flood, mock, "tp-ours", m)
            async for note in notes:
                if note.get("method") == "notifications/message":
                    received += 1
                    if received + notes.dropped >= m:
                        break
        elapsed, cpu = anyio.current_time() - t0, _cpu() - cpu0
        dropped = notes.dropped
        await notes.aclose()
    return {"rate": m / elapsed, "cpu_us": 1e6 * cpu / m, "received": received, "dropped": dropped}


async def _plain(
    mock: MockProcess, issuer: JWTIssuer, who: str, m: int, *, sse: bool
) -> dict[str, Any]:
    from httpx_sse import EventSource

    token = issuer.mint(who, lifetime=3600)
    async with httpx.AsyncClient(timeout=60) as client:
        session = NaiveSession(client, mock.url, token)
        await session.initialize()
        async with open_get_listener(client, mock.url, token, session.session_id) as response:
            await _wait_stream(mock, who)
            received = 0
            cpu0, t0 = _cpu(), anyio.current_time()
            async with anyio.create_task_group() as tg:
                tg.start_soon(_flood, mock, who, m)
                if sse:
                    async for event in EventSource(response).aiter_sse():
                        if event.data:
                            message = json.loads(event.data)
                            if message.get("method") == "notifications/message":
                                received += 1
                                if received >= m:
                                    break
                else:
                    async for chunk in response.aiter_bytes():
                        received += chunk.count(b"notifications/message")
                        if received >= m:
                            break
            elapsed, cpu = anyio.current_time() - t0, _cpu() - cpu0
    return {"rate": m / elapsed, "cpu_us": 1e6 * cpu / m, "received": received}


async def _cpu_per_call(call_tool: Callable[..., Awaitable[Any]], k: int) -> float:
    """Client CPU microseconds per ``echo`` call, after 20 warm-up calls."""
    for _ in range(20):
        await call_tool("echo", {"text": "warm"})
    cpu0 = _cpu()
    for _ in range(k):
        await call_tool("echo", {"text": "x"})
    return 1e6 * (_cpu() - cpu0) / k


async def _calls_ours(mock: MockProcess, tokens: TokenSource, k: int) -> float:
    async with Supervisor(tokens) as sup:
        config = ServerConfig("mock", mock.url, transport="streamable-http", listen=False)
        conn = await sup.connect(config, "tc-ours")
        with anyio.fail_after(20):
            await conn.wait_for(State.READY)
        return await _cpu_per_call(conn.call_tool, k)


async def _calls_bare(mock: MockProcess, issuer: JWTIssuer, k: int) -> float:
    """The floor: one plain httpx POST per call, a fixed token, no checks at all."""
    async with httpx.AsyncClient(timeout=60) as client:
        session = NaiveSession(client, mock.url, issuer.mint("tc-bare", lifetime=3600))
        await session.initialize()
        return await _cpu_per_call(session.call_tool, k)


async def _calls_sdk(mock: MockProcess, issuer: JWTIssuer, k: int) -> float:
    async with sdk_session(mock.url, issuer.mint("tc-sdk", lifetime=3600)) as session:
        return await _cpu_per_call(session.call_tool, k)


async def scenario(args: argparse.Namespace) -> Result:
    m = 5_000 if args.quick else 50_000
    k = 200 if args.quick else 2_000
    result = Result("throughput", {"notifications": m, "tool_calls": k})
    async with MockProcess() as mock:
        issuer = JWTIssuer(mock.secret)
        async with TokenSource(JWTProvider(issuer, lifetime=3600)) as tokens:
            ours = await _ours(mock, tokens, m)
            sse = await _plain(mock, issuer, "tp-sse", m, sse=True)
            raw = await _plain(mock, issuer, "tp-raw", m, sse=False)
            calls_ours = await _calls_ours(mock, tokens, k)
            calls_bare = await _calls_bare(mock, issuer, k)
        try:
            calls_sdk: float | str = await _calls_sdk(mock, issuer, k)
        except Exception as exc:  # report, do not hide, an SDK that cannot talk to the mock
            calls_sdk = f"failed: {type(exc).__name__}: {exc}"[:200]
    ratio = ours["rate"] / sse["rate"]
    result.row("notifications/s (mcpconn vs httpx-sse + json.loads)", ours["rate"], sse["rate"])
    result.row("notifications/s, raw aiter_bytes", "", raw["rate"])
    result.row("client CPU us per notification (vs httpx-sse)", ours["cpu_us"], sse["cpu_us"])
    result.row("client CPU us per notification, raw bytes", "", raw["cpu_us"])
    result.row("notifications dropped by a slow consumer", ours["dropped"], "")
    result.row("client CPU us per tool call (vs official SDK)", calls_ours, calls_sdk)
    result.row("client CPU us per tool call, bare httpx POST", "", calls_bare)
    result.row("CPU per tool call, mcpconn / bare httpx", f"{calls_ours / calls_bare:.2f}x", "")
    result.target("notification rate vs httpx-sse + json.loads", ">= 1.0x", ratio, ratio >= 1.0)
    cpu_ratio = ours["cpu_us"] / sse["cpu_us"]
    result.row("CPU per notification, mcpconn / httpx-sse", f"{cpu_ratio:.2f}x", "")
    if isinstance(calls_sdk, float):
        call_ratio = calls_ours / calls_sdk
        result.row("CPU per tool call, mcpconn / SDK", f"{call_ratio:.2f}x", "")
        result.target("tool call CPU vs official SDK", "<= 0.5x", call_ratio, call_ratio <= 0.5)
    else:
        result.notes.append(f"official SDK client: {calls_sdk}")
    result.figures.update(
        ours=ours,
        httpx_sse=sse,
        raw=raw,
        calls_ours_us=calls_ours,
        calls_bare_us=calls_bare,
        calls_sdk_us=calls_sdk,
        accept=ACCEPT,
    )
    return result


if __name__ == "__main__":
    run_scenario("throughput", scenario)
