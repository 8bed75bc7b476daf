"""A connection keeps its last error's data, not the frames it was raised through.

A parked connection keeps its ``last_error`` for as long as it stays parked; with
its traceback it kept a dozen frames and what they held (the request, its headers,
the token) per connection. An error raised to a caller is the caller's: untouched.
"""

from __future__ import annotations

import socket
from collections.abc import Iterator

import anyio
import pytest

import mcpconn
from mcpconn import Backoff, ServerConfig, State, Supervisor, TokenSource
from mcpconn.testing import JWTProvider, MockServer

FAST = Backoff(initial=0.01, max_delay=0.05, auth_attempts=2)


def chain(error: BaseException | None) -> Iterator[BaseException]:
    seen: set[int] = set()
    while error is not None and id(error) not in seen:
        seen.add(id(error))
        yield error
        error = error.__cause__ or error.__context__


@pytest.mark.parametrize("transport", ["streamable-http", "auto"])
async def test_a_parked_connections_error_keeps_its_data_not_its_frames(transport: str) -> None:
    async with MockServer() as server:
        server.revoke("bob")
        provider = JWTProvider(server.issuer, lifetime=60)
        async with TokenSource(provider) as tokens, Supervisor(tokens, backoff=FAST) as sup:
            conn = await sup.connect(ServerConfig("mock", server.url, transport=transport), "bob")
            with anyio.fail_after(10):
                await conn.wait_for(State.NEEDS_REAUTH)
            error = conn.last_error
            assert isinstance(error, mcpconn.Unauthorized)
            assert error.rejected is not None and error.challenge is not None
            assert error.challenge.error == "invalid_token"
            assert all(e.__traceback__ is None for e in chain(error))


async def test_a_refused_connects_error_keeps_its_cause_not_its_frames() -> None:
    with socket.socket() as probe:  # a port nobody listens on
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    config = ServerConfig("down", f"http://127.0.0.1:{port}/mcp", transport="streamable-http")
    async with MockServer() as server:
        provider = JWTProvider(server.issuer, lifetime=60)
        async with TokenSource(provider) as tokens, Supervisor(tokens, backoff=FAST) as sup:
            conn = await sup.connect(config, "alice")
            with anyio.fail_after(10):
                await conn.wait_for(State.BACKOFF)  # last_error is noted before the fact
            error = conn.last_error
            assert isinstance(error, mcpconn.ConnectError)
            causes = list(chain(error))
            assert len(causes) >= 2  # the network's own error is still there, as the cause
            assert all(e.__traceback__ is None for e in causes)


async def test_a_calls_error_keeps_its_traceback_for_the_caller() -> None:
    async with MockServer() as server:
        provider = JWTProvider(server.issuer, lifetime=60)
        async with TokenSource(provider) as tokens, Supervisor(tokens, backoff=FAST) as sup:
            config = ServerConfig("mock", server.url, transport="streamable-http", listen=False)
            conn = await sup.connect(config, "carol")
            with anyio.fail_after(10):
                await conn.wait_for(State.READY)
                server.revoke("carol")
                with pytest.raises(mcpconn.MCPConnError) as info:
                    await conn.call_tool("echo", {"text": "x"})
            assert info.value.__traceback__ is not None
