"""Hostile handshakes, and the harness: a connection to a hostile server beside a good one.

`HOSTILE_HANDSHAKES` names what a hostile server does and what the client must make of
it. `against` runs a check on the hostile connection, then proves the good one (same
principal, same supervisor) still works, that the hostile one closes, and that no socket
to the hostile server is left open.
"""

from __future__ import annotations

import json
import random
from collections.abc import Callable
from typing import Any

import anyio
import anyio.abc

import mcpconn
from mcpconn import Connection, ServerConfig, State, Supervisor, Timeouts
from mcpconn.testing import JWTProvider, MockServer

from ._raw import (
    FAST,
    RawRequest,
    RawServer,
    Writer,
    config,
    head,
    init_result,
    no_leaks,
    raw_server,
    send_json,
)
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


# ---- what the hostile server does ------------------------------------------


async def garbage(stream: Stream, req: RawRequest) -> None:
    await sse_head(stream)
    rng = random.Random(6)
    await stream.send(bytes(rng.getrandbits(8) for _ in range(64 << 10)))
    await stream.aclose()


async def silent(stream: Stream, req: RawRequest) -> None:
    await until_client_leaves(stream)


async def headers_then_stall(stream: Stream, req: RawRequest) -> None:
    await sse_head(stream)
    await until_client_leaves(stream)


async def close_mid_event(stream: Stream, req: RawRequest) -> None:
    await sse_head(stream)
    await stream.send(b'data: {"jsonrpc":"2.0","id":')
    await stream.aclose()


async def html(stream: Stream, req: RawRequest) -> None:
    await stream.send(head(200, {"content-type": "text/html", "content-length": "5"}) + b"<b/>\n")


async def lie_about_era(stream: Stream, req: RawRequest) -> None:
    # We offered a session era; it claims the stateless one (which has no initialize).
    await send_json(stream, init_result(req.message, "2026-07-28"))


async def malformed_challenge(stream: Stream, req: RawRequest) -> None:
    bad = 'Bearer error="x, realm=,,,"===, ,"\x01 scope'
    await stream.send(head(401, {"www-authenticate": bad, "content-length": "0"}))


HOSTILE_HANDSHAKES: dict[str, tuple[Writer, type[Exception], tuple[State, ...]]] = {
    "garbage-bytes": (garbage, mcpconn.TransportError, (State.BACKOFF, State.CONNECTING)),
    "never-a-byte": (silent, mcpconn.RequestTimeout, (State.BACKOFF, State.CONNECTING)),
    "headers-then-stall": (
        headers_then_stall,
        mcpconn.RequestTimeout,
        (State.BACKOFF, State.CONNECTING),
    ),
    "closes-mid-event": (
        close_mid_event,
        mcpconn.MCPConnError,
        (State.BACKOFF, State.CONNECTING),
    ),
    "wrong-content-type": (
        html,
        mcpconn.UnexpectedContentType,
        (State.BACKOFF, State.CONNECTING),
    ),
    "lies-about-its-era": (
        lie_about_era,
        mcpconn.ProtocolError,
        (State.BACKOFF, State.CONNECTING, State.FAILED),
    ),
    "malformed-www-authenticate": (
        malformed_challenge,
        mcpconn.Unauthorized,
        (State.NEEDS_REAUTH,),
    ),
}


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
