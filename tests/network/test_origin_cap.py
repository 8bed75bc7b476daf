"""`Supervisor(max_connections_per_origin=)`: one origin never gets more sockets than that."""

from __future__ import annotations

import math
from typing import Any

import anyio
import httpx
import pytest

from mcpconn import Backoff, ServerConfig, State, Supervisor, TokenRequest, TokenSource
from mcpconn.testing import JWTProvider, MockServer

CALLS = 8  # concurrent, over two connections (two principals) to the same origin
SECONDS = 0.1  # each call holds its socket this long on the server


async def opaque(request: TokenRequest) -> str:
    return "opaque-token"


def config(server: MockServer) -> ServerConfig:
    return ServerConfig(
        "mock", server.url, transport="streamable-http", protocol_version="2025-11-25", listen=False
    )


async def peak_sockets(server: MockServer, **sup_kwargs: Any) -> tuple[int, float]:
    """The most sockets the server saw open at once while CALLS slow calls ran; their time."""
    async with (
        TokenSource(JWTProvider(server.issuer)) as tokens,
        Supervisor(tokens, backoff=Backoff(initial=0.01), **sup_kwargs) as sup,
    ):
        conns = [await sup.connect(config(server), who) for who in ("alice", "bob")]
        with anyio.fail_after(10):
            for conn in conns:
                await conn.wait_for(State.READY)
        peak, done = 0, anyio.Event()
        results: list[Any] = []

        async def call(index: int) -> None:
            conn = conns[index % len(conns)]
            results.append(await conn.call_tool("slow", {"seconds": SECONDS}))

        async def sample() -> None:  # the server's own count of accepted, open sockets
            nonlocal peak
            while not done.is_set():
                peak = max(peak, server.stats().open_connections)
                await anyio.sleep(0.002)

        start = anyio.current_time()
        with anyio.fail_after(20):
            async with anyio.create_task_group() as tg:
                tg.start_soon(sample)
                async with anyio.create_task_group() as calls:
                    for index in range(CALLS):
                        calls.start_soon(call, index)
                elapsed = anyio.current_time() - start
                done.set()
        assert len(results) == CALLS and all("slept" in str(r) for r in results)
        return peak, elapsed


@pytest.mark.parametrize("cap", [1, 3])
async def test_concurrent_calls_to_one_origin_never_hold_more_sockets_than_the_cap(
    cap: int,
) -> None:
    async with MockServer() as server:
        uncapped, _ = await peak_sockets(server)
        capped, elapsed = await peak_sockets(server, max_connections_per_origin=cap)
    assert uncapped > cap  # without the cap the same calls open more sockets
    assert capped == cap  # the cap was reached, never passed
    # the calls queued for the sockets: at least ceil(CALLS / cap) rounds of SECONDS
    assert elapsed >= math.ceil(CALLS / cap) * SECONDS * 0.9


@pytest.mark.parametrize(
    ("value", "error"),
    [
        (0, ValueError),
        (-1, ValueError),
        (2.0, TypeError),
        (math.nan, TypeError),
        (True, TypeError),
        ("4", TypeError),
    ],
)
async def test_a_cap_that_is_not_a_positive_int_is_refused_at_construction(
    value: Any, error: type[Exception]
) -> None:
    async with TokenSource(opaque) as tokens:
        with pytest.raises(error, match="max_connections_per_origin"):
            Supervisor(tokens, max_connections_per_origin=value)


async def test_a_cap_with_the_embedders_own_client_is_refused() -> None:
    async with httpx.AsyncClient() as client, TokenSource(opaque) as tokens:
        with pytest.raises(ValueError, match=r"own httpx\.Limits"):
            Supervisor(tokens, client=client, max_connections_per_origin=4)
