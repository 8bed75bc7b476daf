"""The session's server-to-client stream: one listen at a time, restarted when asked.

Mixed into `Session`. The era's rules say which listener (`EraRules.listener`):
the GET listener, the legacy SSE stream itself, or ``subscriptions/listen`` with
our filter (the
resource subscriptions in `Wanted` included) and re-listens at once when the
subscriptions change. A listener restarted without replay (2026 never
replays; a session stream without ``Last-Event-ID``) may have missed a
``list_changed``: ``on_listener_fresh`` tells the connection to drop its lists.
When the server forgot the session under the listener (a 404), the session
re-initializes if its era does (`mcpconn._core.recovery`) and the listener
ends with `SessionReinitialized`: listen again at once.

Listen first: a session-era server may send a request on the GET stream the
moment a call reaches it (the spec allows it) and drop it when no stream is
open. So while a listener is starting (`expect_listener`, until its stream
is accepted or its attempt ends) requests wait for it, at most
`LISTENER_GRACE` seconds after it started: a server without a listener
(405) costs nothing, a slow one at most the grace once per listen attempt.

Discovery reuse (2026, `mcpconn._core.discovery`): the handshake may open the
first ``subscriptions/listen`` itself as the proof that a kept discover answer
still stands (a `FirstListen`, one of the session's tasks); `listen` then
carries on with that stream instead of opening another.
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable
from typing import TYPE_CHECKING

import anyio

from .._core import jsonrpc as _jsonrpc
from .._core.eras import EraRules
from .._core.recovery import LISTENER, Recovery, recover
from .._exceptions import MCPConnError, SessionReinitialized, StreamEnded
from .handlers import Handlers
from .transports import Transport
from .transports.stateless import LISTEN_FILTER

if TYPE_CHECKING:
    from .calls import CallStream
    from .tasks import Spawner

__all__ = ["LISTENER_GRACE", "FirstListen", "Listening"]

logger = logging.getLogger("mcpconn.session")

#: Seconds a request waits at most for a starting listener's stream to open.
LISTENER_GRACE = 0.5


class Listening:
    """The listener half of `Session` (see the module docstring)."""

    if not TYPE_CHECKING:  # `Session` names every attribute; mypy checks them there
        __slots__ = ()

    rules: EraRules
    _handlers: Handlers
    _ids: _jsonrpc.IdAllocator
    _tg: Spawner
    _generation: int
    _listen_starts: int
    #: Set when the starting listener's stream opened or its attempt ended.
    _listener_opening: anyio.Event | None
    _listener_deadline: float
    #: The first 2026 listen, opened by the handshake as its proof (`Opening`).
    _first_listen: FirstListen | None

    if TYPE_CHECKING:

        def _require_transport(self) -> Transport: ...

        def _dispatch(
            self, message: _jsonrpc.Message, stream: CallStream | None = None
        ) -> None: ...

        async def _reinitialize(self, generation: int) -> None: ...

    async def listen(self) -> None:
        """Run the server-to-client stream once; it always ends in an exception.

        `StreamEnded` (sleep ``retry`` if given, call again: it resumes),
        `MethodNotAllowed` or a -32601 `JSONRPCError` (no listener here),
        `SessionLost` (legacy SSE: the stream was the session),
        `SessionReinitialized` (a 404 made a new session: listen again), or another
        typed error; `mcpconn._core.classify` says what each means.
        """
        transport = self._require_transport()
        generation = self._generation
        rules = self.rules
        try:
            if rules.listener == "subscriptions-listen":
                first, self._first_listen = self._first_listen, None
                if first is not None:
                    await first.outcome()  # the handshake's proof, already listening
                    return
                # `_listen_stateless`, inline: a held listen's stack is one frame shallower
                wanted = self._handlers.wanted
                while True:  # an edit of the subscriptions ends a listen early: again
                    self._listen_starts += 1
                    await transport.listen(
                        self._dispatch_listener, self._listen_request(), restart_on=wanted
                    )
            else:
                self._listen_starts += 1
                state = getattr(transport, "listen_state", None) if rules.listener_replays else None
                if state is None or not state.last_event_id:
                    self._listener_fresh()  # no Last-Event-ID: nothing will be replayed
                self.expect_listener()
                try:
                    await transport.listen(self._dispatch, None, on_open=self._listener_settled)
                finally:
                    self._listener_settled()  # ended before it opened: nobody waits for it
        except MCPConnError as exc:
            if recover(rules, exc, method=LISTENER) is not Recovery.REINITIALIZE:
                raise
            await self._reinitialize(generation)
            raise SessionReinitialized() from None

    def expect_listener(self) -> None:
        """A listen is about to start: requests wait for its stream (see the module docstring).

        Call it when deciding to listen, before the listener task runs, so a
        call made in between waits too. Only the session era needs it: the
        legacy stream is open before the session is, and 2026 sends no server
        requests on its listener.
        """
        if self.rules.listener != "get":
            return  # the legacy stream is the session; 2026 asks nothing on its listener
        opening = self._listener_opening
        if opening is None or opening.is_set():
            self._listener_opening = anyio.Event()
            self._listener_deadline = anyio.current_time() + LISTENER_GRACE

    async def _await_listener(self) -> None:
        """Wait (within the grace) until a starting listener's stream is open."""
        opening = self._listener_opening
        if opening is None or opening.is_set():
            return
        with anyio.move_on_after(self._listener_deadline - anyio.current_time()):
            await opening.wait()

    def _listener_settled(self) -> None:
        if self._listener_opening is not None:
            self._listener_opening.set()

    async def _listen_stateless(
        self, transport: Transport, on_open: Callable[[], None] | None = None
    ) -> None:
        """``subscriptions/listen`` with our filter; a change of subscriptions re-listens.

        ``on_open`` is called each time the server accepted a stream (2xx, SSE).
        """
        wanted = self._handlers.wanted
        while True:  # an edit of the subscriptions ends a listen early: listen again
            self._listen_starts += 1
            # made in the call: this frame keeps nothing of it for the stream's life
            await transport.listen(
                self._dispatch_listener,
                self._listen_request(),
                on_open=on_open,
                restart_on=wanted,
            )

    def _listen_request(self) -> _jsonrpc.Request:
        notifications = self._handlers.wanted.listen_filter(LISTEN_FILTER)
        params = {"notifications": notifications}
        return _jsonrpc.Request(self._ids.next(), "subscriptions/listen", params)

    def _dispatch_listener(self, message: _jsonrpc.Message) -> None:
        # 2026: the acknowledgement says the stream is live and nothing is replayed.
        if (
            isinstance(message, _jsonrpc.Notification)
            and message.method == "notifications/subscriptions/acknowledged"
        ):
            self._listener_fresh()
        self._dispatch(message)

    def _listener_fresh(self) -> None:
        """A listener restarted without replay: what it missed while down is lost.

        The session's first listener needs nothing: the session's lists were
        dropped when it opened.
        """
        callback = self._handlers.on_listener_fresh
        if callback is not None and self._listen_starts > 1:
            try:
                callback()
            except Exception:
                logger.exception("on_listener_fresh raised")


class FirstListen:
    """A listen started as a session task by the handshake, joined by `listen`."""

    def __init__(self) -> None:
        self.opened = False  # the server accepted the stream: the proof
        self.settled = anyio.Event()  # opened, or ended before it opened
        self.error: Exception | None = None
        self._done = anyio.Event()
        self._scope = anyio.CancelScope()

    def _on_open(self) -> None:
        self.opened = True
        self.settled.set()

    async def run(self, listen: Callable[[Callable[[], None]], Awaitable[None]]) -> None:
        """Run ``listen(on_open)`` to its end; keep what it raised (nothing raises here)."""
        with self._scope:
            try:
                await listen(self._on_open)
            except Exception as exc:
                self.error = exc
            finally:
                self._done.set()
                self.settled.set()

    def cancel(self) -> None:
        self._scope.cancel()

    async def outcome(self) -> None:
        """Wait for the listen's end and raise what it raised; cancelled: stop it too."""
        try:
            await self._done.wait()
        except BaseException:
            self._scope.cancel()
            raise
        if self.error is not None:
            raise self.error
        raise StreamEnded("the listener was stopped", retry=None)
