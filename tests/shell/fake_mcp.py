"""The scripted MCP server the session tests run against (httpx.MockTransport).

`Fake` streams SSE bodies from async generators, so a reply can hold back its response,
hang, or break mid-stream; ``routes[method]`` overrides its answer per JSON-RPC method.
`opened` is a session over it; the rest builds replies.
"""

from __future__ import annotations

import json
from collections.abc import AsyncIterator, Awaitable, Callable, Generator
from contextlib import asynccontextmanager
from typing import Any

import httpx

from mcpconn import ServerConfig, Timeouts
from mcpconn._mcp.session import EraCache, Session, SessionHandlers, open_session

URL = "http://127.0.0.1:9/mcp"
TOKEN = "secret-token-value"
SSE_HEADERS = {"content-type": "text/event-stream"}

Route = Callable[[httpx.Request, dict[str, Any]], Awaitable[httpx.Response | None]]


def sse(*events: str) -> bytes:
    return "".join(f"{event}\n\n" for event in events).encode()


def msg(obj: dict[str, Any], event_id: str | None = None) -> str:
    head = f"id: {event_id}\n" if event_id else ""
    return f"{head}data: {json.dumps({'jsonrpc': '2.0', **obj})}"


def result(rid: Any, res: dict[str, Any] | None = None) -> dict[str, Any]:
    return {"jsonrpc": "2.0", "id": rid, "result": res if res is not None else {}}


def json_reply(obj: dict[str, Any], **headers: str) -> httpx.Response:
    return httpx.Response(200, json=obj, headers=headers)


def sse_reply(body: bytes | AsyncIterator[bytes], **headers: str) -> httpx.Response:
    return httpx.Response(200, content=body, headers={**SSE_HEADERS, **headers})


class CountingAuth(httpx.Auth):
    """The token is set per request; counts which methods went through it."""

    def __init__(self) -> None:
        self.methods: list[str] = []

    def auth_flow(self, request: httpx.Request) -> Generator[httpx.Request, httpx.Response, None]:
        self.methods.append(request.method)
        request.headers["Authorization"] = f"Bearer {TOKEN}"
        yield request


class Fake:
    """A scripted MCP server. ``routes[method]`` overrides the defaults per JSON-RPC method."""

    def __init__(self, version: str = "2025-11-25") -> None:
        self.version = version
        self.requests: list[httpx.Request] = []
        self.bodies: list[dict[str, Any]] = []
        self.routes: dict[str, Route] = {}
        self.get: Callable[[httpx.Request], Awaitable[httpx.Response]] | None = None
        self.sessions = 0

    def posted(self, method: str) -> list[dict[str, Any]]:
        return [b for b in self.bodies if b.get("method") == method]

    def replies(self) -> list[dict[str, Any]]:
        """Responses the client posted (to server requests)."""
        return [b for b in self.bodies if "method" not in b]

    async def __call__(self, request: httpx.Request) -> httpx.Response:
        self.requests.append(request)
        if request.method == "DELETE":
            return httpx.Response(200)
        if request.method == "GET":
            if self.get is None:
                return httpx.Response(405)
            return await self.get(request)
        body = json.loads(request.content)
        self.bodies.append(body)
        route = self.routes.get(body.get("method", ""))
        if route is not None:
            response = await route(request, body)
            if response is not None:
                return response
        if "id" not in body or "method" not in body:
            return httpx.Response(202)
        if body["method"] == "initialize":
            self.sessions += 1
            init = {
                "protocolVersion": self.version,
                "capabilities": {"tools": {}},
                "serverInfo": {"name": "fake", "version": "1"},
                "instructions": "be nice",
            }
            return json_reply(result(body["id"], init), **{"mcp-session-id": f"s{self.sessions}"})
        if body["method"] == "server/discover":
            return httpx.Response(404, text="not found")
        return json_reply(result(body["id"], {"echo": body["method"]}))


def config(**kw: Any) -> ServerConfig:
    kw.setdefault("timeouts", Timeouts(connect=1.0, request=5.0, read=5.0, close=1.0))
    kw.setdefault("protocol_version", "2025-11-25")
    return ServerConfig(name="fake", url=URL, **kw)


class Inbox(list[dict[str, Any]]):
    def __call__(self, message: dict[str, Any]) -> None:
        self.append(message)

    def methods(self) -> list[str]:
        return [m["method"] for m in self]


def opened(
    fake: Fake,
    *,
    auth: httpx.Auth | None = None,
    handlers: SessionHandlers | None = None,
    era_cache: EraCache | None = None,
    **kw: Any,
) -> Any:
    """open_session on a fresh client over the fake (an async context manager)."""

    @asynccontextmanager
    async def run() -> AsyncIterator[Session]:
        transport = httpx.MockTransport(fake)
        async with (
            httpx.AsyncClient(transport=transport) as client,
            open_session(
                client,
                config(**kw),
                auth=auth,
                handlers=handlers or SessionHandlers(Inbox()),
                era_cache=era_cache,
            ) as session,
        ):
            yield session

    return run()


async def an_empty_stream(request: httpx.Request, body: dict[str, Any]) -> httpx.Response:
    """A route whose SSE reply ends with neither a response nor an event id."""
    return sse_reply(b": nothing\n\n")
