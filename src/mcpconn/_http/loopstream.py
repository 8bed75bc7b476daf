"""A TCP byte stream straight on an asyncio transport: reading stays on between receives.

anyio's asyncio ``SocketStream`` pauses its transport's reading after every
receive and resumes it before the next wait: two selector changes per read (the
resume a registration whose lookup raises and formats two ``KeyError``\\ s inside
asyncio), a checkpoint when data is already there and a shielded one after
every send, two resource guards and two ``asyncio.Event``\\ s per socket. A
burst of a thousand reconnects did ~7 of those registrations per reconnect.
`LoopStream` is the transport's protocol itself: data is queued as it comes (up
to `HIGH_WATER` bytes, then the transport pauses until the reader catches up),
a receive waits on a bare future only when nothing is queued, and a send waits
only while the kernel has not taken everything (write buffer limit 0, as
anyio's). Errors are anyio's (`anyio.EndOfStream`, `BrokenResourceError`,
`ClosedResourceError`), so the transport above cannot tell it from anyio's
stream; `dial` uses it for plain TCP to an IP literal on asyncio.
"""

from __future__ import annotations

import asyncio
import socket
from asyncio.selector_events import BaseSelectorEventLoop
from collections.abc import Callable, Mapping
from typing import Any

import anyio
import anyio.abc

__all__ = ["HIGH_WATER", "LoopStream", "open_loop_stream"]

#: Bytes queued unread before the transport stops reading (until the reader takes them).
HIGH_WATER = 65536


class LoopStream(anyio.abc.ByteStream, asyncio.Protocol):
    """One connected TCP socket on the running asyncio loop (see the module docstring)."""

    def __init__(self) -> None:
        self._transport: asyncio.Transport | None = None
        #: Received chunks, taken from ``_head`` on: a list, not a deque (an empty deque
        #: is 760 bytes, on every idle connection); emptied, or halved, as it is read.
        self._queued: list[bytes] = []
        self._head = 0
        self._size = 0
        self._paused = False  # reading paused: `HIGH_WATER` reached
        self._eof = False
        self._lost = False
        self._error: BaseException | None = None
        self._closed = False
        self._can_write = True
        self._reader: asyncio.Future[None] | None = None
        self._writer: asyncio.Future[None] | None = None

    @property
    def has_input(self) -> bool:
        """Something came that nobody read (data, the peer's EOF, a lost connection):
        an idle keep-alive connection with input cannot be reused."""
        return self._head < len(self._queued) or self._eof or self._lost

    @property
    def extra_attributes(self) -> Mapping[Any, Callable[[], Any]]:
        """The socket's attributes, as anyio's socket stream offers them (built on use)."""
        sock = self._transport.get_extra_info("socket") if self._transport else None
        if sock is None:
            return {}
        attribute = anyio.abc.SocketAttribute
        return {
            attribute.raw_socket: lambda: sock,
            attribute.family: lambda: sock.family,
            attribute.local_address: sock.getsockname,
            attribute.remote_address: sock.getpeername,
        }

    # ---- asyncio.Protocol -------------------------------------------------------------

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        if transport is self._transport:
            return  # made already (`open_loop_stream`); the loop tells it again
        assert isinstance(transport, asyncio.Transport)
        self._transport = transport
        transport.set_write_buffer_limits(0)  # a send returns once the kernel has it all

    def data_received(self, data: bytes) -> None:
        self._queued.append(data)
        self._size += len(data)
        if self._size >= HIGH_WATER and not self._paused and self._transport is not None:
            self._paused = True
            self._transport.pause_reading()
        _wake(self._reader)

    def eof_received(self) -> bool:
        self._eof = True
        _wake(self._reader)
        return True  # half-open, as anyio's: the stream is closed by its owner

    def connection_lost(self, exc: Exception | None) -> None:
        self._lost = True
        self._error = exc
        self._can_write = True
        _wake(self._reader)
        _wake(self._writer)

    def pause_writing(self) -> None:
        self._can_write = False

    def resume_writing(self) -> None:
        self._can_write = True
        _wake(self._writer)

    # ---- anyio.abc.ByteStream ---------------------------------------------------------

    async def receive(self, max_bytes: int = 65536) -> bytes:
        queued = self._queued
        while self._head == len(queued):  # what came is read first, as from anyio's stream
            if self._closed:
                raise anyio.ClosedResourceError
            if self._error is not None:
                raise anyio.BrokenResourceError from self._error
            if self._eof or self._lost:
                raise anyio.EndOfStream
            if self._reader is not None:
                raise anyio.BusyResourceError("reading from")
            waiter = self._reader = asyncio.get_running_loop().create_future()
            try:
                await waiter
            finally:
                self._reader = None
        head = self._head
        chunk = queued[head]
        if len(chunk) > max_bytes:
            queued[head] = chunk[max_bytes:]
            chunk = chunk[:max_bytes]
        elif head + 1 == len(queued):
            queued.clear()
            self._head = 0
        elif head >= 32 and head * 2 >= len(queued):  # O(1) per chunk, and bounded
            del queued[: head + 1]
            self._head = 0
        else:
            queued[head] = b""
            self._head = head + 1
        self._size -= len(chunk)
        if self._paused and self._size < HIGH_WATER and not self._lost:
            self._paused = False
            assert self._transport is not None
            self._transport.resume_reading()
        return chunk

    async def send(self, item: bytes) -> None:
        self._raise_if_done()
        if self._writer is not None:
            raise anyio.BusyResourceError("writing to")
        assert self._transport is not None
        try:
            self._transport.write(item)
        except RuntimeError as exc:  # the transport is closing
            raise anyio.BrokenResourceError from exc
        while not self._can_write:
            waiter = self._writer = asyncio.get_running_loop().create_future()
            try:
                await waiter
            finally:
                self._writer = None
        self._raise_if_done()

    async def send_eof(self) -> None:
        if self._transport is not None and not self._transport.is_closing():
            self._transport.write_eof()

    async def aclose(self) -> None:
        """Close at once (no waiting for unsent data); a reader or writer in another
        task gets `anyio.ClosedResourceError`."""
        self._closed = True
        if self._transport is not None:
            self._transport.abort()
        _wake(self._reader)
        _wake(self._writer)

    def _raise_if_done(self) -> None:
        if self._closed:
            raise anyio.ClosedResourceError
        if self._lost:
            if self._error is not None:
                raise anyio.BrokenResourceError from self._error
            raise anyio.BrokenResourceError


def _wake(waiter: asyncio.Future[None] | None) -> None:
    if waiter is not None and not waiter.done():
        waiter.set_result(None)


async def open_loop_stream(sock: socket.socket) -> LoopStream:
    """A connected, non-blocking ``sock`` as a `LoopStream` (on the running asyncio loop).

    On a selector loop (the default one) the transport is made as ``create_connection``
    makes it, without its waiter future, coroutine and turn of the loop (~20 objects per
    connect that a burst of reconnects would promote to the old GC generations); any
    other loop (uvloop, the proactor) goes through ``create_connection``.
    """
    stream = LoopStream()
    loop = asyncio.get_running_loop()
    make = _transport_maker(loop)
    if make is not None:
        sock.setblocking(False)
        stream.connection_made(make(sock, stream))
    else:
        await loop.create_connection(lambda: stream, sock=sock)
    return stream


def _transport_maker(
    loop: asyncio.AbstractEventLoop,
) -> Callable[[socket.socket, asyncio.Protocol], asyncio.Transport] | None:
    """The selector loop's own transport factory (what ``create_connection`` calls)."""
    if not isinstance(loop, BaseSelectorEventLoop):
        return None
    make: Callable[[socket.socket, asyncio.Protocol], asyncio.Transport] | None
    make = getattr(loop, "_make_socket_transport", None)
    return make
