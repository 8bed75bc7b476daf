"""The opening handshake's requests run in the handshake's one scope, with none of their own.

`Opening._open_era` bounds the whole handshake by ``timeouts.request`` in one
cancel scope; its requests (``server/discover``, or ``initialize`` and what
follows it) add no scope (nor loop timer) each, since nobody closes a session
still opening: a drop goes through `open_session`'s scope. So the handshake's
timeout, a drop while it waits, and a later call's own scope must all still hold.
"""

from __future__ import annotations

import gc
from typing import Any

import anyio
import httpx
import pytest

from mcpconn import ConnectionClosed, RequestTimeout, ServerConfig, Timeouts
from mcpconn._core import jsonrpc as _jsonrpc
from mcpconn._http import make_client
from mcpconn._mcp.session import SessionHandlers, open_session
from mcpconn.testing import Fault, MockServer

ERAS = {
    # method held by the server, the config that makes the session send it first
    "server/discover": {"protocol_version": "2026-07-28"},
    "initialize": {"transport": "streamable-http", "protocol_version": "2025-11-25"},
}


def config(server: MockServer, method: str, request: float) -> ServerConfig:
    kwargs: dict[str, Any] = ERAS[method]
    return ServerConfig("mock", server.url, timeouts=Timeouts(request=request), **kwargs)


def held_opening(
    server: MockServer, client: httpx.AsyncClient, method: str, request: float
) -> open_session:
    """An opening whose first handshake request ``method`` the server takes, never answering."""
    server.faults.add(Fault.delay(30, late_answer=True), times=1, rpc_method=method)
    handlers = SessionHandlers(lambda note: None)
    return open_session(client, config(server, method, request), auth=None, handlers=handlers)


@pytest.mark.parametrize("method", list(ERAS))
async def test_a_held_handshake_request_has_no_scope_and_a_drop_stops_it(method: str) -> None:
    async with MockServer(require_auth=False) as server, httpx.AsyncClient() as client:
        opening = held_opening(server, client, method, 30)
        failed: list[BaseException] = []

        async def enter() -> None:
            try:
                async with opening:
                    pass  # pragma: no cover (the server never answers in time)
            except ConnectionClosed as exc:
                failed.append(exc)

        with anyio.fail_after(10):
            async with anyio.create_task_group() as tg:
                tg.start_soon(enter)
                await server.wait_until(lambda s: s.by_rpc_method.get(method) == 1)
                session = opening.session
                assert session is not None
                assert session._pending is not None and len(session._pending) == 1
                assert session._inflight is None  # the handshake's scope bounds it
                opening.drop()
        assert len(failed) == 1 and "dropped" in str(failed[0])


async def test_a_waiting_2026_request_keeps_no_request_object() -> None:
    """A burst holds a thousand requests waiting for their answers: what each waits with
    is its encoded body, not the request objects it was made from (nor its stamped copy)."""

    def requests_alive() -> int:
        gc.collect()
        return sum(
            1
            for o in gc.get_objects()
            if isinstance(o, _jsonrpc.Request) and o.method == "server/discover"
        )

    async with MockServer(require_auth=False) as server, make_client() as client:
        opening = held_opening(server, client, "server/discover", 30)

        async def enter() -> None:
            with pytest.raises(ConnectionClosed):
                async with opening:
                    pass  # pragma: no cover (dropped while it waits)

        with anyio.fail_after(10):
            async with anyio.create_task_group() as tg:
                tg.start_soon(enter)
                await server.wait_until(lambda s: s.by_rpc_method.get("server/discover") == 1)
                assert requests_alive() == 0
                opening.drop()


@pytest.mark.parametrize("method", list(ERAS))
async def test_a_handshake_request_never_answered_times_out_at_timeouts_request(
    method: str,
) -> None:
    async with MockServer(require_auth=False) as server, httpx.AsyncClient() as client:
        with anyio.fail_after(10), pytest.raises(RequestTimeout, match="handshake"):
            async with held_opening(server, client, method, 0.3):
                pass  # pragma: no cover
        assert server.stats().by_rpc_method.get(method) == 1  # sent once, then given up


async def test_a_call_after_the_handshake_is_in_a_scope_of_its_own() -> None:
    async with MockServer(require_auth=False) as server, httpx.AsyncClient() as client:
        server.faults.add(Fault.delay(30, late_answer=True), times=1, rpc_method="tools/list")
        cfg = config(server, "server/discover", 30)
        with anyio.fail_after(10):
            async with open_session(
                client, cfg, auth=None, handlers=SessionHandlers(lambda note: None)
            ) as session:
                async with anyio.create_task_group() as tg:
                    tg.start_soon(session.request, "tools/list")
                    await server.wait_until(lambda s: s.by_rpc_method.get("tools/list") == 1)
                    assert session._inflight is not None and len(session._inflight) == 1
                    tg.cancel_scope.cancel()
                assert session._inflight is None
