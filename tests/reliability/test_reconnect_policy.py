"""No server hint makes a connection reconnect faster than its policy (issue 10 items 1, 2).

Hostile servers on loopback; each test counts the requests a connection makes
in a fixed observation window and compares them with what the policy allows.
Load can only make the counts smaller, so the bounds are safe on a busy machine.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

import anyio
import anyio.abc
import pytest

from mcpconn import Backoff, Connection, State, StormControl, Supervisor, TokenSource

from ._raw import RawRequest, RawServer, Writer, config, head, no_leaks, raw_server

Stream = anyio.abc.SocketStream
WINDOW = 0.5
#: 25, 50, 100, 200, 200 ms...: at most 4 reconnects in half a second, plus one in flight.
CURVE = Backoff(initial=0.025, multiplier=2.0, max_delay=0.2, jitter="none")
CURVE_BOUND = 1 + 4 + 1  # one of slack for the window's edges


async def no_token(request: Any) -> str:
    raise AssertionError("forward_token=False: the provider is never asked")


@asynccontextmanager
async def connected(
    writers: dict[str, Writer], **sup: Any
) -> AsyncIterator[tuple[RawServer, Connection]]:
    async with no_leaks(), raw_server(**writers) as raw:
        async with TokenSource(no_token) as tokens, Supervisor(tokens, **sup) as supervisor:
            conn = await supervisor.connect(config(raw.url, forward_token=False), "alice")
            yield raw, conn


def ending_stream(retry: bytes, *, event: bool) -> Writer:
    async def write(stream: Stream, req: RawRequest) -> None:
        await stream.send(head(200, {"content-type": "text/event-stream"}))
        body = b"retry: " + retry + b"\n\n"
        if event:
            body += b'id: 1\ndata: {"jsonrpc":"2.0","method":"notifications/message"}\n\n'
        await stream.send(body)
        await stream.aclose()

    return write


@pytest.mark.parametrize(("retry", "event"), [(b"0", False), (b"0", True), (b"9" * 400, True)])
async def test_a_listener_whose_streams_end_at_once_climbs_the_curve(
    event: bool, retry: bytes
) -> None:
    """``retry: 0`` + close (with or without an event) used to mean ~800 GETs a second."""
    async with connected({"on_get": ending_stream(retry, event=event)}, backoff=CURVE) as (
        raw,
        conn,
    ):
        with anyio.fail_after(10):
            await raw.wait(lambda r: r.count("GET") >= 2)  # it does reconnect
        start = raw.count("GET")
        await anyio.sleep(WINDOW)  # the observation window
        gets = raw.count("GET") - start
        assert gets <= CURVE_BOUND, f"{gets} listener GETs in {WINDOW}s"
        assert conn.state in (State.READY, State.BACKOFF)
        assert raw.count("POST", "initialize") == 1  # the session is kept throughout


async def test_every_listener_reconnect_is_charged_to_the_retry_budget() -> None:
    """With a curve of zero, only the server's retry budget spaces the listener out."""
    zero = Backoff(initial=0.0, max_delay=0.0, jitter="none")
    storm = StormControl(retry_rate=4.0, retry_burst=1.0)
    writers = {"on_get": ending_stream(b"0", event=True)}
    async with connected(writers, backoff=zero, storm_control=storm) as (raw, _):
        with anyio.fail_after(10):
            await raw.wait(lambda r: r.count("GET") >= 2)
        start = raw.count("GET")
        await anyio.sleep(WINDOW)
        gets = raw.count("GET") - start
        assert gets <= 4 * WINDOW + 2, f"{gets} listener GETs in {WINDOW}s at 4/s"


@pytest.mark.parametrize("retry_after", ["Thu, 01 Jan 1970 00:00:00 GMT", "0", "-5"])
async def test_a_retry_after_in_the_past_or_invalid_falls_back_to_the_curve(
    retry_after: str,
) -> None:
    """A 429 saying "retry at once" used to switch backoff off (~140 POSTs in 2 s)."""

    async def busy(stream: Stream, req: RawRequest) -> None:
        await stream.send(head(429, {"retry-after": retry_after, "content-length": "0"}))

    async with connected({"on_initialize": busy}, backoff=CURVE) as (raw, conn):
        with anyio.fail_after(10):
            await raw.wait(lambda r: r.count("POST", "initialize") >= 2)
        start = raw.count("POST", "initialize")
        await anyio.sleep(WINDOW)
        posts = raw.count("POST", "initialize") - start
        assert posts <= CURVE_BOUND, f"{posts} initialize POSTs in {WINDOW}s"
        assert conn.state in (State.BACKOFF, State.CONNECTING)
