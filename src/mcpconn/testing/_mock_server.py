"""`MockServer`: configuration, lifecycle, the test-facing controls, counters and routing.

The per-era protocol handling lives in `_eras` and `_stateless`; who is asking
and what goes wrong in `_requests`; sessions and streams in `_registry`, what
the server emits unasked in `_emission`, the lean mode's shortcuts in `_lean`.
"""

from __future__ import annotations

import json
import time
from collections import deque
from collections.abc import Callable, Sequence
from contextlib import AsyncExitStack
from typing import Any

import anyio
import anyio.abc

from . import _control, _eras, _lean
from ._emission import Emission
from ._events import EventStream, encode_json
from ._faults import STREAM_KINDS, FaultSet
from ._http import Exchange, HTTPServer, Request
from ._jwt_issuer import JWTIssuer
from ._lean import VerifiedTokens
from ._lean_http import LeanHTTPServer
from ._requests import Auth, RequestContext, inject, prepare, reject_auth
from ._rpc import HANDSHAKE_VERSIONS, MODERN_VERSIONS, Session
from ._stateless import stateless
from ._stats import MockStats, Recorder, RequestRecord
from ._tools import BUILTIN_TOOLS, Catalog, Tool

__all__ = ["HANDSHAKE_VERSIONS", "MODERN_VERSIONS", "MockServer", "RequestContext", "Session"]


class MockServer(Emission):
    """A real MCP server on loopback, for tests and benchmarks.

    ``async with MockServer() as server:`` binds 127.0.0.1 on a free port and
    serves every era on ``server.url`` (``/mcp``: streamable HTTP sessions, and
    the stateless 2026-07-28 era chosen per request by ``MCP-Protocol-Version``)
    and legacy HTTP+SSE on ``server.sse_url``. Tokens are JWTs of ``issuer``.

    ``lean=True`` serves the same protocol with the least work per request, for
    benchmarks whose floor would otherwise be this server's CPU: a token's
    signature is checked once (its expiry, audience and revocation still on
    every request), plain HTTP/1.1 requests are parsed without h11 by one
    reader task per connection (anything else is served by h11, answered as
    ordinarily), a response that is not a long-lived stream is written in one
    piece (headers, its SSE events, the end) instead of being streamed, and
    JSON goes through orjson when installed. Faults still apply; a faulted
    request takes the ordinary path.
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
        lean: bool = False,
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
        #: Lean mode (see the class docstring); the verified tokens it remembers.
        self.lean = lean
        self.verified = VerifiedTokens() if lean else None
        #: The JSON codec of request bodies and the answers lean mode writes in one piece.
        self._decode: Callable[[bytes], Any] = _lean.decode if lean else json.loads
        self._encode: Callable[[Any], bytes] = _lean.encode if lean else encode_json
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
        self._http = (LeanHTTPServer if lean else HTTPServer)(self._handle)
        self._http.on_connections = self._recorder.changed  # open_connections is in the stats
        self._tg: anyio.abc.TaskGroup | None = None
        self._stack: AsyncExitStack | None = None  # the task group `async with` enters

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
        self._stack = stack = AsyncExitStack()
        tg = await stack.enter_async_context(anyio.create_task_group())
        stack.callback(tg.cancel_scope.cancel)  # on exit, first: stop serving
        try:
            await tg.start(self.serve)
        except BaseException:
            await self.aclose()
            raise
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        await self.aclose()

    async def aclose(self) -> None:
        """Stop serving and close every connection and stream."""
        stack, self._stack = self._stack, None
        if stack is not None:
            await stack.aclose()

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

    async def wait_for_listeners(self, n: int, *, principal: str | None = None) -> None:
        """Wait until ``n`` listener streams (of ``principal``, if given) are being written:
        the streams `emit` and `close_streams` reach. `wait_for_streams` also counts a
        call's response stream while it is written, so it is no proof of a listener."""

        def written() -> int:
            return sum(1 for stream in self._targets(principal) if stream.writers)

        await self._recorder.wait_until(lambda _r: written() >= n)

    async def wait_until(self, predicate: Callable[[MockStats], bool]) -> None:
        """Wait until ``predicate(server.stats())`` holds (checked on every change)."""
        await self._recorder.wait_until(lambda _r: predicate(self.stats()))

    # -- request entry -----------------------------------------------------------------
    async def _handle(self, request: Request, exchange: Exchange) -> None:
        if self.control and request.path.startswith(_control.PREFIX):
            await _control.handle_control(self, request, exchange)
            return
        rc, auth = prepare(self, request, exchange)
        try:
            fault = self.faults.take(request.path, request.method, rc.rpc_method, rc.principal)
            if fault is not None:
                if fault.kind == "delay" and fault.late_answer:
                    exchange.hold = fault.seconds  # the work now, its answer late
                elif fault.kind == "delay":
                    await anyio.sleep(fault.seconds)
                elif fault.kind in STREAM_KINDS:
                    rc.fault = fault
                else:
                    await inject(self, fault, rc)
                    return
            await self._route(rc, auth)
        except Exception:
            rc.record(500)  # what the connection answers a failed handler (if unstarted)
            raise
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
