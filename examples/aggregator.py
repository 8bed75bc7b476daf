"""A reference MCP aggregator: many downstream MCP servers behind one authenticated endpoint.

    python examples/aggregator.py --port 0 --jwt-secret SECRET \\
        --server alpha=http://127.0.0.1:9001/mcp --server beta=http://127.0.0.1:9002/mcp

Upstream it is an MCP server (the official SDK's low-level ``Server``, Streamable HTTP
at ``/mcp``, both the 2025-11-25 handshake era and the 2026-07-28 era). Every request
needs ``Authorization: Bearer <HS256 JWT>`` with ``exp`` and ``sub``; ``sub`` is the
principal. Downstream it is one `mcpconn.Supervisor`: one connection per (server,
principal), created on the principal's first request, carrying the caller's own bearer.

What mcpconn does here, and what the seed bug got wrong: every upstream request
publishes its bearer *before* any downstream call, so a token that expired while the
user was idle is never sent downstream; a principal the downstream server rejects is
parked (no traffic) and answered at once with "re-authentication required" until the
user comes back with a new token, which wakes the connection for that very request.

Tools are re-exposed as ``NAME_TOOL``, prompts as ``NAME_PROMPT``, resources as
``NAME+URI``. ``GET /_aggregator/status`` (loopback, no auth) shows every connection.
"""

from __future__ import annotations

import argparse
import contextlib
import dataclasses
import enum
import hashlib
import logging
import math
import re
import secrets
import signal
import socket
import sys
import time
import warnings
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator, Mapping
from typing import Any

import anyio
import anyio.abc
import jwt
import mcp_types as types
import uvicorn
from anyio.streams.memory import MemoryObjectReceiveStream
from mcp.server import Server
from mcp.server.auth.middleware.auth_context import get_access_token
from mcp.server.auth.provider import AccessToken
from mcp.server.auth.settings import AuthSettings
from mcp.server.context import ServerRequestContext
from mcp.server.subscriptions import (
    InMemorySubscriptionBus,
    ListenHandler,
    PromptsListChanged,
    ResourcesListChanged,
    ToolsListChanged,
)
from mcp.shared.exceptions import MCPDeprecationWarning, MCPError
from mcp.shared.message import ServerMessageMetadata
from pydantic import AnyHttpUrl
from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import Route

import mcpconn

# logging/setLevel is deprecated in 2026-07-28, but session-era clients still send it
warnings.filterwarnings("ignore", category=MCPDeprecationWarning)

MODERN = "2026-07-28"
LOG_LEVEL_META = "io.modelcontextprotocol/logLevel"
LEVELS = ["debug", "info", "notice", "warning", "error", "critical", "alert", "emergency"]
MARGIN = 2.0  # seconds before expiry a token no longer goes downstream
IN_FLIGHT = 0.5  # and upstream, the time a request takes to get there
READY_WAIT = 5.0  # after publishing a new token: how long a call waits for READY
LIST_WAIT = 1.5  # a listing never waits longer than this for one server
MAX_INPUT_ROUNDS = 8
MAX_PENDING = 10_000  # unanswered MRTR rounds remembered
MAX_SESSIONS = 16  # upstream sessions per principal that hear list_changed
BRIDGE_TIMEOUT = 60.0  # how long a downstream call waits for a 2026 client's answer
REAUTH_TEXT = "re-authentication required: log in again and retry with a new token"
SERVER_REQUESTS: dict[str, tuple[type[Any], type[Any]]] = {
    "elicitation/create": (types.ElicitRequest, types.ElicitResult),
    "sampling/createMessage": (types.CreateMessageRequest, types.CreateMessageResult),
    "roots/list": (types.ListRootsRequest, types.ListRootsResult),
}
LIST_CHANGED = {
    "notifications/tools/list_changed": ("send_tool_list_changed", ToolsListChanged),
    "notifications/prompts/list_changed": ("send_prompt_list_changed", PromptsListChanged),
    "notifications/resources/list_changed": ("send_resource_list_changed", ResourcesListChanged),
}


class JWTVerifier:
    """Upstream auth: HS256, signed with the shared secret, ``exp`` and ``sub`` required.

    A token too close to its expiry to be forwarded (inside mcpconn's safety margin, which
    is never handed out downstream) is refused here too: the client renews and retries,
    instead of the aggregator parking the user for a token that was still valid.
    """

    def __init__(self, secret: str) -> None:
        self.secret = secret

    async def verify_token(self, token: str) -> AccessToken | None:
        try:
            claims = jwt.decode(
                token,
                self.secret,
                algorithms=["HS256"],
                options={"require": ["exp", "sub"], "verify_aud": False},
            )
            exp, sub = float(claims["exp"]), str(claims["sub"])
            lifetime = exp - float(claims.get("iat", exp - MARGIN * 4))
        except (jwt.PyJWTError, TypeError, ValueError):
            return None
        if exp - time.time() <= min(MARGIN, lifetime / 4) + IN_FLIGHT:
            return None
        return AccessToken(
            token=token, client_id="upstream", scopes=[], expires_at=int(exp), subject=sub
        )


@dataclasses.dataclass
class Upstream:
    """The upstream request a downstream call serves (passed down as the call's ``context=``)."""

    ctx: ServerRequestContext[Any, Any]
    principal: str
    fresh: bool  # this request brought a bearer we had not published yet
    log_level: str | None  # 2026: this request's opt-in; session era: logging/setLevel
    bridge: Bridge | None = None  # set when its server requests become MRTR rounds

    @property
    def modern(self) -> bool:
        """2026-07-28: no server-to-client requests; input goes through MRTR instead."""
        return self.ctx.protocol_version == MODERN

    async def ask(self, method: str, params: dict[str, Any] | None) -> dict[str, Any]:
        """Send a server-to-client request on this upstream request's own stream."""
        if method not in SERVER_REQUESTS:
            raise mcpconn.JSONRPCError(-32601, "method not found")
        request_type, result_type = SERVER_REQUESTS[method]
        related = ServerMessageMetadata(related_request_id=self.ctx.request_id)
        try:
            request = request_type.model_validate({"method": method, "params": params or {}})
            result = await self.ctx.session.send_request(request, result_type, metadata=related)
        except MCPError as exc:  # the client said no: the downstream server hears the same
            raise mcpconn.JSONRPCError(exc.code, exc.message) from None
        except Exception as exc:  # a malformed request, or a client that cannot be asked
            raise mcpconn.JSONRPCError(types.INTERNAL_ERROR, type(exc).__name__) from None
        return dump(result)  # type: ignore[no-any-return]

    async def relay(self, receive: MemoryObjectReceiveStream[dict[str, Any]]) -> None:
        """Progress and log messages of a downstream call, onto this upstream request."""
        session = self.ctx.session
        async with receive:
            async for note in receive:
                p = note.get("params") or {}
                with contextlib.suppress(Exception):  # the upstream client may be gone
                    if note.get("method") == "notifications/progress":
                        await session.report_progress(
                            p["progress"], p.get("total"), p.get("message")
                        )
                    elif note.get("method") == "notifications/message" and self.wants(p):
                        level, data, name = p.get("level", "info"), p.get("data"), p.get("logger")
                        await session.send_log_message(level, data, name, self.ctx.request_id)

    def wants(self, log: dict[str, Any]) -> bool:
        """A log message at or above the level this client asked for (all if it did not)."""
        if self.log_level not in LEVELS or log.get("level") not in LEVELS:
            return self.log_level is None
        return LEVELS.index(log["level"]) >= LEVELS.index(self.log_level)


@dataclasses.dataclass(frozen=True)
class Pending:
    """An MRTR round passed up to a 2026 client: whose it is, and the downstream's state."""

    owner: tuple[str, str, str]  # (principal, server, tool)
    state: str | None


class Bridge:
    """A 2026 client's tool call whose session-era downstream server asks a question.

    The downstream call runs on in the aggregator's task group; each server request it
    makes goes up as one MRTR round, and the client's retry brings the answer back.
    """

    def __init__(self, owner: tuple[str, str, str]) -> None:
        self.owner = owner
        self._events, self._next = anyio.create_memory_object_stream[tuple[str, Any]](1)
        self._answers, self._answered = anyio.create_memory_object_stream[dict[str, Any]](1)

    async def ask(self, request: mcpconn.ServerRequest) -> dict[str, Any]:
        await self._events.send(("ask", {"method": request.method, "params": request.params}))
        return await self._answered.receive()

    async def answer(self, response: dict[str, Any]) -> None:
        await self._answers.send(response)

    async def finish(self, result: Any) -> None:
        await self._events.send(("result", result))

    async def next(self) -> tuple[str, Any]:
        with anyio.fail_after(BRIDGE_TIMEOUT):
            return await self._next.receive()


class Aggregator:
    """Routes upstream requests to the principal's downstream connections."""

    def __init__(self, servers: dict[str, mcpconn.ServerConfig], tokens: mcpconn.TokenSource):
        self.servers = servers
        self.tokens = tokens
        self.supervisor = mcpconn.Supervisor(
            tokens,
            backoff=mcpconn.Backoff(initial=0.5, max_delay=10.0),
            request_handlers=dict.fromkeys(SERVER_REQUESTS, self.server_request),
            close_timeout=5.0,
        )
        self._published: dict[str, str] = {}  # principal -> fingerprint of its last bearer
        self._log_levels: dict[str, str] = {}  # principal -> its logging/setLevel (session era)
        self._sessions: dict[str, dict[str, Any]] = {}  # principal -> upstream sessions by id
        self._buses: dict[str, tuple[InMemorySubscriptionBus, ListenHandler]] = {}
        self._pending: dict[str, Pending | Bridge] = {}  # MRTR rounds by our requestState
        self._watched: set[mcpconn.Connection] = set()
        self._tg: anyio.abc.TaskGroup | None = None

    @contextlib.asynccontextmanager
    async def running(self) -> AsyncIterator[Aggregator]:
        """Leaving closes every downstream connection (DELETE where the era has sessions)."""
        async with self.supervisor, anyio.create_task_group() as tg:
            self._tg = tg
            yield self
            tg.cancel_scope.cancel()

    # ---- who is asking, and their connections -------------------------------------

    def upstream(self, ctx: ServerRequestContext[Any, Any]) -> Upstream:
        """Who asks; publish their bearer (if new) before anything goes downstream."""
        access = get_access_token()
        assert access is not None and access.subject  # the SDK's auth middleware ran
        principal = access.subject
        fingerprint = hashlib.sha256(access.token.encode()).hexdigest()
        fresh = self._published.get(principal) != fingerprint
        if fresh:
            self._published[principal] = fingerprint
            self.tokens.publish(principal, access.token)  # wakes a parked connection at once
        if ctx.protocol_version != MODERN and ctx.request is not None:
            session_id = ctx.request.headers.get("mcp-session-id")
            sessions = self._sessions.setdefault(principal, {})
            if session_id and session_id not in sessions:  # where its list_changed go
                sessions[session_id] = ctx.session
                while len(sessions) > MAX_SESSIONS:  # forget the oldest
                    sessions.pop(next(iter(sessions)))
        if ctx.protocol_version == MODERN:
            level = (ctx.meta or {}).get(LOG_LEVEL_META)
        else:
            level = self._log_levels.get(principal)
        return Upstream(ctx, principal, fresh, level if isinstance(level, str) else None)

    async def connection(self, server: str, upstream: Upstream) -> mcpconn.Connection:
        """The (server, principal) connection; READY if it can be within `READY_WAIT`.

        A parked connection is not waited for unless this request brought a new token:
        the same rejected token gets its answer at once and sends nothing downstream.
        """
        assert self._tg is not None
        conn = await self.supervisor.connect(self.servers[server], upstream.principal)
        if conn not in self._watched:
            self._watched.add(conn)
            self._tg.start_soon(self._watch, conn)
            level = self._log_levels.get(upstream.principal)
            if level is not None:
                with contextlib.suppress(mcpconn.MCPConnError):
                    await conn.set_log_level(level)
        if conn.state is not mcpconn.State.NEEDS_REAUTH or upstream.fresh:
            with anyio.move_on_after(READY_WAIT):
                await conn.wait_for(mcpconn.State.READY)
        return conn

    async def each_server(
        self, upstream: Upstream, fetch: Callable[[mcpconn.Connection], Awaitable[Any]]
    ) -> list[tuple[str, Any]]:
        """``fetch(conn)`` on every server at once; one that fails or hangs is left out."""
        results: list[tuple[str, Any]] = []

        async def one(name: str) -> None:
            with anyio.move_on_after(LIST_WAIT), contextlib.suppress(mcpconn.MCPConnError):
                results.append((name, await fetch(await self.connection(name, upstream))))

        async with anyio.create_task_group() as tg:
            for name in self.servers:
                tg.start_soon(one, name)
        return sorted(results, key=lambda item: item[0])

    # ---- calls --------------------------------------------------------------------

    async def call(
        self,
        upstream: Upstream,
        server: str,
        send: Callable[..., Awaitable[dict[str, Any]]],
    ) -> dict[str, Any]:
        """``send(conn, **keywords)`` for ``upstream``; its progress and logs go back up."""
        conn = await self.connection(server, upstream)
        notes, receive = anyio.create_memory_object_stream[dict[str, Any]](256)

        def forward(note: dict[str, Any]) -> None:
            with contextlib.suppress(anyio.WouldBlock, anyio.ClosedResourceError):
                notes.send_nowait(note)  # a flood drops the excess; the call goes on

        def progress(params: dict[str, Any]) -> None:  # our on_progress sets a progressToken
            forward({"method": "notifications/progress", "params": params})

        def other(note: dict[str, Any]) -> None:  # everything else on the call's stream
            if note.get("method") != "notifications/progress":
                forward(note)

        level = upstream.log_level
        failure: mcpconn.MCPConnError | None = None
        async with anyio.create_task_group() as tg:
            tg.start_soon(upstream.relay, receive)
            with notes:
                try:
                    result = await send(
                        conn,
                        on_progress=progress,
                        on_notification=other,
                        meta={LOG_LEVEL_META: level} if level else None,
                        context=upstream,
                    )
                except mcpconn.MCPConnError as exc:  # re-raised below, not in a task group
                    failure = exc
        if failure is not None:
            raise failure
        return without_protocol_meta(result)

    async def call_tool(self, upstream: Upstream, params: types.CallToolRequestParams) -> Any:
        server, _, tool = params.name.partition("_")
        if server not in self.servers or not tool:
            return error_result(f"unknown tool {params.name!r}")
        owner = (upstream.principal, server, tool)
        arguments = params.arguments or {}
        responses = dump(params.input_responses) if params.input_responses else None
        state = None
        if params.request_state is not None:  # the retry of an MRTR round we passed up
            pending = self._pending.pop(params.request_state, None)
            if pending is None or pending.owner != owner:
                return error_result("unknown or expired requestState")
            if isinstance(pending, Bridge):
                if not responses or "ask" not in responses:
                    return error_result("the input request was not answered")
                return await self._next_round(pending, responses["ask"])
            state = pending.state
        elif upstream.modern and await self._era(server, upstream) != "stateless":
            # a 2026 client cannot take server requests: bridge them into MRTR rounds
            bridge = upstream.bridge = Bridge(owner)
            assert self._tg is not None
            self._tg.start_soon(self._run_bridge, bridge, upstream, server, tool, arguments)
            return await self._next_round(bridge, None)
        return await self._call_tool(upstream, server, tool, arguments, responses, state)

    async def _call_tool(
        self,
        upstream: Upstream,
        server: str,
        tool: str,
        arguments: dict[str, Any],
        responses: dict[str, Any] | None = None,
        state: str | None = None,
    ) -> Any:
        """tools/call downstream, answering (or passing up) 2026 input rounds."""
        for _ in range(MAX_INPUT_ROUNDS):
            try:
                result = await self.call(
                    upstream,
                    server,
                    lambda conn, r=responses, s=state, **kw: conn.call_tool(
                        tool, arguments, input_responses=r, request_state=s, **kw
                    ),
                )
                return types.CallToolResult.model_validate(result)
            except mcpconn.InputRequired as need:
                if upstream.modern:  # pass the questions up; the client retries with answers
                    key = self._remember(
                        Pending((upstream.principal, server, tool), need.request_state)
                    )
                    return types.InputRequiredResult.model_validate(
                        {"inputRequests": need.input_requests, "requestState": key}
                    )
                # a session-era client: ask it on this request's stream, then retry
                try:
                    responses = {
                        key: await upstream.ask(str(ask.get("method")), ask.get("params"))
                        for key, ask in (need.input_requests or {}).items()
                        if isinstance(ask, dict)
                    }
                except mcpconn.JSONRPCError as exc:
                    return error_result(f"{server} needed input the client did not give: {exc}")
                state = need.request_state
            except (mcpconn.ReauthRequired, mcpconn.Unauthorized):
                return error_result(f"{server}: {REAUTH_TEXT}")
            except mcpconn.JSONRPCError as exc:
                return error_result(f"{server}: {exc.message}")
            except mcpconn.MCPConnError as exc:
                return error_result(f"{server} is unavailable ({type(exc).__name__})")
        return error_result(f"{server}: too many rounds of input")

    async def server_request(self, request: mcpconn.ServerRequest) -> dict[str, Any]:
        """A downstream server asks its client (elicitation, sampling): ask ours."""
        upstream = request.context
        if not isinstance(upstream, Upstream):
            raise mcpconn.JSONRPCError(-32601, f"{request.method}: no client to ask")
        if upstream.bridge is not None:
            return await upstream.bridge.ask(request)
        return await upstream.ask(request.method, request.params)

    # ---- a session-era server request, asked of a 2026 client ---------------------

    async def _era(self, server: str, upstream: Upstream) -> str | None:
        with contextlib.suppress(mcpconn.MCPConnError):
            return (await self.connection(server, upstream)).era
        return None

    async def _run_bridge(
        self, bridge: Bridge, upstream: Upstream, server: str, tool: str, args: dict[str, Any]
    ) -> None:
        """The downstream call, running on while the client answers (bounded)."""
        try:
            with anyio.move_on_after(BRIDGE_TIMEOUT):
                await bridge.finish(await self._call_tool(upstream, server, tool, args))
        finally:
            self._pending = {k: v for k, v in self._pending.items() if v is not bridge}

    async def _next_round(self, bridge: Bridge, answer: dict[str, Any] | None) -> Any:
        """Deliver the client's answer (if any); then the result, or the next question."""
        if answer is not None:
            await bridge.answer(answer)
        kind, value = await bridge.next()
        if kind == "result":
            return value
        return types.InputRequiredResult.model_validate(
            {"inputRequests": {"ask": value}, "requestState": self._remember(bridge)}
        )

    def _remember(self, pending: Pending | Bridge) -> str:
        key = secrets.token_urlsafe(16)  # unguessable, and bound to (principal, tool)
        self._pending[key] = pending
        while len(self._pending) > MAX_PENDING:  # forget the oldest unanswered rounds
            self._pending.pop(next(iter(self._pending)))
        return key

    # ---- downstream notifications and log levels -------------------------------------

    async def _watch(self, conn: mcpconn.Connection) -> None:
        """Downstream list_changed -> upstream list_changed, to that principal only."""
        try:
            async with conn.notifications() as notes:
                async for note in notes:
                    change = LIST_CHANGED.get(note.get("method", ""))
                    if change is not None:
                        await self._announce(conn.principal, *change)
        finally:  # the connection closed (or was replaced): a new one gets a new watcher
            self._watched.discard(conn)

    async def _announce(self, principal: str, session_method: str, event: Any) -> None:
        sessions = self._sessions.get(principal, {})
        for session_id, session in list(sessions.items()):
            try:
                await getattr(session, session_method)()
            except Exception:  # that upstream session is gone
                sessions.pop(session_id, None)
        await self.bus(principal)[0].publish(event())

    def bus(self, principal: str) -> tuple[InMemorySubscriptionBus, ListenHandler]:
        """2026-07-28 ``subscriptions/listen`` streams, one bus per principal."""
        if principal not in self._buses:
            bus = InMemorySubscriptionBus()
            self._buses[principal] = (bus, ListenHandler(bus))
        return self._buses[principal]

    async def set_log_level(self, principal: str, level: str) -> None:
        self._log_levels[principal] = level
        for conn in self.supervisor.connections(principal=principal):
            with contextlib.suppress(mcpconn.MCPConnError):
                await conn.set_log_level(level)

    def status(self) -> dict[str, Any]:
        connections = [
            {
                "server": conn.server.name,
                "principal": conn.principal,
                "state": conn.state.value,
                "era": conn.era,
                "session_id": conn.session_id,
            }
            for conn in self.supervisor.connections()
        ]
        return {"connections": connections, "statistics": jsonable(self.supervisor.statistics())}


# ---- the upstream MCP server --------------------------------------------------------


def build_server(agg: Aggregator) -> Server[Any]:
    """The SDK's low-level server: every handler sees who asks, so listings are per principal."""

    async def list_tools(ctx: Any, params: Any) -> types.ListToolsResult:
        listed = await agg.each_server(agg.upstream(ctx), lambda c: c.list_tools())
        tools = [renamed(types.Tool, t, f"{s}_{t['name']}") for s, ts in listed for t in ts]
        return types.ListToolsResult(tools=tools)

    async def call_tool(ctx: Any, params: types.CallToolRequestParams) -> Any:
        return await agg.call_tool(agg.upstream(ctx), params)

    async def list_prompts(ctx: Any, params: Any) -> types.ListPromptsResult:
        listed = await agg.each_server(agg.upstream(ctx), lambda c: c.list_prompts())
        prompts = [renamed(types.Prompt, p, f"{s}_{p['name']}") for s, ps in listed for p in ps]
        return types.ListPromptsResult(prompts=prompts)

    async def get_prompt(ctx: Any, params: types.GetPromptRequestParams) -> Any:
        server, _, name = params.name.partition("_")
        arguments = params.arguments or {}
        result = await routed(ctx, server, lambda c, **kw: c.get_prompt(name, arguments, **kw))
        return types.GetPromptResult.model_validate(result)

    async def list_resources(ctx: Any, params: Any) -> types.ListResourcesResult:
        listed = await agg.each_server(agg.upstream(ctx), lambda c: c.list_resources())
        resources = [
            renamed(types.Resource, r, f"{s}+{r['uri']}", key="uri") for s, rs in listed for r in rs
        ]
        return types.ListResourcesResult(resources=resources)

    async def read_resource(ctx: Any, params: types.ReadResourceRequestParams) -> Any:
        server, _, uri = str(params.uri).partition("+")
        result = await routed(ctx, server, lambda c, **kw: c.read_resource(uri, **kw))
        for content in result.get("contents", []):
            content["uri"] = f"{server}+{content.get('uri', uri)}"
        return types.ReadResourceResult.model_validate(result)

    async def routed(ctx: Any, server: str, send: Any) -> dict[str, Any]:
        if server not in agg.servers:
            raise MCPError(types.INVALID_PARAMS, f"unknown server {server!r}")
        try:
            return await agg.call(agg.upstream(ctx), server, send)
        except (mcpconn.ReauthRequired, mcpconn.Unauthorized) as exc:
            raise MCPError(types.INVALID_REQUEST, f"{server}: {REAUTH_TEXT}") from exc
        except mcpconn.JSONRPCError as exc:
            raise MCPError(exc.code, exc.message) from exc
        except mcpconn.MCPConnError as exc:
            raise MCPError(types.INTERNAL_ERROR, f"{server} is unavailable") from exc

    async def set_level(ctx: Any, params: types.SetLevelRequestParams) -> types.EmptyResult:
        await agg.set_log_level(agg.upstream(ctx).principal, params.level)
        return types.EmptyResult()

    async def listen(ctx: Any, params: types.SubscriptionsListenRequestParams) -> Any:
        return await agg.bus(agg.upstream(ctx).principal)[1](ctx, params)

    return Server(
        "mcpconn-aggregator",
        version="0.1.0",
        instructions="The tools, prompts and resources of several MCP servers, namespaced.",
        on_list_tools=list_tools,
        on_call_tool=call_tool,
        on_list_prompts=list_prompts,
        on_get_prompt=get_prompt,
        on_list_resources=list_resources,
        on_read_resource=read_resource,
        on_set_logging_level=set_level,
        on_subscriptions_listen=listen,
    )


def renamed(model: Any, item: dict[str, Any], new: str, *, key: str = "name") -> Any:
    return model.model_validate({**item, key: new})


def without_protocol_meta(result: dict[str, Any]) -> dict[str, Any]:
    """Drop the downstream's ``io.modelcontextprotocol/*`` ``_meta`` (its serverInfo...)."""
    meta = result.get("_meta")
    if isinstance(meta, dict):
        kept = {k: v for k, v in meta.items() if not k.startswith("io.modelcontextprotocol/")}
        result = {k: v for k, v in result.items() if k != "_meta"}
        if kept:
            result["_meta"] = kept
    return result


def error_result(text: str) -> types.CallToolResult:
    return types.CallToolResult(content=[types.TextContent(type="text", text=text)], is_error=True)


def dump(value: Any) -> Any:
    """SDK models (or dicts of them) as plain JSON dicts."""
    if hasattr(value, "model_dump"):
        return value.model_dump(by_alias=True, mode="json", exclude_none=True)
    if isinstance(value, dict):
        return {k: dump(v) for k, v in value.items()}
    return value


def jsonable(value: Any) -> Any:
    """Statistics as JSON: dataclasses to dicts, enums (keys too) to their values."""
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        return {f.name: jsonable(getattr(value, f.name)) for f in dataclasses.fields(value)}
    if isinstance(value, Mapping):
        return {jsonable(k): jsonable(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [jsonable(v) for v in value]
    if isinstance(value, float) and not math.isfinite(value):
        return None  # JSON has no infinity
    return value.value if isinstance(value, enum.Enum) else value


# ---- the process ---------------------------------------------------------------------


class QuietServer(uvicorn.Server):
    """uvicorn minus its signal handling: it re-raises the signal after shutdown."""

    @contextlib.contextmanager
    def capture_signals(self) -> Iterator[None]:
        yield


async def refuse(request: mcpconn.TokenRequest) -> str:
    """We cannot mint users' tokens: only their next request can bring a new one."""
    raise mcpconn.ReauthRequired(principal=request.principal)


async def main(args: argparse.Namespace) -> None:
    timeouts = mcpconn.Timeouts(connect=5.0, request=30.0, close=2.0)
    servers = {
        name: mcpconn.ServerConfig(
            name, url, transport=args.transport, timeouts=timeouts, allow_insecure_http=True
        )
        for name, url in args.server
    }
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind(("127.0.0.1", args.port))  # loopback only
    # stale_window=0: no refresh ahead (only the user's next request can bring a new token)
    async with mcpconn.TokenSource(refuse, margin=MARGIN, stale_window=0.0) as tokens:
        agg = Aggregator(servers, tokens)

        async def status(request: Request) -> JSONResponse:
            if request.client is None or request.client.host not in ("127.0.0.1", "::1"):
                return JSONResponse({"error": "loopback only"}, status_code=403)
            return JSONResponse(agg.status())

        app = build_server(agg).streamable_http_app(
            auth=AuthSettings(issuer_url=AnyHttpUrl("http://127.0.0.1/"), resource_server_url=None),
            token_verifier=JWTVerifier(args.jwt_secret),
            custom_starlette_routes=[Route("/_aggregator/status", status)],
        )
        config = uvicorn.Config(app, log_level="warning", timeout_graceful_shutdown=2)
        web = QuietServer(config)
        with anyio.open_signal_receiver(signal.SIGTERM, signal.SIGINT) as signals:
            async with agg.running(), anyio.create_task_group() as tg:
                tg.start_soon(web.serve, [sock])
                while not web.started:  # noqa: ASYNC110 (uvicorn has no started event)
                    await anyio.sleep(0.01)
                print(f"PORT {sock.getsockname()[1]}", flush=True)
                async for _ in signals:  # one signal, even one sent during start-up
                    web.should_exit = True  # uvicorn stops; then the supervisor closes all
                    break


def parse_args(argv: list[str]) -> argparse.Namespace:
    def server(value: str) -> tuple[str, str]:
        name, sep, url = value.partition("=")
        if not sep or not re.fullmatch(r"[a-z0-9-]+", name) or not url:
            raise argparse.ArgumentTypeError(f"expected NAME=URL, NAME in [a-z0-9-]+: {value!r}")
        return name, url

    parser = argparse.ArgumentParser(description="A reference MCP aggregator on mcpconn.")
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--jwt-secret", required=True)
    parser.add_argument("--server", type=server, action="append", required=True)
    parser.add_argument("--transport", choices=("auto", "streamable-http", "sse"), default="auto")
    args = parser.parse_args(argv)
    if len({name for name, _ in args.server}) != len(args.server):
        parser.error("server names must be unique")
    return args


if __name__ == "__main__":
    logging.basicConfig(level=logging.WARNING, format="%(asctime)s %(name)s: %(message)s")
    anyio.run(main, parse_args(sys.argv[1:]))
