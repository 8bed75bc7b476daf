"""2026 reconnects stand on a fresh ``server/discover`` answer, proven by the first listen.

A reconnect must still show, before READY, that the server is reachable and
takes our token: the ``subscriptions/listen`` it sends next anyway is that
proof. Reconnects here are forced by a call refused with 401 twice (past the
auth layer's own retry), which drops the session and connects again.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

import anyio
import pytest

from mcpconn import (
    Backoff,
    Connection,
    MCPConnError,
    ServerConfig,
    State,
    Supervisor,
    TokenSource,
)
from mcpconn._core.discovery import MAX_DISCOVERY_TTL, Discovery, discovery_of
from mcpconn._mcp.handshake import hello_of
from mcpconn._mcp.transports.eras import EraCache
from mcpconn._supervision.notifications import Subscription
from mcpconn._supervision.stats import StateChange
from mcpconn.testing import Fault, JWTProvider, MockServer

FAST = Backoff(initial=0.05, max_delay=0.1)
MINUTE_MS = 60_000


@asynccontextmanager
async def ready(
    server: MockServer, **options: Any
) -> AsyncIterator[tuple[Connection, Subscription[StateChange]]]:
    config = ServerConfig(
        "mock", server.url, protocol_version="2026-07-28", backoff=FAST, **options
    )
    async with Supervisor(TokenSource(JWTProvider(server.issuer))) as sup:
        conn = await sup.connect(config, "ann")
        with anyio.fail_after(10):
            await conn.wait_for(State.READY)
        changes = sup.state_changes()  # from the first READY on
        yield conn, changes
        await changes.aclose()


def count(server: MockServer, method: str) -> int:
    return server.stats().by_rpc_method.get(method, 0)


async def refused_call(server: MockServer, conn: Connection) -> None:
    """A call the server refuses with 401 twice: the connection reconnects."""
    server.faults.add(Fault.unauthorized(), times=2, rpc_method="tools/call")
    with pytest.raises(MCPConnError):
        await conn.call_tool("echo", {"text": "refused"})


async def listening(server: MockServer, principal: str = "ann") -> None:
    """Wait until the listener's ``subscriptions/listen`` reached the server and a stream
    is open: a call's own response stream (the discover's) counts as open too, for as
    long as the server is still writing it, so the count of streams alone is no proof."""
    await server.wait_until(lambda s: s.by_rpc_method.get("subscriptions/listen", 0) >= 1)
    await server.wait_for_streams(1, principal=principal)


async def next_ready(server: MockServer, changes: Subscription[StateChange]) -> int:
    """Wait for the next READY; how many ``subscriptions/listen`` the server had by then."""
    async for change in changes:
        if change.new is State.READY and change.old is not State.READY:
            return count(server, "subscriptions/listen")
    raise AssertionError("no READY")  # pragma: no cover


async def test_a_reconnect_reuses_a_fresh_discover_after_its_listen_was_accepted() -> None:
    async with MockServer(eras=("stateless",), discover_ttl_ms=MINUTE_MS) as server:
        async with ready(server) as (conn, changes):
            with anyio.fail_after(10):
                await listening(server)
                assert count(server, "server/discover") == 1
                await refused_call(server, conn)
                # READY came only once the reconnect's listen was accepted
                assert await next_ready(server, changes) == 2
                assert (await conn.call_tool("echo", {"text": "hi"}))["content"]
                await server.wait_for_streams(1, principal="ann")
            assert count(server, "server/discover") == 1  # not asked again
            assert count(server, "subscriptions/listen") == 2  # the proof is the listener
            assert conn.server_info is not None and conn.server_info["name"] == "mcpconn-mock"


@pytest.mark.parametrize(("ttl_ms", "listen"), [(0, True), (MINUTE_MS, False)])
async def test_discover_is_asked_again_when_stale_or_nothing_else_proves(
    ttl_ms: int, listen: bool
) -> None:
    async with MockServer(eras=("stateless",), discover_ttl_ms=ttl_ms) as server:
        async with ready(server, listen=listen) as (conn, changes):
            with anyio.fail_after(10):
                await refused_call(server, conn)
                await next_ready(server, changes)
            assert count(server, "server/discover") == 2


async def test_a_refused_token_never_reaches_ready_on_a_cached_discover() -> None:
    async with MockServer(eras=("stateless",), discover_ttl_ms=MINUTE_MS) as server:
        async with ready(server) as (conn, changes):
            with anyio.fail_after(10):
                await listening(server)
                server.revoke("ann")
                await refused_call(server, conn)
                async for change in changes:
                    assert change.new is not State.READY
                    if change.new is State.NEEDS_REAUTH:
                        break
            assert count(server, "server/discover") == 1  # every attempt was one listen


async def test_a_failed_proof_falls_back_to_discover() -> None:
    async with MockServer(eras=("stateless",), discover_ttl_ms=MINUTE_MS) as server:
        async with ready(server) as (conn, changes):
            with anyio.fail_after(10):
                await listening(server)
                server.faults.add(Fault.status(503), times=1, rpc_method="subscriptions/listen")
                await refused_call(server, conn)
                await next_ready(server, changes)
                assert count(server, "server/discover") == 2
                await server.wait_for_streams(1, principal="ann")  # and it listens again


@pytest.mark.parametrize(("scope", "discovers"), [("public", 1), ("private", 2)])
async def test_a_public_answer_opens_another_principal_a_private_one_does_not(
    scope: str, discovers: int
) -> None:
    async with MockServer(
        eras=("stateless",), discover_ttl_ms=MINUTE_MS, discover_cache_scope=scope
    ) as server:
        config = ServerConfig("mock", server.url, protocol_version="2026-07-28", backoff=FAST)
        async with Supervisor(TokenSource(JWTProvider(server.issuer))) as sup:
            with anyio.fail_after(10):
                ann = await sup.connect(config, "ann")
                await ann.wait_for(State.READY)
                bob = await sup.connect(config, "bob")
                await bob.wait_for(State.READY)
                await server.wait_for_streams(1, principal="bob")
            assert count(server, "server/discover") == discovers
            assert bob.server_info is not None and bob.server_info["name"] == "mcpconn-mock"


def test_the_era_cache_keeps_discoveries_per_principal_unless_public() -> None:
    cache = EraCache()
    url = "https://mcp.example/mcp"
    private = Discovery("2026-07-28", {"ttlMs": 1000}, expires_at=10.0)
    cache.keep_discovery(url, "ann", private)
    assert cache.discovery(url, "ann", now=9.0) is private
    assert cache.discovery(url, "bob", now=9.0) is None  # private to ann
    cache.keep_discovery(url, None, private)  # private to nobody: not kept
    assert cache.discovery(url, None, now=0.0) is None
    public = Discovery("2026-07-28", {"cacheScope": "public"}, expires_at=10.0, public=True)
    cache.keep_discovery(url, "ann", public)
    assert cache.discovery(url, "bob", now=9.0) is public
    cache.forget_discovery(url, "bob")  # bob's own and the public one
    assert cache.discovery(url, "bob", now=9.0) is None
    assert cache.discovery(url, "ann", now=9.0) is private
    cache.forget(url)  # an era verdict gone takes its discoveries along
    assert cache.discovery(url, "ann", now=9.0) is None
    cache.keep_discovery(url, "ann", private)
    assert cache.discovery(url, "ann", now=10.0) is None  # expired, and dropped:
    assert cache.discovery(url, "ann", now=9.0) is None


@pytest.mark.parametrize("ttl", [0, -5, "60000", True, 1.5, 10**400, None])
def test_a_discover_answer_without_a_usable_ttl_is_not_kept(ttl: object) -> None:
    assert discovery_of("2026-07-28", {"ttlMs": ttl}, now=0.0) is None


def test_a_kept_discover_answer_is_bounded_in_time_and_size() -> None:
    info = {"name": "s", "version": "1"}
    result = {
        "ttlMs": 10**15,  # decades: capped
        "cacheScope": "public",
        "capabilities": {"tools": {}},
        "instructions": "hi",
        "padding": "x" * 10_000,
        "_meta": {"io.modelcontextprotocol/serverInfo": info, "other": "x" * 10_000},
    }
    found = discovery_of("2026-07-28", result, now=100.0)
    assert found is not None and found.public
    assert found.expires_at == 100.0 + MAX_DISCOVERY_TTL
    assert found.result == {
        "capabilities": {"tools": {}},
        "instructions": "hi",
        "_meta": {"io.modelcontextprotocol/serverInfo": info},
    }
    assert hello_of(found.version, found.result).server_info == info
