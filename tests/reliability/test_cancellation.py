"""Cancellation at every await point of connect, refresh, request and listen; bounded shutdown.

The approach of encode/httpcore's cancellation tests: a server that pauses at
a chosen step (before the response head, after it, in the middle of an event)
and tells the test it got there; the test cancels the caller (or closes the
supervisor) at exactly that point and checks that nothing is left behind: no
task, no file descriptor, no socket the server still sees open, and a
supervisor whose books agree with its connections.
"""

from __future__ import annotations

import logging
import os
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

import anyio
import anyio.abc
import pytest

import mcpconn
from mcpconn import Backoff, Connection, ServerConfig, State, StormControl, Supervisor, TokenSource
from mcpconn.testing import Fault, JWTIssuer, JWTProvider, MockServer

from ._raw import (
    FAST,
    RawRequest,
    RawServer,
    Writer,
    config,
    default_request,
    head,
    no_leaks,
    once,
    raw_server,
    state_of,
)
from ._supervised import connected, supervised

Stream = anyio.abc.SocketStream
POINTS = ["before-head", "after-head", "mid-event"]


def pausing(point: str, reached: anyio.Event) -> Writer:
    """Answer up to ``point``, say so, then wait (noticing when the client hangs up)."""

    async def write(stream: Stream, req: RawRequest) -> None:
        if point != "before-head":
            await stream.send(head(200, {"content-type": "text/event-stream"}))
        if point == "mid-event":
            await stream.send(b'data: {"jsonrpc":"2.0","method":"notifications/mess')
        reached.set()
        try:
            while await stream.receive():
                pass
        except (anyio.EndOfStream, anyio.BrokenResourceError, anyio.ClosedResourceError):
            pass

    return write


def consistent(sup: Supervisor) -> None:
    """The supervisor's statistics agree with its live connections."""
    stats = sup.statistics()
    live = sup.connections()
    assert stats.connections >= len(live)
    for state in State:
        if state is not State.CLOSED:
            assert stats.by_state[state] == sum(1 for c in live if c.state is state)


async def server_saw_hangup(raw: RawServer) -> None:
    with anyio.fail_after(5):
        await raw.wait(lambda r: r.open_connections == 0)


@asynccontextmanager
async def paused(
    point: str, where: str, *, close_timeout: float = 10.0, **options: Any
) -> AsyncIterator[tuple[RawServer, Supervisor, Connection]]:
    """A connection whose server's ``where`` handler paused at ``point``.

    The block closes the supervisor at that point; afterwards the connection is CLOSED
    and the server saw the client hang up.
    """
    reached = anyio.Event()
    async with no_leaks(), raw_server(**{where: pausing(point, reached)}) as raw:
        with anyio.fail_after(10):
            async with supervised(JWTProvider(JWTIssuer()), close_timeout=close_timeout) as sup:
                conn = await sup.connect(config(raw.url, **options), "alice")
                await reached.wait()
                yield raw, sup, conn
            assert state_of(conn) is State.CLOSED
        await server_saw_hangup(raw)


# ---- connect ---------------------------------------------------------------------------


@pytest.mark.parametrize("point", POINTS)
async def test_closing_during_the_handshake_leaves_nothing_behind(point: str) -> None:
    # close=0.2: the close waits that long for the initialize's answer, then abandons it
    timeouts = mcpconn.Timeouts(connect=2, request=2, read=2, close=0.2)
    async with paused(point, "on_initialize", close_timeout=2, timeouts=timeouts) as (_, sup, conn):
        assert conn.state is State.CONNECTING
        # a caller waiting for READY is cancelled by its own deadline, not hung
        with anyio.move_on_after(0.05) as scope:
            await conn.wait_for(State.READY)
        assert scope.cancelled_caught
        consistent(sup)


# ---- request ---------------------------------------------------------------------------


@pytest.mark.parametrize("point", POINTS)
async def test_cancelling_a_call_at_each_point_keeps_the_connection_usable(point: str) -> None:
    reached = anyio.Event()
    writer = once(pausing(point, reached), then=default_request)
    async with no_leaks(), raw_server(on_request=writer) as raw:
        with anyio.fail_after(10):
            async with (
                TokenSource(JWTProvider(JWTIssuer())) as tokens,
                Supervisor(tokens, backoff=FAST) as sup,
            ):
                conn = await sup.connect(config(raw.url, listen=False), "alice")
                await conn.wait_for(State.READY)
                call_scope = anyio.CancelScope()
                async with anyio.create_task_group() as tg:

                    async def caller() -> None:
                        with call_scope:
                            await conn.call_tool("echo", {"text": "x"})

                    tg.start_soon(caller)
                    await reached.wait()
                    call_scope.cancel()
                assert call_scope.cancelled_caught
                assert conn.state is State.READY and conn.inflight == 0
                assert await conn.call_tool("echo", {"text": "again"}) == {"ok": True}
                consistent(sup)
        await server_saw_hangup(raw)


async def test_a_cancelled_call_tells_the_server() -> None:
    async with MockServer() as server:
        server.faults.add(Fault.delay(30), times=1, rpc_method="tools/call")
        async with (
            TokenSource(JWTProvider(server.issuer)) as tokens,
            Supervisor(tokens, backoff=FAST) as sup,
        ):
            conn = await sup.connect(
                ServerConfig(
                    "m", server.url, transport="streamable-http", protocol_version="2025-11-25"
                ),
                "alice",
            )
            with anyio.fail_after(10):
                await conn.wait_for(State.READY)
                with anyio.move_on_after(0.2):
                    await conn.call_tool("echo", {"text": "slow"})
                await server.wait_until(
                    lambda s: s.by_rpc_method.get("notifications/cancelled", 0) >= 1
                )
                assert conn.state is State.READY
                assert "ok" in str(await conn.call_tool("echo", {"text": "ok"}))


# ---- listen ----------------------------------------------------------------------------


@pytest.mark.parametrize("point", POINTS)
async def test_closing_while_the_listener_is_at_each_point(point: str) -> None:
    async with paused(point, "on_get", timeouts=mcpconn.Timeouts(read=30)) as (raw, sup, conn):
        assert conn.state is State.READY
        consistent(sup)
    assert raw.count("DELETE") == 1  # a READY session is closed politely


# ---- refresh ---------------------------------------------------------------------------


async def test_cancelling_callers_during_a_hanging_refresh_and_closing_is_bounded() -> None:
    async with no_leaks(), MockServer() as server:
        provider = JWTProvider(server.issuer)
        provider.hang()
        with anyio.fail_after(10):
            async with (
                TokenSource(provider, provider_timeout=30) as tokens,
                Supervisor(tokens, backoff=FAST, close_timeout=2) as sup,
            ):
                # close=0.5: a connection still waiting for its token is given that long
                cfg = ServerConfig(
                    "m",
                    server.url,
                    transport="streamable-http",
                    protocol_version="2025-11-25",
                    timeouts=mcpconn.Timeouts(close=0.5),
                )
                conns = [await sup.connect(cfg, f"user{i}") for i in range(5)]
                while provider.total_calls < 5:
                    await provider.wait_for_call()
                for conn in conns:
                    with anyio.move_on_after(0.05) as scope:
                        await conn.call_tool("echo", {"text": "x"})
                    assert scope.cancelled_caught
                    assert conn.state is State.CONNECTING
                consistent(sup)
                # nothing was sent without a token
                assert server.stats().requests_total == 0
            assert all(c.state is State.CLOSED for c in conns)


async def test_a_refresh_that_ends_after_its_caller_left_still_serves_the_next_call() -> None:
    async with no_leaks(), MockServer() as server:
        provider = JWTProvider(server.issuer)
        async with supervised(provider) as sup:
            cfg = ServerConfig(
                "m", server.url, transport="streamable-http", protocol_version="2025-11-25"
            )
            conn = await connected(sup, cfg)
            with anyio.fail_after(10):
                server.revoke("alice")  # the next call gets 401: a forced refresh
                provider.hang()
                with anyio.move_on_after(0.2):
                    await conn.call_tool("echo", {"text": "x"})
                server.restore("alice")
                provider.resume()
                await conn.wait_for(State.READY)
                assert "after" in str(await conn.call_tool("echo", {"text": "after"}))


# ---- shutdown races --------------------------------------------------------------------


async def test_closing_right_after_a_listener_failure_never_crashes(
    caplog: pytest.LogCaptureFixture,
) -> None:
    async def endless(stream: Stream, req: RawRequest) -> None:
        await stream.send(head(200, {"content-type": "text/event-stream"}))
        try:
            while True:
                await stream.send(b"x" * 65536)
        except (anyio.BrokenResourceError, anyio.ClosedResourceError, OSError):
            pass

    caplog.set_level(logging.ERROR, logger="mcpconn")
    async with raw_server(on_get=endless) as raw:
        for _ in range(10):
            with anyio.fail_after(10):
                async with (
                    TokenSource(JWTProvider(JWTIssuer())) as tokens,
                    Supervisor(tokens, backoff=FAST) as sup,
                ):
                    changes = sup.state_changes()
                    await sup.connect(config(raw.url), "alice")
                    async for change in changes:
                        if change.old is State.READY:  # the listener just failed
                            break
                    await changes.aclose()
        assert not [r for r in caplog.records if "crashed" in r.getMessage()]


# ---- thousands at once -----------------------------------------------------------------

#: Connections closed at once: 500 in CI (opening them is what costs, ~10 ms each on a
#: loaded 2-core box); MCPCONN_CLOSE_MANY=2000 (or more) for the long run.
MANY = int(os.environ.get("MCPCONN_CLOSE_MANY", "500"))


async def test_closing_hundreds_to_thousands_of_connections_in_every_state_is_bounded() -> None:
    # READY sessions are the costly ones to open (two requests each, plus a DELETE on
    # close): a twentieth of them; the rest split between the cheap states.
    ready = max(10, MANY // 20)
    quarter = (MANY - ready) // 3
    stalled = anyio.Event()
    async with (
        no_leaks(),
        MockServer() as server,
        raw_server(on_initialize=pausing("before-head", stalled)) as slow,
    ):
        refused = await anyio.create_tcp_listener(local_host="127.0.0.1", local_port=0)
        port = refused.extra(anyio.abc.SocketAttribute.local_port)
        await refused.aclose()  # nobody listens there: connection refused
        provider = JWTProvider(server.issuer)
        for i in range(quarter):
            provider.revoke(f"parked{i}")
        storm = StormControl(connect_rate=1e6, connect_burst=1e6, retry_rate=1e6, retry_burst=1e6)
        ready_cfg = ServerConfig(
            "ready",
            server.url,
            transport="streamable-http",
            protocol_version="2025-11-25",
            listen=False,
        )
        groups: dict[State, tuple[ServerConfig, str]] = {
            State.READY: (ready_cfg, "ready"),
            State.NEEDS_REAUTH: (ServerConfig("parked", server.url, listen=False), "parked"),
            State.BACKOFF: (ServerConfig("down", f"http://127.0.0.1:{port}/mcp"), "down"),
            State.CONNECTING: (
                # close=0.2: a close waits that long for an initialize already sent (the
                # answer never comes here), then abandons the handshake
                config(
                    slow.url,
                    name="slow",
                    timeouts=mcpconn.Timeouts(request=300, read=300, close=0.2),
                ),
                "slow",
            ),
        }
        slow_backoff = Backoff(initial=30, max_delay=30)
        async with TokenSource(provider) as tokens:
            sup = Supervisor(tokens, backoff=slow_backoff, storm_control=storm, close_timeout=10)
            with anyio.fail_after(60):
                async with sup:
                    conns = {
                        state: [
                            await sup.connect(cfg, f"{who}{i}")
                            for i in range(ready if state is State.READY else quarter)
                        ]
                        for state, (cfg, who) in groups.items()
                    }
                    for state, group in conns.items():
                        for conn in group:
                            if state is State.CONNECTING:
                                continue
                            await conn.wait_for(state)
                    await slow.wait(lambda r: r.open_connections >= quarter)
                    stats = sup.statistics()
                    assert stats.connections == ready + 3 * quarter
                    assert stats.by_state[State.READY] == ready
                    assert stats.parked == quarter
                    closing = anyio.current_time()
            # the stalled handshakes were abandoned at their 0.2 s: well within close_timeout
            # (half of it: the supervisor's cap at 10 s must not be what ended them)
            assert anyio.current_time() - closing < 5
            assert all(c.state is State.CLOSED for g in conns.values() for c in g)
            assert sup.connections() == []
        # every READY session got its DELETE; the stalled handshakes were abandoned
        assert server.stats().by_http_method.get("DELETE", 0) == ready
        await server_saw_hangup(slow)
