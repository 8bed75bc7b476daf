"""H11Transport's per-operation timeouts through the connection's one timer (`OperationTimer`).

The timer is armed for the first operation and only noted for later ones, so
these pin what httpx's timeouts promise: each read is bounded by the read
timeout (not the exchange), an earlier, shorter bound that passes during a
later operation does not end it, a sooner bound on a reused connection still
fires on time, and each timeout is the typed error of the operation that took
too long. Against the raw servers of raw_http.py.
"""

from __future__ import annotations

import socket

import anyio
import anyio.abc
import httpx
import pytest
from raw_http import Serve, client, raw_server, read_request

from mcpconn._http.body import ResponseBody
from mcpconn._http.send import send

CHUNKED = b"HTTP/1.1 200 OK\r\ntransfer-encoding: chunked\r\n\r\n"
END = b"0\r\n\r\n"
OK = b"HTTP/1.1 200 OK\r\ncontent-length: 2\r\n\r\nok"


def _piece(i: int) -> bytes:
    return b"2\r\n%02d\r\n" % i


def _trickling(pieces: int, *, then: bytes | None) -> Serve:
    """A chunked body of ``pieces`` pieces 0.1 s apart, then ``then`` (None: silence)."""

    async def serve(stream: anyio.abc.SocketStream) -> None:
        await read_request(stream)
        await stream.send(CHUNKED)
        for i in range(pieces):
            await anyio.sleep(0.1)
            await stream.send(_piece(i))
        if then is None:
            await anyio.sleep_forever()
        await stream.send(then)

    return serve


async def _pump(c: httpx.AsyncClient, url: str, timeout: httpx.Timeout, got: list[bytes]) -> bool:
    """A JSON-RPC POST's way: `send`, then the transport's own body pumped."""
    response = await send(
        c, "POST", httpx.URL(url), headers={}, content=b"{}", auth=None, timeout=timeout
    )
    try:
        assert isinstance(response.stream, ResponseBody)
        return await response.stream.pump(lambda raw: got.append(raw) and False)
    finally:
        await response.aclose()


async def test_a_head_later_than_the_connect_timeout_is_within_its_read_timeout() -> None:
    """The timer armed for the connect (0.2 s) fires during the read: re-armed, not fired."""

    async def serve(stream: anyio.abc.SocketStream) -> None:
        await read_request(stream)
        await anyio.sleep(0.6)
        await stream.send(OK)

    async with raw_server(serve) as raw, client() as (c, _):
        with anyio.fail_after(5):
            response = await c.get(raw.url, timeout=httpx.Timeout(0.2, read=5))
        assert response.status_code == 200 and response.content == b"ok"


@pytest.mark.parametrize("way", ["pump", "iterator"])
async def test_a_body_trickling_within_the_read_timeout_outlives_it(way: str) -> None:
    """Each read is bounded, not the whole body: eight pieces 0.1 s apart, read timeout 0.3 s."""

    serve = _trickling(8, then=END)
    timeout = httpx.Timeout(5, read=0.3)
    got: list[bytes] = []
    async with raw_server(serve) as raw, client() as (c, _):
        with anyio.fail_after(10):
            if way == "pump":
                assert await _pump(c, raw.url, timeout, got) is False  # the body's end
            else:
                async with c.stream("GET", raw.url, timeout=timeout) as response:
                    got.extend([piece async for piece in response.aiter_raw()])
    assert b"".join(got) == b"".join(b"%02d" % i for i in range(8))


async def test_a_stall_after_steady_reads_is_a_read_timeout() -> None:
    serve = _trickling(4, then=None)  # then silence
    got: list[bytes] = []
    async with raw_server(serve) as raw, client() as (c, transport):
        with anyio.fail_after(5), pytest.raises(httpx.ReadTimeout):
            await _pump(c, raw.url, httpx.Timeout(5, read=0.3), got)
        assert transport.sockets == 0
    assert b"".join(got) == b"00010203"


async def test_a_sooner_read_timeout_on_a_reused_connection_fires_on_time() -> None:
    """The first exchange armed the connection's timer for 30 s; the second's 0.2 s read
    bound re-arms it sooner."""
    served: list[int] = []

    async def serve(stream: anyio.abc.SocketStream) -> None:
        await read_request(stream)
        served.append(1)
        await stream.send(OK)
        await read_request(stream)
        served.append(2)
        await anyio.sleep_forever()

    async with raw_server(serve) as raw, client() as (c, transport):
        first = await c.get(raw.url, timeout=httpx.Timeout(30))
        assert first.content == b"ok" and transport.sockets == 1
        with anyio.fail_after(3), pytest.raises(httpx.ReadTimeout):
            await c.get(raw.url, timeout=httpx.Timeout(30, read=0.2))
        assert raw.accepted == 1 and served == [1, 2]  # the same connection, reused
        assert transport.sockets == 0


async def test_a_connect_that_does_not_finish_is_a_connect_timeout() -> None:
    """A listener whose accept queue is full drops our SYN: the connect stays in progress
    (waited for, not taken as done) until the connect timeout, a ConnectTimeout."""
    with socket.create_server(("127.0.0.1", 0), backlog=0) as listener:
        port = listener.getsockname()[1]
        fillers = []
        try:
            for _ in range(4):  # fill the accept queue (nobody accepts)
                filler = socket.socket()
                filler.setblocking(False)
                filler.connect_ex(("127.0.0.1", port))
                fillers.append(filler)
            async with client() as (c, transport):
                with anyio.fail_after(5), pytest.raises(httpx.ConnectTimeout):
                    await c.get(f"http://127.0.0.1:{port}/", timeout=httpx.Timeout(0.3))
                assert transport.sockets == 0
        finally:
            for filler in fillers:
                filler.close()
