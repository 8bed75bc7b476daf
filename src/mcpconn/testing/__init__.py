"""mcpconn.testing: a mock MCP server with fault injection, and short-lived JWTs.

Prove a client (mcpconn or any other) against a real server on loopback::

    async with MockServer() as server:
        token = server.mint("alice", lifetime=2.0)
        ...  # talk MCP to server.url with "Authorization: Bearer <token>"
        server.faults.add(Fault.status(503, retry_after=1), times=3)
        server.revoke("alice")
        assert server.stats().expired_tokens_seen == 0

Why h11 on anyio sockets rather than an ASGI server (uvicorn, hypercorn):

1. It runs inside the test's own event loop on *both* asyncio and trio (uvicorn
   is asyncio-only), as one task group the ``async with`` owns: no threads, no
   subprocess, and shutdown closes every connection before the block exits.
2. Fault injection needs byte-level control that ASGI hides: cut a stream in
   the middle of an event, stall after the headers, close without the
   terminating chunk, write bytes that are not SSE.
3. No new runtime dependency: h11 already comes with httpx.

Endpoints: ``/mcp`` serves streamable HTTP sessions (2025-03-26 .. 2025-11-25)
and, chosen per request by ``MCP-Protocol-Version: 2026-07-28``, the stateless
era (as the official SDK does: one URL, so a client's era detection is what gets
tested); ``/sse`` + ``/messages`` serve legacy HTTP+SSE (2024-11-05). ``eras=``
narrows this to build a legacy-only or modern-only server.

For benchmarks the same server runs in its own process (``mcpconn mock-server``)
and is driven through its ``/_mock/`` control endpoints. ``MockServer(lean=True)``
(``--lean``) serves the same protocol with the least work per request, so that a
load test measures the client, not this server.
"""

from ._faults import Fault, FaultRule, FaultSet
from ._jwt_issuer import JWTIssuer, JWTProvider, TokenRejected
from ._mock_server import HANDSHAKE_VERSIONS, MODERN_VERSIONS, MockServer, Session
from ._stats import MockStats, RequestRecord
from ._tools import CallContext, Tool

__all__ = [
    "CallContext",
    "Fault",
    "FaultRule",
    "FaultSet",
    "HANDSHAKE_VERSIONS",
    "JWTIssuer",
    "JWTProvider",
    "MODERN_VERSIONS",
    "MockServer",
    "MockStats",
    "RequestRecord",
    "Session",
    "TokenRejected",
    "Tool",
]
