"""Small raw HTTP/1.1 servers on loopback (bytes in, bytes out) for the transport tests.

One coroutine per accepted connection makes the edge cases exact: a server that closes
mid-body, one that stalls, one that closes an idle keep-alive connection.
"""

from __future__ import annotations

import ssl
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager, suppress
from dataclasses import dataclass, field

import anyio
import anyio.abc
import httpx

from mcpconn._http import H11Transport

Serve = Callable[[anyio.abc.SocketStream], Awaitable[None]]


@dataclass
class Raw:
    url: str
    accepted: int = 0
    requests: list[bytes] = field(default_factory=list)


@asynccontextmanager
async def raw_server(serve: Serve, *, tls: ssl.SSLContext | None = None) -> AsyncIterator[Raw]:
    listener = await anyio.create_tcp_listener(local_host="127.0.0.1")
    port = listener.extra(anyio.abc.SocketAttribute.local_port)
    raw = Raw(f"{'https' if tls else 'http'}://127.0.0.1:{port}/mcp")

    async def handle(stream: anyio.abc.SocketStream) -> None:
        raw.accepted += 1
        async with stream:
            with suppress(anyio.BrokenResourceError, anyio.ClosedResourceError, anyio.EndOfStream):
                await serve(stream)

    async def accept(sock: anyio.abc.SocketStream) -> None:
        if tls is None:
            await handle(sock)
        else:
            await _tls_handle(sock, tls, handle)

    async with listener, anyio.create_task_group() as tg:
        tg.start_soon(listener.serve, accept)
        yield raw
        tg.cancel_scope.cancel()


async def _tls_handle(sock: anyio.abc.SocketStream, context: ssl.SSLContext, handle: Serve) -> None:
    from anyio.streams.tls import TLSStream

    async with sock:  # closed however the handshake ends (cancelled included)
        try:
            stream = await TLSStream.wrap(sock, server_side=True, ssl_context=context)
        except (ssl.SSLError, anyio.BrokenResourceError, anyio.EndOfStream, OSError):
            return
        await handle(stream)  # type: ignore[arg-type]


async def read_request(stream: anyio.abc.ByteStream, raw: Raw | None = None) -> bytes:
    """Read one request head (and a content-length body)."""
    data = b""
    while b"\r\n\r\n" not in data:
        data += await stream.receive()
    head, _, body = data.partition(b"\r\n\r\n")
    for line in head.split(b"\r\n"):
        if line.lower().startswith(b"content-length:"):
            length = int(line.split(b":")[1])
            while len(body) < length:
                body += await stream.receive()
    if raw is not None:
        raw.requests.append(head + b"\r\n\r\n" + body)
    return head + b"\r\n\r\n" + body


def response(body: bytes, *extra: bytes) -> bytes:
    headers = b"".join(h + b"\r\n" for h in extra)
    return b"HTTP/1.1 200 OK\r\ncontent-length: %d\r\n%s\r\n%s" % (len(body), headers, body)


def keepalive(raw_ref: list[Raw]) -> Serve:
    async def serve(stream: anyio.abc.SocketStream) -> None:
        while True:
            await read_request(stream, raw_ref[0] if raw_ref else None)
            await stream.send(response(b"hello"))

    return serve


@asynccontextmanager
async def client(**kwargs: object) -> AsyncIterator[tuple[httpx.AsyncClient, H11Transport]]:
    transport = H11Transport(**kwargs)  # type: ignore[arg-type]
    async with httpx.AsyncClient(transport=transport, timeout=5) as c:
        yield c, transport
