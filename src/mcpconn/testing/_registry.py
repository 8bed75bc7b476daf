"""The mock server's live state: sessions, listener streams, and the writers of streams.

Mixed into `MockServer`. The eras ask here for a new or known session, put
their listener streams on the emission list, and write streams through
`pump` (counted in ``open_streams``); idle sessions are forgotten by one
sweeping timer for all of them.
"""

from __future__ import annotations

import logging
import math
import uuid
from collections.abc import Awaitable, Callable
from typing import TYPE_CHECKING

import anyio
import anyio.abc

from ._events import EventStream, pump, sse_frame
from ._faults import STREAM_KINDS
from ._rpc import Session
from ._stats import Recorder

if TYPE_CHECKING:
    from ._requests import RequestContext

__all__ = ["Registry"]

logger = logging.getLogger("mcpconn.testing")


class Registry:
    """Sessions and listener streams of one `MockServer` (see the module docstring)."""

    sessions: dict[str, Session]
    max_sessions: int
    session_idle_timeout: float | None
    sse_retry: float | None
    clock: Callable[[], float]
    _listeners: dict[str | None, set[EventStream]]
    _recorder: Recorder
    _tg: anyio.abc.TaskGroup | None

    # -- sessions ----------------------------------------------------------------------
    def new_session(self, principal: str | None, era: str, version: str) -> Session:
        session = Session(uuid.uuid4().hex, principal, era, version, last_seen=self.clock())
        self.sessions[session.id] = session
        while len(self.sessions) > self.max_sessions:  # forget the oldest, like a real server
            self.drop_session(next(iter(self.sessions.values())))
        self._recorder.changed()  # sessions is in the stats: wake wait_until
        return session

    def expire_sessions(self, principal: str | None = None) -> int:
        """Forget sessions (of ``principal``, or all): their next request gets 404."""
        doomed = [
            s for s in self.sessions.values() if principal is None or s.principal == principal
        ]
        for session in doomed:
            self.drop_session(session)
        return len(doomed)

    def _idle(self, session: Session, now: float) -> bool:
        """Idle past the timeout, and no stream of it is being written right now."""
        timeout = self.session_idle_timeout
        if timeout is None or now - session.last_seen <= timeout:
            return False
        listener = session.listener
        return not (listener is not None and listener.writers)

    async def _sweep_sessions(self, idle: float) -> None:
        """One timer for all sessions (not one per session): forget the idle ones."""
        while True:
            await anyio.sleep(max(idle / 2, 0.05))
            now = self.clock()
            for session in [s for s in self.sessions.values() if self._idle(s, now)]:
                self.drop_session(session)

    def drop_session(self, session: Session) -> None:
        self.sessions.pop(session.id, None)
        for scope in session.running.values():
            scope.cancel()
        if session.listener is not None:
            self.unregister_listener(session.listener)
            session.listener.finish()
        self._recorder.changed()  # sessions is in the stats: wake wait_until
        for stream in session.streams.values():
            stream.attach()

    def find_session(self, session_id: str, principal: str | None, era: str) -> Session | None:
        session = self.sessions.get(session_id)
        if session is None or session.era != era or session.principal != principal:
            return None
        now = self.clock()
        if self._idle(session, now):
            self.drop_session(session)
            return None
        session.last_seen = now
        return session

    # -- listener streams --------------------------------------------------------------
    def register_listener(self, stream: EventStream) -> None:
        self._listeners.setdefault(stream.principal, set()).add(stream)
        self._recorder.changed()  # wake wait_for_listeners

    def unregister_listener(self, stream: EventStream) -> None:
        streams = self._listeners.get(stream.principal)
        if streams is not None:
            streams.discard(stream)
            if not streams:
                del self._listeners[stream.principal]
            self._recorder.changed()

    def _targets(self, principal: str | None) -> list[EventStream]:
        if principal is not None:
            return list(self._listeners.get(principal, ()))
        return [s for streams in self._listeners.values() for s in streams]

    # -- writing -----------------------------------------------------------------------
    def spawn(self, func: Callable[[], Awaitable[None]]) -> None:
        """Run ``func`` in the server's task group (work that outlives its connection).

        A failure is logged, never allowed to take the whole server down.
        """

        async def guarded() -> None:
            try:
                await func()
            except Exception:
                logger.exception("mock server task failed")

        assert self._tg is not None
        self._tg.start_soon(guarded)

    async def pump(
        self, stream: EventStream, rc: RequestContext, *, after: int, first: bytes = b""
    ) -> None:
        """Write a stream to the client, counted in ``open_streams``."""
        fault = rc.fault if rc.fault is not None and rc.fault.kind in STREAM_KINDS else None
        opened = False

        def on_writing() -> None:  # counted once it is written: wait_for_listeners sees it
            nonlocal opened
            opened = True
            self._recorder.stream_opened(stream.principal)

        try:
            await pump(
                stream, rc.exchange, after=after, fault=fault, first=first, on_writing=on_writing
            )
        finally:
            if opened:
                self._recorder.stream_closed(stream.principal)

    def priming(self, stream: EventStream, after: int, version: str) -> bytes:
        """The priming event (2025-11-25+): an id and empty data, plus ``retry:``."""
        if version < "2025-11-25" or not stream.resumable:
            return b""
        retry = None if self.sse_retry is None else math.ceil(self.sse_retry * 1000)
        return sse_frame(b"", event_id=stream.event_id(after), event=None, retry_ms=retry)
