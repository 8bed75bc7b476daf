"""The lean mode's HTTP/1.1: plain requests parsed by hand, responses written as bytes.

h11 is most of an ordinary request's cost here (validating every header both
ways, a state machine per event). The requests a load test sends are plain:
``GET``/``POST``/``DELETE`` (or ``PUT``/``PATCH``) over HTTP/1.1, a Host, at most
one Content-Length, no chunked body, no ``Expect`` or ``Connection: close``.
Those are parsed by a strict subset of HTTP's grammar and answered with heads
built from cached lines. Anything else (and a head that is not complete when
the client closes) hands the connection, with the bytes read so far, to an h11
connection at a request boundary, so odd requests get exactly the ordinary
server's answers. One task reads the connection for its life (the ordinary
server starts a watcher task per request).
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from typing import cast

import anyio
import anyio.abc
import h11

from ._http import (
    _GONE,
    _READ_SIZE,
    _REASONS,
    Exchange,
    Handler,
    HTTPServer,
    Request,
    _ClientGone,
)

__all__ = ["LeanExchange", "LeanHTTPServer", "parse_head"]

_METHODS = {b"GET": "GET", b"POST": "POST", b"DELETE": "DELETE", b"PUT": "PUT", b"PATCH": "PATCH"}
_REQUEST_LINE = re.compile(rb"([A-Z]+) ([\x21-\x7e]+) HTTP/1\.1")
_HEADER = re.compile(rb"([!#$%&'*+.^_`|~0-9A-Za-z-]+):[ \t]*((?:[\x21-\x7e][\x20-\x7e\t]*)?)")
#: What h11 accepts in a header it sends (a token; a value of visible bytes and obs-text,
#: blanks only between them).
_TOKEN = re.compile(rb"[-!#$%&'*+.^_`|~0-9a-zA-Z]+")
_SENDABLE_VALUE = re.compile(rb"(?:[^\x00\s]+(?:[ \t]+[^\x00\s]+)*)?")
#: Request headers looked at: framing and keep-alive (the others among them send the
#: request to h11: a chunked body, ``Expect``, ``Upgrade``...).
_SPECIAL = frozenset(
    {
        "connection",
        "content-length",
        "expect",
        "host",
        "te",
        "trailer",
        "transfer-encoding",
        "upgrade",
    }
)
_END = b"0\r\n\r\n"
_Headers = Iterable[tuple[str, str]]
_MAX_CACHED_LINES = 4096


def parse_head(
    head: bytes, fields: dict[bytes, tuple[str, str]]
) -> tuple[str, str, tuple[tuple[str, str], ...], int] | None:
    """``head`` (without its blank line) as (method, target, headers, body length).

    None when it is not plain (see the module docstring); header names lower-case,
    values stripped of surrounding blanks, as h11 gives them. ``fields`` holds the
    header lines seen before, parsed: the same few recur on every request.
    """
    lines = head.split(b"\r\n")  # a bare CR or LF left in a line fails its pattern
    first = _REQUEST_LINE.fullmatch(lines[0])
    if first is None or first.group(1) not in _METHODS:
        return None
    headers: list[tuple[str, str]] = []
    length = -1
    seen_host = False
    for line in lines[1:]:
        field = fields.get(line)
        if field is None:
            field = _field(line)
            if field is None:
                return None
            if len(fields) >= _MAX_CACHED_LINES:
                fields.clear()
            fields[line] = field
        name = field[0]
        if name in _SPECIAL:
            value = field[1]
            if name == "content-length":
                if length >= 0 or not value.isdigit() or len(value) > 20:
                    return None
                length = int(value)
            elif name == "host":
                if seen_host:
                    return None
                seen_host = True
            elif name != "connection" or value.lower() != "keep-alive":
                return None
        headers.append(field)
    if not seen_host:
        return None
    method = _METHODS[first.group(1)]
    return method, first.group(2).decode("ascii"), tuple(headers), max(length, 0)


def _field(line: bytes) -> tuple[str, str] | None:
    match = _HEADER.fullmatch(line)
    if match is None:
        return None
    return match.group(1).decode("ascii").lower(), match.group(2).rstrip(b" \t").decode("ascii")


#: Response headers that frame the body: the exchange writes its own.
_FRAMING = ("content-length", "transfer-encoding")


class LeanExchange(Exchange):
    """`Exchange` without h11: the same calls, the same bytes on the wire."""

    def __init__(self, stream: anyio.abc.ByteStream, lines: dict[tuple[str, str], bytes]) -> None:
        super().__init__(cast("h11.Connection", None), stream)
        self._lines = lines
        #: The response said ``Connection: close``: the connection ends after it.
        self.close_after = False

    async def fail(self, body: bytes) -> None:
        await self.respond(500, body=body)  # what h11 refuses is refused before a byte

    def _head(self, status: int, headers: Iterable[tuple[str, str]], framing: bytes) -> bytes:
        if self.started:
            raise h11.LocalProtocolError("a response was already started")
        if not 200 <= status < 1000:
            raise h11.LocalProtocolError(f"status {status} is not a final response's")
        lines = self._lines
        parts = [b"HTTP/1.1 %d %s\r\n" % (status, _REASONS.get(status, b""))]
        for item in headers:
            line = lines.get(item)
            if line is None:
                line = _header_line(*item)
                if len(lines) >= _MAX_CACHED_LINES:
                    lines.clear()
                lines[item] = line
            if item[0].lower() == "connection" and "close" in _tokens(item[1]):
                self.close_after = True
            parts.append(line)
        parts.append(framing)
        return b"".join(parts)

    async def respond(self, status: int, headers: _Headers = (), body: bytes = b"") -> None:
        if body and status in (204, 304):
            raise h11.LocalProtocolError(f"a {status} response has no body")  # as h11
        headers = tuple(headers)
        framing = [(n.lower(), v.strip()) for n, v in headers if n.lower() in _FRAMING]
        if framing:  # a fault's own framing header: framed as h11 frames it, never twice
            headers = [pair for pair in headers if pair[0].lower() not in _FRAMING]
            if any(name == "transfer-encoding" for name, _ in framing):
                if any(v.lower() != "chunked" for n, v in framing if n == "transfer-encoding"):
                    raise h11.LocalProtocolError("Only Transfer-Encoding: chunked is supported")
                await self.start_stream(status, headers, first=body)  # chunked wins
                await self.end_stream()
                return
            if any(value != str(len(body)) for _, value in framing):
                raise h11.LocalProtocolError("conflicting Content-Length headers")
        data = self._head(status, headers, b"content-length: %d\r\n\r\n" % len(body)) + body
        self._started(status)
        self.finished = True
        await self._write(data)

    async def start_stream(
        self, status: int, headers: _Headers = (), *, first: bytes = b""
    ) -> None:
        data = self._head(status, headers, b"transfer-encoding: chunked\r\n\r\n")
        if first:
            data += b"%x\r\n%s\r\n" % (len(first), first)
        self._started(status)
        self._streaming = True
        await self._write(data)

    async def send(self, chunk: bytes) -> None:
        if not self._streaming or self.finished:
            raise h11.LocalProtocolError("no streamed response is open")
        if chunk:
            await self._write(b"%x\r\n%s\r\n" % (len(chunk), chunk))

    async def end_stream(self) -> None:
        if not self.finished:
            if not self._streaming:
                raise h11.LocalProtocolError("no streamed response is open")
            self.finished = True
            await self._write(_END)


def _header_line(name: str, value: str) -> bytes:
    """``name: value`` as h11 writes it, refusing what h11 refuses (CR, LF, NUL...)."""
    raw_name, raw_value = name.encode("latin-1"), value.encode("latin-1")
    if not _TOKEN.fullmatch(raw_name) or not _SENDABLE_VALUE.fullmatch(raw_value):
        raise h11.LocalProtocolError(f"illegal header {name!r}")
    return raw_name + b": " + raw_value + b"\r\n"


def _tokens(value: str) -> list[str]:
    return [token.strip() for token in value.lower().split(",")]


class _Reader:
    """Reads one connection for its whole life (one task, not one per request).

    Bytes go to ``buffer``; the client's leaving sets ``closed`` and, while a
    handler runs, stops it as the ordinary server's per-request watcher does.
    Reading holds while the buffer is past what the connection needs (a body, or
    a head of at most ``max_header``): pipelining stays bounded.
    """

    __slots__ = ("_room", "_wake", "buffer", "closed", "exchange", "max_header", "scope", "want")

    def __init__(self, max_header: int) -> None:
        self.buffer = bytearray()
        self.closed = False
        self.max_header = max_header
        self.want = 0  # bytes the connection waits for (a head and its body)
        self.exchange: Exchange | None = None  # the request being served, and its scope
        self.scope: anyio.CancelScope | None = None
        self._wake: anyio.Event | None = None
        self._room: anyio.Event | None = None

    async def run(self, stream: anyio.abc.SocketStream) -> None:
        buffer = self.buffer
        while True:
            if len(buffer) > max(self.want, self.max_header):
                self._room = anyio.Event()
                await self._room.wait()
                continue
            data = await _receive(stream)
            if not data:
                self.closed = True
                if self.exchange is not None and self.scope is not None:
                    self.exchange.client_gone.set()
                    self.scope.cancel()
                self._notify()
                return
            buffer += data
            self._notify()

    def _notify(self) -> None:
        if self._wake is not None:
            self._wake.set()
            self._wake = None

    async def more(self) -> None:
        """Wait for more bytes or the end (call only when neither is at hand)."""
        if self._wake is None:
            self._wake = anyio.Event()
        await self._wake.wait()

    def consume(self, size: int) -> bytes:
        data = bytes(self.buffer[:size])
        del self.buffer[:size]
        if self._room is not None:
            self._room.set()
            self._room = None
        return data


class LeanHTTPServer(HTTPServer):
    """`HTTPServer` serving plain requests without h11 (see the module docstring)."""

    def __init__(self, handler: Handler, **limits: int) -> None:
        super().__init__(handler, **limits)
        self._lines: dict[tuple[str, str], bytes] = {}  # response header lines, encoded
        self._fields: dict[bytes, tuple[str, str]] = {}  # request header lines, parsed

    async def _connection_loop(
        self, stream: anyio.abc.SocketStream, conn: h11.Connection | None = None
    ) -> None:
        if conn is not None:  # only ever given by this loop's own handover
            await super()._connection_loop(stream, conn)
            return
        reader = _Reader(self._max_header)
        async with anyio.create_task_group() as tg:
            tg.start_soon(reader.run, stream)
            handover = await self._serve_plain(stream, reader)
            tg.cancel_scope.cancel()
        if handover:  # what the reader had read, and whether the client had closed
            conn = h11.Connection(h11.SERVER, max_incomplete_event_size=self._max_header)
            if reader.buffer:
                conn.receive_data(bytes(reader.buffer))
            if reader.closed:
                conn.receive_data(b"")
            await super()._connection_loop(stream, conn)

    async def _serve_plain(self, stream: anyio.abc.SocketStream, reader: _Reader) -> bool:
        """Serve plain requests until the connection ends (False) or one is not plain (True)."""
        try:
            while True:
                request = await self._read_plain(reader)
                if request is None:
                    return bool(reader.buffer)  # not plain, or cut short: to h11
                exchange = LeanExchange(stream, self._lines)
                with anyio.CancelScope() as scope:
                    reader.exchange, reader.scope = exchange, scope
                    if reader.closed:  # the client left right after its request
                        exchange.client_gone.set()
                        scope.cancel()
                    await self._serve_one(request, exchange)
                reader.exchange = reader.scope = None
                if not await self._finish(exchange) or exchange.close_after:
                    return False
        except (_ClientGone, anyio.BrokenResourceError, anyio.ClosedResourceError, OSError):
            return False

    async def _read_plain(self, reader: _Reader) -> Request | None:
        """The next plain request; None: the client closed, or the request is not plain
        (then ``reader.buffer`` still holds it)."""
        buffer = reader.buffer
        reader.want = 0
        while (end := buffer.find(b"\r\n\r\n")) < 0:
            if len(buffer) > self._max_header or reader.closed:
                return None
            await reader.more()
        parsed = parse_head(bytes(buffer[:end]), self._fields)
        if parsed is None or parsed[3] > self._max_body:
            return None
        method, target, headers, length = parsed
        reader.want = total = end + 4 + length
        while len(buffer) < total:
            if reader.closed:
                return None
            await reader.more()
        body = reader.consume(total)[end + 4 :]
        return Request(method=method, target=target, headers=headers, body=body)


async def _receive(stream: anyio.abc.SocketStream) -> bytes:
    """The next bytes; ``b""`` when the client is gone (closed, reset, or we closed it)."""
    try:
        return await stream.receive(_READ_SIZE)
    except _GONE:
        return b""
