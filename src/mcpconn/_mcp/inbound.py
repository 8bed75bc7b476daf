"""What the server sends the session: responses matched, notifications handed on.

`Inbound` (mixed into `Session`) routes every message: a response to its
pending request, a notification to the call that caused it and then to every
subscriber, a server request to the desk (answered in `server_requests`). It
also keeps what that bookkeeping costs an idle session small: the desk, the
rare counters and a call's dicts are made at their first use and dropped when
emptied. Notifications run on the session's behalf but must never fail it:
embedder callbacks that raise are logged.
"""

from __future__ import annotations

import logging
from collections import Counter
from collections.abc import Callable, Mapping
from types import MappingProxyType
from typing import TYPE_CHECKING, Any

import anyio

from .._config import ServerConfig
from .._core import jsonrpc as _jsonrpc
from .._core.bounds import json_number
from .._core.eras import EraRules
from .._exceptions import MCPConnError
from .calls import CallStream, Pending
from .handlers import Handlers, SessionStatistics
from .server_requests import ServerRequestDesk
from .transports import Transport
from .transports.base import HTTPChannel, describe, notification_dict

if TYPE_CHECKING:
    from .tasks import Spawner

__all__ = ["Inbound", "ProgressCallback", "deliver_notification"]

# The session's logger: these are the session's callbacks going wrong.
logger = logging.getLogger("mcpconn.session")

ProgressCallback = Callable[[dict[str, Any]], None]
_NO_PROGRESS: Mapping[Any, ProgressCallback] = MappingProxyType({})


def deliver_notification(
    message: _jsonrpc.Notification,
    progress: Mapping[Any, ProgressCallback],
    on_notification: Callable[[dict[str, Any]], None],
    stream: CallStream | None = None,
) -> None:
    """Route progress to its request's callback, the note to its call, then hand it on.

    A progress notification reaches its callback only with a usable token and a
    finite ``progress`` number (`bounds.json_number`); either way it is handed on.
    """
    if message.method == "notifications/progress":
        params = message.params or {}
        token = params.get("progressToken")
        # A token is an int or a string (ours are ints); a list would not even hash.
        known = isinstance(token, int | str) and not isinstance(token, bool)
        callback = progress.get(token) if known else None
        if callback is not None and json_number(params.get("progress")) is not None:
            try:
                callback(params)
            except Exception:
                logger.exception("an on_progress callback raised")
    note = notification_dict(message)
    if stream is not None:
        stream.notify(note)
    try:
        on_notification(note)
    except Exception:
        logger.exception("on_notification raised")


class Inbound:
    """The routing half of `Session` (see the module docstring)."""

    if not TYPE_CHECKING:  # `Session` names every attribute; mypy checks them there
        __slots__ = ()

    rules: EraRules
    _handlers: Handlers
    _channel: HTTPChannel
    _desk: ServerRequestDesk | None
    _pending: dict[_jsonrpc.RequestId, Pending] | None
    _progress: dict[Any, ProgressCallback] | None
    _legacy_calls: dict[Any, CallStream] | None
    _inflight: dict[anyio.CancelScope, None] | None
    _config: ServerConfig
    _tg: Spawner
    _transport: Transport | None
    _requests: int
    #: unknown, duplicate, skipped, reinit, reissued: rare, so made at the first
    _counts: Counter[str] | None

    if TYPE_CHECKING:

        async def _send(self, message: _jsonrpc.Message) -> None: ...

    def _count(self, name: str) -> None:
        counts = self._counts
        if counts is None:
            counts = self._counts = Counter()
        counts[name] += 1

    def _open_desk(self) -> ServerRequestDesk:
        """The desk answering server requests, made at the first one."""
        desk = self._desk
        if desk is None:
            handlers = self._handlers
            desk = self._desk = ServerRequestDesk(
                self._config, self._tg, handlers.on_request, self._send, handlers.on_refused
            )
        return desk

    def statistics(self) -> SessionStatistics:
        t = self._transport
        c = self._counts or Counter()
        desk = self._desk
        served = (0, 0, 0, 0) if desk is None else desk.counts()
        return SessionStatistics(
            requests=self._requests,
            pending=len(self._pending or ()),
            unknown_responses=c["unknown"],
            duplicate_responses=c["duplicate"],
            skipped_messages=c["skipped"] + (t.skipped if t is not None else 0),
            resumptions=getattr(t, "resumptions", 0),
            reinitializations=c["reinit"],
            reissued=c["reissued"],
            server_requests=served[0],
            server_requests_refused=served[1],
            server_requests_dropped=served[2],
            server_requests_cancelled=served[3],
        )

    def _dispatch(self, message: _jsonrpc.Message, stream: CallStream | None = None) -> None:
        """Route one inbound message; sync, never raises for the server's sake.

        ``stream`` is the call whose own response stream carried ``message``
        (None on the listener and on the legacy SSE stream).
        """
        if isinstance(message, _jsonrpc.Notification):  # the common case first
            if message.method == "notifications/cancelled" and self._desk is not None:
                self._desk.cancel(message.params)
            calls = self._legacy_calls
            if stream is None and calls and message.method == "notifications/progress":
                stream = calls.get((message.params or {}).get("progressToken"))
            progress = self._progress or _NO_PROGRESS
            deliver_notification(message, progress, self._handlers.on_notification, stream)
        elif isinstance(message, (_jsonrpc.Response, _jsonrpc.ErrorResponse)):
            waiting = self._pending
            pending = waiting.get(message.id) if waiting and message.id is not None else None
            if pending is None:
                self._count("unknown")
                shown = self._channel.clean(message.id)
                logger.debug("ignored a response to unknown or finished id %s", shown)
            elif pending.answered:
                self._count("duplicate")
            else:
                if isinstance(message, _jsonrpc.Response):
                    pending.result = message.result
                else:
                    pending.error = message.error
                pending.set()
        elif not self.rules.server_requests:
            self._count("skipped")
            shown = describe(message, self._channel.secrets)
            logger.debug("ignored %s: no server requests in the %s era", shown, self.rules.name)
        else:
            context = stream.options.context if stream is not None else None
            self._open_desk().receive(message, context)

    def _forget(self, rid: _jsonrpc.RequestId, scope: anyio.CancelScope | None, token: Any) -> None:
        """A call ended: its entries go; an emptied dict keeps its table, so it goes too."""
        pending = self._pending
        if pending is not None:
            pending.pop(rid, None)
            self._pending = pending or None
        inflight, progress, legacy = self._inflight, self._progress, self._legacy_calls
        if inflight is not None and scope is not None:
            inflight.pop(scope, None)
            self._inflight = inflight or None
        if progress is not None:
            progress.pop(rid, None)
            self._progress = progress or None
        if legacy is not None and token is not None:
            legacy.pop(token, None)
            self._legacy_calls = legacy or None

    def _fail_all(self, error: MCPConnError) -> None:
        for pending in (self._pending or {}).values():
            if not pending.answered:
                pending.error = error
                pending.set()
