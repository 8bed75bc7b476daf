"""Closing while an ``initialize`` is in flight leaves no session behind on the server.

The server opens a session when it takes the ``initialize``; only the answer says
its ``Mcp-Session-Id``. A close that cancelled the handshake then would leave a
session nobody can DELETE. So a close waits, within ``timeouts.close``, for an
initialize already sent, and DELETEs the session it opened; an answer that never
comes is given up at that timeout. The mock server's ``Fault.delay(late_answer=True)``
opens the session at once and holds only the answer.
"""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

import anyio
import pytest

import mcpconn
from mcpconn import ServerConfig, State, Supervisor, Timeouts, TokenSource
from mcpconn.testing import Fault, JWTProvider, MockServer

FAST = mcpconn.Backoff(initial=0.01, max_delay=0.05, auth_attempts=2)


# The answers held for 1 s are the server's doing (the fault); the test waits on the
# server's state and the connection's, and 1 s is only the margin a loaded machine
# needs between "session opened" and the close it runs at once.


def config(server: MockServer, close: float, *, listen: bool = True) -> ServerConfig:
    return ServerConfig(
        "mock",
        server.url,
        transport="streamable-http",
        protocol_version="2025-11-25",
        timeouts=Timeouts(request=30, close=close),
        listen=listen,
    )


@asynccontextmanager
async def initializing(
    server: MockServer, *, answer_after: float, close: float
) -> AsyncIterator[mcpconn.Connection]:
    """A connection whose ``initialize`` the server took (its session is open) but has
    not answered yet."""
    server.faults.add(Fault.delay(answer_after, late_answer=True), times=1, rpc_method="initialize")
    async with (
        TokenSource(JWTProvider(server.issuer)) as tokens,
        Supervisor(tokens, backoff=FAST) as sup,
    ):
        conn = await sup.connect(config(server, close), "alice")
        await server.wait_until(lambda s: s.sessions == 1)
        assert conn.state is State.CONNECTING
        yield conn


@pytest.mark.parametrize("how", ["aclose", "supervisor exit"])
async def test_closing_during_initialize_deletes_the_session_it_opened(how: str) -> None:
    async with MockServer() as server:
        with anyio.fail_after(20):
            async with initializing(server, answer_after=1.0, close=10) as conn:
                if how == "aclose":
                    await conn.aclose()
                    assert conn.state is State.CLOSED
                    # the close waited for the answer and DELETEd what it named
                    assert server.stats().sessions == 0
            assert conn.state is State.CLOSED
            assert server.stats().sessions == 0
        stats = server.stats()
        assert stats.by_http_method.get("DELETE") == 1
        assert stats.by_rpc_method.get("initialize") == 1  # closed, not reconnected


async def test_an_initialize_never_answered_is_given_up_at_the_close_timeout() -> None:
    async with MockServer() as server:
        with anyio.fail_after(10):  # the answer would come only after 60 s
            async with initializing(server, answer_after=60, close=0.2) as conn:
                await conn.aclose()
                assert conn.state is State.CLOSED
        # nobody learned the session's id: it stays (the server's idle timeout is its end)
        assert server.stats().sessions == 1
        assert server.stats().by_http_method.get("DELETE") is None


async def test_a_late_answer_leaves_the_delete_only_what_is_left_of_the_close_budget() -> None:
    # The answer comes 1 s into a 1.5 s close; the DELETE that follows is held by the
    # server. It is sent, but within the same budget: the close is over at 1.5 s, not
    # at 1 s plus a budget of its own (2.5 s).
    close = 1.5
    async with MockServer() as server:
        deleting = server.faults.add(Fault.delay(30), times=1, method="DELETE")
        with anyio.fail_after(20):
            async with initializing(server, answer_after=1.0, close=close) as conn:
                started = anyio.current_time()
                await conn.aclose()
                took = anyio.current_time() - started
                assert conn.state is State.CLOSED
        assert deleting.hits == 1  # the DELETE was sent
        assert took < close + 0.4


async def test_a_close_with_no_budget_left_drops_the_session_without_delete() -> None:
    # The answer names the session 0.5 s into a 1 s close, but the handshake's
    # ``notifications/initialized`` is held past the end of it: nothing is left for a
    # DELETE, so none is sent and the session stays (the server's idle timeout ends it).
    async with MockServer() as server:
        server.faults.add(Fault.delay(30), times=1, rpc_method="notifications/initialized")
        with anyio.fail_after(20):
            async with initializing(server, answer_after=0.5, close=1.0) as conn:
                await conn.aclose()
                assert conn.state is State.CLOSED
        assert server.stats().by_http_method.get("DELETE") is None
        assert server.stats().sessions == 1


@pytest.mark.parametrize("delete_held", [False, True])
async def test_closing_during_a_reinitialize_deletes_the_new_session(delete_held: bool) -> None:
    # delete_held: the server holds the DELETE; the close waited 1 s for the answer and
    # the DELETE gets only the rest of the 1.5 s close budget.
    close = 1.5 if delete_held else 10
    async with MockServer() as server:
        if delete_held:
            deleting = server.faults.add(Fault.delay(30), times=1, method="DELETE")
        async with (
            TokenSource(JWTProvider(server.issuer)) as tokens,
            Supervisor(tokens, backoff=FAST) as sup,
        ):
            # no listener: only the call meets the expiry (a listener would reconnect)
            conn = await sup.connect(config(server, close=close, listen=False), "alice")
            with anyio.fail_after(20):
                await conn.wait_for(State.READY)
                server.faults.add(
                    Fault.delay(1.0, late_answer=True), times=1, rpc_method="initialize"
                )
                server.expire_sessions()  # the next call meets 404 and re-initializes
                assert server.stats().sessions == 0

                async def call() -> None:
                    with contextlib.suppress(mcpconn.MCPConnError):  # answered, or closed under it
                        await conn.call_tool("echo", {"text": "x"})

                async with anyio.create_task_group() as tg:
                    tg.start_soon(call)
                    await server.wait_until(lambda s: s.sessions == 1)  # opened, unanswered
                    started = anyio.current_time()
                    await conn.aclose()
                    took = anyio.current_time() - started
                    assert conn.state is State.CLOSED
                    if delete_held:
                        assert deleting.hits == 1  # sent, and given up with the budget
                        assert took < close + 0.4
                    else:
                        assert server.stats().sessions == 0
                    tg.cancel_scope.cancel()
        assert server.stats().by_rpc_method.get("initialize") == 2
