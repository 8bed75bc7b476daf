"""The stateless 2026-07-28 era of the mock server, on ``/mcp``.

Chosen per request by ``MCP-Protocol-Version``: no sessions, no GET stream,
every request carries its version and client capabilities in ``_meta`` (the
spec's validation ladder is checked in order), ``server/discover``, and the
long-lived ``subscriptions/listen`` POST stream for change notifications.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import anyio

from ._events import SSE_HEADERS, EventStream, encode_json, sse_frame
from ._lean import respond_events
from ._rpc import (
    CAPABILITIES,
    INSTRUCTIONS,
    MODERN_VERSIONS,
    SERVER_INFO,
    SUBSCRIPTION_ID_KEY,
    error_message,
    json_reply,
    notification,
)
from ._tools import (
    ERROR_HTTP_STATUS,
    HEADER_MISMATCH,
    INTERNAL_ERROR,
    INVALID_PARAMS,
    INVALID_REQUEST,
    METHOD_NOT_FOUND,
    PARSE_ERROR,
    UNSUPPORTED_PROTOCOL_VERSION,
    CallContext,
    RPCError,
    dispatch,
)

if TYPE_CHECKING:
    from ._mock_server import MockServer
    from ._requests import RequestContext

__all__ = ["stateless"]

PROTOCOL_VERSION_KEY = "io.modelcontextprotocol/protocolVersion"
CLIENT_CAPABILITIES_KEY = "io.modelcontextprotocol/clientCapabilities"
_NAME_BEARING = {"tools/call": "name", "prompts/get": "name", "resources/read": "uri"}
_MODERN_METHODS = frozenset(
    {
        "server/discover",
        "subscriptions/listen",
        "ping",
        "tools/list",
        "tools/call",
        "resources/list",
        "resources/read",
        "prompts/list",
    }
)
_FILTER_KEYS = {
    "notifications/tools/list_changed": "toolsListChanged",
    "notifications/prompts/list_changed": "promptsListChanged",
    "notifications/resources/list_changed": "resourcesListChanged",
}


def _check_envelope(rc: RequestContext, msg: dict[str, Any]) -> tuple[int, dict[str, Any]] | None:
    """The 2026 validation ladder: envelope, mirrored headers, version. None: all good."""
    rid, method = msg["id"], msg["method"]
    params = msg.get("params")
    meta = params.get("_meta") if isinstance(params, dict) else None
    if (
        not isinstance(meta, dict)
        or PROTOCOL_VERSION_KEY not in meta
        or (CLIENT_CAPABILITIES_KEY not in meta)
    ):
        return 400, error_message(
            rid,
            INVALID_PARAMS,
            "params._meta must carry the protocol version and client capabilities",
        )
    version = meta[PROTOCOL_VERSION_KEY]
    header = rc.request.header
    if header("mcp-protocol-version") != version:
        return 400, error_message(rid, HEADER_MISMATCH, "MCP-Protocol-Version does not match _meta")
    if header("mcp-method") != method:
        return 400, error_message(
            rid, HEADER_MISMATCH, "Mcp-Method does not match the body's method"
        )
    name_key = _NAME_BEARING.get(method)
    if name_key is not None and isinstance(params, dict):
        value = params.get(name_key)
        if value is not None and header("mcp-name") != value:
            return 400, error_message(
                rid, HEADER_MISMATCH, f"Mcp-Name does not match params.{name_key}"
            )
    if version not in MODERN_VERSIONS:
        data = {"supported": list(MODERN_VERSIONS), "requested": version}
        return 400, error_message(
            rid, UNSUPPORTED_PROTOCOL_VERSION, "Unsupported protocol version", data
        )
    if method not in _MODERN_METHODS:
        return 404, error_message(rid, METHOD_NOT_FOUND, f"Method not found: {method}")
    return None


async def _modern_call(server: MockServer, msg: dict[str, Any], ctx: CallContext) -> dict[str, Any]:
    rid, method, params = msg["id"], msg["method"], msg.get("params") or {}
    try:
        if method == "server/discover":
            result: dict[str, Any] = {
                "supportedVersions": list(MODERN_VERSIONS),
                "capabilities": CAPABILITIES,
                "serverInfo": SERVER_INFO,
                "instructions": INSTRUCTIONS,
                "ttlMs": server.discover_ttl_ms,
                "cacheScope": server.discover_cache_scope,
            }
        else:
            result = await dispatch(method, params, ctx, server.catalog)
    except RPCError as exc:
        return {"jsonrpc": "2.0", "id": rid, "error": exc.to_error()}
    except Exception as exc:
        return error_message(rid, INTERNAL_ERROR, f"tool failed: {type(exc).__name__}")
    result = {**result, "resultType": "complete"}
    if method.endswith("/list") and server.list_ttl_ms is not None:
        result["ttlMs"] = server.list_ttl_ms
    result.setdefault("_meta", {})["io.modelcontextprotocol/serverInfo"] = SERVER_INFO
    return {"jsonrpc": "2.0", "id": rid, "result": result}


async def stateless(server: MockServer, rc: RequestContext) -> None:
    request, exchange = rc.request, rc.exchange
    if request.method != "POST":
        await exchange.respond(405, [("allow", "POST")])
        return
    accept = request.header("accept") or ""
    wants_sse = "text/event-stream" in accept
    if "application/json" not in accept or (not server.json_response and not wants_sse):
        await exchange.respond(406)
        return
    if rc.parse_error:
        await json_reply(exchange, 400, error_message(None, PARSE_ERROR, "Parse error"))
        return
    msg = rc.message
    if not isinstance(msg, dict):
        await json_reply(
            exchange,
            400,
            error_message(
                None,
                INVALID_REQUEST,
                "Body must be a single JSON-RPC request or notification object",
            ),
        )
        return
    if "id" not in msg:
        await exchange.respond(202)
        return
    if not isinstance(msg.get("method"), str):
        await json_reply(
            exchange, 400, error_message(None, INVALID_REQUEST, "not a JSON-RPC request")
        )
        return
    rejection = _check_envelope(rc, msg)
    if rejection is not None:
        await json_reply(exchange, *rejection)
        return
    if msg["method"] == "subscriptions/listen":
        if not wants_sse:
            await exchange.respond(406)
            return
        await _listen(server, rc, msg)
        return
    params = msg.get("params") or {}
    token = params["_meta"].get("progressToken")
    if server.json_response and rc.fault is None:
        ctx = CallContext(server, rc.principal, "2026-07-28", token, None)
        response = await _modern_call(server, msg, ctx)
        code = response.get("error", {}).get("code")
        await json_reply(exchange, ERROR_HTTP_STATUS.get(code, 200) if code else 200, response)
        return
    if server.lean and rc.fault is None:  # the call's events and its answer, in one send
        events: list[bytes] = []

        def to_events(method: str, params: dict[str, Any] | None) -> None:
            events.append(notification(method, params, server._encode))

        ctx = CallContext(server, rc.principal, "2026-07-28", token, to_events)
        events.append(server._encode(await _modern_call(server, msg, ctx)))
        await respond_events(exchange, events)
        return
    stream = EventStream("R", rc.principal, resumable=False)

    def to_stream(method: str, params: dict[str, Any] | None) -> None:
        stream.push(notification(method, params))

    ctx = CallContext(server, rc.principal, "2026-07-28", token, to_stream)

    async def work() -> None:
        try:
            stream.push(encode_json(await _modern_call(server, msg, ctx)))
        finally:
            stream.finish()

    async with anyio.create_task_group() as tg:
        tg.start_soon(work)
        await exchange.start_stream(200, SSE_HEADERS)
        await server.pump(stream, rc, after=0)
        tg.cancel_scope.cancel()  # a cut stream loses (cancels) the request


async def _listen(server: MockServer, rc: RequestContext, msg: dict[str, Any]) -> None:
    rid = msg["id"]
    params = msg.get("params") or {}
    wanted = params.get("notifications")
    wanted = wanted if isinstance(wanted, dict) else {}
    honoured: dict[str, Any] = {k: True for k in _FILTER_KEYS.values() if wanted.get(k) is True}
    uris = wanted.get("resourceSubscriptions")
    if isinstance(uris, list) and uris and all(isinstance(u, str) for u in uris):
        honoured["resourceSubscriptions"] = list(uris)
    stream = EventStream("sub", rc.principal, resumable=False, maxlen=server.event_log_size)
    stream.subscription_id = rid

    def accepts(method: str, params: dict[str, Any] | None) -> bool:
        if method in _FILTER_KEYS:
            return _FILTER_KEYS[method] in honoured
        if method == "notifications/resources/updated":
            uri = (params or {}).get("uri")
            return uri in honoured.get("resourceSubscriptions", ())
        return True  # a mock liberty: custom methods reach every listen stream

    def transform(method: str, params: dict[str, Any] | None) -> bytes:
        body = dict(params or {})
        body["_meta"] = {**body.get("_meta", {}), SUBSCRIPTION_ID_KEY: rid}
        return notification(method, body, server._encode)

    stream.accepts = accepts
    stream.transform = transform
    ack = {"_meta": {SUBSCRIPTION_ID_KEY: rid}, "notifications": honoured}
    acknowledged = notification("notifications/subscriptions/acknowledged", ack, server._encode)
    first = b""
    if server.lean and rc.fault is None:
        first = sse_frame(acknowledged)  # the head and the acknowledgement in one send
    else:
        stream.push(acknowledged)
    server.register_listener(stream)
    try:
        await rc.exchange.start_stream(200, SSE_HEADERS, first=first)
        await server.pump(stream, rc, after=0)
    finally:
        server.unregister_listener(stream)
