"""The JSON-RPC side every era's wire shares: the mock server's words, and its sessions.

The versions and the server's self-description, the JSON-RPC messages it builds,
and a handshake-era `Session` (streamable HTTP or legacy SSE) with how its
requests and client messages are served. The wires are in `_eras` (handshake
eras) and `_stateless` (2026-07-28).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import anyio

from ._events import EventStream, encode_json
from ._http import Exchange
from ._tools import INTERNAL_ERROR, INVALID_PARAMS, CallContext, RPCError, dispatch

if TYPE_CHECKING:
    from ._mock_server import MockServer

#: Versions negotiated by ``initialize``, oldest first.
HANDSHAKE_VERSIONS: tuple[str, ...] = ("2024-11-05", "2025-03-26", "2025-06-18", "2025-11-25")
#: Versions served statelessly (per-request ``_meta``), no handshake.
MODERN_VERSIONS: tuple[str, ...] = ("2026-07-28",)

SUBSCRIPTION_ID_KEY = "io.modelcontextprotocol/subscriptionId"
SERVER_INFO = {"name": "mcpconn-mock", "version": "0.1.0"}
CAPABILITIES = {
    "tools": {"listChanged": True},
    "resources": {"subscribe": True},
    "prompts": {},
    "logging": {},
}
INSTRUCTIONS = "A mock MCP server for tests: echo, add, slow, progress and notify tools."
_JSON = ("content-type", "application/json")


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


def error_message(rid: Any, code: int, message: str, data: Any = None) -> dict[str, Any]:
    error: dict[str, Any] = {"code": code, "message": message}
    if data is not None:
        error["data"] = data
    return {"jsonrpc": "2.0", "id": rid, "error": error}


def notification(
    method: str, params: dict[str, Any] | None, encode: Callable[[Any], bytes] = encode_json
) -> bytes:
    message: dict[str, Any] = {"jsonrpc": "2.0", "method": method}
    if params is not None:
        message["params"] = params
    return encode(message)


async def json_reply(
    exchange: Exchange, status: int, payload: Any, headers: Sequence[tuple[str, str]] = ()
) -> None:
    await exchange.respond(status, [_JSON, *headers], encode_json(payload))


def listen_result(subscription_id: Any) -> bytes:
    """The result that ends a 2026 ``subscriptions/listen`` stream gracefully."""
    return encode_json(
        {
            "jsonrpc": "2.0",
            "id": subscription_id,
            "result": {"_meta": {SUBSCRIPTION_ID_KEY: subscription_id}, "resultType": "complete"},
        }
    )


def initialize_result(params: Any, answer: str | None = None) -> tuple[str, dict[str, Any]]:
    requested = params.get("protocolVersion") if isinstance(params, dict) else None
    version = requested if requested in HANDSHAKE_VERSIONS else HANDSHAKE_VERSIONS[-1]
    version = answer or version
    return version, {
        "protocolVersion": version,
        "capabilities": CAPABILITIES,
        "serverInfo": SERVER_INFO,
        "instructions": INSTRUCTIONS,
    }


async def run_request(
    server: MockServer, session: Session, msg: dict[str, Any], sink: Any
) -> dict[str, Any] | None:
    """Serve one session request; None when the client cancelled it."""
    rid = msg["id"]
    params = msg.get("params") or {}
    if not isinstance(params, dict):
        return error_message(rid, INVALID_PARAMS, "params must be an object")
    meta = params.get("_meta")
    token = meta.get("progressToken") if isinstance(meta, dict) else None
    ctx = CallContext(server, session.principal, session.protocol_version, token, sink)
    with anyio.CancelScope() as scope:
        session.running[rid] = scope
        try:
            result = await dispatch(msg["method"], params, ctx, server.catalog)
        except RPCError as exc:
            return {"jsonrpc": "2.0", "id": rid, "error": exc.to_error()}
        except Exception as exc:
            return error_message(rid, INTERNAL_ERROR, f"tool failed: {type(exc).__name__}")
        finally:
            session.running.pop(rid, None)
        return {"jsonrpc": "2.0", "id": rid, "result": result}
    return None


def handle_client_message(server: MockServer, session: Session, msg: dict[str, Any]) -> None:
    """A client notification, or the client's response to a server-to-client request."""
    method = msg.get("method")
    if method is None and "id" in msg and ("result" in msg or "error" in msg):
        server.client_responses.append(msg)
    elif method == "notifications/initialized":
        session.initialized = True
    elif method == "notifications/cancelled":
        params = msg.get("params")
        if isinstance(params, dict):
            scope = session.running.get(params.get("requestId"))
            if scope is not None:
                scope.cancel()
