"""The socket side of `H11Transport`: reads, its clock, and errors as httpx's own.

Shared by the transport (request heads) and `ResponseBody` (bodies); cheap on
purpose, since each runs several times per request.
"""

from __future__ import annotations

import asyncio
import math
import ssl
from typing import Any, NoReturn

import anyio
import anyio.abc
import h11
import httpx

from .pool import Connection

__all__ = [
    "CONNECTING",
    "READING",
    "WRITING",
    "deadline_in",
    "next_event",
    "now",
    "read",
    "receive",
]

_READ_SIZE = 65536
_NETWORK_ERRORS = (OSError, anyio.BrokenResourceError, anyio.ClosedResourceError)


def now() -> float:
    """``anyio.current_time()``, without its backend lookup on asyncio (whose clock is the
    running loop's): called several times per request."""
    loop = asyncio._get_running_loop()
    return loop.time() if loop is not None else anyio.current_time()


def deadline_in(seconds: float | None) -> float:
    """The deadline ``seconds`` from `now` (``inf`` for None), for a plain cancel scope.

    ``anyio.fail_after`` is two generator context managers around its scope: in a burst
    of a thousand reconnects each of their objects outlives the young collections, so a
    scope and a check of ``cancelled_caught`` is what the hot paths use instead.
    """
    return math.inf if seconds is None else now() + seconds


def deadline_passed() -> NoReturn:
    """What ``anyio.fail_after`` raises when a `deadline_in` scope caught its deadline (inside
    `CONNECTING` or `READING`: httpx's timeout of that operation)."""
    raise TimeoutError


class _Mapped:
    """Our socket's and h11's errors as httpx's: a reusable context manager (a class, not
    a generator: it is entered several times per request)."""

    __slots__ = ("error_class", "timeout_class")

    def __init__(
        self, timeout_class: type[httpx.TimeoutException], error_class: type[httpx.HTTPError]
    ) -> None:
        self.timeout_class = timeout_class
        self.error_class = error_class

    def __enter__(self) -> None:
        return None

    def __exit__(
        self, kind: type[BaseException] | None, exc: BaseException | None, tb: Any
    ) -> None:
        if exc is not None:
            self.reraise(exc)

    def reraise(self, exc: BaseException) -> None:
        """Raise ``exc`` as httpx's error, if it maps to one (else return: the caller's
        ``raise`` goes on with it). For a ``try``, where a ``with`` around an await would
        keep its bound ``__exit__`` for as long as the await waits (a held listener)."""
        if isinstance(exc, TimeoutError):
            name = self.timeout_class.__name__
            raise self.timeout_class(f"timed out ({name})") from exc
        if isinstance(exc, h11.RemoteProtocolError):
            raise httpx.RemoteProtocolError(str(exc)) from exc
        if isinstance(exc, h11.LocalProtocolError):
            raise httpx.LocalProtocolError(str(exc)) from exc
        if isinstance(exc, ssl.SSLError):
            raise self.error_class(f"TLS error ({type(exc).__name__})") from exc
        if isinstance(exc, _NETWORK_ERRORS):
            raise self.error_class(f"{type(exc).__name__}") from exc


READING = _Mapped(httpx.ReadTimeout, httpx.ReadError)
WRITING = _Mapped(httpx.WriteTimeout, httpx.WriteError)
CONNECTING = _Mapped(httpx.ConnectTimeout, httpx.ConnectError)


async def receive(stream: anyio.abc.ByteStream, timeout: float | None) -> bytes:
    """One read (b"" at EOF); a timeout or a broken socket as httpx's errors."""
    if timeout is None:
        return await read(stream)
    with READING:
        with anyio.CancelScope(deadline=now() + timeout):
            return await read(stream)
        deadline_passed()  # the scope's deadline: the only way out without a return


async def read(stream: anyio.abc.ByteStream) -> bytes:
    with READING:
        try:
            return await stream.receive(_READ_SIZE)
        except anyio.EndOfStream:
            return b""


async def next_event(
    conn: Connection, scope: anyio.CancelScope | None, timeout: float | None
) -> Any:
    """``conn``'s next h11 event, reading as needed: each read under ``timeout``, watched
    by the connection's timer in ``scope`` (one scope for many reads; `Connection.watch`)
    or, without one, in a scope of its own."""
    h = conn.h11
    while True:
        with READING:
            event = h.next_event()
        if event is not h11.NEED_DATA:
            return event
        if scope is None:
            data = await receive(conn.stream, timeout)
        else:
            conn.watch(scope, timeout)
            try:  # `read`, inline: a held listener's stack is one frame shallower
                data = await conn.stream.receive(_READ_SIZE)
            except anyio.EndOfStream:
                data = b""
            except Exception as exc:
                READING.reraise(exc)
                raise
        with READING:
            h.receive_data(data)
