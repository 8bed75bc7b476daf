"""The mock server's wire protocol per era.

- Streamable HTTP with sessions (2025-03-26 .. 2025-11-25) on ``/mcp``: POST
  (JSON or SSE replies), GET listener, DELETE, resumption with Last-Event-ID.
- Legacy HTTP+SSE (2024-11-05): GET ``/sse`` sends ``event: endpoint``, POSTs
  to ``/messages?session_id=...`` are answered on that stream.
- Stateless 2026-07-28 on ``/mcp`` (chosen by ``MCP-Protocol-Version``): no
  sessions, per-request ``_meta``, ``server/discover``, ``subscriptions/listen``.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

import anyio

from ._events import SSE_HEADERS, EventStream, encode_json, sse_frame
from ._http import Exchange
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
    from ._mock_server import MockServer, RequestContext, Session

#: Versions negotiated by ``initialize``, oldest first.
HANDSHAKE_VERSIONS: tuple[str, ...] = ("2024-11-05", "2025-03-26", "2025-06-18", "2025-11-25")
#: Versions served statelessly (per-request ``_meta``), no handshake.
MODERN_VERSIONS: tuple[str, ...] = ("2026-07-28",)

PROTOCOL_VERSION_KEY = "io.modelcontextprotocol/protocolVersion"
CLIENT_CAPABILITIES_KEY = "io.modelcontextprotocol/clientCapabilities"
SUBSCRIPTION_ID_KEY = "io.modelcontextprotocol/subscriptionId"
SERVER_INFO = {"name": "mcpconn-mock", "version": "0.1.0"}
CAPABILITIES = {"tools": {"listChanged": True}, "resources": {}, "prompts": {}, "logging": {}}
INSTRUCTIONS = "A mock MCP server for tests: echo, add, slow, progress and notify tools."
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
_JSON = ("content-type", "application/json")


def _error(rid: Any, code: int, message: str, data: Any = None) -> dict[str, Any]:
    error: dict[str, Any] = {"code": code, "message": message}
    if data is not None:
        error["data"] = data
    return {"jsonrpc": "2.0", "id": rid, "error": error}


def _notification(method: str, params: dict[str, Any] | None) -> bytes:
    message: dict[str, Any] = {"jsonrpc": "2.0", "method": method}
    if params is not None:
        message["params"] = params
    return encode_json(message)


async def _json(
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


def _initialize(params: Any) -> tuple[str, dict[str, Any]]:
    requested = params.get("protocolVersion") if isinstance(params, dict) else None
    version = requested if requested in HANDSHAKE_VERSIONS else HANDSHAKE_VERSIONS[-1]
    return version, {
        "protocolVersion": version,
        "capabilities": CAPABILITIES,
        "serverInfo": SERVER_INFO,
        "instructions": INSTRUCTIONS,
    }


async def _run(
    server: MockServer, session: Session, msg: dict[str, Any], sink: Any
) -> dict[str, Any] | None:
    """Serve one session request; None when the client cancelled it."""
    rid = msg["id"]
    params = msg.get("params") or {}
    if not isinstance(params, dict):
        return _error(rid, INVALID_PARAMS, "params must be an object")
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
            return _error(rid, INTERNAL_ERROR, f"tool failed: {type(exc).__name__}")
        finally:
            session.running.pop(rid, None)
        return {"jsonrpc": "2.0", "id": rid, "result": result}
    return None


def _handle_notification(session: Session, msg: dict[str, Any]) -> None:
    method = msg.get("method")
    if method == "notifications/initialized":
        session.initialized = True
    elif method == "notifications/cancelled":
        params = msg.get("params")
        if isinstance(params, dict):
            scope = session.running.get(params.get("requestId"))
            if scope is not None:
                scope.cancel()


# -- streamable HTTP with sessions ---------------------------------------------------------
async def streamable(server: MockServer, rc: RequestContext) -> None:
    method = rc.request.method
    if method == "POST":
        await _streamable_post(server, rc)
    elif method == "GET":
        await _streamable_get(server, rc)
    elif method == "DELETE":
        session = await _session_or_reject(server, rc)
        if session is not None:
            server.drop_session(session)
            await rc.exchange.respond(200)
    else:
        await rc.exchange.respond(405, [("allow", "GET, POST, DELETE")])


async def _session_or_reject(server: MockServer, rc: RequestContext) -> Session | None:
    sid = rc.request.header("mcp-session-id")
    if sid is None:
        await _json(
            rc.exchange, 400, _error(None, INVALID_REQUEST, "Bad Request: Missing session ID")
        )
        return None
    session = server.find_session(sid, rc.principal, "streamable-http")
    if session is None:
        await _json(rc.exchange, 404, _error(None, INVALID_REQUEST, "Session not found"))
    return session


async def _streamable_post(server: MockServer, rc: RequestContext) -> None:
    request, exchange = rc.request, rc.exchange
    accept = request.header("accept") or ""
    if "application/json" not in accept or "text/event-stream" not in accept:
        await _json(
            exchange,
            406,
            _error(
                None,
                INVALID_REQUEST,
                "Not Acceptable: accept both application/json and text/event-stream",
            ),
        )
        return
    if not (request.header("content-type") or "").startswith("application/json"):
        await _json(exchange, 415, _error(None, INVALID_REQUEST, "Unsupported Media Type"))
        return
    if rc.parse_error:
        await _json(exchange, 400, _error(None, PARSE_ERROR, "Parse error"))
        return
    msg = rc.message
    if not isinstance(msg, dict) or msg.get("jsonrpc") != "2.0":
        await _json(exchange, 400, _error(None, INVALID_REQUEST, "not a single JSON-RPC message"))
        return
    is_request = "id" in msg and isinstance(msg.get("method"), str)
    if is_request and msg["method"] == "initialize":
        version, result = _initialize(msg.get("params"))
        fresh = server.new_session(rc.principal, "streamable-http", version)
        await _reply(server, rc, fresh, {"jsonrpc": "2.0", "id": msg["id"], "result": result})
        return
    session = await _session_or_reject(server, rc)
    if session is None:
        return
    header_version = request.header("mcp-protocol-version")
    if header_version is not None and header_version not in HANDSHAKE_VERSIONS:
        await _json(
            exchange,
            400,
            _error(
                None, INVALID_REQUEST, f"Bad Request: Unsupported protocol version {header_version}"
            ),
        )
        return
    if not is_request:
        _handle_notification(session, msg)
        await exchange.respond(202)
        return
    if server.json_response and rc.fault is None:
        listener = session.listener

        def to_listener(method: str, params: dict[str, Any] | None) -> None:
            if listener is not None:
                listener.push(_notification(method, params))

        response = await _run(server, session, msg, to_listener)
        if response is None:
            await exchange.respond(202, [("mcp-session-id", session.id)])
        else:
            await _json(exchange, 200, response, [("mcp-session-id", session.id)])
        return
    stream = session.new_stream(maxlen=server.event_log_size)

    def to_stream(method: str, params: dict[str, Any] | None) -> None:
        stream.push(_notification(method, params))

    async def work() -> None:
        try:
            response = await _run(server, session, msg, to_stream)
            if response is not None:
                stream.push(encode_json(response))
        finally:
            stream.finish()

    server.spawn(work)
    await exchange.start_stream(200, [*SSE_HEADERS, ("mcp-session-id", session.id)])
    first = server.priming(stream, 0, session.protocol_version)
    await server.pump(stream, rc, after=0, first=first)


async def _reply(
    server: MockServer, rc: RequestContext, session: Session, response: dict[str, Any]
) -> None:
    headers = [("mcp-session-id", session.id)]
    if server.json_response and rc.fault is None:
        await _json(rc.exchange, 200, response, headers)
        return
    stream = session.new_stream(maxlen=server.event_log_size)
    stream.push(encode_json(response))
    stream.finish()
    await rc.exchange.start_stream(200, [*SSE_HEADERS, *headers])
    first = server.priming(stream, 0, session.protocol_version)
    await server.pump(stream, rc, after=0, first=first)


async def _streamable_get(server: MockServer, rc: RequestContext) -> None:
    exchange = rc.exchange
    if not server.get_listener:
        await exchange.respond(405, [("allow", "POST, DELETE")])
        return
    if "text/event-stream" not in (rc.request.header("accept") or ""):
        await _json(exchange, 406, _error(None, INVALID_REQUEST, "Not Acceptable"))
        return
    session = await _session_or_reject(server, rc)
    if session is None:
        return
    target: EventStream | None = None
    after = 0
    first = b""
    last = rc.request.header("last-event-id")
    if last:
        key, _, seq = last.rpartition("-")
        stream = session.listener if key == "L" else session.streams.get(key)
        if stream is not None and seq.isdigit():
            target, after = stream, int(seq)
    if target is None:
        if session.listener is None:
            session.listener = EventStream(
                "L", session.principal, resumable=True, maxlen=server.event_log_size
            )
            server.register_listener(session.listener)
        target = session.listener
        after = target.last_seq
        first = server.priming(target, after, session.protocol_version)
    await exchange.start_stream(200, [*SSE_HEADERS, ("mcp-session-id", session.id)])
    await server.pump(target, rc, after=after, first=first)


# -- legacy HTTP+SSE (2024-11-05) ----------------------------------------------------------
async def legacy_get(server: MockServer, rc: RequestContext) -> None:
    if rc.request.method != "GET":
        await rc.exchange.respond(405, [("allow", "GET")])
        return
    session = server.new_session(rc.principal, "sse", "2024-11-05")
    stream = EventStream("S", rc.principal, resumable=False, maxlen=server.event_log_size)
    session.listener = stream
    server.register_listener(stream)
    endpoint = sse_frame(f"/messages?session_id={session.id}".encode(), event="endpoint")
    try:
        await rc.exchange.start_stream(200, SSE_HEADERS)
        await server.pump(stream, rc, after=0, first=endpoint)
    finally:
        server.drop_session(session)  # legacy: the stream *is* the session


async def legacy_post(server: MockServer, rc: RequestContext) -> None:
    exchange = rc.exchange
    if rc.request.method != "POST":
        await exchange.respond(405, [("allow", "POST")])
        return
    sid = rc.request.query.get("session_id")
    session = server.find_session(sid, rc.principal, "sse") if sid else None
    if session is None or session.listener is None:
        await exchange.respond(404, [("content-type", "text/plain")], b"Could not find session")
        return
    msg = rc.message
    if rc.parse_error or not isinstance(msg, dict) or msg.get("jsonrpc") != "2.0":
        await exchange.respond(400, [("content-type", "text/plain")], b"Could not parse message")
        return
    await exchange.respond(202, [("content-type", "text/plain")], b"Accepted")
    listener = session.listener
    if "id" not in msg or not isinstance(msg.get("method"), str):
        _handle_notification(session, msg)
        return
    if msg["method"] == "initialize":
        version, result = _initialize(msg.get("params"))
        session.protocol_version = version
        listener.push(encode_json({"jsonrpc": "2.0", "id": msg["id"], "result": result}))
        return

    def to_listener(method: str, params: dict[str, Any] | None) -> None:
        listener.push(_notification(method, params))

    async def work() -> None:
        response = await _run(server, session, msg, to_listener)
        if response is not None:
            listener.push(encode_json(response))

    server.spawn(work)


# -- stateless 2026-07-28 ------------------------------------------------------------------
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
        return 400, _error(
            rid,
            INVALID_PARAMS,
            "params._meta must carry the protocol version and client capabilities",
        )
    version = meta[PROTOCOL_VERSION_KEY]
    header = rc.request.header
    if header("mcp-protocol-version") != version:
        return 400, _error(rid, HEADER_MISMATCH, "MCP-Protocol-Version does not match _meta")
    if header("mcp-method") != method:
        return 400, _error(rid, HEADER_MISMATCH, "Mcp-Method does not match the body's method")
    name_key = _NAME_BEARING.get(method)
    if name_key is not None and isinstance(params, dict):
        value = params.get(name_key)
        if value is not None and header("mcp-name") != value:
            return 400, _error(rid, HEADER_MISMATCH, f"Mcp-Name does not match params.{name_key}")
    if version not in MODERN_VERSIONS:
        data = {"supported": list(MODERN_VERSIONS), "requested": version}
        return 400, _error(rid, UNSUPPORTED_PROTOCOL_VERSION, "Unsupported protocol version", data)
    if method not in _MODERN_METHODS:
        return 404, _error(rid, METHOD_NOT_FOUND, f"Method not found: {method}")
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
                "ttlMs": 0,
                "cacheScope": "private",
            }
        else:
            result = await dispatch(method, params, ctx, server.catalog)
    except RPCError as exc:
        return {"jsonrpc": "2.0", "id": rid, "error": exc.to_error()}
    except Exception as exc:
        return _error(rid, INTERNAL_ERROR, f"tool failed: {type(exc).__name__}")
    result = {**result, "resultType": "complete"}
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
        await _json(exchange, 400, _error(None, PARSE_ERROR, "Parse error"))
        return
    msg = rc.message
    if not isinstance(msg, dict):
        await _json(
            exchange,
            400,
            _error(
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
        await _json(exchange, 400, _error(None, INVALID_REQUEST, "not a JSON-RPC request"))
        return
    rejection = _check_envelope(rc, msg)
    if rejection is not None:
        await _json(exchange, *rejection)
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
        await _json(exchange, ERROR_HTTP_STATUS.get(code, 200) if code else 200, response)
        return
    stream = EventStream("R", rc.principal, resumable=False)

    def to_stream(method: str, params: dict[str, Any] | None) -> None:
        stream.push(_notification(method, params))

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
        return _notification(method, body)

    stream.accepts = accepts
    stream.transform = transform
    ack = {"_meta": {SUBSCRIPTION_ID_KEY: rid}, "notifications": honoured}
    stream.push(_notification("notifications/subscriptions/acknowledged", ack))
    server.register_listener(stream)
    try:
        await rc.exchange.start_stream(200, SSE_HEADERS)
        await server.pump(stream, rc, after=0)
    finally:
        server.unregister_listener(stream)


# -- bad bytes (faults) ----------------------------------------------------------------------
_GARBAGE = b"\xff\xfe\x00garbage\r\x00\n::::\nid\x00: \xc3\x28\ndata: {\x00\x01}\n\n"


async def bad_bytes(server: MockServer, rc: RequestContext, kind: str, size: int) -> None:
    exchange = rc.exchange
    if kind in ("non_json", "not_jsonrpc") and server.json_response and rc.request.method == "POST":
        body = b"this is not json{" if kind == "non_json" else b'{"hello": "world"}'
        await exchange.respond(200, [_JSON], body)
        return
    await exchange.start_stream(200, SSE_HEADERS)
    if kind == "garbage":
        await exchange.send(_GARBAGE)
    elif kind == "oversized":
        await exchange.send(b"event: message\ndata: ")
        chunk = b"x" * (64 << 10)
        remaining = size
        while remaining > 0:
            await exchange.send(chunk[:remaining])
            remaining -= len(chunk)
        await exchange.send(b"\n\n")
    elif kind == "non_json":
        await exchange.send(sse_frame(b"this is not json{"))
    else:
        await exchange.send(sse_frame(b'{"hello": "world"}'))
    await exchange.end_stream()
