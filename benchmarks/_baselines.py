"""The seed's client, written the plain way with httpx: the baselines mcpconn is measured against.

* `NaiveSession`: caches the token it was given and sends it forever, never
  reading ``exp`` (the seed's ``storeIDTokenForSSO`` with a zero ``ExpiresAt``).
* `retry_loop_listener`: ``listen to server forever``; on any error log it and
  ``retry in 1 second`` (the seed's log flood).
"""

from __future__ import annotations

import contextlib
import itertools
import logging
from collections.abc import AsyncIterator
from typing import Any

import anyio
import httpx

ACCEPT = "application/json, text/event-stream"
PROTOCOL = "2025-11-25"
log = logging.getLogger("baseline")
_ids = itertools.count(1)


def initialize_message(client: str) -> dict[str, Any]:
    """An ``initialize`` request of the session era (every baseline sends the same)."""
    return {
        "jsonrpc": "2.0",
        "id": next(_ids),
        "method": "initialize",
        "params": {
            "protocolVersion": PROTOCOL,
            "capabilities": {},
            "clientInfo": {"name": client, "version": "0"},
        },
    }


def tool_call_message(name: str, arguments: dict[str, Any]) -> dict[str, Any]:
    return {
        "jsonrpc": "2.0",
        "id": next(_ids),
        "method": "tools/call",
        "params": {"name": name, "arguments": arguments},
    }


def open_get_listener(
    client: httpx.AsyncClient, url: str, token: str, session_id: str | None
) -> contextlib.AbstractAsyncContextManager[httpx.Response]:
    """A bare session-era GET listener stream (the response, headers in)."""
    headers = {
        "authorization": f"Bearer {token}",
        "accept": "text/event-stream",
        "mcp-protocol-version": PROTOCOL,
        "mcp-session-id": session_id or "",
    }
    return client.stream("GET", url, headers=headers)


class NaiveSession:
    """An MCP session over plain httpx with a token cached once and never checked."""

    def __init__(self, client: httpx.AsyncClient, url: str, token: str) -> None:
        self.client = client
        self.url = url
        self.token = token  # cached; its exp is never read
        self.session_id: str | None = None

    def _headers(self) -> dict[str, str]:
        headers = {
            "authorization": f"Bearer {self.token}",
            "accept": ACCEPT,
            "mcp-protocol-version": PROTOCOL,
        }
        if self.session_id:
            headers["mcp-session-id"] = self.session_id
        return headers

    async def _post(self, message: dict[str, Any]) -> httpx.Response:
        response = await self.client.post(self.url, json=message, headers=self._headers())
        await response.aread()
        return response

    async def initialize(self) -> int:
        response = await self._post(initialize_message("naive"))
        if response.status_code == 200:
            self.session_id = response.headers.get("mcp-session-id")
            await self._post({"jsonrpc": "2.0", "method": "notifications/initialized"})
        return response.status_code

    async def call_tool(self, name: str, arguments: dict[str, Any]) -> int:
        """The HTTP status of one ``tools/call`` (200: it worked)."""
        return (await self._post(tool_call_message(name, arguments))).status_code


async def retry_loop_listener(
    client: httpx.AsyncClient, url: str, token: str, until: float, counts: dict[str, int]
) -> None:
    """GET the listener stream with a fixed token; on failure log and retry in 1 second."""
    headers = {
        "authorization": f"Bearer {token}",
        "accept": "text/event-stream",
        "mcp-protocol-version": PROTOCOL,
    }
    while anyio.current_time() < until:
        try:
            async with client.stream("GET", url, headers=headers) as response:
                counts["requests"] += 1
                if response.status_code == 200:
                    async for _ in response.aiter_bytes():
                        pass
                    continue
                await response.aread()
                log.error("failed to listen to server. retry in 1 second: %d", response.status_code)
        except httpx.HTTPError as exc:
            counts["requests"] += 1
            log.error(  # noqa: TRY400 - the seed logs one line, no traceback
                "failed to listen to server. retry in 1 second: %s", type(exc).__name__
            )
        counts["log_lines"] += 1
        await anyio.sleep(1.0)


STATELESS = "2026-07-28"


def _stateless_message(rid: int, method: str, params: dict[str, Any]) -> dict[str, Any]:
    meta = {
        "io.modelcontextprotocol/protocolVersion": STATELESS,
        "io.modelcontextprotocol/clientInfo": {"name": "floor", "version": "0"},
        "io.modelcontextprotocol/clientCapabilities": {},
    }
    return {"jsonrpc": "2.0", "id": rid, "method": method, "params": {**params, "_meta": meta}}


def open_listen_stream(
    client: httpx.AsyncClient, url: str, token: str
) -> contextlib.AbstractAsyncContextManager[httpx.Response]:
    """A bare 2026-era ``subscriptions/listen`` POST stream (the response, headers in)."""
    headers = {
        "authorization": f"Bearer {token}",
        "accept": ACCEPT,
        "mcp-protocol-version": STATELESS,
        "mcp-method": "subscriptions/listen",
    }
    listen = _stateless_message(
        next(_ids), "subscriptions/listen", {"notifications": {"toolsListChanged": True}}
    )
    return client.stream("POST", url, json=listen, headers=headers)


async def bare_discover(client: httpx.AsyncClient, url: str, token: str) -> None:
    """A bare 2026-era ``server/discover`` POST, read to its end."""
    headers = {
        "authorization": f"Bearer {token}",
        "accept": ACCEPT,
        "mcp-protocol-version": STATELESS,
        "mcp-method": "server/discover",
    }
    discover = _stateless_message(next(_ids), "server/discover", {})
    response = await client.post(url, json=discover, headers=headers)
    await response.aread()


async def bare_reconnect(
    client: httpx.AsyncClient, url: str, token: str, started: float, out: list[float]
) -> None:
    """The least a 2026-era listener can do to come back: ``server/discover``, then open
    ``subscriptions/listen`` (its response headers). No state machine, no checks: the
    floor httpx itself sets on this machine. Appends the seconds from ``started``."""
    await bare_discover(client, url, token)
    out.append(anyio.current_time() - started)
    async with open_listen_stream(client, url, token):
        pass  # headers in: listening


@contextlib.asynccontextmanager
async def sdk_session(url: str, token: str) -> AsyncIterator[Any]:
    """The official SDK's streamable HTTP client session, initialized, with a fixed token."""
    import httpx2
    from mcp import ClientSession
    from mcp.client.streamable_http import streamable_http_client

    headers = {"Authorization": f"Bearer {token}"}
    async with (
        httpx2.AsyncClient(headers=headers, timeout=60) as http,
        streamable_http_client(url, http_client=http) as (read, write),
        ClientSession(read, write) as session,
    ):
        await session.initialize()
        yield session
