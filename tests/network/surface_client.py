"""A supervised connection to a mock server, READY, for the protocol surface's tests."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

import anyio

from mcpconn import Backoff, Connection, ServerConfig, State, Supervisor, TokenSource
from mcpconn._supervision.server_requests import RequestHandler
from mcpconn.testing import JWTProvider, MockServer

FAST = Backoff(initial=0.05, max_delay=0.1)


@asynccontextmanager
async def connected(
    server: MockServer,
    *,
    handlers: dict[str, RequestHandler] | None = None,
    **options: Any,
) -> AsyncIterator[tuple[Supervisor, Connection]]:
    options.setdefault("transport", "streamable-http")
    options.setdefault("protocol_version", "2025-11-25")
    config = ServerConfig("mock", server.url, backoff=FAST, **options)
    async with Supervisor(TokenSource(JWTProvider(server.issuer))) as sup:
        conn = await sup.connect(config, "ann", request_handlers=handlers)
        with anyio.fail_after(10):
            await conn.wait_for(State.READY)
        yield sup, conn
