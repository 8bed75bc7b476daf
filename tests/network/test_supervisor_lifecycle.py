"""Aggregator lifecycle: replacement, idle reaping, audiences, events, probes, keep-alive."""

from __future__ import annotations

from typing import Any

import anyio
import pytest

import mcpconn
from mcpconn import Backoff, ServerConfig, State, StateChange, Supervisor, TokenSource
from mcpconn.testing import Fault, JWTProvider, MockServer

FAST = Backoff(initial=0.01, max_delay=0.05, auth_attempts=1)
V = "2025-11-25"


def config(server: MockServer, name: str = "mock", **kwargs: Any) -> ServerConfig:
    kwargs.setdefault("protocol_version", V)
    return ServerConfig(name, server.url, **kwargs)


async def test_replacing_a_connection_lets_calls_in_flight_finish() -> None:
    async with MockServer() as server:
        async with TokenSource(JWTProvider(server.issuer)) as tokens:
            async with Supervisor(tokens, backoff=FAST) as sup:
                old = await sup.connect(config(server, listen=False), "alice")
                with anyio.fail_after(10):
                    await old.wait_for(State.READY)
                    results: list[dict[str, Any]] = []

                    async def slow_call() -> None:
                        results.append(await old.call_tool("slow", {"seconds": 0.3}))

                    async with anyio.create_task_group() as tg:
                        tg.start_soon(slow_call)
                        await server.wait_until(lambda s: s.by_rpc_method.get("tools/call", 0) > 0)
                        new = await sup.connect(
                            config(server, listen=False, headers={"x-v": "2"}), "alice"
                        )
                        assert new is not old
                        assert sup.connections(principal="alice") == [new]
                    await old.wait_for(State.CLOSED)
                assert len(results) == 1 and not results[0].get("isError")
                assert (
                    await sup.connect(config(server, listen=False, headers={"x-v": "2"}), "alice")
                    is new
                )


async def test_idle_connections_are_reaped_but_busy_ones_are_kept() -> None:
    async with MockServer() as server:
        async with TokenSource(JWTProvider(server.issuer)) as tokens:
            async with Supervisor(tokens, backoff=FAST, idle_timeout=0.2) as sup:
                idle = await sup.connect(config(server), "idle")
                watched = await sup.connect(config(server), "watched")
                notes = watched.notifications()  # a subscriber keeps it alive
                with anyio.fail_after(10):
                    await idle.wait_for(State.CLOSED)
                assert watched.state is State.READY
                await notes.aclose()


async def test_a_per_server_audience_gets_its_own_token() -> None:
    requests: list[mcpconn.TokenRequest] = []
    async with MockServer() as server:
        provider = JWTProvider(server.issuer)

        async def recording(request: mcpconn.TokenRequest) -> str:
            requests.append(request)
            return await provider(request)

        async with TokenSource(recording) as tokens, Supervisor(tokens) as sup:
            plain = await sup.connect(config(server, "plain"), "alice")
            exchanged = await sup.connect(config(server, "exchanged", audience="k8s"), "alice")
            with anyio.fail_after(10):
                await plain.wait_for(State.READY)
                await exchanged.wait_for(State.READY)
    assert {r.audience for r in requests} == {None, "k8s"}
    assert all(r.principal == "alice" for r in requests)


async def test_forward_token_false_sends_no_token() -> None:
    async with MockServer(require_auth=False) as server:
        async with TokenSource(JWTProvider(server.issuer)) as tokens, Supervisor(tokens) as sup:
            conn = await sup.connect(config(server, forward_token=False), "alice")
            with anyio.fail_after(10):
                await conn.call_tool("echo", {"text": "anon"})
            assert tokens.statistics().provider_calls == 0
        assert server.records and not any(r.token_present for r in server.records)


async def test_state_changes_are_published_with_reasons() -> None:
    async with MockServer() as server:
        server.revoke("bob")
        async with TokenSource(JWTProvider(server.issuer)) as tokens:
            async with Supervisor(tokens, backoff=FAST) as sup:
                changes = sup.state_changes()
                conn = await sup.connect(config(server), "bob")
                seen: list[StateChange] = []
                with anyio.fail_after(10):
                    async for change in changes:
                        seen.append(change)
                        if change.new is State.NEEDS_REAUTH:
                            break
                await changes.aclose()
                assert conn.state is State.NEEDS_REAUTH
    assert seen[0].server == "mock" and seen[0].principal == "bob"
    assert [c.new for c in seen] == [State.BACKOFF, State.CONNECTING, State.NEEDS_REAUTH]
    assert "Unauthorized" in seen[-1].reason
    assert all("eyJ" not in repr(c) for c in seen)


async def test_the_optional_probe_rechecks_a_parked_connection() -> None:
    async with MockServer() as server:
        server.revoke("carol")
        async with TokenSource(JWTProvider(server.issuer)) as tokens:
            async with Supervisor(tokens, backoff=FAST, probe_interval=0.2) as sup:
                conn = await sup.connect(config(server), "carol")
                with anyio.fail_after(10):
                    await conn.wait_for(State.NEEDS_REAUTH)
                    server.restore("carol")  # fixed on the server side, nobody published
                    await conn.wait_for(State.READY)


async def test_a_failing_keepalive_ping_reconnects() -> None:
    async with MockServer() as server:
        async with TokenSource(JWTProvider(server.issuer)) as tokens:
            async with Supervisor(tokens, backoff=FAST) as sup:
                conn = await sup.connect(config(server, listen=False, ping_interval=0.05), "dan")
                with anyio.fail_after(10):
                    await conn.wait_for(State.READY)
                    await server.wait_until(lambda s: s.by_rpc_method.get("ping", 0) >= 2)
                    server.faults.add(Fault.status(503), times=1)
                    await conn.wait_for(State.BACKOFF)
                    await conn.wait_for(State.READY)
                assert isinstance(conn.last_error, mcpconn.RateLimited)


async def test_many_connections_start_staggered_and_all_become_ready() -> None:
    async with MockServer() as server:
        async with TokenSource(JWTProvider(server.issuer)) as tokens:
            storm = mcpconn.StormControl(connect_rate=200, connect_burst=10)
            async with Supervisor(tokens, storm_control=storm) as sup:
                conns = [await sup.connect(config(server), f"u{i}") for i in range(30)]
                with anyio.fail_after(15):
                    for conn in conns:
                        await conn.wait_for(State.READY)
                assert sup.statistics().by_state[State.READY] == 30


async def test_connect_after_close_is_refused() -> None:
    async with MockServer() as server:
        async with TokenSource(JWTProvider(server.issuer)) as tokens:
            sup = Supervisor(tokens)
            async with sup:
                pass
            with pytest.raises(mcpconn.ConnectionClosed):
                await sup.connect(config(server), "late")
