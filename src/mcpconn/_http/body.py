"""A streaming response body of `H11Transport`, and what happens when its reader stops early.

An MCP request's response stream ends right after its response: a reader
that stops there (the call has its answer) leaves the stream's end unread.
`ResponseBody` reads that end so that the connection is reused rather than
closed (a new connection per call cost 18% of tool calls a reconnect).
"""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import TYPE_CHECKING

import anyio
import h11
import httpx

from .pool import Connection
from .wire import _READ_SIZE, READING, next_event, now, read

if TYPE_CHECKING:
    from .deadlines import ReadDeadlines
    from .transport import H11Transport

__all__ = ["TAIL_BUDGET", "TAIL_GRACE", "TAIL_MISSES", "TAIL_PROBE", "ResponseBody"]


def _buffered_end(h: h11.Connection, budget: int) -> bool | None:
    """Whether the body ends within what is buffered (None: more must be read first);
    False for anything but the end: more than ``budget`` bytes, or broken framing."""
    try:
        while budget >= 0:
            event = h.next_event()
            if event is h11.NEED_DATA:
                return None
            kind = type(event)
            if kind is h11.EndOfMessage:
                return True
            if kind is not h11.Data:
                return False
            budget -= len(event.data)  # type: ignore[union-attr]
    except h11.ProtocolError:
        pass
    return False


async def _read_end(conn: Connection) -> bool:
    """Read until the body's end (`TAIL_BUDGET` bytes at most); False if it is not that."""
    budget = TAIL_BUDGET
    h = conn.h11
    try:
        while True:
            data = await read(conn.stream)
            budget -= len(data)
            h.receive_data(data)
            ended = _buffered_end(h, budget)
            if ended is not None:
                return ended
    except (h11.ProtocolError, httpx.HTTPError):
        return False


def _take(event: object, on_raw: Callable[[bytes], bool]) -> bool | None:
    """One body event: None to go on, True if ``on_raw`` stopped, False at the body's end."""
    kind = type(event)
    if kind is h11.EndOfMessage:
        return False
    if kind is not h11.Data:
        _closed_mid_body()
    return True if on_raw(event.data) else None  # type: ignore[attr-defined]


def _read_timed_out() -> None:
    raise httpx.ReadTimeout("timed out reading the response body")


def _closed_mid_body() -> None:
    raise httpx.RemoteProtocolError("the server closed the connection mid-body")


#: A body's tail after its reader stopped early: at most this many bytes, this many seconds
#: are read to keep the connection; after this many misses in a row an origin is waited for
#: only every `TAIL_PROBE`-th time.
TAIL_BUDGET = 65536
TAIL_GRACE = 0.05
TAIL_MISSES = 3
TAIL_PROBE = 16


class ResponseBody(httpx.AsyncByteStream):
    """A streaming response body on its connection; the connection is reused only at its end.

    An async iterator object, not an async generator: a reader that stops
    early leaves nothing suspended for the garbage collector. `pump` reads it
    without httpx's wrappers and without a cancel scope to stop it.
    """

    __slots__ = (
        "_conn",
        "_deadlines",
        "_expired",
        "_scope",
        "_stop",
        "_timeout",
        "_transport",
        "due",
        "sweep_at",
    )

    def __init__(self, transport: H11Transport, conn: Connection, timeout: float | None) -> None:
        self._transport = transport
        self._conn: Connection | None = conn
        self._timeout = timeout
        self._scope: anyio.CancelScope | None = None  # a `pump`'s, while it reads
        self._stop = False
        #: A swept read (`ReadDeadlines`): its sweeper, the read's deadline, its entry's.
        self._deadlines: ReadDeadlines | None = None
        self.due = math.inf
        self.sweep_at = math.inf
        self._expired = False  # the sweeper closed the socket under the read

    def stop(self) -> None:
        """Stop a `pump` under way, from any task: it returns True as if its reader had,
        and the connection is closed (the rest of the body is not read). A listener's
        restart costs no cancel scope of its own for the stream's life this way."""
        self._stop = True
        if self._scope is not None:
            self._scope.cancel()
        deadlines = self._deadlines
        if deadlines is not None:  # a swept read under way: the sweeper ends it at once
            self.due = -math.inf
            deadlines.watch(self)

    def __aiter__(self) -> ResponseBody:
        return self

    async def __anext__(self) -> bytes:
        conn = self._conn
        if conn is None:
            raise StopAsyncIteration
        try:
            chunk = await self._next_chunk(conn)
        except BaseException:
            await self._abandon()
            raise
        if chunk is None:
            await self._finished(conn)
            raise StopAsyncIteration
        return chunk

    async def _next_chunk(self, conn: Connection) -> bytes | None:
        """The next piece of the body, or None at its end (each read a scope of its own)."""
        event = await next_event(conn, None, self._timeout)
        kind = type(event)
        if kind is h11.Data:
            return event.data  # type: ignore[no-any-return]
        if kind is not h11.EndOfMessage:
            _closed_mid_body()
        return None

    async def pump(self, on_raw: Callable[[bytes], bool], *, held: bool = False) -> bool:
        """Feed each piece to ``on_raw`` until it returns True (-> True) or the body ends
        (-> False, or what ``on_raw.end()`` says then if it has one: a reader's last
        word, asked here so that its caller needs no frame of its own around the read).

        Stopping early keeps the connection when the rest of the body can be
        read later, cheaply (see `H11Transport`); an error from ``on_raw`` or
        the read closes it. ``held``: a listener's body, read for hours; while the
        transport's sweeper runs (`ReadDeadlines`) it times out and stops these
        reads, which then need no cancel scope (and no timer) of their own.
        """
        conn = self._conn
        if conn is None:
            raise httpx.StreamClosed()
        try:
            outcome = None
            h = conn.h11
            while outcome is None and not self._stop:  # what came with the head: no scope
                with READING:
                    event = h.next_event()
                if event is h11.NEED_DATA:
                    break
                outcome = _take(event, on_raw)
            del event  # not held while the next read waits
            deadlines = self._transport.deadlines if held else None
            if outcome is None and deadlines is not None and deadlines.running:
                # Swept: each read moves `due` (a float); the sweeper closes the socket
                # when it passes, or at once on `stop`. The events are read right here:
                # a held listener's stack is one frame shallower.
                each = math.inf if self._timeout is None else self._timeout
                stream = conn.stream
                self._deadlines = deadlines
                # these reads use no timer: the one the head's reads left armed would wait
                # out its timeout in the loop (a handle, its context and a bound method,
                # ~250 bytes per listener); a later request on the connection arms anew
                conn.stop_timer()
                try:
                    while outcome is None and not self._stop:
                        with READING:
                            event = h.next_event()
                        if event is not h11.NEED_DATA:
                            outcome = _take(event, on_raw)
                            continue
                        due = self.due = now() + each
                        if due < self.sweep_at:
                            deadlines.watch(self)
                        try:
                            data = await stream.receive(_READ_SIZE)
                        except anyio.EndOfStream:
                            data = b""
                        except BaseException as exc:  # `READING`, no exit held while parked
                            READING.__exit__(type(exc), exc, exc.__traceback__)
                            raise
                        with READING:
                            h.receive_data(data)
                except httpx.TransportError:
                    if not self._expired:
                        raise
                finally:
                    self.due = math.inf
                    self._deadlines = None
                if self._stop and outcome is None:  # `stop`: the rest of the body is not read
                    await self._abandon()
                    return True
                if self._expired:
                    _read_timed_out()
            elif outcome is None:
                timeout = self._timeout
                # One scope for every read, whose deadline each read moves; the events
                # are read right here: a held listener's stack is one frame shallower.
                with anyio.CancelScope() as scope:
                    self._scope = scope
                    if self._stop:
                        scope.cancel()
                    try:
                        while outcome is None:
                            outcome = _take(await next_event(conn, scope, timeout), on_raw)
                    finally:
                        self._scope = None
                        conn.unwatch()
                if scope.cancelled_caught:
                    if self._stop:  # `stop`: the rest of the body is not read
                        await self._abandon()
                        return True
                    _read_timed_out()
            if outcome:
                await self._stopped(conn)
                return True
        except BaseException:
            await self._abandon()
            raise
        await self._finished(conn)
        end = getattr(on_raw, "end", None)  # looked up now: no bound method held meanwhile
        return False if end is None else bool(end())

    async def expire(self) -> None:
        """The sweeper's: this read's deadline passed (or `stop`): close its socket, which
        ends the read in the reader's task (`pump` then says which it was)."""
        conn = self._conn
        self._expired = True
        if conn is not None:
            await anyio.aclose_forcefully(conn.stream)

    async def drain(self) -> None:
        """Nobody reads this body (a small error body): read its end as a stopped reader's
        tail is read (`_stopped`), so that the connection is reused; else it is closed."""
        conn = self._conn
        if conn is not None:
            try:
                await self._stopped(conn)
            except BaseException:
                await self._abandon()
                raise

    async def _finished(self, conn: Connection) -> None:
        self._conn = None
        to_close: list[Connection] = []
        self._transport._release(conn, to_close)
        if to_close:
            await self._transport._close(to_close)

    async def _stopped(self, conn: Connection) -> None:
        """The reader has what it wanted: read the rest of the body (an MCP response
        stream ends right after its response) so that the connection can be reused.

        What is buffered is read at once; more is awaited for at most `TAIL_GRACE`
        seconds (shielded: the caller has its answer) and `TAIL_BUDGET` bytes. An
        origin whose streams went on past the grace `TAIL_MISSES` times in a row
        is not waited for again, only every `TAIL_PROBE`-th time (a burst of load
        that made it miss must not close its connections for good); an end already
        buffered is taken whatever the misses (it costs nothing).
        """
        origin = conn.origin
        ended = _buffered_end(conn.h11, TAIL_BUDGET)
        if ended is None:  # the end is still on its way: wait for it (a scope only now)
            misses = origin.tail_misses
            if misses >= TAIL_MISSES and misses % TAIL_PROBE:
                origin.tail_misses += 1
                await self._abandon()
                return
            with anyio.CancelScope(shield=True, deadline=now() + TAIL_GRACE) as scope:
                ended = await _read_end(conn)
            if scope.cancelled_caught:
                origin.tail_misses += 1
        if ended:
            origin.tail_misses = 0
            await self._finished(conn)
        else:
            await self._abandon()

    async def _abandon(self) -> None:
        conn, self._conn = self._conn, None
        if conn is not None:
            await self._transport._discard(conn)

    async def aclose(self) -> None:
        """Closed before its end (or from another task): the socket is closed, not reused."""
        await self._abandon()
