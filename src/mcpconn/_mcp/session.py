"""One MCP session over HTTP: handshake, request/response matching, the MCP rules.

`open_session` picks the protocol era, does its handshake and yields a
`Session`; on exit it closes every stream it opened and DELETEs a session id
(bounded by ``timeouts.close``). The session owns a task group (entered and
exited in the task that enters `open_session`) for answering server requests
and, in the legacy era, for reading the SSE stream; nothing in it ever raises
into that group. Choosing the era and its handshake are in `_handshake`;
notifications and server requests are handled in `_inbound`.

Rules carried out here: a 404 on a request that carried ``Mcp-Session-Id``
re-initializes once and re-issues once (single-flight across concurrent
callers; ``on_reinitialized`` is called); a request whose response stream is
lost in the stateless era is re-issued once with a new id; on timeout a
``notifications/cancelled`` goes out (not in the stateless era, where closing
the stream is the cancellation) and a late response is ignored and counted.
"""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass
from typing import Any

import anyio
import httpx
from anyio.abc import TaskGroup

from .._config import ServerConfig
from .._core import jsonrpc as _jsonrpc
from .._exceptions import (
    ConnectionClosed,
    JSONRPCError,
    MCPConnError,
    RequestTimeout,
    SessionExpired,
    StreamEnded,
)
from . import handshake as _handshake
from . import inbound as _inbound
from .handshake import ServerHello, client_capabilities
from .inbound import ProgressCallback
from .transports import HTTPChannel, StatelessTransport, StreamLost, Transport
from .transports.base import Era, describe
from .transports.eras import EraCache
from .transports.stateless import LISTEN_FILTER

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

#: JSON-RPC code for HeaderMismatch (2026-07-28): mirrored headers disagree with the body.
HEADER_MISMATCH = -32020
_MAX_PAGES = 100


@dataclass
class SessionHandlers:
    """What the session calls back into; ``on_notification`` is sync and must not block.

    ``capabilities`` is what ``initialize`` and every 2026-07-28 request declare
    (see `client_capabilities`); ``None`` declares none.
    """

    on_notification: Callable[[dict[str, Any]], None]
    on_request: Callable[[str, dict[str, Any] | None], Awaitable[dict[str, Any]]] | None = None
    on_reinitialized: Callable[[], None] | None = None
    capabilities: dict[str, Any] | None = None


@dataclass(frozen=True)
class SessionStatistics:
    requests: int
    pending: int
    unknown_responses: int
    duplicate_responses: int
    skipped_messages: int
    resumptions: int
    reinitializations: int
    reissued: int


class _Pending:
    __slots__ = ("done", "error", "result")

    def __init__(self) -> None:
        self.done = anyio.Event()
        self.result: dict[str, Any] | None = None
        self.error: MCPConnError | None = None


class Session:
    """One live MCP session. Use `open_session`; do not construct it yourself."""

    era: Era
    protocol_version: str
    server_info: dict[str, Any]
    capabilities: dict[str, Any]
    instructions: str | None

    def __init__(
        self,
        client: httpx.AsyncClient,
        config: ServerConfig,
        *,
        auth: httpx.Auth | None,
        handlers: SessionHandlers,
        task_group: TaskGroup,
    ) -> None:
        self._config = config
        self._handlers = handlers
        self._tg = task_group
        self._channel = HTTPChannel(client, config, auth)
        self._ids = _jsonrpc.IdAllocator()
        self._pending: dict[_jsonrpc.RequestId, _Pending] = {}
        self._progress: dict[_jsonrpc.RequestId, ProgressCallback] = {}
        self._inflight: set[anyio.CancelScope] = set()
        self._transport: Transport | None = None
        self._reinit_lock = anyio.Lock()
        self._generation = 0
        self._closed = False
        self._discarded = False
        self._counts = dict.fromkeys(
            ("requests", "unknown", "duplicate", "skipped", "reinit", "reissued"), 0
        )
        self.server_info = {}
        self.capabilities = {}
        self.instructions = None
        self.protocol_version = ""

    def __repr__(self) -> str:
        era = getattr(self, "era", "?")
        return f"<Session {self._config.name!r} era={era} version={self.protocol_version!r}>"

    @property
    def session_id(self) -> str | None:
        return self._transport.session_id if self._transport is not None else None

    def statistics(self) -> SessionStatistics:
        t = self._transport
        c = self._counts
        return SessionStatistics(
            requests=c["requests"],
            pending=len(self._pending),
            unknown_responses=c["unknown"],
            duplicate_responses=c["duplicate"],
            skipped_messages=c["skipped"] + (t.skipped if t is not None else 0),
            resumptions=getattr(t, "resumptions", 0),
            reinitializations=c["reinit"],
            reissued=c["reissued"],
        )

    def discard(self) -> None:
        """Close without the polite DELETE (the connection gave the session up)."""
        self._discarded = True

    # ---- public calls -----------------------------------------------------------------

    async def request(
        self,
        method: str,
        params: dict[str, Any] | None = None,
        *,
        timeout: float | None = None,
        on_progress: ProgressCallback | None = None,
    ) -> dict[str, Any]:
        """Send a request; return its ``result``. See the module docstring for the rules.

        2026-07-28 removed ``ping``; there a ``ping`` is sent as ``server/discover``
        (the cheapest request every server must answer) and returns ``{}``, so a
        keep-alive works the same in every era.
        """
        if self._closed:
            raise ConnectionClosed("the session is closed")
        if method == "ping" and self.era == "stateless":
            await self.request("server/discover", None, timeout=timeout)
            return {}
        timeout = self._config.timeouts.request if timeout is None else timeout
        sent: list[_jsonrpc.RequestId] = []
        try:
            with anyio.move_on_after(timeout):
                return await self._with_rules(method, params, on_progress, sent)
        except anyio.get_cancelled_exc_class():
            if sent and self.era != "stateless" and not self._closed:
                self._tg.start_soon(self._send_cancelled, sent[-1], "cancelled")
            raise
        if sent and self.era != "stateless":
            await self._send_cancelled(sent[-1], "timeout")
        raise RequestTimeout(f"{method} got no response within {timeout:g}s")

    async def notify(self, method: str, params: dict[str, Any] | None = None) -> None:
        if self._closed:
            raise ConnectionClosed("the session is closed")
        await self._send(_jsonrpc.Notification(method, params))

    async def listen(self) -> None:
        """Run the server-to-client stream once; it always ends in an exception.

        `StreamEnded` (sleep ``retry`` if given, call again: it resumes),
        `MethodNotAllowed` (no listener here: never retry), `SessionExpired`
        (legacy SSE: the stream was the session), or another typed error. In the
        session era a 404 re-initializes the session and raises `StreamEnded`.
        """
        transport = self._require_transport()
        request = None
        if self.era == "stateless":
            request = _jsonrpc.Request(
                self._ids.next(), "subscriptions/listen", {"notifications": dict(LISTEN_FILTER)}
            )
        generation = self._generation
        try:
            await transport.listen(self._dispatch, request)
        except SessionExpired:
            if self.era != "streamable-http":
                raise
            await self._reinitialize(generation)
            raise StreamEnded("the session was re-initialized", retry=None) from None

    # ---- the rules ----------------------------------------------------------------------

    async def _with_rules(
        self,
        method: str,
        params: dict[str, Any] | None,
        on_progress: ProgressCallback | None,
        sent: list[_jsonrpc.RequestId],
    ) -> dict[str, Any]:
        reinitialized = reissued = relisted = False
        while True:
            generation = self._generation
            try:
                result = await self._roundtrip(method, params, on_progress, sent)
            except JSONRPCError as exc:
                # The spec's answer to HeaderMismatch on tools/call: re-read the
                # tools (their x-mcp-header annotations may have changed), retry once.
                if relisted or exc.code != HEADER_MISMATCH or method != "tools/call":
                    raise
                transport = self._transport
                if not isinstance(transport, StatelessTransport):
                    raise
                relisted = True
                await self._list_tools(transport)
                continue
            except SessionExpired:
                if self.era != "streamable-http" or reinitialized or method == "initialize":
                    raise
                reinitialized = True
                await self._reinitialize(generation)
                continue
            except StreamLost:
                if self.era != "stateless" or reissued:
                    raise
                reissued = True
                self._counts["reissued"] += 1
                continue
            if method == "tools/list" and isinstance(self._transport, StatelessTransport):
                result = self._transport.learn_tools(result)
            return result

    async def _list_tools(self, transport: StatelessTransport) -> None:
        """Every page of tools/list, to learn the tools' ``x-mcp-header`` maps."""
        params: dict[str, Any] | None = None
        for _ in range(_MAX_PAGES):
            page = transport.learn_tools(await self._roundtrip("tools/list", params, None))
            cursor = page.get("nextCursor")
            if not isinstance(cursor, str) or not cursor:
                return
            params = {"cursor": cursor}

    async def _roundtrip(
        self,
        method: str,
        params: dict[str, Any] | None,
        on_progress: ProgressCallback | None = None,
        sent: list[_jsonrpc.RequestId] | None = None,
    ) -> dict[str, Any]:
        transport = self._require_transport()
        rid = self._ids.next()
        if on_progress is not None:
            params = dict(params or {})
            params["_meta"] = {**(params.get("_meta") or {}), "progressToken": rid}
            self._progress[rid] = on_progress
        pending = self._pending[rid] = _Pending()
        if sent is not None:
            sent.append(rid)
        self._counts["requests"] += 1
        scope = anyio.CancelScope()  # cancelled when the session closes under us
        self._inflight.add(scope)
        try:
            with scope:
                await transport.send_request(
                    _jsonrpc.Request(rid, method, params),
                    done=pending.done.is_set,
                    dispatch=self._dispatch,
                )
                await pending.done.wait()
        finally:
            self._inflight.discard(scope)
            del self._pending[rid]
            self._progress.pop(rid, None)
        if scope.cancelled_caught:
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

    async def _reinitialize(self, generation: int) -> None:
        """Single-flight: the first caller re-initializes, the others reuse its session."""
        async with self._reinit_lock:
            if self._generation != generation:
                return
            transport = self._require_transport()
            with anyio.fail_after(self._config.timeouts.request):
                await self._initialize(transport)
            self._generation += 1
            self._counts["reinit"] += 1
            logger.info("%r re-initialized after the server forgot the session", self)
        callback = self._handlers.on_reinitialized
        if callback is not None:
            try:
                callback()
            except Exception:
                logger.exception("on_reinitialized raised")

    # ---- inbound --------------------------------------------------------------------------

    def _dispatch(self, message: _jsonrpc.Message) -> None:
        """Route one inbound message; sync, never raises for the server's sake."""
        if isinstance(message, _jsonrpc.Notification):  # the common case first
            _inbound.deliver_notification(message, self._progress, self._handlers.on_notification)
        elif isinstance(message, (_jsonrpc.Response, _jsonrpc.ErrorResponse)):
            pending = self._pending.get(message.id) if message.id is not None else None
            if pending is None:
                self._counts["unknown"] += 1
                logger.debug("ignored a response to unknown or finished id %r", message.id)
            elif pending.done.is_set():
                self._counts["duplicate"] += 1
            else:
                if isinstance(message, _jsonrpc.Response):
                    pending.result = message.result
                else:
                    pending.error = message.error
                pending.done.set()
        elif getattr(self, "era", None) == "stateless":
            self._counts["skipped"] += 1
            logger.debug("ignored %s: no server requests in the stateless era", describe(message))
        else:
            self._tg.start_soon(self._answer, message)

    async def _answer(self, request: _jsonrpc.Request) -> None:
        timeout = self._config.timeouts.request
        await _inbound.answer(request, self._handlers.on_request, timeout, self._send)

    def _fail_all(self, error: MCPConnError) -> None:
        for pending in self._pending.values():
            if not pending.done.is_set():
                pending.error = error
                pending.done.set()

    # ---- handshake ------------------------------------------------------------------------

    def _require_transport(self) -> Transport:
        if self._transport is None:
            raise ConnectionClosed("the session is not open")
        return self._transport

    async def _send(self, message: _jsonrpc.Message) -> None:
        await self._require_transport().send_message(message)

    async def _open(self, era_cache: EraCache | None) -> None:
        await _handshake.open_first_era(self._config, era_cache, self._open_era)

    async def _open_era(self, era: Era) -> None:
        config = self._config
        transport = _handshake.make_transport(
            era,
            self._channel,
            config,
            task_group=self._tg,
            on_lost=self._fail_all,
            capabilities=self._client_capabilities(),
        )
        self._transport, self.era = transport, era
        try:
            with anyio.fail_after(config.timeouts.request):
                await transport.start(self._dispatch)
                if isinstance(transport, StatelessTransport):
                    self._adopt(await _handshake.discover(transport, self._roundtrip, config))
                else:
                    await self._initialize(transport)
        except TimeoutError:
            await transport.aclose()
            self._transport = None
            raise RequestTimeout(f"the {era} handshake got no answer in time") from None
        except BaseException:
            with anyio.move_on_after(config.timeouts.close, shield=True):
                await transport.aclose()
            self._transport = None
            raise

    async def _initialize(self, transport: Transport) -> None:
        capabilities = self._client_capabilities()
        hello = await _handshake.initialize(transport, self._roundtrip, self._config, capabilities)
        self._adopt(hello)
        await transport.send_message(_jsonrpc.Notification("notifications/initialized", None))

    def _client_capabilities(self) -> dict[str, Any]:
        return dict(self._handlers.capabilities or {})

    def _adopt(self, hello: ServerHello) -> None:
        self.protocol_version = hello.protocol_version
        self.server_info = hello.server_info
        self.capabilities = hello.capabilities
        self.instructions = hello.instructions

    async def _aclose(self) -> None:
        self._closed = True
        self._fail_all(ConnectionClosed("the session closed"))
        for scope in self._inflight:
            scope.cancel()
        transport = self._transport
        if transport is None:
            return
        if self._discarded:
            transport.session_id = None
        await transport.aclose()


@asynccontextmanager
async def open_session(
    client: httpx.AsyncClient,
    config: ServerConfig,
    *,
    auth: httpx.Auth | None,
    handlers: SessionHandlers,
    era_cache: EraCache | None = None,
) -> AsyncIterator[Session]:
    """Open one MCP session (see the module docstring); close it on exit."""
    error: Exception | None = None
    async with anyio.create_task_group() as tg:
        session = Session(client, config, auth=auth, handlers=handlers, task_group=tg)
        try:
            await session._open(era_cache)
            yield session
        except Exception as exc:  # re-raised below, outside the group: no ExceptionGroup
            error = exc
        finally:
            with anyio.move_on_after(config.timeouts.close + 1.0, shield=True):
                await session._aclose()
            tg.cancel_scope.cancel()
    if error is not None:
        raise error
