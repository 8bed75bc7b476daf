"""The aggregator proper: upstream requests routed to the principal's downstream connections.

One `mcpconn.Supervisor` holds a connection per (server, principal). Every upstream request
publishes its bearer before anything goes downstream, so an expired token is never sent
and a parked principal wakes on the very request that brings a new one.
"""

from __future__ import annotations

import contextlib
import hashlib
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any

import anyio
import anyio.abc
import mcp_types as types
from mcp.server.auth.middleware.auth_context import get_access_token
from mcp.server.context import ServerRequestContext

import mcpconn

from .input_rounds import Bridge, InputRounds
from .limits import (
    BRIDGE_TIMEOUT,
    LIST_WAIT,
    LOG_LEVEL_META,
    MAX_INPUT_ROUNDS,
    MODERN,
    READY_WAIT,
    REAUTH_TEXT,
)
from .list_changes import ListChanges
from .shaping import dump, error_result, jsonable, without_protocol_meta
from .upstream import SERVER_REQUESTS, Upstream

Send = Callable[..., Awaitable[dict[str, Any]]]


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
        self.list_changes = ListChanges()
        self._rounds = InputRounds()
        self._published: dict[str, str] = {}  # principal -> fingerprint of its last bearer
        self._log_levels: dict[str, str] = {}  # principal -> its logging/setLevel (session era)
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
        self.list_changes.hear(principal, ctx)
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
        if self.list_changes.follow(conn, self._tg):
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

    async def call(self, upstream: Upstream, server: str, send: Send) -> dict[str, Any]:
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
        """``SERVER_TOOL``: the tool call, or the next (or first) round of its input."""
        server, _, tool = params.name.partition("_")
        if server not in self.servers or not tool:
            return error_result(f"unknown tool {params.name!r}")
        owner = (upstream.principal, server, tool)
        arguments = params.arguments or {}
        responses = dump(params.input_responses) if params.input_responses else None
        state = None
        if params.request_state is not None:  # the retry of an MRTR round we passed up
            pending = self._rounds.take(params.request_state, owner)
            if pending is None:
                return error_result("unknown or expired requestState")
            if isinstance(pending, Bridge):
                if not responses or "ask" not in responses:
                    return error_result("the input request was not answered")
                return await self._rounds.next_round(pending, responses["ask"])
            state = pending.state
        elif upstream.modern and await self._era(server, upstream) != "stateless":
            # a 2026 client cannot take server requests: bridge them into MRTR rounds
            bridge = upstream.bridge = Bridge(owner)
            assert self._tg is not None
            self._tg.start_soon(self._run_bridge, bridge, upstream, server, tool, arguments)
            return await self._rounds.next_round(bridge, None)
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
                    return self._rounds.passed_up((upstream.principal, server, tool), need)
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
            self._rounds.forget(bridge)

    # ---- log levels and status -----------------------------------------------------

    async def set_log_level(self, principal: str, level: str) -> None:
        """Session-era ``logging/setLevel``: every connection of the principal, now and later."""
        self._log_levels[principal] = level
        for conn in self.supervisor.connections(principal=principal):
            with contextlib.suppress(mcpconn.MCPConnError):
                await conn.set_log_level(level)

    def status(self) -> dict[str, Any]:
        """``GET /_aggregator/status``: every connection and the supervisor's statistics."""
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
