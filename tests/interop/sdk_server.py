"""The official MCP Python SDK as a real peer: ``python sdk_server.py MODE... [--idle=S]``.

Binds 127.0.0.1 port 0, prints the port on stdout once uvicorn has started,
then serves until killed. One MODE serves at ``/mcp`` (``/sse`` for sse);
several streamable modes share one process (importing the SDK costs seconds
of CPU), each mounted at ``/<mode>/mcp``. Tokens are HS256 JWTs signed with the secret in
``MCPCONN_TEST_SECRET``; ``exp`` is checked.

Modes: ``stateful`` (SSE replies; also serves 2026-07-28 on the same endpoint),
``json`` (json_response), ``stateless`` (stateless_http), ``resumable`` (an
EventStore and a 100 ms retry interval), ``idle`` (session_idle_timeout =
S seconds, default 1.0), ``sse`` (the legacy HTTP+SSE app at /sse; alone only).
"""

from __future__ import annotations

import itertools
import os
import sys
from pathlib import Path
from typing import Annotated, Any

import anyio
import jwt
from mcp.server.auth.provider import AccessToken
from mcp.server.auth.settings import AuthSettings
from mcp.server.mcpserver import Context, Elicit, MCPServer, Resolve
from mcp.server.streamable_http import EventCallback, EventMessage, EventStore
from mcp_types import Completion, EmptyResult, SubscribeRequestParams, UnsubscribeRequestParams
from pydantic import BaseModel, Field

# a child process: the shared test helpers are one directory up
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from helpers.sdk_child import add_common_tools, serve_and_announce

MODES = ("stateful", "json", "stateless", "resumable", "idle", "sse")


class Name(BaseModel):
    name: str


def ask_name() -> Elicit[Name]:
    """A resolver that elicits: mid-call in session eras, an input round in 2026-07-28."""
    return Elicit("Who is asking?", Name)


class JWTVerifier:
    """Accept HS256 JWTs signed with the shared secret whose ``exp`` is in the future."""

    def __init__(self, secret: str) -> None:
        self.secret = secret

    async def verify_token(self, token: str) -> AccessToken | None:
        try:
            claims = jwt.decode(
                token, self.secret, algorithms=["HS256"], options={"verify_aud": False}
            )
        except jwt.PyJWTError:
            return None
        return AccessToken(
            token=token,
            client_id="mcpconn-tests",
            scopes=[],
            expires_at=claims.get("exp"),
            subject=claims.get("sub"),
        )


class MemoryEventStore(EventStore):
    """Every event of every stream, in order: enough to replay after an id."""

    def __init__(self) -> None:
        self.events: list[tuple[str, str, Any]] = []
        self._ids = itertools.count(1)

    async def store_event(self, stream_id: str, message: Any) -> str:
        event_id = str(next(self._ids))
        self.events.append((event_id, stream_id, message))
        return event_id

    async def replay_events_after(
        self, last_event_id: str, send_callback: EventCallback
    ) -> str | None:
        stream = next((s for e, s, _ in self.events if e == last_event_id), None)
        if stream is None:
            return None
        after = False
        for event_id, stream_id, message in self.events:
            if after and stream_id == stream and message is not None:
                await send_callback(EventMessage(message, event_id))
            after = after or event_id == last_event_id
        return stream


def build(mode: str, idle: float) -> Any:
    secret = os.environ["MCPCONN_TEST_SECRET"]
    server: MCPServer[Any] = MCPServer(
        "sdk-peer",
        instructions="A test peer.",
        token_verifier=JWTVerifier(secret),
        auth=AuthSettings(issuer_url="http://127.0.0.1/issuer", resource_server_url=None),
    )

    add_common_tools(server, debug_line=False)

    @server.tool()
    def regional(
        region: Annotated[str, Field(json_schema_extra={"x-mcp-header": "Region"})], text: str
    ) -> str:
        """A tool whose ``region`` is mirrored into ``Mcp-Param-Region`` (2026-07-28)."""
        return f"{region}:{text}"

    @server.tool()
    async def interrupted(ctx: Context) -> str:
        """Close the response stream mid-call (resumable mode): the client must resume."""
        await ctx.report_progress(1, 2, "before the break")
        await ctx.close_sse_stream()
        await ctx.report_progress(2, 2, "after the break")
        return "resumed"

    for n in range(3):
        server.add_tool(lambda n=n: n, name=f"extra_{n}", description=f"extra tool {n}")

    @server.tool()
    async def greet(who: Annotated[Name, Resolve(ask_name)]) -> str:
        """Greet whoever the client's elicitation handler names."""
        return f"hello {who.name}"

    @server.tool()
    async def touch(uri: str, ctx: Context) -> str:
        """Say the resource changed: to subscribers (session) or subscriptions (2026)."""
        if ctx.protocol_version == "2026-07-28":
            await ctx.notify_resource_updated(uri)
        else:
            await ctx.session.send_resource_updated(uri)
        return "touched"

    @server.resource("peer://readme", mime_type="text/plain")
    def readme() -> str:
        return "read me"

    @server.resource("peer://items/{item}", mime_type="text/plain")
    def item(item: str) -> str:
        return f"item {item}"

    @server.prompt()
    def hello(who: str) -> str:
        """Say hello to someone."""
        return f"Say hello to {who}"

    @server.completion()
    async def complete(ref: Any, argument: Any, context: Any) -> Completion:
        known = dict(context.arguments or {}) if context is not None else {}
        return Completion(values=[f"{argument.value}-{len(known)}"], total=1, has_more=False)

    async def on_subscribe(ctx: Any, params: SubscribeRequestParams) -> EmptyResult:
        return EmptyResult()

    async def on_unsubscribe(ctx: Any, params: UnsubscribeRequestParams) -> EmptyResult:
        return EmptyResult()

    lowlevel = server._lowlevel_server
    lowlevel.add_request_handler("resources/subscribe", SubscribeRequestParams, on_subscribe)
    lowlevel.add_request_handler("resources/unsubscribe", UnsubscribeRequestParams, on_unsubscribe)

    if mode == "sse":
        return server.sse_app()
    options: dict[str, Any] = {}
    if mode == "json":
        options["json_response"] = True
    elif mode == "stateless":
        options["stateless_http"] = True
    elif mode == "resumable":
        options.update(event_store=MemoryEventStore(), retry_interval=100)
    elif mode == "idle":
        options["session_idle_timeout"] = idle
    return server.streamable_http_app(**options)


def combine(modes: list[str], idle: float) -> Any:
    """Mount each mode's app at /<mode>; run every sub-app's lifespan."""
    from contextlib import AsyncExitStack, asynccontextmanager

    from starlette.applications import Starlette
    from starlette.routing import Mount

    apps = {mode: build(mode, idle) for mode in modes}

    @asynccontextmanager
    async def lifespan(_: Starlette) -> Any:
        async with AsyncExitStack() as stack:
            for app in apps.values():
                await stack.enter_async_context(app.router.lifespan_context(app))
            yield

    routes = [Mount(f"/{mode}", app=app) for mode, app in apps.items()]
    return Starlette(routes=routes, lifespan=lifespan)


async def main(modes: list[str], idle: float) -> None:
    app = build(modes[0], idle) if len(modes) == 1 else combine(modes, idle)
    await serve_and_announce(app)


if __name__ == "__main__":
    modes = [arg for arg in sys.argv[1:] if not arg.startswith("--idle=")]
    idles = [float(arg[7:]) for arg in sys.argv[1:] if arg.startswith("--idle=")]
    if not modes or any(m not in MODES for m in modes) or ("sse" in modes and len(modes) > 1):
        raise SystemExit(f"usage: sdk_server.py {{{','.join(MODES)}}}... [--idle=SECONDS]")
    anyio.run(main, modes, idles[-1] if idles else 1.0)
