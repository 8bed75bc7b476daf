"""Connections per origin: O(1) work per request, and a cap on sockets per origin.

httpcore's pool walks every pooled connection (with a ``poll()`` per idle one)
on every request and every close, so a client holding N listener streams pays
O(N) per request. Here each origin keeps a stack of idle connections and a
count of the sockets it holds: taking one is a pop, giving one back is a
push, and the only liveness check is on the one connection about to be reused.
Expired idle connections are dropped from the bottom of the stack, one or two
per release, so the work stays O(1) amortised.

The cap keeps one server's flood from exhausting the sockets other servers
need: a request beyond it waits (FIFO) within its pool timeout, then fails
with `httpx.PoolTimeout`.
"""

from __future__ import annotations

import select
from collections import deque

import anyio
import anyio.abc
import h11

from .loopstream import LoopStream
from .timer import OperationTimer

__all__ = ["Connection", "OriginPool"]


class Connection(OperationTimer):
    """One HTTP/1.1 connection: a byte stream and its h11 state, and the timer of the
    operation under way on it (`OperationTimer`: connect, write, each read)."""

    __slots__ = ("_fd", "h11", "idle_since", "origin", "stream")

    #: Its byte stream, set once it is connected (`attach`).
    stream: anyio.abc.ByteStream

    def __init__(self, origin: OriginPool) -> None:
        super().__init__()
        self.origin = origin
        self.h11 = h11.Connection(h11.CLIENT)
        self.idle_since = 0.0
        self._fd = -1  # its socket's (-1: unknown, never reused); asyncio wraps the socket

    def attach(self, stream: anyio.abc.ByteStream, fd: int) -> None:
        """The connection is made: its stream and its socket's descriptor (-1: unknown)."""
        self.stream = stream
        self._fd = fd

    def readable(self) -> bool:
        """True if the idle peer sent something (EOF or garbage): it cannot be reused."""
        fd = self._fd
        if fd < 0:
            return True
        if type(self.stream) is LoopStream:  # it keeps reading: what came is in it
            return self.stream.has_input
        try:
            return self.origin.poll_in(fd)
        except (OSError, ValueError):
            return True


class OriginPool:
    """The connections of one (scheme, host, port)."""

    __slots__ = (
        "_idle",
        "_poller",
        "_waiters",
        "keepalive_expiry",
        "max_connections",
        "max_idle",
        "sockets",
        "tail_misses",
    )

    def __init__(
        self, *, max_connections: int | None, max_idle: int | None, keepalive_expiry: float | None
    ) -> None:
        self.max_connections = max_connections
        self.max_idle = max_idle
        self.keepalive_expiry = keepalive_expiry
        #: Sockets this origin holds: idle, in use and being connected.
        self.sockets = 0
        self._idle: deque[Connection] = deque()
        self._waiters: deque[anyio.Event] | None = None  # only once the cap was reached
        #: Response bodies in a row that went on past a reader's stop (`ResponseBody`).
        self.tail_misses = 0
        self._poller: select.poll | None = None  # made at the first reuse

    def poll_in(self, fd: int) -> bool:
        """Whether ``fd`` is readable now. One poll object per origin, not per connection:
        a listener's connection, reused from the pool, kept its own for the stream's
        life (~280 bytes). Not select(): descriptors above 1024 are normal here."""
        poller = self._poller
        if poller is None:
            poller = self._poller = select.poll()
        poller.register(fd, select.POLLIN)
        try:
            return bool(poller.poll(0))
        finally:
            poller.unregister(fd)

    @property
    def idle(self) -> int:
        return len(self._idle)

    async def acquire(self, timeout: float | None, to_close: list[Connection]) -> Connection | None:
        """An idle connection (most recently used first), or None: the caller may connect.

        When None is returned a socket slot is reserved for the caller; it must
        call `connected` or `release_slot`. Waits (FIFO) while the origin is at
        its cap; raises TimeoutError after ``timeout``. Connections found dead on
        the way are appended to ``to_close``.
        """
        conn = self._pop_live(to_close)
        if conn is not None:
            return conn
        if self.max_connections is None or self.sockets < self.max_connections:
            self.sockets += 1
            return None
        with anyio.fail_after(timeout):
            while True:
                if self._waiters is None:
                    self._waiters = deque()
                event = anyio.Event()
                self._waiters.append(event)
                try:
                    await event.wait()
                except BaseException:
                    if event.is_set():
                        self._wake()  # pass on a wake-up this waiter will not use
                    else:
                        self._waiters.remove(event)
                    raise
                conn = self._pop_live(to_close)
                if conn is not None:
                    return conn
                if self.sockets < self.max_connections:
                    self.sockets += 1
                    return None

    def _pop_live(self, to_close: list[Connection]) -> Connection | None:
        idle = self._idle
        while idle:
            conn = idle.pop()
            if conn.h11.our_state is h11.IDLE and not conn.readable():
                return conn
            self.sockets -= 1
            to_close.append(conn)
        return None

    def release(self, conn: Connection, now: float, to_close: list[Connection]) -> None:
        """A finished exchange: keep ``conn`` for reuse (or close it if over the limits)."""
        idle = self._idle
        if self.max_idle is not None and len(idle) >= self.max_idle:
            self.discard(conn, to_close)
            return
        conn.idle_since = now
        idle.append(conn)
        expiry = self.keepalive_expiry
        for _ in range(2):  # drop expired ones from the bottom: O(1) amortised
            if expiry is None or not idle or now - idle[0].idle_since < expiry:
                break
            self.sockets -= 1
            to_close.append(idle.popleft())
        self._wake()

    def discard(self, conn: Connection, to_close: list[Connection]) -> None:
        """``conn`` cannot be reused: give its slot back."""
        self.sockets -= 1
        to_close.append(conn)
        self._wake()

    def release_slot(self) -> None:
        """A reserved slot whose connect failed."""
        self.sockets -= 1
        self._wake()

    def drain(self) -> list[Connection]:
        idle, self._idle = list(self._idle), deque()
        self.sockets -= len(idle)
        return idle

    def _wake(self) -> None:
        waiters = self._waiters
        if waiters:
            waiters.popleft().set()
