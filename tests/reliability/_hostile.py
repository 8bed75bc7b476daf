"""The hostile-server harness: a connection to a raw hostile server beside one to a good one.

`against` runs a check on the hostile connection, then proves the good one (same
principal, same supervisor) still works, that the hostile one closes, and that no socket
to the hostile server is left open.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any

import anyio
import anyio.abc

from mcpconn import Connection, ServerConfig, State, Supervisor, Timeouts
from mcpconn.testing import JWTProvider, MockServer

from ._raw import FAST, RawServer, Writer, config, head, no_leaks, raw_server
from ._supervised import supervised

SHORT = Timeouts(connect=1, request=0.5, read=0.5, close=0.5)
Stream = anyio.abc.SocketStream


async def until_client_leaves(stream: Stream) -> None:
    """Stall: send nothing, but notice when the client hangs up."""
    try:
        while await stream.receive():
            pass
    except (anyio.EndOfStream, anyio.BrokenResourceError, anyio.ClosedResourceError):
        pass


async def sse_head(stream: Stream) -> None:
    await stream.send(head(200, {"content-type": "text/event-stream"}))


def note(seq: int) -> bytes:
    msg = {"jsonrpc": "2.0", "method": "notifications/message", "params": {"seq": seq}}
    return b"data: " + json.dumps(msg, separators=(",", ":")).encode() + b"\n\n"


# ---- the harness ----------------------------------------------------------------------


async def quiet(raw: RawServer, conn: Connection) -> None:
    """Wait until the hostile listener was replaced by a 405 and the connection is READY."""
    await raw.wait(lambda r: r.count("GET") >= 2)
    await conn.wait_for(State.READY)


async def wait_for_error(
    sup: Supervisor, conn: Connection, expected: type[BaseException], states: tuple[State, ...]
) -> None:
    """Wait until ``conn`` reported ``expected`` and sits in one of ``states``."""
    changes = sup.state_changes()
    try:
        while not (isinstance(conn.last_error, expected) and conn.state in states):
            await changes.__anext__()
    finally:
        await changes.aclose()


async def against(
    writers: dict[str, Writer],
    check: Callable[[RawServer, Supervisor, Connection], Any],
    **cfg: Any,
) -> RawServer:
    """Run ``check`` with a connection to the hostile server and one to a good server."""
    limit = cfg.pop("limit", 15.0)
    async with no_leaks():
        async with MockServer() as good, raw_server(**writers) as raw:
            backoff = cfg.pop("backoff", FAST)
            async with supervised(JWTProvider(good.issuer), backoff=backoff) as sup:
                cfg.setdefault("timeouts", SHORT)
                bad = await sup.connect(config(raw.url, **cfg), "alice")
                ok = await sup.connect(
                    ServerConfig(
                        "good", good.url, transport="streamable-http", protocol_version="2025-11-25"
                    ),
                    "alice",
                )
                with anyio.fail_after(limit):
                    await check(raw, sup, bad)
                    await ok.wait_for(State.READY)
                    assert "fine" in str(await ok.call_tool("echo", {"text": "fine"}))
                assert ok.state is State.READY
            assert bad.state is State.CLOSED
            # every socket the client opened to the hostile server is closed
            with anyio.fail_after(5):
                await raw.wait(lambda r: r.open_connections == 0)
    return raw
