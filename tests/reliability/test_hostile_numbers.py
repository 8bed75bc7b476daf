"""Absurd numbers from a server, over real loopback sockets: typed errors or nothing, never a crash.

Every number a server sends is read with bounds (`mcpconn._core.bounds`). Before that, a
400-digit SSE ``retry:`` escaped ``call_tool`` as a raw ``OverflowError`` and, on the
listener, became ``last_error`` and an ERROR with a traceback on every retry; a progress
notification whose token was a list raised ``TypeError`` out of the call. Here each
scenario runs a real connection and asserts the outcome is an `MCPConnError` (or a
success), and that no record at ERROR or above was logged.
"""

from __future__ import annotations

import itertools
import json
import logging
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

import anyio
import httpx
import pytest

import mcpconn
from mcpconn import Limits, ServerConfig, State, Supervisor
from mcpconn._mcp.transports.base import HTTPChannel
from mcpconn.testing import JWTProvider, MockServer

from ._raw import FAST, RawRequest, RawServer, Writer, config, head, no_leaks, once, raw_server
from ._supervised import connected, supervised

Stream = Any
HUGE = "9" * 400  # an int for Python, no float: int(HUGE) / 1000.0 overflows


def sse(*events: dict[str, Any], prefix: str = "") -> bytes:
    body = prefix + "".join(f"data: {json.dumps(e)}\n\n" for e in events)
    return head(200, {"content-type": "text/event-stream"}) + body.encode()


@asynccontextmanager
async def against(
    backoff: mcpconn.Backoff = FAST, **writers: Writer
) -> AsyncIterator[tuple[RawServer, Supervisor]]:
    """A raw server with these writers, and a supervisor with real tokens (a mock issuer)."""
    async with no_leaks(), raw_server(**writers) as raw:
        async with (
            MockServer() as issuer,
            supervised(JWTProvider(issuer.issuer), backoff=backoff) as sup,
        ):
            yield raw, sup


def errors_logged(caplog: pytest.LogCaptureFixture) -> list[str]:
    return [r.getMessage() for r in caplog.records if r.levelno >= logging.ERROR]


async def test_an_absurd_retry_on_a_broken_call_stream_is_ignored_and_the_call_resumes(
    caplog: pytest.LogCaptureFixture,
) -> None:
    pending: dict[str, Any] = {}

    async def call(stream: Stream, req: RawRequest) -> None:
        pending["id"] = req.message["id"]
        # a priming event with an id and an absurd retry, then the stream breaks
        await stream.send(sse(prefix=f"id: ev-1\nretry: {HUGE}\ndata:\n\n"))
        await stream.aclose()

    async def get(stream: Stream, req: RawRequest) -> None:
        if req.headers.get("last-event-id") != "ev-1":
            await stream.send(head(405, {"content-length": "0"}))  # no listener
            return
        answer = {"jsonrpc": "2.0", "id": pending["id"], "result": {"resumed": True}}
        await stream.send(sse(answer))
        await stream.aclose()

    async with against(on_request=call, on_get=get) as (raw, sup):
        conn = await connected(sup, config(raw.url))
        with anyio.fail_after(10):
            assert await conn.call_tool("echo", {}) == {"resumed": True}
    assert raw.count("GET") >= 1
    assert errors_logged(caplog) == []


async def test_an_absurd_retry_on_the_listener_is_a_clean_end_not_an_overflow(
    caplog: pytest.LogCaptureFixture,
) -> None:
    note = {"jsonrpc": "2.0", "method": "notifications/message", "params": {"n": 1}}

    async def listener(stream: Stream, req: RawRequest) -> None:
        await stream.send(sse(note, prefix=f"retry: {HUGE}\n\n"))
        await stream.aclose()

    async with against(on_get=once(listener)) as (raw, sup):
        conn = await sup.connect(config(raw.url), "alice")
        async with conn.notifications() as notes:
            with anyio.fail_after(10):
                assert (await notes.__anext__())["params"] == {"n": 1}
                await raw.wait(lambda r: r.count("GET") >= 2)  # ended; then a 405
                await conn.wait_for(State.READY)
        error = conn.last_error
        assert isinstance(error, mcpconn.StreamEnded) and error.retry is None
    assert errors_logged(caplog) == []


async def test_hostile_progress_notifications_are_dropped_and_the_call_completes(
    caplog: pytest.LogCaptureFixture,
) -> None:
    async def call(stream: Stream, req: RawRequest) -> None:
        rid = req.message["id"]
        token = req.message["params"]["_meta"]["progressToken"]

        def progress(token: Any, value: Any) -> dict[str, Any]:
            params = {"progressToken": token, "progress": value, "total": 10}
            return {"jsonrpc": "2.0", "method": "notifications/progress", "params": params}

        await stream.send(
            sse(
                progress([token], 1),  # a list does not even hash
                progress({"t": token}, 1),
                progress(token, "1"),  # not a number
                progress(token, None),
                progress(token, 10**400),  # no float holds it
                progress(token, 5),  # the one good one
                {"jsonrpc": "2.0", "id": rid, "result": {"done": True}},
            )
        )
        await stream.aclose()

    seen: list[dict[str, Any]] = []
    async with against(on_request=call) as (raw, sup):
        conn = await connected(sup, config(raw.url, listen=False))
        with anyio.fail_after(10):
            result = await conn.call_tool("p", {}, on_progress=seen.append)
    assert result == {"done": True}
    assert [p["progress"] for p in seen] == [5]
    assert raw.count("POST") >= 2
    assert errors_logged(caplog) == []


async def test_an_absurd_error_code_and_message_are_bounded() -> None:
    async def call(stream: Stream, req: RawRequest) -> None:
        error = {"code": 10**30, "message": "m" * 100_000, "data": list(range(100_000))}
        body = json.dumps({"jsonrpc": "2.0", "id": req.message["id"], "error": error})
        hdrs = {"content-type": "application/json", "content-length": str(len(body))}
        await stream.send(head(200, hdrs) + body.encode())

    async with against(on_request=call) as (raw, sup):
        conn = await connected(sup, config(raw.url, listen=False))
        with anyio.fail_after(10), pytest.raises(mcpconn.JSONRPCError) as info:
            await conn.call_tool("x", {})
    error = info.value
    assert error.code == -32603  # not a 64-bit integer: no code at all
    assert len(str(error)) < 600 and len(repr(error.data)) < 2000


@pytest.mark.parametrize("declared", ["\u00b2", "9" * 5000, "-1", "1e9", " 12 "])
async def test_a_hostile_content_length_is_no_number_and_no_crash(declared: str) -> None:
    # h11 refuses these before we see them on a real socket; an embedder's own
    # transport (HTTP/2, a proxy, a test double) may not, so the channel reads it bounded.
    def reply(request: httpx.Request) -> httpx.Response:
        body = b'{"jsonrpc":"2.0","id":1,"result":{}}'
        return httpx.Response(
            200, headers=[(b"content-length", declared.encode("latin-1"))], content=body
        )

    async with httpx.AsyncClient(transport=httpx.MockTransport(reply)) as client:
        cfg = ServerConfig("m", "http://127.0.0.1/mcp", limits=Limits(max_json_response_bytes=10))
        channel = HTTPChannel(client, cfg, auth=None)
        async with channel.open("POST", cfg.url, headers={}) as response:
            with pytest.raises(mcpconn.ProtocolError, match="exceeds the limit of 10"):
                await channel.read_body(response)


# ---- hints that cannot mean "wait longer" are no hints: the backoff curve paces ----------

PACE = mcpconn.Backoff(initial=0.1, multiplier=1, max_delay=0.1, jitter="none")


async def paced(times: list[float], writers: dict[str, Any], count: int = 4) -> float:
    """The shortest gap between the first ``count`` requests the writers timed."""
    async with against(backoff=PACE, **writers) as (raw, sup):
        await sup.connect(config(raw.url), "alice")
        with anyio.fail_after(10):
            await raw.wait(lambda r: len(times) >= count)
    gaps = [b - a for a, b in itertools.pairwise(times[:count])]
    return min(gaps)


async def test_a_listener_sending_retry_0_reconnects_at_the_curve_not_at_once() -> None:
    times: list[float] = []

    async def listener(stream: Stream, req: RawRequest) -> None:
        times.append(anyio.current_time())
        await stream.send(sse(prefix="retry: 0\n\n"))
        await stream.aclose()

    # before: retry: 0 was a zero sleep, ~800 listener GETs a second
    assert await paced(times, {"on_get": listener}) >= 0.09


@pytest.mark.parametrize("value", ["Thu, 01 Jan 1970 00:00:00 GMT", "0", "-5"])
async def test_a_retry_after_that_cannot_mean_later_leaves_the_curve_in_charge(value: str) -> None:
    times: list[float] = []

    async def busy(stream: Stream, req: RawRequest) -> None:
        times.append(anyio.current_time())
        await stream.send(head(429, {"retry-after": value, "content-length": "0"}))

    # before: a past date or 0 was a zero wait, ~140 initialize POSTs in 2 s
    assert await paced(times, {"on_initialize": busy}) >= 0.09
