"""`MockServer`: lifecycle, routing, bearer-JWT checks, faults, counters and emission.

The per-era protocol handling lives in `_eras.py`; this module decides who is
asking (principal, token state), what goes wrong (faults), and records it.
"""

from __future__ import annotations

import logging
import math
import time
import uuid
from collections import deque
from collections.abc import Awaitable, Callable, Sequence
from types import TracebackType
from typing import Any

import anyio
import anyio.abc

from . import _control, _eras
from ._eras import HANDSHAKE_VERSIONS, MODERN_VERSIONS, Session
from ._events import EventStream, encode_json, pump, sse_frame
from ._faults import STREAM_KINDS, FaultSet
from ._http import Exchange, HTTPServer, Request
from ._jwt_issuer import JWTIssuer
from ._requests import Auth, RequestContext, inject, prepare, reject_auth
from ._stateless import stateless
from ._stats import MockStats, Recorder, RequestRecord
from ._tools import BUILTIN_TOOLS, Catalog, Tool

logger = logging.getLogger("mcpconn.testing")

__all__ = ["HANDSHAKE_VERSIONS", "MODERN_VERSIONS", "MockServer", "RequestContext", "Session"]


class MockServer:
    """A real MCP server on loopback, for tests and benchmarks.

    ``async with MockServer() as server:`` binds 127.0.0.1 on a free port and
    serves every era on ``server.url`` (``/mcp``: streamable HTTP sessions, and
    the stateless 2026-07-28 era chosen per request by ``MCP-Protocol-Version``)
    and legacy HTTP+SSE on ``server.sse_url``. Tokens are JWTs of ``issuer``.
    """

    def __init__(
        self,
        *,
        host: str = "127.0.0.1",
        port: int = 0,
        issuer: JWTIssuer | None = None,
        require_auth: bool = True,
        tools: Sequence[Tool] = (),
        extra_tools: int = 0,
        page_size: int = 50,
        json_response: bool = False,
        eras: Sequence[str] = ("streamable-http", "sse", "stateless"),
        get_listener: bool = True,
        session_idle_timeout: float | None = None,
        sse_retry: float | None = 1.0,
        event_log_size: int = 1024,
        max_records: int = 10_000,
        audience: str | None = None,
        control: bool = False,
        token_lifetime: float = 60.0,
        max_sessions: int = 100_000,
        clock: Callable[[], float] = time.time,
        authorization_server: str | None = None,
        list_ttl_ms: int | None = None,
        discover_ttl_ms: int = 0,
        discover_cache_scope: str = "private",
    ) -> None:
        unknown = set(eras) - {"streamable-http", "sse", "stateless"}
        if unknown:
            raise ValueError(f"unknown eras: {sorted(unknown)}")
        self.host = host
        self.port = port
        self.issuer = issuer if issuer is not None else JWTIssuer(clock=clock)
        self.require_auth = require_auth
        #: The issuer its protected-resource metadata names (None: the server itself).
        self.authorization_server = authorization_server
        self.json_response = json_response
        self.eras = frozenset(eras)
        self.get_listener = get_listener
        self.session_idle_timeout = session_idle_timeout
        self.sse_retry = sse_retry
        self.event_log_size = event_log_size
        self.audience = audience
        #: Serve the ``/_mock/`` control endpoints (for a server in another process).
        self.control = control
        #: Default lifetime of tokens minted by `mint()` and the control endpoint.
        self.token_lifetime = token_lifetime
        self.clock = clock
        #: ``ttlMs`` on 2026-07-28 list results (None: none, cached until list_changed).
        self.list_ttl_ms = list_ttl_ms
        #: ``ttlMs`` and ``cacheScope`` of the 2026-07-28 ``server/discover`` answer
        #: (settable while running; the default 0 says "do not reuse").
        self.discover_ttl_ms = discover_ttl_ms
        self.discover_cache_scope = discover_cache_scope
        #: Seconds added to ``clock()`` for ``exp`` checks (settable while running).
        self.clock_offset = 0.0
        self.faults = FaultSet()
        #: The protocol version every ``initialize`` answers (settable while running;
        #: None: the client's own when we speak it). One we do not speak tests clients
        #: that re-initialize into a version they cannot use.
        self.answer_version: str | None = None
        padding = [
            Tool(f"tool_{i:04d}", _noop, "Padding for pagination.") for i in range(extra_tools)
        ]
        self.catalog = Catalog([*BUILTIN_TOOLS, *tools, *padding], page_size=page_size)
        self.revoked: set[str] = set()
        self.sessions: dict[str, Session] = {}
        self.max_sessions = max_sessions
        #: JSON-RPC responses the client POSTed (answers to `send()` requests), newest last.
        self.client_responses: deque[dict[str, Any]] = deque(maxlen=1000)
        self._listeners: dict[str | None, set[EventStream]] = {}
        self._recorder = Recorder(max_records)
        self._http = HTTPServer(self._handle)
        self._tg: anyio.abc.TaskGroup | None = None
        self._own_tg: anyio.abc.TaskGroup | None = None

    def __repr__(self) -> str:
        where = self.url if self.port else "unbound"
        return f"MockServer({where}, sessions={len(self.sessions)})"

    # -- lifecycle -------------------------------------------------------------------
    async def serve(
        self, *, task_status: anyio.abc.TaskStatus[None] = anyio.TASK_STATUS_IGNORED
    ) -> None:
        """Serve until cancelled; ``task_status.started()`` once the port is bound."""
        try:
            async with anyio.create_task_group() as tg:
                self._tg = tg
                self.port = await tg.start(self._http.serve, self.host, self.port)
                if self.session_idle_timeout is not None:
                    tg.start_soon(self._sweep_sessions, self.session_idle_timeout)
                task_status.started()
        finally:
            self._tg = None

    async def __aenter__(self) -> MockServer:
        tg = anyio.create_task_group()
        await tg.__aenter__()
        try:
            await tg.start(self.serve)
        except BaseException:
            tg.cancel_scope.cancel()
            await tg.__aexit__(None, None, None)
            raise
        self._own_tg = tg
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> bool | None:
        await self.aclose()
        return None

    async def aclose(self) -> None:
        """Stop serving and close every connection and stream."""
        tg, self._own_tg = self._own_tg, None
        if tg is not None:
            tg.cancel_scope.cancel()
            await tg.__aexit__(None, None, None)

    # -- addresses ---------------------------------------------------------------------
    @property
    def base_url(self) -> str:
        return f"http://{self.host}:{self.port}"

    @property
    def url(self) -> str:
        """The MCP endpoint (streamable HTTP sessions and the 2026-07-28 era)."""
        return f"{self.base_url}/mcp"

    @property
    def sse_url(self) -> str:
        """The legacy HTTP+SSE endpoint (2024-11-05)."""
        return f"{self.base_url}/sse"

    @property
    def resource_metadata_url(self) -> str:
        return f"{self.base_url}/.well-known/oauth-protected-resource"

    # -- control -----------------------------------------------------------------------
    def now(self) -> float:
        """The server's clock, skewed by ``clock_offset``."""
        return self.clock() + self.clock_offset

    @property
    def control_url(self) -> str:
        """The control endpoints' prefix (when ``control=True``)."""
        return f"{self.base_url}{_control.PREFIX}"

    def mint(self, principal: str, *, lifetime: float | None = None) -> str:
        """A valid token for ``principal`` from this server's issuer."""
        life = self.token_lifetime if lifetime is None else lifetime
        return self.issuer.mint(principal, lifetime=life, audience=self.audience)

    def revoke(self, principal: str) -> None:
        """Every token of ``principal`` gets 401 until `restore()`."""
        self.revoked.add(principal)

    def restore(self, principal: str) -> None:
        self.revoked.discard(principal)

    def add_tool(self, tool: Tool, *, notify: bool = True) -> int:
        """Add a tool; returns how many listeners got ``notifications/tools/list_changed``."""
        self.catalog.add(tool)
        return self.emit("notifications/tools/list_changed") if notify else 0

    def remove_tool(self, name: str, *, notify: bool = True) -> int:
        self.catalog.remove(name)
        return self.emit("notifications/tools/list_changed") if notify else 0

    def emit(
        self, method: str, params: dict[str, Any] | None = None, *, principal: str | None = None
    ) -> int:
        """Send a notification to every listener stream (of ``principal``, or all).

        Listener streams are GET streams, legacy SSE streams and 2026
        ``subscriptions/listen`` streams (those only get what they subscribed
        to). Returns how many streams took it: open ones, or ones a client can
        resume with ``Last-Event-ID``. Never blocks; each stream keeps the last
        ``event_log_size`` events (use `flood()` for bulk with backpressure).
        """
        message: dict[str, Any] = {"jsonrpc": "2.0", "method": method}
        if params is not None:
            message["params"] = params
        return self._deliver(self._targets(principal), method, params, encode_json(message))

    def send(self, message: dict[str, Any], *, principal: str | None = None) -> int:
        """Put any JSON-RPC message (e.g. a server-to-client ``ping`` request) on listeners.

        2026 listen streams are skipped (no server-to-client requests there).
        The client's answers land in `client_responses`.
        """
        data = encode_json(message)
        count = 0
        for stream in self._targets(principal):
            if stream.accepts is None:
                stream.push(data)
                count += 1
        return count

    async def flood(
        self,
        method: str = "notifications/message",
        params: dict[str, Any] | None = None,
        *,
        count: int,
        principal: str | None = None,
    ) -> int:
        """Emit ``count`` notifications as fast as the listeners read them (no drops).

        Without ``params`` each carries ``{"seq": i}``. Waits while an open
        stream is half an event log behind. Returns the total deliveries.
        """
        high_water = max(1, self.event_log_size // 2)
        delivered = 0
        for i in range(count):
            targets = self._targets(principal)
            for stream in targets:
                if stream.writers and stream.last_seq - stream.written > high_water:
                    await stream.wait_for_space(high_water)
            delivered += self.emit(
                method, {"seq": i} if params is None else params, principal=principal
            )
            if i % 64 == 63:
                await anyio.lowlevel.checkpoint()
        return delivered

    def _targets(self, principal: str | None) -> list[EventStream]:
        if principal is not None:
            return list(self._listeners.get(principal, ()))
        return [s for streams in self._listeners.values() for s in streams]

    def _deliver(
        self,
        targets: Sequence[EventStream],
        method: str,
        params: dict[str, Any] | None,
        data: bytes,
    ) -> int:
        count = 0
        for stream in targets:
            if stream.accepts is not None:
                if not stream.accepts(method, params):
                    continue
                assert stream.transform is not None
                stream.push(stream.transform(method, params))
            else:
                stream.push(data)
            count += 1
        self._recorder.notifications += count
        return count

    def close_streams(self, principal: str | None = None) -> int:
        """End listener streams cleanly (clients resume with ``Last-Event-ID``)."""
        count = 0
        for key, streams in list(self._listeners.items()):
            if principal is not None and key != principal:
                continue
            for stream in list(streams):
                if stream.subscription_id is not None:
                    # 2026: a graceful end is the listen request's own result.
                    stream.push(_eras.listen_result(stream.subscription_id))
                    stream.finish()
                else:
                    stream.attach()  # the writer ends its response; the log stays
                count += 1
        return count

    def expire_sessions(self, principal: str | None = None) -> int:
        """Forget sessions (of ``principal``, or all): their next request gets 404."""
        doomed = [
            s for s in self.sessions.values() if principal is None or s.principal == principal
        ]
        for session in doomed:
            self.drop_session(session)
        return len(doomed)

    # -- counters ----------------------------------------------------------------------
    def stats(self) -> MockStats:
        return self._recorder.snapshot(
            open_connections=self._http.open_connections, sessions=len(self.sessions)
        )

    @property
    def records(self) -> list[RequestRecord]:
        """The most recent requests (bounded; `stats()` counts all of them)."""
        return list(self._recorder.records)

    def requests_since(self, t: float) -> list[RequestRecord]:
        return [r for r in self._recorder.records if r.at >= t]

    async def wait_for_requests(self, n: int, *, principal: str | None = None) -> None:
        """Wait until at least ``n`` requests (of ``principal``, if given) were seen in total."""
        if principal is None:
            await self._recorder.wait_until(lambda r: r.total >= n)
        else:
            await self._recorder.wait_until(lambda r: r.by_principal[principal] >= n)

    async def wait_for_streams(self, n: int, *, principal: str | None = None) -> None:
        """Wait until at least ``n`` streams (of ``principal``, if given) are open."""
        if principal is None:
            await self._recorder.wait_until(lambda r: r.open_streams >= n)
        else:
            await self._recorder.wait_until(lambda r: r.streams_by_principal[principal] >= n)

    async def wait_until(self, predicate: Callable[[MockStats], bool]) -> None:
        """Wait until ``predicate(server.stats())`` holds (checked on every change)."""
        await self._recorder.wait_until(lambda _r: predicate(self.stats()))

    # -- sessions and listeners (used by the eras) --------------------------------------
    def new_session(self, principal: str | None, era: str, version: str) -> Session:
        session = Session(uuid.uuid4().hex, principal, era, version, last_seen=self.clock())
        self.sessions[session.id] = session
        while len(self.sessions) > self.max_sessions:  # forget the oldest, like a real server
            self.drop_session(next(iter(self.sessions.values())))
        return session

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

    def register_listener(self, stream: EventStream) -> None:
        self._listeners.setdefault(stream.principal, set()).add(stream)

    def unregister_listener(self, stream: EventStream) -> None:
        streams = self._listeners.get(stream.principal)
        if streams is not None:
            streams.discard(stream)
            if not streams:
                del self._listeners[stream.principal]

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
        self._recorder.stream_opened(stream.principal)
        try:
            await pump(stream, rc.exchange, after=after, fault=fault, first=first)
        finally:
            self._recorder.stream_closed(stream.principal)

    def priming(self, stream: EventStream, after: int, version: str) -> bytes:
        """The priming event (2025-11-25+): an id and empty data, plus ``retry:``."""
        if version < "2025-11-25" or not stream.resumable:
            return b""
        retry = None if self.sse_retry is None else math.ceil(self.sse_retry * 1000)
        return sse_frame(b"", event_id=stream.event_id(after), event=None, retry_ms=retry)

    # -- request entry -----------------------------------------------------------------
    async def _handle(self, request: Request, exchange: Exchange) -> None:
        if self.control and request.path.startswith(_control.PREFIX):
            await _control.handle_control(self, request, exchange)
            return
        rc, auth = prepare(self, request, exchange)
        try:
            fault = self.faults.take(request.path, request.method, rc.rpc_method, rc.principal)
            if fault is not None:
                if fault.kind == "delay":
                    await anyio.sleep(fault.seconds)
                elif fault.kind in STREAM_KINDS:
                    rc.fault = fault
                else:
                    await inject(self, fault, rc)
                    return
            await self._route(rc, auth)
        finally:
            rc.record(0)

    async def _route(self, rc: RequestContext, auth: Auth) -> None:
        path = rc.request.path
        if path.startswith("/.well-known/oauth-protected-resource"):
            body = encode_json(
                {
                    "resource": self.url,
                    "authorization_servers": [self.authorization_server or self.base_url],
                    "bearer_methods_supported": ["header"],
                }
            )
            await rc.exchange.respond(200, [("content-type", "application/json")], body)
            return
        if path not in ("/mcp", "/sse", "/messages"):
            await rc.exchange.respond(404, [("content-type", "text/plain")], b"not found")
            return
        if self.require_auth and auth.error is not None:
            await reject_auth(self, rc.exchange, "invalid_token", auth.error)
            return
        if path == "/mcp":
            version = rc.request.header("mcp-protocol-version")
            if (
                "stateless" in self.eras
                and version is not None
                and version not in HANDSHAKE_VERSIONS
            ):
                await stateless(self, rc)
            elif "streamable-http" in self.eras:
                await _eras.streamable(self, rc)
            else:
                await stateless(self, rc)
        elif "sse" not in self.eras:
            await rc.exchange.respond(404, [("content-type", "text/plain")], b"not found")
        elif path == "/sse":
            await _eras.legacy_get(self, rc)
        else:
            await _eras.legacy_post(self, rc)


async def _noop(arguments: dict[str, Any], ctx: Any) -> dict[str, Any]:
    return {"content": [], "isError": False}
