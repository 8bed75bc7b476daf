"""`MockServer`: lifecycle, routing, bearer-JWT checks, faults, counters and emission.

The per-era protocol handling lives in `_eras.py`; this module decides who is
asking (principal, token state), what goes wrong (faults), and records it.
"""

from __future__ import annotations

import json
import math
import time
import uuid
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from types import TracebackType
from typing import Any

import anyio
import anyio.abc
import jwt

from . import _control, _eras
from ._eras import HANDSHAKE_VERSIONS, MODERN_VERSIONS
from ._events import SSE_HEADERS, EventStream, encode_json, pump, sse_frame
from ._faults import STREAM_KINDS, Fault, FaultSet
from ._http import Exchange, HTTPServer, Request
from ._jwt_issuer import JWTIssuer, TokenRejected
from ._stats import MockStats, Recorder, RequestRecord
from ._tools import BUILTIN_TOOLS, Catalog, Tool

__all__ = ["HANDSHAKE_VERSIONS", "MODERN_VERSIONS", "MockServer", "RequestContext", "Session"]

_UNPARSED = object()


@dataclass(eq=False)
class Session:
    """One handshake-era session (streamable HTTP or legacy SSE)."""

    id: str
    principal: str | None
    era: str
    protocol_version: str
    last_seen: float
    initialized: bool = False
    listener: EventStream | None = None
    streams: dict[str, EventStream] = field(default_factory=dict)
    running: dict[Any, anyio.CancelScope] = field(default_factory=dict)
    next_stream: int = 0

    def new_stream(self, *, maxlen: int) -> EventStream:
        self.next_stream += 1
        stream = EventStream(f"P{self.next_stream}", self.principal, resumable=True, maxlen=maxlen)
        self.streams[stream.key] = stream
        while len(self.streams) > 32:  # keep the recent POST streams resumable
            self.streams.pop(next(iter(self.streams)))
        return stream


@dataclass
class RequestContext:
    """One request on its way through the server."""

    request: Request
    exchange: Exchange
    principal: str | None
    message: Any
    parse_error: bool
    rpc_method: str | None
    fault: Fault | None = None


@dataclass
class _Auth:
    principal: str | None = None
    present: bool = False
    expired: bool = False
    error: str | None = None


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
        clock: Callable[[], float] = time.time,
    ) -> None:
        unknown = set(eras) - {"streamable-http", "sse", "stateless"}
        if unknown:
            raise ValueError(f"unknown eras: {sorted(unknown)}")
        self.host = host
        self.port = port
        self.issuer = issuer if issuer is not None else JWTIssuer(clock=clock)
        self.require_auth = require_auth
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
        #: Seconds added to ``clock()`` for ``exp`` checks (settable while running).
        self.clock_offset = 0.0
        self.faults = FaultSet()
        padding = [
            Tool(f"tool_{i:04d}", _noop, "Padding for pagination.") for i in range(extra_tools)
        ]
        self.catalog = Catalog([*BUILTIN_TOOLS, *tools, *padding], page_size=page_size)
        self.revoked: set[str] = set()
        self.sessions: dict[str, Session] = {}
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
        ``event_log_size`` events.
        """
        message: dict[str, Any] = {"jsonrpc": "2.0", "method": method}
        if params is not None:
            message["params"] = params
        data = encode_json(message)
        if principal is not None:
            targets: Sequence[EventStream] = list(self._listeners.get(principal, ()))
        else:
            targets = [s for streams in self._listeners.values() for s in streams]
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
        return session

    def drop_session(self, session: Session) -> None:
        self.sessions.pop(session.id, None)
        for scope in session.running.values():
            scope.cancel()
        if session.listener is not None:
            self.unregister_listener(session.listener)
            session.listener.finish()
        for stream in session.streams.values():
            stream.attach()

    def find_session(self, session_id: str, principal: str | None, era: str) -> Session | None:
        session = self.sessions.get(session_id)
        if session is None or session.era != era or session.principal != principal:
            return None
        now = self.clock()
        if (
            self.session_idle_timeout is not None
            and now - session.last_seen > self.session_idle_timeout
        ):
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

    def spawn(self, func: Callable[[], Any]) -> None:
        """Run ``func`` in the server's task group (work that outlives its connection)."""
        assert self._tg is not None
        self._tg.start_soon(func)

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
        auth = self._authenticate(request)
        message: Any = _UNPARSED
        parse_error = False
        rpc_method = None
        if request.method == "POST" and request.body:
            try:
                message = json.loads(request.body)
            except ValueError:
                parse_error = True
            if isinstance(message, dict) and isinstance(message.get("method"), str):
                rpc_method = message["method"]
        path = request.path
        recorded = False

        def record(status: int) -> None:
            nonlocal recorded
            if recorded:
                return
            recorded = True
            self._recorder.record(
                RequestRecord(
                    principal=auth.principal,
                    method=request.method,
                    path=path,
                    rpc_method=rpc_method,
                    status=status,
                    token_expired=auth.expired,
                    token_present=auth.present,
                    at=self.clock(),
                )
            )

        exchange.on_start = record
        rc = RequestContext(
            request,
            exchange,
            auth.principal,
            None if message is _UNPARSED else message,
            parse_error,
            rpc_method,
        )
        try:
            fault = self.faults.take(path, request.method, rpc_method, auth.principal)
            if fault is not None:
                if fault.kind == "delay":
                    await anyio.sleep(fault.seconds)
                elif fault.kind in STREAM_KINDS:
                    rc.fault = fault
                else:
                    await self._inject(fault, rc)
                    return
            await self._route(rc, auth)
        finally:
            record(0)

    async def _route(self, rc: RequestContext, auth: _Auth) -> None:
        path = rc.request.path
        if path.startswith("/.well-known/oauth-protected-resource"):
            body = encode_json(
                {
                    "resource": self.url,
                    "authorization_servers": [self.base_url],
                    "bearer_methods_supported": ["header"],
                }
            )
            await rc.exchange.respond(200, [("content-type", "application/json")], body)
            return
        if path not in ("/mcp", "/sse", "/messages"):
            await rc.exchange.respond(404, [("content-type", "text/plain")], b"not found")
            return
        if self.require_auth and auth.error is not None:
            await self.reject_auth(rc.exchange, "invalid_token", auth.error)
            return
        if path == "/mcp":
            version = rc.request.header("mcp-protocol-version")
            if (
                "stateless" in self.eras
                and version is not None
                and version not in HANDSHAKE_VERSIONS
            ):
                await _eras.stateless(self, rc)
            elif "streamable-http" in self.eras:
                await _eras.streamable(self, rc)
            else:
                await _eras.stateless(self, rc)
        elif "sse" not in self.eras:
            await rc.exchange.respond(404, [("content-type", "text/plain")], b"not found")
        elif path == "/sse":
            await _eras.legacy_get(self, rc)
        else:
            await _eras.legacy_post(self, rc)

    def _authenticate(self, request: Request) -> _Auth:
        header = request.header("authorization")
        if header is None or not header.lower().startswith("bearer "):
            return _Auth(error="no bearer token")
        raw = header[7:].strip()
        auth = _Auth(present=True)
        now = self.now()
        try:
            unverified = jwt.decode(raw, options={"verify_signature": False})
        except jwt.PyJWTError:
            unverified = {}
        sub = unverified.get("sub")
        auth.principal = sub if isinstance(sub, str) else None
        exp = unverified.get("exp")
        if isinstance(exp, int | float) and not isinstance(exp, bool):
            auth.expired = now >= exp
        try:
            claims = self.issuer.verify(raw, now=now)
        except TokenRejected as exc:
            auth.error = exc.description
            return auth
        if self.audience is not None and claims.get("aud") != self.audience:
            auth.error = "token audience does not match"
        elif claims["sub"] in self.revoked:
            auth.error = "principal revoked"
        return auth

    async def reject_auth(
        self,
        exchange: Exchange,
        error: str,
        description: str,
        *,
        status: int = 401,
        scope: str | None = None,
        headers: Sequence[tuple[str, str]] = (),
        body: bytes = b"",
    ) -> None:
        challenge = f'Bearer error="{error}", error_description="{description}"'
        if scope is not None:
            challenge += f', scope="{scope}"'
        challenge += f', resource_metadata="{self.resource_metadata_url}"'
        hdrs = [("www-authenticate", challenge), ("content-type", "application/json"), *headers]
        payload = body or encode_json({"error": error, "error_description": description})
        await exchange.respond(status, hdrs, payload)

    async def _inject(self, fault: Fault, rc: RequestContext) -> None:
        """Answer with ``fault`` instead of serving the request."""
        exchange = rc.exchange
        kind = fault.kind
        if kind == "status":
            if fault.status_code in (401, 403) and fault.auth_error is not None:
                await self.reject_auth(
                    exchange,
                    fault.auth_error,
                    fault.auth_description or "",
                    status=fault.status_code,
                    scope=fault.scope,
                    headers=fault.headers,
                    body=fault.body,
                )
            else:
                body = fault.body or b"injected fault"
                await exchange.respond(
                    fault.status_code, [("content-type", "text/plain"), *fault.headers], body
                )
        elif kind == "expire_session":
            sid = rc.request.header("mcp-session-id") or rc.request.query.get("session_id")
            if sid is not None and sid in self.sessions:
                self.drop_session(self.sessions[sid])
            await exchange.respond(404, [("content-type", "text/plain")], b"session expired")
        elif kind == "disconnect":
            await exchange.abort()
        elif kind == "stall":
            if fault.after_headers:
                await exchange.start_stream(200, SSE_HEADERS)
            elif exchange.on_start is not None:
                exchange.on_start(0)  # counted now, with status 0: no response will come
            await exchange.client_gone.wait()
        elif kind == "wrong_content_type":
            await exchange.respond(
                200, [("content-type", "text/html")], b"<html><body>Login</body></html>"
            )
        else:
            await _eras.bad_bytes(self, rc, kind, fault.size)


async def _noop(arguments: dict[str, Any], ctx: Any) -> dict[str, Any]:
    return {"content": [], "isError": False}
