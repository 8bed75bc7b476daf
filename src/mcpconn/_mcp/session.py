"""One MCP session over HTTP: handshake, request/response matching, the MCP rules.

`open_session` picks the protocol era, does its handshake and yields a
`Session`; on exit it closes every stream it opened and DELETEs a session id
(bounded by ``timeouts.close``). The session's tasks (answering server
requests; in the legacy era, reading the SSE stream) run in the task group it is
given, the supervisor's (`tasks.SessionTasks`: no group of its own), and the
task that enters `open_session` holds its cancel scope; nothing in them ever
raises into that group. What differs between eras is data (``Session.rules``). Opening
is in `opening` and `handshake`; recovery in `recovering`; notifications in
`inbound`, server requests in `server_requests`, the listener in `listening`, a
call's options and answer in `calls`. Here: request/response matching, timeouts
and cancellation (``notifications/cancelled`` where the era has it; a late
response is ignored and counted).
"""

from __future__ import annotations

import logging
import math
from collections import Counter
from dataclasses import replace
from typing import Any

import anyio
import httpx
from anyio.abc import TaskGroup

from .._config import ServerConfig
from .._core import jsonrpc as _jsonrpc
from .._core.eras import Era, EraRules
from .._exceptions import ConnectionClosed, MCPConnError, RequestTimeout
from . import calls as _calls
from .calls import NO_OPTIONS, UNSCOPED, CallOptions, CallStream, Pending
from .handlers import Handlers, SessionHandlers, SessionStatistics
from .handshake import client_capabilities
from .inbound import Inbound, ProgressCallback
from .listening import Listening
from .opening import Opening
from .recovering import Recovering
from .server_requests import Incoming, ServerRequestDesk
from .tasks import SessionTasks
from .transports import HTTPChannel, Transport
from .transports.eras import EraCache

__all__ = [
    "Era",
    "EraCache",
    "Session",
    "SessionHandlers",
    "SessionStatistics",
    "client_capabilities",
    "open_session",
]

logger = logging.getLogger("mcpconn.session")

#: What `open_session` was given, handed to the `Session` it makes.
OpenArgs = tuple[httpx.AsyncClient, ServerConfig, httpx.Auth | None, Handlers, str | None]


class Session(Listening, Recovering, Opening, Inbound):
    """One live MCP session. Use `open_session`; do not construct it yourself."""

    #: What the session's era does (set when an era is tried).
    rules: EraRules
    protocol_version: str
    server_info: dict[str, Any]
    capabilities: dict[str, Any]
    instructions: str | None
    _tg: SessionTasks

    # slotted: one per connection, thousands at once (a dict's values cost more)
    __slots__ = (
        "__weakref__",
        "_channel",
        "_closed",
        "_config",
        "_counts",
        "_desk",
        "_discarded",
        "_era_cache",
        "_first_listen",
        "_generation",
        "_handlers",
        "_ids",
        "_inflight",
        "_legacy_calls",
        "_listen_starts",
        "_listener_deadline",
        "_listener_opening",
        "_pending",
        "_principal",
        "_progress",
        "_reinit_lock_made",
        "_requests",
        "_tg",
        "_transport",
        "capabilities",
        "instructions",
        "protocol_version",
        "rules",
        "server_info",
    )

    def __init__(self, args: OpenArgs, tasks: SessionTasks) -> None:
        client, config, auth, handlers, principal = args
        self._config = config
        self._principal = principal
        self._handlers = handlers
        self._tg = tasks
        self._channel = HTTPChannel(client, config, auth)
        self._ids = _jsonrpc.IdAllocator()
        self._pending: dict[_jsonrpc.RequestId, Pending] | None = None
        # Made at their first use, dropped when emptied: thousands of idle sessions have
        # none (an empty dict is 64 bytes, the desk ~400 with its dict and bound method).
        self._progress: dict[Any, ProgressCallback] | None = None
        #: Legacy SSE has no per-call stream: a call's progress is found by its token.
        self._legacy_calls: dict[Any, CallStream] | None = None
        self._desk: ServerRequestDesk | None = None
        #: The calls in flight, cancelled when the session closes (a dict: an empty set
        #: is 216 bytes, an empty dict 64).
        self._inflight: dict[anyio.CancelScope, None] | None = None
        self._transport: Transport | None = None
        self._reinit_lock_made: anyio.Lock | None = None
        self._generation = 0
        self._listen_starts = 0
        self._closed = False
        self._discarded = False
        self._requests = 0
        self._counts: Counter[str] | None = None  # (`Inbound._count`)
        self.server_info = {}
        self.capabilities = {}
        self.instructions = None
        self.protocol_version = ""
        self._era_cache = None
        self._listener_opening = None
        self._listener_deadline = 0.0
        self._first_listen = None

    def __repr__(self) -> str:
        rules = getattr(self, "rules", None)
        era = rules.name if rules is not None else "?"
        return f"<Session {self._config.name!r} era={era} version={self.protocol_version!r}>"

    @property
    def _reinit_lock(self) -> anyio.Lock:
        """Made at the first re-initialize: most sessions never have one, and an idle
        one's lock would carry a waiter queue (~760 bytes) for nobody."""
        lock = self._reinit_lock_made
        if lock is None:
            lock = self._reinit_lock_made = anyio.Lock()
        return lock

    @property
    def era(self) -> Era:
        """The era's name: ``"streamable-http"``, ``"stateless"`` or ``"sse"``."""
        return self.rules.name

    @property
    def session_id(self) -> str | None:
        return self._transport.session_id if self._transport is not None else None

    def discard(self) -> None:
        """Close without the polite DELETE (the connection gave the session up)."""
        self._discarded = True

    def drop(self, by: float = math.inf) -> None:
        """Stop what runs inside `open_session`, the holder's body too; it then closes,
        done by ``by`` (``anyio.current_time()``) if that is sooner than its own budget."""
        if by != math.inf:
            self._tg.cancel_at(by)  # the close's budget ends there (`_close_by`)
        self._tg.cancel()

    # ---- public calls -----------------------------------------------------------------

    async def request(
        self,
        method: str,
        params: dict[str, Any] | None = None,
        *,
        timeout: float | None = None,
        on_progress: ProgressCallback | None = None,
        options: CallOptions | None = None,
    ) -> dict[str, Any]:
        """Send a request; return its final ``result``. See the module docstring for the rules.

        2026-07-28 removed ``ping``; there a ``ping`` is sent as ``server/discover``
        (the cheapest request every server must answer) and returns ``{}``, so a
        keep-alive works the same in every era. A result asking for input
        (``resultType: "input_required"``) is raised or driven (`calls.complete_rounds`).
        """
        if self._closed:
            raise ConnectionClosed("the session is closed")
        keepalive = self.rules.keepalive
        if method == "ping" and keepalive != "ping":
            await self.request(keepalive, None, timeout=timeout)
            return {}
        options = options or NO_OPTIONS
        if on_progress is not None:
            options = replace(options, on_progress=on_progress)
        config = self._config

        async def send(round_options: CallOptions) -> dict[str, Any]:
            return await self._timed(method, params, round_options, timeout)

        return await _calls.complete_rounds(
            send,
            options,
            mode=config.input_required,
            max_rounds=config.max_input_rounds,
            answer=self._answer_input,
        )

    async def _timed(
        self,
        method: str,
        params: dict[str, Any] | None,
        options: CallOptions,
        timeout: float | None,
    ) -> dict[str, Any]:
        timeout = self._config.timeouts.request if timeout is None else timeout
        sent: list[_jsonrpc.RequestId] = []
        try:
            with anyio.move_on_after(timeout):
                await self._await_listener()  # a request on the GET stream must find it open
                return await self._with_rules(method, params, options, sent)
        except anyio.get_cancelled_exc_class():
            if sent and self.rules.cancel_notification and not self._closed:
                self._tg.start_soon(self._send_cancelled, sent[-1], "cancelled")
            raise
        if sent and self.rules.cancel_notification:
            await self._send_cancelled(sent[-1], "timeout")
        raise RequestTimeout(f"{method} got no response within {timeout:g}s")

    async def notify(self, method: str, params: dict[str, Any] | None = None) -> None:
        if self._closed:
            raise ConnectionClosed("the session is closed")
        await self._send(_jsonrpc.Notification(method, params))

    # ---- request/response matching -------------------------------------------------------

    async def _roundtrip(
        self,
        method: str,
        params: dict[str, Any] | None,
        options: CallOptions | None = None,
        sent: list[_jsonrpc.RequestId] | None = None,
        *,
        scoped: bool = True,
    ) -> dict[str, Any]:
        """One request and its answer; ``scoped``: in a scope the session's close cancels."""
        transport = self._require_transport()
        rid = self._ids.next()
        options = options or NO_OPTIONS
        on_progress = options.on_progress
        ours = rid if on_progress is not None else None
        token = ours if ours is not None else _calls.progress_token_of(options, params)
        level = self._handlers.wanted.meta_level(self.rules)
        params = _calls.merge_params(params, options, log_level=level, progress_token=ours)
        stream = CallStream(options, token)
        if on_progress is not None:
            if self._progress is None:
                self._progress = {}
            self._progress[rid] = on_progress
        # no response stream of its own (legacy SSE): the call's progress is found by its token
        by_token = (
            not self.rules.call_streams
            and token is not None
            and options.on_notification is not None
        )
        if by_token:
            if self._legacy_calls is None:
                self._legacy_calls = {}
            self._legacy_calls[token] = stream
        if self._pending is None:
            self._pending = {}
        pending = self._pending[rid] = Pending()
        if sent is not None:
            sent.append(rid)
        self._requests += 1
        scope = anyio.CancelScope() if scoped else None  # cancelled when the session closes
        if scope is not None:
            if self._inflight is None:
                self._inflight = {}
            self._inflight[scope] = None
        try:
            # unscoped: a handshake's (`Opening._handshake_roundtrip`); the request is
            # made in the call, so this frame keeps none of it while the answer is awaited
            with scope or UNSCOPED:
                await transport.send_request(
                    _jsonrpc.Request(rid, method, params),
                    done=pending.is_set,
                    dispatch=lambda m: self._dispatch(m, stream),
                )
                await pending.wait()
        finally:
            self._forget(rid, scope, token if by_token else None)
        if scope is not None and scope.cancelled_caught:
            raise ConnectionClosed("the session closed while the request was in flight")
        if pending.error is not None:
            raise pending.error
        assert pending.result is not None
        return pending.result

    async def _send_cancelled(self, rid: _jsonrpc.RequestId, reason: str) -> None:
        params = {"requestId": rid, "reason": reason}
        with anyio.move_on_after(self._config.timeouts.close):
            try:
                await self._send(_jsonrpc.Notification("notifications/cancelled", params))
            except MCPConnError as exc:
                logger.debug("could not send notifications/cancelled: %s", type(exc).__name__)

    async def _answer_input(
        self, method: str, params: dict[str, Any] | None, key: str, context: Any
    ) -> dict[str, Any] | None:
        """2026 MRTR "drive": one input request, answered by the request handlers."""
        handler = self._handlers.on_request
        if handler is None:
            return None
        with anyio.fail_after(self._config.timeouts.server_request):
            result = await handler(Incoming(method, params, key, context, anyio.Event()))
        return result if isinstance(result, dict) else None

    # ---- lifecycle ------------------------------------------------------------------------

    def _require_transport(self) -> Transport:
        if self._transport is None:
            raise ConnectionClosed("the session is not open")
        return self._transport

    async def _send(self, message: _jsonrpc.Message) -> None:
        await self._require_transport().send_message(message)

    async def _aclose(self) -> None:
        self._closed = True
        close_by = self._close_by()  # one budget for the wait and the DELETE
        if not self._discarded:
            await self._finish_reinitialize(close_by)  # the session it opens is to DELETE
        self._fail_all(ConnectionClosed("the session closed"))
        if self._desk is not None:
            self._desk.cancel_all()
        for scope in list(self._inflight or ()):
            scope.cancel()
        transport = self._transport
        if transport is None:
            return
        if self._discarded:
            transport.session_id = None
        await transport.aclose(close_by)


class open_session:
    """Open one MCP session (see the module docstring); close it on exit.

    ``principal`` scopes the reuse of a private ``server/discover`` answer kept
    in ``era_cache`` (`mcpconn._core.discovery`). ``task_group``: where the
    session's tasks run (`SessionTasks`); without one it makes a group of its
    own for the session's life. A class, not a generator: a session held for
    hours keeps no generator frame and wrapper under it.
    """

    __slots__ = ("_args", "_dropped", "_era_cache", "_host", "_own", "_tasks", "session")

    def __init__(
        self,
        client: httpx.AsyncClient,
        config: ServerConfig,
        *,
        auth: httpx.Auth | None,
        handlers: Handlers,
        era_cache: EraCache | None = None,
        principal: str | None = None,
        task_group: TaskGroup | None = None,
    ) -> None:
        self._args: OpenArgs | None = (client, config, auth, handlers, principal)
        self._era_cache = era_cache
        self._host = task_group
        self._own: TaskGroup | None = None
        self._tasks: SessionTasks | None = None
        self._dropped = False
        self.session: Session | None = None

    def drop(self, by: float = math.inf) -> None:
        """Stop the opening (or the body, as `Session.drop`); it then closes what it opened
        (by ``by``, if that is sooner than its own budget)."""
        self._dropped = True
        if self._tasks is not None:
            if by != math.inf:
                self._tasks.cancel_at(by)
            self._tasks.cancel()

    def drop_at(self, deadline: float) -> None:
        """`drop` at ``deadline`` (``anyio.current_time()``) unless it is over by then."""
        if self._tasks is None:
            self.drop()
        else:
            self._tasks.cancel_at(deadline)

    async def __aenter__(self) -> Session:
        args, self._args = self._args, None  # the session keeps what it needs of them
        assert args is not None, "entered twice"
        host = self._host
        if host is None:
            host = self._own = anyio.create_task_group()
            await host.__aenter__()
        tasks = self._tasks = SessionTasks(host)
        tasks.cancel_scope.__enter__()
        if self._dropped:
            tasks.cancel()
        session = self.session = Session(args, tasks)
        try:
            await session._open(self._era_cache)
        except BaseException as exc:
            if await self._close(exc):  # the scope took its own cancellation: a drop
                raise ConnectionClosed("the session was dropped while it opened") from None
            raise  # an Exception: outside the scope, so no ExceptionGroup
        return session

    async def __aexit__(self, *exc_info: Any) -> bool:
        return await self._close(exc_info[1])

    async def _close(self, exc: BaseException | None) -> bool:
        """Close the session, end its tasks, leave its scope; True if the scope took ``exc``."""
        session, tasks = self.session, self._tasks
        assert session is not None and tasks is not None
        with anyio.move_on_after(session._config.timeouts.close + 1.0, shield=True):
            await session._aclose()
        await tasks.aclose()
        scope, own, self._own = tasks.cancel_scope, self._own, None
        if exc is None or isinstance(exc, Exception):
            scope.__exit__(None, None, None)  # re-raised by the caller, outside the scope
            took = False
        else:
            took = bool(scope.__exit__(type(exc), exc, exc.__traceback__))
        if own is not None:
            own.cancel_scope.cancel()
            if took or exc is None or isinstance(exc, Exception):
                await own.__aexit__(None, None, None)
            else:
                await own.__aexit__(type(exc), exc, exc.__traceback__)
        return took
