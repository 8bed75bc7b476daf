"""Listen first: a call made at READY waits (briefly) for the session's GET stream.

A session-era server may send a request on the GET stream the moment a call
reaches it and drop it when no stream is open yet (the official conformance
scenario ``elicitation-sep1034-client-defaults`` does). The mock server below
does the same: its ``ask`` tool puts an ``elicitation/create`` on the
principal's listener streams and answers with how many it reached.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

import anyio
import pytest

from mcpconn import Connection, ServerConfig, ServerRequest, State, Supervisor, TokenSource
from mcpconn._mcp.listening import LISTENER_GRACE
from mcpconn._supervision.server_requests import RequestHandler
from mcpconn.testing import CallContext, Fault, JWTProvider, MockServer, Tool


async def _ask(arguments: dict[str, Any], ctx: CallContext) -> dict[str, Any]:
    request = {"jsonrpc": "2.0", "id": "e1", "method": "elicitation/create", "params": {}}
    reached = ctx.server.send(request, principal=ctx.principal)  # type: ignore[attr-defined]
    return {"content": [{"type": "text", "text": str(reached)}]}


async def _accept(request: ServerRequest) -> dict[str, Any]:
    return {"action": "accept", "content": {}}


@asynccontextmanager
async def ready(server: MockServer) -> AsyncIterator[Connection]:
    server.add_tool(Tool("ask", _ask), notify=False)
    config = ServerConfig(
        "mock", server.url, transport="streamable-http", protocol_version="2025-11-25"
    )
    handlers: dict[str, RequestHandler] = {"elicitation/create": _accept}
    async with Supervisor(TokenSource(JWTProvider(server.issuer))) as sup:
        conn = await sup.connect(config, "ann", request_handlers=handlers)
        with anyio.fail_after(10):
            await conn.wait_for(State.READY)
        yield conn


def reached(result: dict[str, Any]) -> int:
    return int(result["content"][0]["text"])


async def test_a_call_at_ready_finds_a_slow_listener_open() -> None:
    async with MockServer() as server:
        # the GET is accepted only after a delay (well inside the grace)
        server.faults.add(Fault.delay(LISTENER_GRACE / 2), times=1, method="GET")
        async with ready(server) as conn:
            with anyio.fail_after(10):
                result = await conn.call_tool("ask")  # at once: no wait for the stream here
                assert reached(result) == 1
                await server.wait_until(lambda _: bool(server.client_responses))
    assert server.client_responses[0]["id"] == "e1"
    assert server.client_responses[0]["result"]["action"] == "accept"


async def test_a_stalled_listener_delays_calls_by_the_grace_once() -> None:
    async with MockServer() as server:
        server.faults.add(Fault.stall(), times=1, method="GET")  # never answers
        async with ready(server) as conn:
            with anyio.fail_after(LISTENER_GRACE + 5):
                assert reached(await conn.call_tool("ask")) == 0  # waited, then went
            start = anyio.current_time()
            with anyio.fail_after(5):
                await conn.call_tool("ask")
            # the grace is spent once per listen attempt, not once per call
            assert anyio.current_time() - start < LISTENER_GRACE


@pytest.mark.parametrize("get_listener", [False, True])
async def test_no_wait_once_the_listener_settled(get_listener: bool) -> None:
    # False: the server answers GET with 405, so there is nothing to wait for
    async with MockServer(get_listener=get_listener) as server, ready(server) as conn:
        with anyio.fail_after(10):
            if get_listener:
                await server.wait_for_streams(1, principal="ann")
            start = anyio.current_time()
            result = await conn.call_tool("ask")
        assert anyio.current_time() - start < LISTENER_GRACE
        assert reached(result) == int(get_listener)
