"""What an idle listening connection holds for the stream's life (memory per listener).

Thousands of connections sit idle at once, so what each keeps is the figure: no
response object under its stream (its one task and no request object are in
`test_surface_idle`), one copy of what the server told every connection alike.
Over real loopback sockets, on our HTTP transport and (for the restart of a 2026
listen) on httpx's own.
"""

from __future__ import annotations

import gc
import math
import types
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

import anyio
import httpx
import pytest

from mcpconn import Backoff, Connection, ServerConfig, State, Supervisor, TokenSource
from mcpconn._http.body import ResponseBody
from mcpconn.testing import JWTProvider, MockServer

FAST = Backoff(initial=0.05, max_delay=0.1)


@asynccontextmanager
async def connected(
    server: MockServer, *principals: str, client: httpx.AsyncClient | None = None, **options: Any
) -> AsyncIterator[list[Connection]]:
    """One supervisor, a READY, listening connection per principal (``ann`` by default)."""
    config = ServerConfig("mock", server.url, backoff=FAST, **options)
    async with Supervisor(TokenSource(JWTProvider(server.issuer)), client=client) as sup:
        conns = [await sup.connect(config, who) for who in principals or ("ann",)]
        with anyio.fail_after(10):
            for conn in conns:
                await conn.wait_for(State.READY)
                await server.wait_for_streams(1, principal=conn.principal)
        await anyio.wait_all_tasks_blocked()
        yield conns


def alive(kind: type) -> list[Any]:
    gc.collect()
    return [o for o in gc.get_objects() if isinstance(o, kind)]


VERSIONS = pytest.mark.parametrize("version", ["2025-11-25", "2026-07-28"])


@VERSIONS
async def test_an_idle_listener_keeps_no_response_object(version: str) -> None:
    """Once its status and type are checked, the stream is read from its body alone: the
    ``httpx.Response`` (its headers ~1 KiB) is not kept for the stream's life."""
    async with MockServer() as server:
        before = len(alive(httpx.Response))  # other tests of this process may have left theirs
        async with connected(server, "ann", "bob", protocol_version=version) as conns:
            assert len(alive(httpx.Response)) <= before
            assert all(conn.state is State.READY for conn in conns)


async def test_connections_to_one_server_share_what_it_told_them() -> None:
    async with MockServer() as server, connected(server, "ann", "bob") as (ann, bob):
        a, b = ann._runner.session, bob._runner.session
        assert a is not None and b is not None and a is not b
        assert a.capabilities is b.capabilities and a.server_info is b.server_info
        assert ann.server_capabilities == bob.server_capabilities != {}


@pytest.mark.parametrize("ours", [True, False], ids=["h11", "httpx-transport"])
async def test_a_2026_subscription_edit_restarts_the_listen_on_either_transport(
    ours: bool,
) -> None:
    """The edit stops the listen's read (our body's own stop, or a scope around httpx's);
    the listener comes back at once with the new filter, on the same session."""
    client = None if ours else httpx.AsyncClient(timeout=None)
    async with MockServer(eras=("stateless",)) as server:
        async with connected(server, client=client, protocol_version="2026-07-28") as [conn]:
            notes = conn.notifications()
            session = conn._runner.session
            with anyio.fail_after(10):
                await conn.subscribe_resource("mock://readme")
                async for note in notes:
                    acked = note.get("params", {}).get("notifications", {})
                    if acked.get("resourceSubscriptions") == ["mock://readme"]:
                        break
                await server.wait_for_streams(1, principal="ann")
            await notes.aclose()
            assert conn._runner.session is session and conn.state is State.READY
    if client is not None:
        await client.aclose()
    assert server.stats().by_rpc_method.get("subscriptions/listen") == 2


@VERSIONS
async def test_an_idle_session_keeps_only_what_it_uses(version: str) -> None:
    """No bound method of its connection per callback, no server-request desk and no
    per-call dicts until they are used, no cancel scope around its held read (the
    transport's sweeper times it out)."""
    async with MockServer() as server, connected(server, protocol_version=version) as [conn]:
        session = conn._runner.session
        assert session is not None
        handlers = gc.get_referents(session._handlers)
        assert not [o for o in handlers if isinstance(o, types.MethodType)]
        assert session._desk is None and session._progress is None
        assert session._inflight is None and session._legacy_calls is None
        assert session._pending is None and session._counts is None
        held = [b for b in alive(ResponseBody) if b.due != math.inf]
        assert len(held) == 1 and held[0]._scope is None
        await conn.call_tool("echo", {"text": "x"})  # a call's dicts go with it
        assert session._inflight is None and session._progress is None
        assert session._pending is None and session.statistics().requests >= 2
