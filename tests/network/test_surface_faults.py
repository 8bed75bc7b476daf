"""The protocol surface under faults, against the mock server over loopback.

A ``list_changed`` sent while the listener was down is not lost; a
re-initialize re-sets the log level and re-subscribes; server-to-client
requests are bounded per connection and cancellable.
"""

from __future__ import annotations

import json
from typing import Any

import anyio
import httpx
import pytest
from surface_client import connected

from mcpconn import (
    JSONRPCError,
    Limits,
    RequestTimeout,
    ServerConfig,
    ServerRequest,
    State,
    Timeouts,
)
from mcpconn._mcp.session import SessionHandlers, open_session
from mcpconn._supervision.server_requests import RequestHandler
from mcpconn.testing import Fault, MockServer, Tool


def listens(server: MockServer) -> int:
    return server.stats().by_rpc_method.get("subscriptions/listen", 0)


@pytest.mark.parametrize("version", ["2025-11-25", "2026-07-28"])
async def test_a_list_changed_sent_while_the_listener_was_down_is_not_lost(version: str) -> None:
    modern = version == "2026-07-28"
    async with MockServer() as server, connected(server, protocol_version=version) as (_, conn):
        notes = conn.notifications()
        with anyio.fail_after(10):
            await server.wait_for_streams(1, principal="ann")
            before = {t["name"] for t in await conn.list_tools()}
            assert "echo" in before
            # the next listener attempt fails, so the change below reaches no open listener
            server.faults.add(Fault.status(503), times=1, method="GET")
            server.faults.add(Fault.status(503), times=1, rpc_method="subscriptions/listen")
            server.close_streams("ann")
            await server.wait_until(lambda s: s.open_streams_by_principal.get("ann", 0) == 0)
            # 2026 has no replay: nobody hears it; a session stream replays it on resume
            assert server.remove_tool("echo") == (0 if modern else 1)
            # wait until the listener is back: 2026 acknowledges, a session stream replays
            wanted = "notifications/subscriptions/acknowledged" if modern else "list_changed"
            async for note in notes:
                if note["method"].endswith(wanted) and (not modern or listens(server) == 3):
                    break  # (2026: not the first ack, from before the outage)
            after = {t["name"] for t in await conn.list_tools()}
        assert after == before - {"echo"}
        await notes.aclose()


async def test_a_reinitialize_resets_the_log_level_and_resubscribes() -> None:
    async with MockServer() as server, connected(server, log_level="warning") as (_, conn):
        with anyio.fail_after(10):
            await conn.subscribe_resource("mock://readme")
            methods = server.stats().by_rpc_method
            assert methods.get("logging/setLevel") == 1  # in force at READY
            assert methods.get("resources/subscribe") == 1
            server.expire_sessions("ann")
            await conn.call_tool("echo", {"text": "after"})  # 404 -> re-initialize
        methods = server.stats().by_rpc_method
        assert methods.get("initialize") == 2
        assert methods.get("logging/setLevel") == 2
        assert methods.get("resources/subscribe") == 2
        await conn.set_log_level("error")
        await conn.unsubscribe_resource("mock://readme")
        methods = server.stats().by_rpc_method
        assert methods.get("logging/setLevel") == 3
        assert methods.get("resources/unsubscribe") == 1


async def test_2026_sends_no_set_level_and_subscribes_through_the_listener() -> None:
    async with MockServer(eras=("stateless",)) as server:
        async with connected(server, protocol_version="2026-07-28", log_level="info") as (_, c):
            notes = c.notifications()
            with anyio.fail_after(10):
                await server.wait_for_streams(1, principal="ann")
                await c.set_log_level("debug")
                await c.subscribe_resource("mock://readme")  # a listener filter, no request
                async for note in notes:
                    acked = note.get("params", {}).get("notifications", {})
                    if acked.get("resourceSubscriptions") == ["mock://readme"]:
                        break
                server.emit("notifications/resources/updated", {"uri": "mock://readme"})
                async for note in notes:
                    if note["method"] == "notifications/resources/updated":
                        break
            await notes.aclose()
    methods = server.stats().by_rpc_method
    assert "logging/setLevel" not in methods
    assert "resources/subscribe" not in methods
    assert methods.get("subscriptions/listen") == 2  # re-listened once, with the new filter


def replies(server: MockServer) -> list[dict[str, Any]]:
    return list(server.client_responses)


def answered(server: MockServer, kind: str) -> int:
    return sum(kind in r for r in replies(server))


async def test_server_requests_are_bounded_per_connection() -> None:
    release, full = anyio.Event(), anyio.Event()
    running: list[ServerRequest] = []
    peak = 0

    async def on_sampling(request: ServerRequest) -> dict[str, Any]:
        nonlocal peak
        running.append(request)
        peak = max(peak, len(running))
        if len(running) == 4:
            full.set()
        await release.wait()
        running.remove(request)
        return {"role": "assistant", "content": {"type": "text", "text": "ok"}, "model": "m"}

    limits = Limits(max_server_requests=4)
    handlers: dict[str, RequestHandler] = {"sampling/createMessage": on_sampling}
    async with (
        MockServer() as server,
        connected(server, handlers=handlers, limits=limits) as (
            sup,
            conn,
        ),
    ):
        notes = conn.notifications()
        with anyio.fail_after(10):
            await server.wait_for_streams(1, principal="ann")
            for i in range(20):
                server.send({"jsonrpc": "2.0", "id": f"s{i}", "method": "sampling/createMessage"})
            server.emit("notifications/marker")  # same stream: all 20 were dispatched before it
            async for note in notes:
                if note["method"] == "notifications/marker":
                    break
            assert sup.statistics().server_requests_refused == 16
            await full.wait()
            # the healthy path still works while the handlers are busy
            assert (await conn.call_tool("echo", {"text": "hi"}))["content"]
            release.set()
            await server.wait_until(lambda _: answered(server, "result") >= 4)
        await notes.aclose()
    assert peak == 4
    assert sup.statistics().server_requests_refused == 16
    refused = [r for r in server.client_responses if "error" in r]
    assert refused and all(r["error"]["code"] == -32000 for r in refused)
    assert len(refused) <= 16


async def test_a_cancelled_server_request_stops_its_handler_and_gets_no_reply() -> None:
    started, stopped = anyio.Event(), anyio.Event()
    seen: list[ServerRequest] = []

    async def on_elicit(request: ServerRequest) -> dict[str, Any]:
        seen.append(request)
        started.set()
        try:
            await anyio.sleep_forever()
        finally:
            stopped.set()
        return {}  # pragma: no cover

    handlers: dict[str, RequestHandler] = {"elicitation/create": on_elicit}
    async with MockServer() as server, connected(server, handlers=handlers) as (_, conn):
        with anyio.fail_after(10):
            await server.wait_for_streams(1, principal="ann")
            server.send({"jsonrpc": "2.0", "id": "e1", "method": "elicitation/create"})
            await started.wait()
            server.emit("notifications/cancelled", {"requestId": "e1", "reason": "user left"})
            await stopped.wait()
            assert seen[0].cancelled.is_set()
            assert seen[0].context is None  # it came on the listener, not a call's stream
            # a ping after it is answered: the cancelled one never is
            server.send({"jsonrpc": "2.0", "id": "p1", "method": "ping"})
            await server.wait_until(lambda _: any(r.get("id") == "p1" for r in replies(server)))
        assert not any(r.get("id") == "e1" for r in server.client_responses)
        assert conn.state is State.READY


def modern_error(code: int) -> Fault:
    body = json.dumps({"jsonrpc": "2.0", "id": None, "error": {"code": code, "message": "no"}})
    return Fault.status(400, headers={"content-type": "application/json"}, body=body.encode())


@pytest.mark.parametrize("code", [-32020, -32021])
async def test_a_modern_error_to_discover_is_corrected_or_surfaced_never_a_fallback(
    code: int,
) -> None:
    async with MockServer(require_auth=False) as server, httpx.AsyncClient() as client:
        server.faults.add(modern_error(code), times=1, rpc_method="server/discover")
        config = ServerConfig("mock", server.url, timeouts=Timeouts(request=5.0))
        handlers = SessionHandlers(lambda note: None)
        with anyio.fail_after(10):
            if code == -32020:  # HeaderMismatch: retried once, still modern
                async with open_session(client, config, auth=None, handlers=handlers) as session:
                    assert session.era == "stateless"
            else:  # a capability we lack: the caller's error, not "not this era"
                with pytest.raises(JSONRPCError) as info:
                    async with open_session(client, config, auth=None, handlers=handlers):
                        pass  # pragma: no cover
                assert info.value.code == code
    methods = server.stats().by_rpc_method
    assert methods.get("server/discover") == 2 if code == -32020 else 1
    assert "initialize" not in methods


async def test_the_per_server_inflight_cap_bounds_without_serialising() -> None:
    active, peak, full, release = 0, 0, anyio.Event(), anyio.Event()

    async def hold(arguments: dict[str, Any], ctx: Any) -> dict[str, Any]:
        nonlocal active, peak
        active += 1
        peak = max(peak, active)
        if active == 2:
            full.set()
        await release.wait()
        active -= 1
        return {"content": [{"type": "text", "text": "held"}]}

    limits = Limits(max_inflight=2)
    async with (
        MockServer(tools=[Tool("hold", hold)]) as server,
        connected(server, limits=limits) as (sup, conn),
    ):
        results: list[str] = []

        async def call() -> None:
            result = await conn.call_tool("hold", {})
            results.append(result["content"][0]["text"])

        with anyio.fail_after(10):
            async with anyio.create_task_group() as tg:
                for _ in range(5):
                    tg.start_soon(call)
                await full.wait()  # two run at once: a cap, not a queue of one
                assert sup.statistics().servers["mock"].inflight == 2
                with pytest.raises(RequestTimeout):  # a waiter gives up within its timeout
                    await conn.call_tool("hold", {}, timeout=0.2)
                release.set()
        assert results == ["held"] * 5
        assert peak == 2
        [health] = sup.statistics().servers["mock"].health
        assert (health.principal, health.state, health.strikes) == ("ann", State.READY, 0)
        assert health.reason


@pytest.mark.parametrize("version", ["2025-11-25", "2026-07-28"])
async def test_notify_roots_changed_is_sent_in_session_eras_only(version: str) -> None:
    async with MockServer() as server, connected(server, protocol_version=version) as (_, conn):
        with anyio.fail_after(10):
            await conn.notify_roots_changed()
            await conn.call_tool("echo", {"text": "after"})  # ordered after the notification
    sent = server.stats().by_rpc_method.get("notifications/roots/list_changed", 0)
    assert sent == (1 if version == "2025-11-25" else 0)


def test_config_and_level_are_checked() -> None:
    with pytest.raises(ValueError, match="log_level"):
        ServerConfig("s", "http://127.0.0.1:1/mcp", log_level="loud")
    with pytest.raises(ValueError, match="input_required"):
        ServerConfig("s", "http://127.0.0.1:1/mcp", input_required="ask")  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="max_input_rounds"):
        ServerConfig("s", "http://127.0.0.1:1/mcp", max_input_rounds=-1)


async def test_a_ping_flood_whose_replies_stall_holds_a_bounded_number_of_sockets() -> None:
    limits = Limits(max_server_requests=4)
    timeouts = Timeouts(reply=0.5)
    async with (
        MockServer() as server,
        connected(server, limits=limits, timeouts=timeouts) as (sup, conn),
    ):
        notes = conn.notifications()
        with anyio.fail_after(20):
            await server.wait_for_streams(1, principal="ann")
            baseline = server.stats().open_connections
            stall = server.faults.add(Fault.stall(), method="POST")  # replies never acknowledged
            for i in range(200):
                server.send({"jsonrpc": "2.0", "id": f"p{i}", "method": "ping"})
            server.emit("notifications/marker")
            async for note in notes:
                if note["method"] == "notifications/marker":
                    break
            # at most the answered and the refusals in flight: never one socket per ping
            assert server.stats().open_connections <= baseline + 2 * limits.max_server_requests
            assert sup.statistics().server_requests_refused >= 200 - limits.max_server_requests
            # every stalled reply gives up after timeouts.reply: the sockets come back
            await server.wait_until(lambda s: s.open_connections <= baseline)
            server.faults.remove(stall)
            assert (await conn.call_tool("echo", {"text": "still fine"}))["content"]
        await notes.aclose()
