"""The mock server's wire protocol per handshake era.

- Streamable HTTP with sessions (2025-03-26 .. 2025-11-25) on ``/mcp``: POST
  (JSON or SSE replies), GET listener, DELETE, resumption with Last-Event-ID.
- Legacy HTTP+SSE (2024-11-05): GET ``/sse`` sends ``event: endpoint``, POSTs
  to ``/messages?session_id=...`` are answered on that stream.

What the eras share (messages, sessions, serving a request) is in `_rpc`; the
stateless 2026-07-28 era lives in `_stateless.py`.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from ._events import SSE_HEADERS, EventStream, encode_json, sse_frame
from ._rpc import (
    HANDSHAKE_VERSIONS,
    Session,
    error_message,
    handle_client_message,
    initialize_result,
    json_reply,
    notification,
    run_request,
)
from ._tools import INVALID_REQUEST, PARSE_ERROR

if TYPE_CHECKING:
    from ._mock_server import MockServer
    from ._requests import RequestContext


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
        await json_reply(
            rc.exchange,
            400,
            error_message(None, INVALID_REQUEST, "Bad Request: Missing session ID"),
        )
        return None
    session = server.find_session(sid, rc.principal, "streamable-http")
    if session is None:
        await json_reply(
            rc.exchange, 404, error_message(None, INVALID_REQUEST, "Session not found")
        )
    return session


async def _streamable_post(server: MockServer, rc: RequestContext) -> None:
    request, exchange = rc.request, rc.exchange
    accept = request.header("accept") or ""
    if "application/json" not in accept or "text/event-stream" not in accept:
        await json_reply(
            exchange,
            406,
            error_message(
                None,
                INVALID_REQUEST,
                "Not Acceptable: accept both application/json and text/event-stream",
            ),
        )
        return
    if not (request.header("content-type") or "").startswith("application/json"):
        await json_reply(
            exchange, 415, error_message(None, INVALID_REQUEST, "Unsupported Media Type")
        )
        return
    if rc.parse_error:
        await json_reply(exchange, 400, error_message(None, PARSE_ERROR, "Parse error"))
        return
    msg = rc.message
    if not isinstance(msg, dict) or msg.get("jsonrpc") != "2.0":
        await json_reply(
            exchange, 400, error_message(None, INVALID_REQUEST, "not a single JSON-RPC message")
        )
        return
    is_request = "id" in msg and isinstance(msg.get("method"), str)
    if is_request and msg["method"] == "initialize":
        version, result = initialize_result(msg.get("params"), server.answer_version)
        fresh = server.new_session(rc.principal, "streamable-http", version)
        await _reply(server, rc, fresh, {"jsonrpc": "2.0", "id": msg["id"], "result": result})
        return
    session = await _session_or_reject(server, rc)
    if session is None:
        return
    header_version = request.header("mcp-protocol-version")
    if header_version is not None and header_version not in HANDSHAKE_VERSIONS:
        await json_reply(
            exchange,
            400,
            error_message(
                None, INVALID_REQUEST, f"Bad Request: Unsupported protocol version {header_version}"
            ),
        )
        return
    if not is_request:
        handle_client_message(server, session, msg)
        await exchange.respond(202)
        return
    if server.json_response and rc.fault is None:
        listener = session.listener

        def to_listener(method: str, params: dict[str, Any] | None) -> None:
            if listener is not None:
                listener.push(notification(method, params))

        response = await run_request(server, session, msg, to_listener)
        if response is None:
            await exchange.respond(202, [("mcp-session-id", session.id)])
        else:
            await json_reply(exchange, 200, response, [("mcp-session-id", session.id)])
        return
    stream = session.new_stream(maxlen=server.event_log_size)

    def to_stream(method: str, params: dict[str, Any] | None) -> None:
        stream.push(notification(method, params))

    async def work() -> None:
        try:
            response = await run_request(server, session, msg, to_stream)
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
        await json_reply(rc.exchange, 200, response, headers)
        return
    stream = session.new_stream(maxlen=server.event_log_size)
    stream.push(server._encode(response))
    stream.finish()
    first = server.priming(stream, 0, session.protocol_version)
    if server.lean and rc.fault is None:  # the priming event and the answer, one sized body
        body = first + b"".join(frame for _, frame in stream.frames_after(0))
        await rc.exchange.respond(200, [*SSE_HEADERS, *headers], body)
        return
    await rc.exchange.start_stream(200, [*SSE_HEADERS, *headers])
    await server.pump(stream, rc, after=0, first=first)


async def _streamable_get(server: MockServer, rc: RequestContext) -> None:
    exchange = rc.exchange
    if not server.get_listener:
        await exchange.respond(405, [("allow", "POST, DELETE")])
        return
    if "text/event-stream" not in (rc.request.header("accept") or ""):
        await json_reply(exchange, 406, error_message(None, INVALID_REQUEST, "Not Acceptable"))
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
    headers = [*SSE_HEADERS, ("mcp-session-id", session.id)]
    if server.lean and rc.fault is None:  # the head and the priming event in one send
        await exchange.start_stream(200, headers, first=first)
        first = b""
    else:
        await exchange.start_stream(200, headers)
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
        handle_client_message(server, session, msg)
        return
    if msg["method"] == "initialize":
        version, result = initialize_result(msg.get("params"), server.answer_version)
        session.protocol_version = version
        listener.push(encode_json({"jsonrpc": "2.0", "id": msg["id"], "result": result}))
        return

    def to_listener(method: str, params: dict[str, Any] | None) -> None:
        listener.push(notification(method, params))

    async def work() -> None:
        response = await run_request(server, session, msg, to_listener)
        if response is not None:
            listener.push(encode_json(response))

    server.spawn(work)
