"""A minimal HTTP/1.1 server: h11 over anyio sockets, in the caller's event loop.

Just enough for a mock MCP server: keep-alive, bounded request bodies, streamed
chunked responses with TCP backpressure, one task per connection, prompt
detection of a client that goes away mid-stream, and byte-level escape hatches
(`send_raw`, `abort`) so fault injection can break the protocol on purpose.
"""

from __future__ import annotations

import contextlib
import functools
import logging
from collections.abc import Awaitable, Callable, Iterable
from dataclasses import dataclass
from urllib.parse import parse_qsl, urlsplit

import anyio
import anyio.abc
import h11

__all__ = ["Exchange", "HTTPServer", "Request"]

logger = logging.getLogger("mcpconn.testing.http")

_READ_SIZE = 65536
#: What a read meets when the client is gone (closed, reset, or we closed it).
_GONE = (anyio.EndOfStream, anyio.BrokenResourceError, anyio.ClosedResourceError, OSError)
_REASONS = {
    200: b"OK",
    202: b"Accepted",
    400: b"Bad Request",
    401: b"Unauthorized",
    403: b"Forbidden",
    404: b"Not Found",
    405: b"Method Not Allowed",
    406: b"Not Acceptable",
    409: b"Conflict",
    410: b"Gone",
    413: b"Content Too Large",
    415: b"Unsupported Media Type",
    429: b"Too Many Requests",
    500: b"Internal Server Error",
    502: b"Bad Gateway",
    503: b"Service Unavailable",
    504: b"Gateway Timeout",
}


@dataclass(frozen=True)
class Request:
    """One parsed request. Header names are lower-case; values are str (latin-1)."""

    method: str
    target: str
    headers: tuple[tuple[str, str], ...]
    body: bytes

    @functools.cached_property
    def path(self) -> str:
        return urlsplit(self.target).path

    @property
    def query(self) -> dict[str, str]:
        return dict(parse_qsl(urlsplit(self.target).query))

    def header(self, name: str) -> str | None:
        name = name.lower()
        for key, value in self.headers:
            if key == name:
                return value
        return None


Handler = Callable[[Request, "Exchange"], Awaitable[None]]


class _ClientGone(Exception):
    """The peer closed or reset the connection while we were writing."""


class Exchange:
    """The response side of one request.

    Either `respond()` once, or `start_stream()` then `send()` chunks and
    `end_stream()`. `abort()` drops the connection without finishing the body.
    """

    def __init__(self, conn: h11.Connection, stream: anyio.abc.ByteStream) -> None:
        self._conn = conn
        self._stream = stream
        self._streaming = False
        self.started = False
        self.finished = False
        self.aborted = False
        #: Set when the client goes away while a streamed response is open.
        self.client_gone = anyio.Event()
        #: Called with the status when the response starts (the server records it).
        self.on_start: Callable[[int], None] | None = None
        #: Seconds to wait before the first byte of the response (a late answer).
        self.hold = 0.0

    def _started(self, status: int) -> None:
        self.started = True
        if self.on_start is not None:
            self.on_start(status)

    async def _write(self, data: bytes) -> None:
        if not data:
            return
        if self.hold:
            hold, self.hold = self.hold, 0.0
            await anyio.sleep(hold)
        try:
            await self._stream.send(data)
        except (anyio.BrokenResourceError, anyio.ClosedResourceError, OSError) as exc:
            self.client_gone.set()
            raise _ClientGone from exc

    async def respond(
        self,
        status: int,
        headers: Iterable[tuple[str, str]] = (),
        body: bytes = b"",
    ) -> None:
        """Send a complete response with a Content-Length."""
        hdrs = [(k.encode("latin-1"), v.encode("latin-1")) for k, v in headers]
        hdrs.append((b"content-length", str(len(body)).encode()))
        data = self._conn.send(
            h11.Response(status_code=status, headers=hdrs, reason=_REASONS.get(status, b""))
        )
        assert data is not None
        if body:
            data += self._conn.send(h11.Data(data=body)) or b""
        data += self._conn.send(h11.EndOfMessage()) or b""
        self._started(status)
        self.finished = True
        await self._write(data)

    async def start_stream(
        self, status: int, headers: Iterable[tuple[str, str]] = (), *, first: bytes = b""
    ) -> None:
        """Send the headers of a chunked response (and ``first`` chunk, in the same send).

        The body follows with `send()`.
        """
        hdrs = [(k.encode("latin-1"), v.encode("latin-1")) for k, v in headers]
        hdrs.append((b"transfer-encoding", b"chunked"))
        data = self._conn.send(
            h11.Response(status_code=status, headers=hdrs, reason=_REASONS.get(status, b""))
        )
        if first:
            data = (data or b"") + (self._conn.send(h11.Data(data=first)) or b"")
        self._started(status)
        self._streaming = True
        await self._write(data or b"")

    async def send(self, chunk: bytes) -> None:
        """Send one chunk of a streamed body (waits while the peer does not read)."""
        if chunk:
            await self._write(self._conn.send(h11.Data(data=chunk)) or b"")

    async def end_stream(self) -> None:
        """Send the terminating chunk."""
        if not self.finished:
            self.finished = True
            await self._write(self._conn.send(h11.EndOfMessage()) or b"")

    async def send_raw(self, data: bytes) -> None:
        """Write bytes around h11 (faults only: the connection cannot be reused after)."""
        self.aborted = True
        await self._write(data)

    async def fail(self, body: bytes) -> None:
        """Answer 500 for a response the handler could not give; around h11 if it refused
        one midway (it is in ERROR then and writes nothing more): the connection ends."""
        if self._conn.our_state is not h11.ERROR:
            await self.respond(500, body=body)
            return
        self._started(500)
        head = b"HTTP/1.1 500 Internal Server Error\r\nconnection: close\r\ncontent-length: %d"
        await self.send_raw(head % len(body) + b"\r\n\r\n" + body)

    async def abort(self) -> None:
        """Close the connection now, without a terminating chunk or a response."""
        self.aborted = True
        self.finished = True
        with anyio.CancelScope(shield=True):
            await self._stream.aclose()
        self.client_gone.set()


class HTTPServer:
    """Serves `handler` on a TCP listener; every connection runs in its own task.

    `serve()` runs until cancelled; cancelling it closes every connection.
    """

    def __init__(
        self,
        handler: Handler,
        *,
        max_body: int = 4 << 20,
        max_header: int = 64 << 10,
    ) -> None:
        self._handler = handler
        self._max_body = max_body
        self._max_header = max_header
        self.open_connections = 0
        #: Called whenever ``open_connections`` changes (the mock's ``wait_until`` wakes).
        self.on_connections: Callable[[], None] | None = None

    async def serve(
        self,
        host: str,
        port: int,
        *,
        task_status: anyio.abc.TaskStatus[int] = anyio.TASK_STATUS_IGNORED,
    ) -> None:
        listener = await anyio.create_tcp_listener(local_host=host, local_port=port, backlog=4096)
        async with listener, anyio.create_task_group() as tg:
            bound = listener.extra(anyio.abc.SocketAttribute.local_port)
            for sub in listener.listeners:  # one per address family bound
                assert isinstance(sub, anyio.abc.SocketListener)
                tg.start_soon(self._accept_loop, sub, tg)
            task_status.started(bound)

    async def _accept_loop(
        self, listener: anyio.abc.SocketListener, tg: anyio.abc.TaskGroup
    ) -> None:
        while True:
            try:
                stream = await listener.accept()
            except OSError as exc:
                # Out of file descriptors (a load test went too far): keep
                # serving the connections we have instead of dying.
                logger.warning("mock server cannot accept: %s", exc.strerror or exc)
                await anyio.sleep(0.05)
                continue
            tg.start_soon(self._serve_connection, stream)

    async def _serve_connection(self, stream: anyio.abc.SocketStream) -> None:
        self._count_connections(+1)
        try:
            async with stream:
                await self._connection_loop(stream)
        except (anyio.BrokenResourceError, anyio.ClosedResourceError, OSError, _ClientGone):
            pass
        except h11.LocalProtocolError:  # ends this connection, never the server
            logger.exception("mock server connection failed")
        finally:
            self._count_connections(-1)

    def _count_connections(self, delta: int) -> None:
        self.open_connections += delta
        if self.on_connections is not None:
            self.on_connections()

    async def _read_request(
        self, conn: h11.Connection, stream: anyio.abc.SocketStream
    ) -> Request | None:
        """Read one full request, or None when the client closed (or sent junk)."""
        head: h11.Request | None = None
        body = bytearray()
        while True:
            try:
                event = conn.next_event()
            except h11.RemoteProtocolError:
                await self._reject(conn, stream, 400)
                return None
            if event is h11.NEED_DATA:
                try:
                    data = await stream.receive(_READ_SIZE)
                except (anyio.EndOfStream, anyio.BrokenResourceError, OSError):
                    data = b""
                conn.receive_data(data)
                continue
            if isinstance(event, h11.Request):
                head = event
                length = _content_length(event.headers)
                if length is not None and length > self._max_body:
                    await self._reject(conn, stream, 413)
                    return None
            elif isinstance(event, h11.Data):
                body += event.data
                if len(body) > self._max_body:
                    await self._reject(conn, stream, 413)
                    return None
            elif isinstance(event, h11.EndOfMessage):
                assert head is not None
                return Request(
                    method=head.method.decode("ascii", "replace"),
                    target=head.target.decode("latin-1"),
                    headers=tuple(
                        (k.decode("latin-1").lower(), v.decode("latin-1")) for k, v in head.headers
                    ),
                    body=bytes(body),
                )
            else:  # ConnectionClosed, PAUSED
                return None

    async def _reject(
        self, conn: h11.Connection, stream: anyio.abc.SocketStream, status: int
    ) -> None:
        exchange = Exchange(conn, stream)
        if conn.our_state in (h11.IDLE, h11.SEND_RESPONSE):
            with contextlib.suppress(_ClientGone, h11.LocalProtocolError):
                await exchange.respond(status, [("connection", "close")])

    async def _connection_loop(
        self, stream: anyio.abc.SocketStream, conn: h11.Connection | None = None
    ) -> None:
        if conn is None:
            conn = h11.Connection(h11.SERVER, max_incomplete_event_size=self._max_header)
        while True:
            request = await self._read_request(conn, stream)
            if request is None:
                return
            exchange = Exchange(conn, stream)
            async with anyio.create_task_group() as tg:
                tg.start_soon(self._watch_disconnect, conn, stream, exchange, tg.cancel_scope)
                await self._serve_one(request, exchange)
                tg.cancel_scope.cancel()
            if not await self._finish(exchange):
                return
            if conn.our_state is h11.MUST_CLOSE or conn.their_state is h11.MUST_CLOSE:
                return
            try:
                conn.start_next_cycle()
            except h11.LocalProtocolError:
                return

    async def _serve_one(self, request: Request, exchange: Exchange) -> None:
        """Run the handler; a failure is logged and answered 500 (or the stream dropped)."""
        try:
            await self._handler(request, exchange)
        except Exception as exc:
            if not _is_disconnect(exc):
                logger.exception("mock server handler failed")
            if exchange.started:
                exchange.aborted = True
            else:
                with contextlib.suppress(_ClientGone):
                    await exchange.fail(b"internal error")

    async def _finish(self, exchange: Exchange) -> bool:
        """End a response the handler left open; False: the connection cannot be reused."""
        if exchange.aborted or exchange.client_gone.is_set():
            return False
        if not exchange.finished:
            if exchange.started:
                await exchange.end_stream()
            else:
                await exchange.fail(b"no response")
        return True

    async def _watch_disconnect(
        self,
        conn: h11.Connection,
        stream: anyio.abc.SocketStream,
        exchange: Exchange,
        scope: anyio.CancelScope,
    ) -> None:
        """Read while the handler works: EOF means the client left, so stop the handler.

        Pipelined bytes are handed to h11 for the next cycle (bounded by h11's
        own incomplete-event limit plus one read).
        """
        buffered = 0
        while buffered <= self._max_header:
            try:
                data = await stream.receive(_READ_SIZE)
            except _GONE:
                data = b""
            if not data:
                exchange.client_gone.set()
                scope.cancel()
                return
            buffered += len(data)
            conn.receive_data(data)


def _is_disconnect(exc: BaseException) -> bool:
    """The client went away (possibly reported from inside a task group)."""
    if isinstance(exc, BaseExceptionGroup):
        return all(_is_disconnect(e) for e in exc.exceptions)
    return isinstance(exc, _ClientGone | anyio.BrokenResourceError | anyio.ClosedResourceError)


def _content_length(headers: Iterable[tuple[bytes, bytes]]) -> int | None:
    for key, value in headers:
        if key.lower() == b"content-length":
            try:
                return int(value)
            except ValueError:
                return None
    return None
