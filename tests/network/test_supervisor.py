"""The supervisor end to end over loopback, against the project's mock server.

These are the seed's scenarios: an idle gap past token expiry, a principal the
server rejects, an outage, and shutdown with connections in every state.
"""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

import anyio
import pytest

import mcpconn
from mcpconn import Backoff, ServerConfig, State, Supervisor, TokenSource
from mcpconn.testing import Fault, JWTProvider, MockServer

FAST = Backoff(initial=0.01, max_delay=0.05, auth_attempts=2)


@asynccontextmanager
async def running(
    server: MockServer,
    provider: Any,
    *,
    backoff: Backoff = FAST,
    source_kwargs: dict[str, Any] | None = None,
    **sup_kwargs: Any,
) -> AsyncIterator[tuple[TokenSource, Supervisor]]:
    async with (
        TokenSource(provider, **(source_kwargs or {})) as tokens,
        Supervisor(tokens, backoff=backoff, **sup_kwargs) as sup,
    ):
        yield tokens, sup


def config(server: MockServer, **kwargs: Any) -> ServerConfig:
    kwargs.setdefault("transport", "streamable-http")
    kwargs.setdefault("protocol_version", "2025-11-25")
    return ServerConfig("mock", server.url, **kwargs)


async def test_the_seed_idle_gap_past_expiry_never_sends_an_expired_token() -> None:
    async with MockServer() as server:
        # JWT exp is whole seconds: a 1.5 s token has 0.5-1.5 s left when it arrives
        provider = JWTProvider(server.issuer, lifetime=1.5)
        async with running(server, provider, source_kwargs={"margin": 0.1}) as (_, sup):
            conn = await sup.connect(config(server, listen=False), "alice")
            with anyio.fail_after(10):
                await conn.wait_for(State.READY)
                assert (await conn.call_tool("echo", {"text": "before"}))["content"]
                calls_before = provider.calls["alice"]
                # idle past expiry: wait until the server's own clock says the token is dead
                await anyio.sleep(1.7)  # the idle gap of the seed, scaled down
                result = await conn.call_tool("echo", {"text": "after"})
            assert "after" in str(result)
            assert provider.calls["alice"] > calls_before  # refreshed before it was sent
            stats = server.stats()
            assert stats.expired_tokens_seen == 0
            assert stats.unauthorized_total == 0


async def test_a_rejected_principal_parks_silently_and_resumes_on_publish() -> None:
    async with MockServer() as server:
        provider = JWTProvider(server.issuer, lifetime=60)
        parked: list[mcpconn.ReauthRequired] = []
        server.revoke("bob")
        async with running(server, provider, on_reauth_required=parked.append) as (tokens, sup):
            conn = await sup.connect(config(server), "bob")
            with anyio.fail_after(10):
                await conn.wait_for(State.NEEDS_REAUTH)
            seen = server.stats().by_principal.get("bob", 0)
            # 1 + 1 forced retry + auth_attempts, nothing more
            assert seen == 1 + 1 + FAST.auth_attempts
            with pytest.raises(mcpconn.ReauthRequired) as info:
                await conn.call_tool("echo", {"text": "x"})
            assert info.value.principal == "bob" and info.value.server == "mock"
            assert info.value.challenge is not None
            assert info.value.challenge.error == "invalid_token"
            # silence: with a 10 ms backoff a retry loop would make dozens of requests here
            await anyio.sleep(0.5)
            assert server.stats().by_principal.get("bob", 0) == seen
            assert len(parked) == 1
            # the user logs in again
            server.restore("bob")
            tokens.publish("bob", server.mint("bob"))
            with anyio.fail_after(5):
                await conn.wait_for(State.READY)
            assert "hi" in str(await conn.call_tool("echo", {"text": "hi"}))
            stats = sup.statistics()
            assert stats.parks == 1 and stats.by_state[State.READY] == 1


async def test_every_forced_refresh_replaces_the_token_the_server_refused() -> None:
    """The refused token and the challenge come from the 401's error, not the auth object."""
    async with MockServer() as server:
        jwt_provider = JWTProvider(server.issuer, lifetime=60)
        requests: list[mcpconn.TokenRequest] = []

        async def provider(request: mcpconn.TokenRequest) -> Any:
            requests.append(request)
            return await jwt_provider(request)

        server.revoke("bob")
        async with running(server, provider) as (_, sup):
            conn = await sup.connect(config(server, listen=False), "bob")
            with anyio.fail_after(10):
                await conn.wait_for(State.NEEDS_REAUTH)
    forced = [r for r in requests if r.force]
    # the auth flow's one refresh, then one per auth attempt: each replaced the token
    # just refused (compare-and-refresh with a stale token would skip the provider)
    assert len(forced) == 1 + FAST.auth_attempts
    assert all(r.challenge is not None and r.challenge.error == "invalid_token" for r in forced)
    assert isinstance(conn.last_error, mcpconn.Unauthorized)
    assert conn.last_error.rejected is not None


async def test_insufficient_scope_parks_at_once() -> None:
    async with MockServer() as server:
        server.faults.add(Fault.insufficient_scope(), times=1)
        async with running(server, JWTProvider(server.issuer)) as (_, sup):
            conn = await sup.connect(config(server), "carol")
            with anyio.fail_after(10):
                await conn.wait_for(State.NEEDS_REAUTH)
            assert server.stats().by_principal.get("carol", 0) == 1
            assert isinstance(conn.last_error, mcpconn.Forbidden)


async def test_transient_outage_backs_off_without_touching_auth_and_recovers() -> None:
    async with MockServer() as server:
        server.faults.add(Fault.status(503, retry_after=0.05), times=3)
        server.faults.add(Fault.status(502), times=2)
        provider = JWTProvider(server.issuer)
        async with running(server, provider) as (_, sup):
            conn = await sup.connect(config(server, listen=False), "dave")
            changes = sup.state_changes()
            with anyio.fail_after(10):
                await conn.wait_for(State.READY)
            assert provider.forced_calls["dave"] == 0  # no auth state touched
            assert sup.statistics().unauthorized == 0
            assert sup.statistics().transient_failures == 5
            assert "ok" in str(await conn.call_tool("echo", {"text": "ok"}))
            await changes.aclose()


@pytest.mark.parametrize("version", ["2025-11-25", "2026-07-28"])
async def test_a_clean_stream_end_resumes_the_listener(version: str) -> None:
    async with MockServer(sse_retry=0.05) as server:
        async with running(server, JWTProvider(server.issuer)) as (_, sup):
            conn = await sup.connect(config(server, protocol_version=version), "erin")
            notes = conn.notifications()
            with anyio.fail_after(10):
                await conn.wait_for(State.READY)
                await server.wait_for_listeners(1, principal="erin")
                before = server.stats().requests_total
                assert server.close_streams("erin") == 1
                await server.wait_until(lambda s: s.requests_total > before)
                await server.wait_for_listeners(1, principal="erin")
                assert server.emit("notifications/message", {"data": "after resume"}) == 1
                async for note in notes:
                    if note.get("method") == "notifications/message":
                        break
            assert note["params"]["data"] == "after resume"
            assert conn.state is State.READY
            await notes.aclose()


async def test_one_failing_server_does_not_disturb_another() -> None:
    async with MockServer() as good, MockServer() as bad:
        bad.faults.add(Fault.status(500), times=10_000)
        async with running(good, JWTProvider(good.issuer)) as (_, sup):
            bad_conn = await sup.connect(ServerConfig("bad", bad.url), "frank")
            good_conn = await sup.connect(config(good), "frank")
            with anyio.fail_after(10):
                await good_conn.wait_for(State.READY)
                await bad.wait_for_requests(3)
            assert bad_conn.state in (State.BACKOFF, State.CONNECTING)
            assert "fine" in str(await good_conn.call_tool("echo", {"text": "fine"}))


async def test_calls_wait_for_a_connecting_connection_within_their_timeout() -> None:
    async with MockServer() as server:
        server.faults.add(Fault.status(503, retry_after=0.2), times=1)
        async with running(server, JWTProvider(server.issuer)) as (_, sup):
            conn = await sup.connect(config(server, listen=False), "gina")
            with anyio.fail_after(10):
                result = await conn.call_tool("echo", {"text": "waited"}, timeout=5)
            assert "waited" in str(result)
            server.faults.add(Fault.delay(2.0), times=1)
            with pytest.raises(mcpconn.RequestTimeout):
                await conn.call_tool("echo", {"text": "slow"}, timeout=0.1)


async def test_tools_are_cached_and_invalidated_by_list_changed() -> None:
    async with MockServer(extra_tools=120, page_size=50) as server:
        async with running(server, JWTProvider(server.issuer)) as (_, sup):
            conn = await sup.connect(config(server), "hank")
            notes = conn.notifications()
            with anyio.fail_after(10):
                tools = await conn.list_tools()
                assert len(tools) >= 120  # three pages, followed
                before = server.stats().by_rpc_method.get("tools/list", 0)
                assert await conn.list_tools() == tools
                assert server.stats().by_rpc_method.get("tools/list", 0) == before
                await server.wait_for_streams(1, principal="hank")
                server.remove_tool("tool_0000")
                note = await notes.__anext__()
                assert note["method"] == "notifications/tools/list_changed"
                fresh = await conn.list_tools()
            assert len(fresh) == len(tools) - 1
            await notes.aclose()


async def test_shutdown_with_connections_in_every_state_is_bounded(caplog: Any) -> None:
    caplog.set_level(logging.DEBUG, logger="mcpconn")
    async with MockServer() as server, MockServer() as down:
        down.faults.add(Fault.status(503), times=10**6)
        server.revoke("parked")
        with anyio.fail_after(15):
            async with running(server, JWTProvider(server.issuer)) as (_, sup):
                ready = [await sup.connect(config(server), f"user{i}") for i in range(20)]
                parked = await sup.connect(config(server), "parked")
                backing_off = await sup.connect(ServerConfig("down", down.url), "x")
                for conn in ready:
                    await conn.wait_for(State.READY)
                await parked.wait_for(State.NEEDS_REAUTH)
                await down.wait_for_requests(2)
                assert backing_off.state in (State.BACKOFF, State.CONNECTING)
            assert all(c.state is State.CLOSED for c in [*ready, parked, backing_off])
        # every READY session got its DELETE
        assert server.stats().by_http_method.get("DELETE", 0) == 20
        with pytest.raises(mcpconn.ConnectionClosed):
            await ready[0].call_tool("echo", {})


@pytest.mark.parametrize("closing", ["server", "principal"])
async def test_closing_a_server_or_a_principal_closes_only_its_connections(closing: str) -> None:
    async with MockServer() as server, running(server, JWTProvider(server.issuer)) as (_, sup):
        if closing == "server":
            gone = await sup.connect(ServerConfig("gone", server.url, listen=False), "ann")
            kept = await sup.connect(config(server), "ann")
        else:
            gone = await sup.connect(config(server), "ann")
            kept = await sup.connect(config(server), "ben")
        with anyio.fail_after(10):
            await gone.wait_for(State.READY)
            await kept.wait_for(State.READY)
            if closing == "server":
                await sup.close_server("gone")
            else:
                await sup.close_principal("ann")
        assert gone.state is State.CLOSED and kept.state is State.READY
        closed = {"server": {"server": "gone"}, "principal": {"principal": "ann"}}[closing]
        assert sup.connections(**closed) == []
        assert sup.connections(principal=kept.principal) == [kept]
        assert await sup.connect(config(server), kept.principal) is kept


async def test_resources_and_prompts_are_listed_and_cached() -> None:
    async with MockServer() as server, running(server, JWTProvider(server.issuer)) as (_, sup):
        conn = await sup.connect(config(server, listen=False), "ann")  # only our requests
        with anyio.fail_after(10):
            resources = await conn.list_resources()
            prompts = await conn.list_prompts()
            assert [r["uri"] for r in resources] == ["mock://readme"]
            assert [p["name"] for p in prompts] == ["greet"]
            before = server.stats().requests_total
            assert await conn.list_resources() == resources  # from the cache
            assert await conn.list_prompts() == prompts
            assert server.stats().requests_total == before
            assert await conn.list_prompts(refresh=True) == prompts
            assert server.stats().requests_total == before + 1


async def test_connections_of_one_server_share_one_context_and_another_server_its_own() -> None:
    async with MockServer() as server:
        async with running(server, JWTProvider(server.issuer)) as (_, sup):
            alice = await sup.connect(config(server, listen=False), "alice")
            bob = await sup.connect(config(server, listen=False), "bob")
            other = await sup.connect(
                ServerConfig("other", server.url, transport="streamable-http", listen=False),
                "alice",
            )
            with anyio.fail_after(10):
                for conn in (alice, bob, other):
                    await conn.wait_for(State.READY)
                    assert "hi" in str(await conn.call_tool("echo", {"text": "hi"}))
            assert alice._ctx is bob._ctx  # one shared context, not a copy per connection
            assert other._ctx is not alice._ctx
            assert other._ctx.retry_budget is not alice._ctx.retry_budget  # per server name
