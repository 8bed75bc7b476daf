"""The mock server's tests' client side: plain httpx requests, hand-parsed SSE, fixtures."""

from __future__ import annotations

import json
from typing import Any

import httpx
import pytest

from helpers.sse_lines import field
from mcpconn.testing import MockServer

LATEST = "2025-11-25"
MODERN = "2026-07-28"
ACCEPT = "application/json, text/event-stream"


# -- helpers ---------------------------------------------------------------------------------
def hdrs(token: str | None, **extra: str) -> dict[str, str]:
    out = {"accept": ACCEPT, "content-type": "application/json"}
    if token is not None:
        out["authorization"] = f"Bearer {token}"
    out.update({k.replace("_", "-"): v for k, v in extra.items()})
    return out


def rpc(rid: int, method: str, params: dict[str, Any] | None = None) -> dict[str, Any]:
    msg: dict[str, Any] = {"jsonrpc": "2.0", "id": rid, "method": method}
    if params is not None:
        msg["params"] = params
    return msg


def init_params(version: str = LATEST) -> dict[str, Any]:
    return {
        "protocolVersion": version,
        "capabilities": {},
        "clientInfo": {"name": "test", "version": "1"},
    }


def as_event(block: list[str]) -> dict[str, str] | None:
    """One block of lines as {id, event, data, retry} (those present); None if empty."""
    event: dict[str, str] = {}
    data: list[str] = []
    for name, value in filter(None, map(field, block)):
        if name == "data":
            data.append(value)
        else:
            event[name] = value
    return {**event, "data": "\n".join(data)} if data or event else None


class SSE:
    """Hand-parsed SSE over ``response.aiter_lines()``: events are {id, event, data, retry}."""

    def __init__(self, response: httpx.Response) -> None:
        self._lines = response.aiter_lines()

    async def event(self) -> dict[str, str] | None:
        """The next event, or None at the end of the body."""
        block: list[str] = []
        async for line in self._lines:
            if line:
                block.append(line)
                continue
            event, block = as_event(block), []
            if event is not None:
                return event
        return None  # an unterminated block is no event

    async def message(self) -> dict[str, Any] | None:
        """The next JSON-RPC message (priming events skipped), or None at the end."""
        while (event := await self.event()) is not None:
            if event["data"]:
                msg: dict[str, Any] = json.loads(event["data"])
                return msg
        return None

    async def events(self) -> list[dict[str, str]]:
        out = []
        while (event := await self.event()) is not None:
            out.append(event)
        return out

    async def messages(self) -> list[dict[str, Any]]:
        out = []
        while (msg := await self.message()) is not None:
            out.append(msg)
        return out


async def reply(response: httpx.Response) -> dict[str, Any]:
    """The JSON-RPC response of a POST, whether JSON or SSE."""
    if response.headers["content-type"].startswith("application/json"):
        result: dict[str, Any] = json.loads(await response.aread())
        return result
    for msg in await SSE(response).messages():  # read to the end: no half-read generators
        if "id" in msg and ("result" in msg or "error" in msg):
            return msg
    raise AssertionError("no response on the stream")


async def post(
    client: httpx.AsyncClient, url: str, body: Any, headers: dict[str, str]
) -> tuple[httpx.Response, dict[str, Any] | None]:
    async with client.stream("POST", url, json=body, headers=headers) as response:
        await response.aread() if response.status_code != 200 else None
        if response.status_code != 200:
            return response, None
        return response, await reply(response)


async def initialize(
    client: httpx.AsyncClient, server: MockServer, token: str, version: str = LATEST
) -> dict[str, str]:
    """Initialize a session; returns the headers for its later requests."""
    response, msg = await post(
        client, server.url, rpc(0, "initialize", init_params(version)), hdrs(token)
    )
    assert response.status_code == 200
    assert msg is not None and msg["result"]["protocolVersion"] == version
    sid = response.headers["mcp-session-id"]
    await client.post(
        server.url,
        json={"jsonrpc": "2.0", "method": "notifications/initialized"},
        headers=hdrs(token, mcp_session_id=sid, mcp_protocol_version=version),
    )
    return hdrs(token, mcp_session_id=sid, mcp_protocol_version=version)


def modern(token: str, method: str, name: str | None = None) -> dict[str, str]:
    extra = {"mcp_protocol_version": MODERN, "mcp_method": method}
    if name is not None:
        extra["mcp_name"] = name
    return hdrs(token, **extra)


def meta(params: dict[str, Any] | None = None) -> dict[str, Any]:
    out = dict(params or {})
    out["_meta"] = {
        "io.modelcontextprotocol/protocolVersion": MODERN,
        "io.modelcontextprotocol/clientCapabilities": {},
        **out.get("_meta", {}),
    }
    return out


#: The test holds for the ordinary server and its lean mode (same protocol, less work).
both_modes = pytest.mark.parametrize("server", [False, True], ids=["plain", "lean"], indirect=True)
