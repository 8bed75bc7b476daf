"""Hostile or broken downstream servers, over real loopback sockets.

Each scenario: the connection to the hostile server ends in a defined state
with a typed error, nothing crashes or hangs, no task or socket is left
behind, and a connection of the same principal to a good server keeps working.
"""

from __future__ import annotations

import json
import os
import random
import tracemalloc

import anyio
import anyio.abc
import pytest

import mcpconn
from mcpconn import Connection, Limits, State, Supervisor, Timeouts, TokenSource
from mcpconn._http import make_client
from mcpconn._mcp.session import SessionHandlers, open_session
from mcpconn.testing import JWTProvider, MockServer

from ._hostile import (
    SHORT,
    Stream,
    against,
    note,
    quiet,
    sse_head,
    until_client_leaves,
    wait_for_error,
)
from ._raw import (
    FAST,
    RawRequest,
    RawServer,
    Writer,
    config,
    head,
    init_result,
    no_leaks,
    once,
    raw_server,
    send_json,
)

# ---- writers: what the hostile server does ------------------------------------------


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


# ---- handshakes that go wrong ---------------------------------------------------------


@pytest.mark.parametrize("case", sorted(HOSTILE_HANDSHAKES))
async def test_a_hostile_handshake_is_a_typed_error_in_a_defined_state(case: str) -> None:
    writer, expected, states = HOSTILE_HANDSHAKES[case]

    async def check(raw: RawServer, sup: Supervisor, bad: Connection) -> None:
        await wait_for_error(sup, bad, expected, states)

    raw = await against({"on_initialize": writer}, check)
    assert raw.count("POST", "initialize") >= 1


async def test_a_call_that_never_finds_a_ready_connection_is_a_request_timeout() -> None:
    async def check(raw: RawServer, sup: Supervisor, bad: Connection) -> None:
        await wait_for_error(sup, bad, mcpconn.RequestTimeout, (State.BACKOFF, State.CONNECTING))
        with pytest.raises(mcpconn.RequestTimeout):
            await bad.call_tool("echo", {"text": "x"}, timeout=0.05)

    await against({"on_initialize": silent}, check)


async def test_a_stalled_listener_is_detected_by_the_read_timeout() -> None:
    async def check(raw: RawServer, sup: Supervisor, bad: Connection) -> None:
        await wait_for_error(sup, bad, mcpconn.ReadTimeout, (State.BACKOFF, State.CONNECTING))
        await quiet(raw, bad)

    raw = await against({"on_get": once(headers_then_stall)}, check)
    assert raw.count("GET") >= 1


async def test_garbage_on_the_listener_is_ignored_as_sse_and_the_end_is_clean() -> None:
    async def check(raw: RawServer, sup: Supervisor, bad: Connection) -> None:
        await quiet(raw, bad)  # the stream ended cleanly and the listener was resumed
        assert isinstance(bad.last_error, mcpconn.StreamEnded)  # garbage is not an error

    await against({"on_get": once(garbage)}, check)


# ---- bytes that never end -------------------------------------------------------------

HUNDRED_MB = 100 << 20


def streaming(unit: bytes, total: int, server: list[RawServer]) -> Writer:
    async def write(stream: Stream, req: RawRequest) -> None:
        await sse_head(stream)
        sent = 0
        try:
            while sent < total:
                await stream.send(unit)
                sent += len(unit)
                server[0].bytes_sent += len(unit)
        except (anyio.BrokenResourceError, anyio.ClosedResourceError, OSError):
            return

    return write


@pytest.mark.parametrize(
    ("unit", "what"),
    [(b"x" * 65536, "line"), (b"data: " + b"a" * 32000 + b"\n", "event")],
    ids=["endless-line-no-newline", "one-100MB-event"],
)
async def test_a_100mb_stream_stops_at_the_limit_without_buffering(unit: bytes, what: str) -> None:
    holder: list[RawServer] = []
    limits = Limits(max_sse_line_bytes=64 << 10, max_sse_event_bytes=256 << 10)

    async def check(raw: RawServer, sup: Supervisor, bad: Connection) -> None:
        await wait_for_error(
            sup, bad, mcpconn.SSELimitExceeded, (State.BACKOFF, State.CONNECTING, State.READY)
        )
        err = bad.last_error
        assert isinstance(err, mcpconn.SSELimitExceeded) and err.what == what
        await quiet(raw, bad)

    async with raw_server() as probe:
        holder.append(probe)
    writer = once(streaming(unit, HUNDRED_MB, holder))
    tracemalloc.start()
    try:
        tracemalloc.reset_peak()
        async with raw_server(on_get=writer) as raw:
            holder[0] = raw
            async with MockServer() as good, TokenSource(JWTProvider(good.issuer)) as tokens:
                async with Supervisor(tokens, backoff=FAST) as sup:
                    bad = await sup.connect(config(raw.url, limits=limits, timeouts=SHORT), "a")
                    with anyio.fail_after(20):
                        await check(raw, sup, bad)
                    streams = raw.count("GET")
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    # the client hung up long before 100 MB per stream, and never held one in memory
    assert raw.bytes_sent < streams * HUNDRED_MB / 4
    assert peak < 24 << 20, f"peak traced memory {peak / 2**20:.1f} MiB"


#: 5e4 in CI (2-4 s per backend on a loaded 2-core box); MCPCONN_TINY_EVENTS=2000000 for
#: the long run.
TINY_EVENTS = int(os.environ.get("MCPCONN_TINY_EVENTS", "50000"))


async def test_tens_of_thousands_of_tiny_events_are_delivered_in_order() -> None:
    n = TINY_EVENTS
    payload = b"".join(note(i) for i in range(n))
    first = anyio.Event()

    async def flood(stream: Stream, req: RawRequest) -> None:
        if first.is_set():
            await stream.send(head(405, {"content-length": "0"}))  # once is enough
            return
        first.set()
        await sse_head(stream)
        for start in range(0, len(payload), 1 << 16):
            await stream.send(payload[start : start + (1 << 16)])
        await stream.aclose()

    async def check(raw: RawServer, sup: Supervisor, bad: Connection) -> None:
        seen: list[int] = []
        async with bad.notifications() as notes:
            await raw.wait(lambda r: r.count("GET") >= 1)
            async for msg in notes:
                seen.append(msg["params"]["seq"])
                if seen[-1] == n - 1:
                    break
        # a slow consumer may lose the oldest (bounded buffer), never reorder or duplicate
        assert seen == sorted(set(seen))
        assert sup.statistics().notifications >= n

    limit = max(30.0, n / 5000)
    await against({"on_get": flood}, check, timeouts=Timeouts(read=10, request=5), limit=limit)


# ---- messages that are not what they claim --------------------------------------------


async def test_non_json_and_non_jsonrpc_events_are_skipped_not_fatal() -> None:
    async def listener(stream: Stream, req: RawRequest) -> None:
        await sse_head(stream)
        await stream.send(b"data: this is not json\n\n")
        await stream.send(b'data: {"hello": "not json-rpc"}\n\n')
        await stream.send(b"data: [1, 2, 3]\n\n")
        await stream.send(b'data: {"jsonrpc":"2.0","id":424242,"result":{}}\n\n')
        await stream.send(note(7))
        await until_client_leaves(stream)

    async def check(raw: RawServer, sup: Supervisor, bad: Connection) -> None:
        async with bad.notifications() as notes:
            msg = await notes.__anext__()
        assert msg["params"] == {"seq": 7}
        assert bad.state is State.READY

    await against({"on_get": once(listener)}, check, timeouts=Timeouts(read=5))


async def test_responses_to_unknown_ids_and_duplicates_are_ignored_and_counted() -> None:
    async def answer(stream: Stream, req: RawRequest) -> None:
        msg = req.message
        right = {"jsonrpc": "2.0", "id": msg["id"], "result": {"answer": 42}}
        wrong = {"jsonrpc": "2.0", "id": 99_999, "result": {"answer": "forged"}}
        wrong_type = {"jsonrpc": "2.0", "id": str(msg["id"]), "result": {"answer": "str id"}}
        await sse_head(stream)
        for m in (wrong, wrong_type, right, right):
            await stream.send(b"data: " + json.dumps(m).encode() + b"\n\n")
        await stream.aclose()

    async with no_leaks(), raw_server(on_request=answer) as raw:
        async with make_client() as client:
            handlers = SessionHandlers(on_notification=lambda _m: None)
            cfg = config(raw.url, timeouts=SHORT, listen=False)
            async with open_session(client, cfg, auth=None, handlers=handlers) as session:
                with anyio.fail_after(5):
                    assert await session.request("tools/call", {"name": "x"}) == {"answer": 42}
                    assert await session.request("tools/call", {"name": "y"}) == {"answer": 42}
                stats = session.statistics()
                assert stats.unknown_responses >= 2
                assert stats.duplicate_responses + stats.unknown_responses >= 4
                assert stats.pending == 0
        with anyio.fail_after(5):
            await raw.wait(lambda r: r.open_connections == 0)
