"""A listener backing off keeps its session, and calls keep using it.

A server that refuses the listener (here a 200 page that is neither JSON nor an
event stream) puts the connection in BACKOFF while its listener waits; the
session is fine, so a call must not wait out the listener's delay. The delay is
30 s here, the call's bound 5 s: a call that waited for the listener would fail.
"""

from __future__ import annotations

import anyio
import pytest

from mcpconn import Backoff, ServerConfig, State, Supervisor, TokenSource
from mcpconn.testing import Fault, JWTProvider, MockServer

SLOW_LISTENER = Backoff(initial=30.0, max_delay=60.0, jitter="none")


def _listener_filter(version: str) -> dict[str, str]:
    if version == "2026-07-28":
        return {"rpc_method": "subscriptions/listen"}
    return {"method": "GET"}


@pytest.mark.parametrize("version", ["2025-11-25", "2026-07-28"])
async def test_calls_use_the_session_while_its_listener_backs_off(version: str) -> None:
    async with MockServer() as server:
        refused = server.faults.add(Fault.wrong_content_type(), **_listener_filter(version))
        async with (
            TokenSource(JWTProvider(server.issuer)) as tokens,
            Supervisor(tokens, backoff=SLOW_LISTENER) as sup,
        ):
            config = ServerConfig(
                "mock", server.url, transport="streamable-http", protocol_version=version
            )
            conn = await sup.connect(config, "alice")
            with anyio.fail_after(5):
                await conn.wait_for(State.BACKOFF)
                assert "UnexpectedContentType" in conn.reason
                result = await conn.call_tool("echo", {"text": "through"})
                assert "through" in str(result)
                assert conn.state is State.BACKOFF  # the listener still waits its turn
                assert (await conn.list_tools())[0]["name"]
            assert refused.hits == 1  # one refused listen, no retry inside the delay
