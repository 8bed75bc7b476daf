"""A small error body is read, so a 401 does not cost its connection (the revoked path)."""

from __future__ import annotations

import anyio

from mcpconn import Backoff, ServerConfig, State, Supervisor, TokenSource
from mcpconn._http.transport import H11Transport
from mcpconn.testing import JWTProvider, MockServer


async def test_every_401_of_a_revoked_principal_rides_one_socket() -> None:
    async with (
        MockServer() as mock,
        TokenSource(JWTProvider(mock.issuer)) as tokens,
        Supervisor(tokens, backoff=Backoff(initial=0.01, max_delay=0.02, auth_attempts=2)) as sup,
    ):
        mock.revoke("alice")
        conn = await sup.connect(
            ServerConfig("mock", mock.url, transport="streamable-http"), "alice"
        )
        with anyio.fail_after(10):
            await conn.wait_for(State.NEEDS_REAUTH)
        transport = conn.client._transport
        assert isinstance(transport, H11Transport)
        refused = mock.stats().by_status.get(401, 0)
        assert refused >= 3  # every attempt was refused...
        assert transport.sockets == 1  # ...on one socket, kept for the next request
