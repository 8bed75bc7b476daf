"""H11Transport's response bodies: what came with the head is taken without a read, a small
error body nobody reads is drained so its socket is reused, and a body that stalls mid-way
is a read timeout (through httpx's iterator and `ResponseBody.pump` alike). Against the raw
servers of raw_http.py."""

from __future__ import annotations

import anyio
import anyio.abc
import httpx
import pytest
from raw_http import Serve, client, raw_server, read_request

from mcpconn._http.body import ResponseBody
from mcpconn._http.send import send
from mcpconn._mcp.transports.bodies import drain_small

REFUSED = b'{"error":"invalid_token"}'
HEAD_401 = (
    b"HTTP/1.1 401 Unauthorized\r\ncontent-type: application/json\r\n"
    b'www-authenticate: Bearer error="invalid_token"\r\ncontent-length: %d\r\n\r\n' % len(REFUSED)
)


def _refusing(body_after: float) -> tuple[list[int], Serve]:
    served: list[int] = []

    async def serve(stream: anyio.abc.SocketStream) -> None:
        while True:
            await read_request(stream)
            served.append(1)
            if body_after:
                await stream.send(HEAD_401)
                await anyio.sleep(body_after)  # the body in a packet of its own, later
                await stream.send(REFUSED)
            else:
                await stream.send(HEAD_401 + REFUSED)

    return served, serve


@pytest.mark.parametrize("body_after", [0.0, 0.01])
async def test_a_401_body_is_drained_and_its_socket_reused(body_after: float) -> None:
    served, serve = _refusing(body_after)
    async with raw_server(serve) as raw, client() as (c, transport):
        for _ in range(3):
            async with c.stream("POST", raw.url, content=b"{}") as response:
                assert response.status_code == 401
                with anyio.fail_after(5):
                    await drain_small(response)
                assert response.is_stream_consumed
            assert transport.sockets == 1  # back in the pool, not closed
        assert raw.accepted == 1 and len(served) == 3


async def test_a_401_body_that_does_not_come_costs_its_socket() -> None:
    _, serve = _refusing(5.0)  # far beyond the drain's grace
    async with raw_server(serve) as raw, client() as (c, transport):
        async with c.stream("POST", raw.url, content=b"{}") as response:
            with anyio.fail_after(2):  # the grace is short: no waiting for the body
                await drain_small(response)
        assert transport.sockets == 0


async def test_a_body_that_stalls_mid_way_is_a_read_timeout() -> None:
    async def serve(stream: anyio.abc.SocketStream) -> None:
        await read_request(stream)
        await stream.send(b"HTTP/1.1 200 OK\r\ncontent-length: 10\r\n\r\nhalf-")
        await anyio.sleep_forever()

    async with raw_server(serve) as raw, client() as (c, transport):
        timeout = httpx.Timeout(5, read=0.2)
        async with c.stream("GET", raw.url, timeout=timeout) as response:
            pieces: list[bytes] = []

            async def read_all() -> None:
                async for piece in response.aiter_raw():
                    pieces.append(piece)

            with pytest.raises(httpx.ReadTimeout):
                await read_all()
        assert b"".join(pieces) == b"half-" and transport.sockets == 0


CHUNKED = b"HTTP/1.1 200 OK\r\ntransfer-encoding: chunked\r\n\r\n"
PIECES = (b"3\r\none\r\n", b"3\r\ntwo\r\n")
END = b"0\r\n\r\n"


async def _pump(c: httpx.AsyncClient, url: str, timeout: httpx.Timeout) -> list[bytes]:
    got: list[bytes] = []

    def on_raw(raw: bytes) -> bool:
        got.append(raw)
        return False  # read it all

    # a JSON-RPC POST's way (`send`): the response's stream is the transport's own body
    response = await send(
        c, "POST", httpx.URL(url), headers={}, content=b"{}", auth=None, timeout=timeout
    )
    try:
        assert isinstance(response.stream, ResponseBody)
        assert await response.stream.pump(on_raw) is False  # the body's end, not a stop
    finally:
        await response.aclose()
    return got


@pytest.mark.parametrize("split", [False, True])
async def test_a_body_with_its_head_or_after_it_is_pumped_whole(split: bool) -> None:
    async def serve(stream: anyio.abc.SocketStream) -> None:
        while True:
            await read_request(stream)
            if split:  # one piece with the head, the rest later: read under the scope
                await stream.send(CHUNKED + PIECES[0])
                await anyio.sleep(0.01)
                await stream.send(PIECES[1] + END)
            else:  # all of it in the head's packet: taken without a read
                await stream.send(CHUNKED + b"".join(PIECES) + END)

    async with raw_server(serve) as raw, client() as (c, transport):
        for _ in range(2):
            with anyio.fail_after(5):
                assert await _pump(c, raw.url, httpx.Timeout(5)) == [b"one", b"two"]
            assert transport.sockets == 1
        assert raw.accepted == 1


async def test_a_body_stalling_after_what_came_with_its_head_is_a_read_timeout() -> None:
    async def serve(stream: anyio.abc.SocketStream) -> None:
        await read_request(stream)
        await stream.send(CHUNKED + PIECES[0])
        await anyio.sleep_forever()

    async with raw_server(serve) as raw, client() as (c, transport):
        with anyio.fail_after(5), pytest.raises(httpx.ReadTimeout):
            await _pump(c, raw.url, httpx.Timeout(5, read=0.2))
        assert transport.sockets == 0
