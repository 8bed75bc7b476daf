"""A thin HTTP/1.1 transport for httpx: h11 over anyio streams, an O(1) pool per origin.

`H11Transport` is an `httpx.AsyncBaseTransport`, so `httpx.AsyncClient`,
`httpx.Auth` and `httpx.Timeout` stay the configuration; only the layer under
the client changes. Per request it does one pool pop, one send of the whole
request (head and an in-memory body together), one cancel scope for the
connect, the send and the head and, for a body that did not all come with
it, one for the body; every operation's own timeout is kept by the
connection's one timer (`OperationTimer`, not a timer per operation);
httpcore does a scan of its pool, ~12 cancel scopes and two sends. `send_bytes` takes a request
without an `httpx.Request` (the JSON-RPC POSTs, `mcpconn._http.send`). A
response body (`ResponseBody`) is streamed (SSE listeners stay open for
hours); closing it early, from any task, or cancelling its reader closes the
socket instead of returning it to the pool; a reader that stops at what it
wanted has the stream's end read first (`ResponseBody.pump`). A connection
goes back to the pool only after a complete exchange that both sides may
continue.

Errors are httpx's own classes (`httpx.ConnectError`, `httpx.ReadTimeout`,
`httpx.RemoteProtocolError`, `httpx.PoolTimeout`...), so everything above,
`map_httpx_errors` included, cannot tell this transport from httpx's.
"""

from __future__ import annotations

import resource
import ssl
from collections.abc import AsyncIterable, Mapping
from typing import NoReturn

import anyio
import anyio.abc
import h11
import httpx

from .body import ResponseBody
from .deadlines import ReadDeadlines
from .dial import dial
from .head import request_head
from .pool import Connection, OriginPool
from .wire import CONNECTING, WRITING, next_event, now

__all__ = ["DEFAULT_LIMITS", "H11Transport", "default_max_per_origin"]

_FLUSH_AT = 65536
DEFAULT_LIMITS = httpx.Limits(max_connections=None, max_keepalive_connections=64)


def default_max_per_origin() -> int:
    """Three quarters of the process's file descriptors (at least 256): one origin never
    takes them all; read when an origin's pool is made, so a raised limit counts."""
    try:
        soft, _ = resource.getrlimit(resource.RLIMIT_NOFILE)
    except (OSError, ValueError):  # pragma: no cover - every POSIX system has it
        return 256
    if soft == resource.RLIM_INFINITY:
        return 32768
    return max(256, soft * 3 // 4)


class H11Transport(httpx.AsyncBaseTransport):
    """HTTP/1.1 over h11 + anyio, for ``http`` and ``https`` URLs.

    ``limits``: ``max_connections`` caps the sockets *per origin* (default:
    `default_max_per_origin`); ``max_keepalive_connections`` the idle ones per
    origin; ``keepalive_expiry`` how long an idle one is kept. ``ssl_context``
    is used for https (default: httpx's, built on first use).
    """

    def __init__(
        self, *, ssl_context: ssl.SSLContext | None = None, limits: httpx.Limits = DEFAULT_LIMITS
    ) -> None:
        self._ssl_context = ssl_context
        self._max_connections = limits.max_connections
        self._max_idle = limits.max_keepalive_connections
        self._expiry = limits.keepalive_expiry
        self._pools: dict[tuple[bytes, bytes, int], OriginPool] = {}
        self._live: set[Connection] = set()
        self._closed = False
        #: The timer of every parked listener read (its sweeper started by the supervisor).
        self.deadlines = ReadDeadlines()

    def __repr__(self) -> str:
        return f"<H11Transport origins={len(self._pools)} sockets={len(self._live)}>"

    @property
    def sockets(self) -> int:
        """Open sockets over all origins (idle and in use)."""
        return len(self._live)

    def origin(self, url: httpx.URL) -> OriginPool | None:
        """The pool of ``url``'s origin, if it has one (for statistics and tests)."""
        return self._pools.get(_origin_key(url))

    def _ssl(self) -> ssl.SSLContext:
        if self._ssl_context is None:
            context = httpx.create_ssl_context()
            context.set_alpn_protocols(["http/1.1"])
            self._ssl_context = context
        return self._ssl_context

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        with WRITING:
            head = h11.Request(
                method=request.method, target=request.url.raw_path, headers=request.headers.raw
            )
        stream = request.stream
        body = tuple(stream) if isinstance(stream, httpx.ByteStream) else stream
        timeouts: dict[str, float | None] = request.extensions.get("timeout", {})
        return await self._open(request.url, head, body, timeouts)  # type: ignore[arg-type]

    async def send_bytes(
        self,
        method: bytes,
        url: httpx.URL,
        headers: list[tuple[str, str]],
        content: bytes,
        timeouts: Mapping[str, float | None],
    ) -> httpx.Response:
        """One request with an in-memory body, without an `httpx.Request`: what
        `mcpconn._http.send` uses for the JSON-RPC POSTs. ``headers`` lack Host and
        Content-Length (added here); the response has no ``request``."""
        with WRITING:  # the head written here, h11 shown its framing (`request_head`)
            head, raw = request_head(method, url.raw_path, headers, url.netloc, len(content))
        del headers  # written: not kept for the round trip
        return await self._open(url, head, (content,), timeouts, raw)

    async def _open(
        self,
        url: httpx.URL,
        head: h11.Request,
        body: tuple[bytes, ...] | AsyncIterable[bytes],
        timeouts: Mapping[str, float | None],
        raw: bytes | None = None,
    ) -> httpx.Response:
        if self._closed:
            raise httpx.UnsupportedProtocol("the transport is closed")  # httpcore says the same
        key = _origin_key(url)
        pool = self._pools.get(key)
        if pool is None:
            pool = self._pools[key] = OriginPool(
                max_connections=self._max_connections or default_max_per_origin(),
                max_idle=self._max_idle,
                keepalive_expiry=self._expiry,
            )
        read = timeouts.get("read")
        to_close: list[Connection] = []
        try:
            conn = await pool.acquire(timeouts.get("pool"), to_close)
        except TimeoutError:
            raise httpx.PoolTimeout("no connection to this origin became free in time") from None
        finally:
            if to_close:
                await self._close(to_close)
        phase = _WRITING
        if conn is None:
            conn, phase = Connection(pool), _CONNECTING
        response: h11.Response | None = None
        # One scope for the connect, the write and the reads of the head, each bounded
        # by its own timeout through the connection's one timer (`OperationTimer`).
        with anyio.CancelScope() as scope:
            try:
                if phase is _CONNECTING:
                    conn.watch(scope, timeouts.get("connect"))
                    await self._connect(conn, key)
                    phase = _WRITING
                await _send(conn, head, raw, body, scope, timeouts.get("write"))
                phase = _READING
                response = await _receive_head(conn, scope, read)
            except BaseException:
                if phase is _CONNECTING:
                    conn.stop_timer()  # never connected: nothing of it is kept
                    pool.release_slot()
                else:
                    conn.unwatch()
                    await self._discard(conn)
                raise
            conn.unwatch()
        if response is None:  # the scope caught the timeout of the operation under way
            _timed_out(phase)
        return httpx.Response(
            response.status_code,
            headers=response.headers.raw_items(),
            stream=ResponseBody(self, conn, read),
            extensions={"http_version": b"HTTP/1.1", "reason_phrase": response.reason},
        )

    async def _connect(self, conn: Connection, key: tuple[bytes, bytes, int]) -> None:
        scheme, host, port = key
        tls = scheme == b"https"
        with CONNECTING:
            stream, fd = await dial(host.decode("ascii"), port, self._ssl() if tls else None)
        conn.attach(stream, fd)
        self._live.add(conn)

    def _release(self, conn: Connection, to_close: list[Connection]) -> None:
        """A complete exchange: back to its pool if both sides may go on, else closed."""
        h = conn.h11
        if self._closed or h.our_state is not h11.DONE or h.their_state is not h11.DONE:
            conn.origin.discard(conn, to_close)
            return
        h.start_next_cycle()
        conn.origin.release(conn, now(), to_close)

    async def _discard(self, conn: Connection) -> None:
        to_close: list[Connection] = []
        conn.origin.discard(conn, to_close)
        await self._close(to_close)

    async def _close(self, conns: list[Connection]) -> None:
        """Close sockets at once (no TLS goodbye to wait for), even when cancelled."""
        with anyio.CancelScope(shield=True):
            for conn in conns:
                self._live.discard(conn)
                conn.stop_timer()
                await anyio.aclose_forcefully(conn.stream)

    async def aclose(self) -> None:
        """Close every socket, idle or in use (a reader in use gets `httpx.ReadError`)."""
        self._closed = True
        live, self._live = list(self._live), set()
        for pool in self._pools.values():
            pool.drain()
        self._pools.clear()
        with anyio.CancelScope(shield=True):
            for conn in live:
                conn.stop_timer()
                await anyio.aclose_forcefully(conn.stream)


def _origin_key(url: httpx.URL) -> tuple[bytes, bytes, int]:
    scheme = url.raw_scheme
    if scheme == b"https":
        default = 443
    elif scheme == b"http":
        default = 80
    else:
        raise httpx.UnsupportedProtocol(f"unsupported URL scheme {url.scheme!r}")
    if not url.raw_host:
        raise httpx.UnsupportedProtocol("the URL has no host")
    return scheme, url.raw_host, url.port or default


_CONNECTING, _WRITING, _READING = "connecting", "writing", "reading"


def _timed_out(phase: str) -> NoReturn:
    """The typed timeout of the operation that took too long (httpx's own classes)."""
    if phase is _CONNECTING:
        raise httpx.ConnectTimeout("timed out (ConnectTimeout)")
    if phase is _WRITING:
        raise httpx.WriteTimeout("timed out sending the request")
    raise httpx.ReadTimeout("timed out waiting for the response")


async def _send(
    conn: Connection,
    head: h11.Request,
    raw: bytes | None,
    body: tuple[bytes, ...] | AsyncIterable[bytes],
    scope: anyio.CancelScope,
    timeout: float | None,
) -> None:
    """The request head and body: one send when the body is in memory (each send under
    ``timeout``). ``raw``: the head as written by `request_head` (h11's own bytes of its
    framing-only ``head`` dropped)."""
    h = conn.h11
    stream = conn.stream
    conn.watch(scope, timeout)
    with WRITING:
        parts = [h.send(head)]
        if raw is not None:
            parts[0] = raw
        size = len(parts[0])
        if isinstance(body, tuple):  # in memory
            for chunk in body:
                if chunk:
                    parts.append(h.send(h11.Data(data=chunk)))
        else:
            async for chunk in body:
                if not chunk:
                    continue
                parts.append(h.send(h11.Data(data=chunk)))
                size += len(chunk)
                if size >= _FLUSH_AT:
                    await stream.send(b"".join(parts))
                    parts, size = [], 0
                    conn.watch(scope, timeout)
        parts.append(h.send(h11.EndOfMessage()))
        await stream.send(b"".join(parts))


async def _receive_head(
    conn: Connection, scope: anyio.CancelScope, timeout: float | None
) -> h11.Response:
    while True:
        event = await next_event(conn, scope, timeout)
        kind = type(event)
        if kind is h11.Response:
            return event  # type: ignore[no-any-return]
        if kind is h11.InformationalResponse:
            continue
        raise httpx.RemoteProtocolError("the server closed the connection without a response")
