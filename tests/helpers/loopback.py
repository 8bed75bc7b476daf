"""A tiny HTTP/1.1 server on a real loopback socket, for network tests.

Built on `anyio.create_tcp_listener` and h11, it runs inside the test's own
event loop, so it works on asyncio and trio alike. The handler sees
``(method, path, headers, body)`` and returns ``(status, headers, body)``;
header names arrive lower-cased.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager, suppress
from dataclasses import dataclass, field

import anyio
import anyio.abc
import h11
from anyio.abc import SocketAttribute

Headers = list[tuple[str, str]]
Handler = Callable[[str, str, Headers, bytes], Awaitable[tuple[int, Headers, bytes]]]


@dataclass
class LoopbackServer:
    url: str
    #: Every request served so far: (method, path, headers).
    requests: list[tuple[str, str, Headers]] = field(default_factory=list)


async def _serve_connection(
    stream: anyio.abc.SocketStream, handler: Handler, server: LoopbackServer
) -> None:
    conn = h11.Connection(h11.SERVER)
    async with stream:
        while True:
            request: h11.Request | None = None
            body = bytearray()
            while True:
                event = conn.next_event()
                if event is h11.NEED_DATA:
                    try:
                        data = await stream.receive(65536)
                    except (anyio.EndOfStream, anyio.BrokenResourceError):
                        data = b""
                    conn.receive_data(data)
                    continue
                if isinstance(event, h11.Request):
                    request = event
                elif isinstance(event, h11.Data):
                    body += event.data
                elif isinstance(event, h11.EndOfMessage):
                    break
                elif isinstance(event, h11.ConnectionClosed | h11.PAUSED):
                    return
            assert request is not None
            method = request.method.decode()
            path = request.target.decode()
            headers = [(k.decode().lower(), v.decode("latin-1")) for k, v in request.headers]
            server.requests.append((method, path, headers))
            status, out_headers, out_body = await handler(method, path, headers, bytes(body))
            response_headers = [*out_headers, ("content-length", str(len(out_body)))]
            for event_out in (
                h11.Response(status_code=status, headers=response_headers),
                h11.Data(data=out_body),
                h11.EndOfMessage(),
            ):
                data_out = conn.send(event_out)
                if data_out:
                    await stream.send(data_out)
            if conn.our_state is h11.MUST_CLOSE:
                return
            try:
                conn.start_next_cycle()
            except h11.LocalProtocolError:
                return


@asynccontextmanager
async def serve(handler: Handler) -> AsyncIterator[LoopbackServer]:
    """Serve ``handler`` on 127.0.0.1, a free port, until the block ends."""
    listener = await anyio.create_tcp_listener(local_host="127.0.0.1", local_port=0)
    port = listener.extra(SocketAttribute.local_port)
    server = LoopbackServer(url=f"http://127.0.0.1:{port}")

    async def on_connection(stream: anyio.abc.SocketStream) -> None:
        # A client that hangs up mid-request is not the test's concern.
        with suppress(h11.ProtocolError, anyio.BrokenResourceError, anyio.ClosedResourceError):
            await _serve_connection(stream, handler, server)

    async with listener, anyio.create_task_group() as tg:
        tg.start_soon(listener.serve, on_connection)
        try:
            yield server
        finally:
            tg.cancel_scope.cancel()
