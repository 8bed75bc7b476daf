"""Answering server-to-client requests: bounded, cancellable, each reply bounded in time.

A server may send requests (``ping``, ``sampling/createMessage``,
``elicitation/create``, ``roots/list``) on the listener or on a call's own
stream. Each is answered in its own task, at most ``limits.max_server_requests``
at once per session: the excess is refused at once with a JSON-RPC error, and
when even the refusals are backed up the request is dropped (both counted), so
a flood of requests whose replies the server never acknowledges holds a
bounded number of tasks and sockets. A handler runs at most
``timeouts.server_request``; a reply POST at most ``timeouts.reply``. An
inbound ``notifications/cancelled`` sets the request's ``cancelled`` event and
cancels its handler; no reply is sent for it (the spec's rule).
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import anyio

from .._config import ServerConfig
from .._core import jsonrpc as _jsonrpc
from .._exceptions import JSONRPCError, MCPConnError

if TYPE_CHECKING:
    from .tasks import Spawner

__all__ = ["TOO_MANY_REQUESTS", "Incoming", "IncomingHandler", "ServerRequestDesk"]

logger = logging.getLogger("mcpconn.session")

#: JSON-RPC code (implementation-defined server error range) for a refused server request.
TOO_MANY_REQUESTS = -32000


@dataclass(frozen=True)
class Incoming:
    """One server request as the session sees it; the connection adds who it is for."""

    method: str
    params: dict[str, Any] | None
    request_id: _jsonrpc.RequestId | str
    context: Any
    cancelled: anyio.Event


IncomingHandler = Callable[[Incoming], Awaitable[dict[str, Any]]]
Send = Callable[[_jsonrpc.Message], Awaitable[None]]


class ServerRequestDesk:
    """The session's server requests in flight; see the module docstring."""

    def __init__(
        self,
        config: ServerConfig,
        task_group: Spawner,
        handler: IncomingHandler | None,
        send: Send,
        on_refused: Callable[[], None] | None = None,
    ) -> None:
        self._limit = max(1, config.limits.max_server_requests)
        self._handler_timeout = config.timeouts.server_request
        self._reply_timeout = config.timeouts.reply
        self._tg = task_group
        self._handler = handler
        self._send = send
        self._on_refused = on_refused
        self._running: dict[_jsonrpc.RequestId, tuple[anyio.CancelScope, anyio.Event]] = {}
        self._refusing = 0
        self.answered = 0
        self.refused = 0
        self.dropped = 0
        self.cancelled = 0

    def counts(self) -> tuple[int, int, int, int]:
        """Answered, refused, dropped, cancelled."""
        return self.answered, self.refused, self.dropped, self.cancelled

    @property
    def in_flight(self) -> int:
        return len(self._running)

    def receive(self, request: _jsonrpc.Request, context: Any) -> None:
        """Start answering ``request`` (sync: called from the dispatch path)."""
        if len(self._running) >= self._limit or request.id in self._running:
            if self._on_refused is not None:
                self._on_refused()
            if self._refusing >= self._limit:
                self.dropped += 1
                logger.debug("dropped a server request: too many in flight")
                return
            self.refused += 1
            self._refusing += 1
            error = JSONRPCError(TOO_MANY_REQUESTS, "too many server requests in flight")
            self._tg.start_soon(self._refuse, _jsonrpc.ErrorResponse(request.id, error))
            return
        scope, cancelled = anyio.CancelScope(), anyio.Event()
        self._running[request.id] = (scope, cancelled)
        self._tg.start_soon(self._answer, request, context, scope, cancelled)

    def cancel(self, params: dict[str, Any] | None) -> None:
        """The server's ``notifications/cancelled``: stop that request's handler."""
        rid = (params or {}).get("requestId")
        entry = self._running.get(rid) if isinstance(rid, int | str) else None
        if entry is None:
            return
        scope, cancelled = entry
        self.cancelled += 1
        cancelled.set()
        scope.cancel()

    def cancel_all(self) -> None:
        for scope, _ in self._running.values():
            scope.cancel()

    async def _refuse(self, reply: _jsonrpc.Message) -> None:
        try:
            await self._reply(reply)
        finally:
            self._refusing -= 1

    async def _answer(
        self,
        request: _jsonrpc.Request,
        context: Any,
        scope: anyio.CancelScope,
        cancelled: anyio.Event,
    ) -> None:
        reply: _jsonrpc.Message | None = None
        try:
            with scope:
                reply = await self._run(request, context, cancelled)
            if reply is not None and not cancelled.is_set():
                self.answered += 1
                await self._reply(reply)
        finally:
            self._running.pop(request.id, None)

    async def _run(
        self, request: _jsonrpc.Request, context: Any, cancelled: anyio.Event
    ) -> _jsonrpc.Message:
        if request.method == "ping":
            return _jsonrpc.Response(request.id, {})
        if self._handler is None:
            missing = JSONRPCError(_jsonrpc.METHOD_NOT_FOUND, f"Method not found: {request.method}")
            return _jsonrpc.ErrorResponse(request.id, missing)
        incoming = Incoming(request.method, request.params, request.id, context, cancelled)
        try:
            with anyio.fail_after(self._handler_timeout):
                result: object = await self._handler(incoming)
        except JSONRPCError as exc:
            return _jsonrpc.ErrorResponse(request.id, exc)
        except TimeoutError:
            late = JSONRPCError(_jsonrpc.INTERNAL_ERROR, "the client's handler timed out")
            return _jsonrpc.ErrorResponse(request.id, late)
        except Exception:
            logger.exception("the handler for a server request raised")
            error = JSONRPCError(_jsonrpc.INTERNAL_ERROR, "internal error in the client")
            return _jsonrpc.ErrorResponse(request.id, error)
        if not isinstance(result, dict):
            logger.error("the handler for a server request returned %s", type(result).__name__)
            error = JSONRPCError(_jsonrpc.INTERNAL_ERROR, "internal error in the client")
            return _jsonrpc.ErrorResponse(request.id, error)
        return _jsonrpc.Response(request.id, result)

    async def _reply(self, reply: _jsonrpc.Message) -> None:
        with anyio.move_on_after(self._reply_timeout) as scope:
            try:
                await self._send(reply)
            except MCPConnError as exc:
                logger.debug("could not answer a server request: %s", type(exc).__name__)
        if scope.cancelled_caught:
            logger.debug("a reply to a server request timed out")
