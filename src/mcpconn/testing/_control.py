"""The ``/_mock/`` control endpoints: drive a mock server in another process over HTTP.

Benchmarks must not share a process with the client, so everything a test does
in-process (revoke, emit, faults, clock skew, counters) is also a small JSON
POST here. Control requests are not counted and need no token: the server is
a loopback test fixture. Off by default in-process; on in ``mcpconn mock-server``.

    GET    /_mock/stats                      MockStats.to_json()
    GET    /_mock/records?since=T            recent RequestRecords (never tokens)
    POST   /_mock/mint            {principal, lifetime?}        -> {token}
    POST   /_mock/revoke|restore  {principal} or {principals: [...]}  (many at once)
    POST   /_mock/emit            {method?, params?, principal?, count?}  -> {delivered}
                                  (count > 1 floods with backpressure)
    POST   /_mock/clock           {offset}                      server clock skew (s)
    POST   /_mock/close-streams   {principal?}                  clean end, resumable
    POST   /_mock/expire-sessions {principal?}                  next request gets 404
    POST   /_mock/faults          {kind, <options>, times?, path?, method?,
                                   rpc_method?, principal?}     e.g. {"kind": "status",
                                                                "status": 503, "retry_after": 2}
    DELETE /_mock/faults                                        clear every rule
"""

from __future__ import annotations

import json
from dataclasses import asdict
from typing import TYPE_CHECKING, Any

from ._events import encode_json
from ._faults import Fault
from ._http import Exchange, Request

if TYPE_CHECKING:
    from ._mock_server import MockServer

PREFIX = "/_mock/"

_FAULT_BUILDERS: dict[str, Any] = {
    "status": lambda d: Fault.status(int(d["status"]), retry_after=d.get("retry_after")),
    "unauthorized": lambda d: Fault.unauthorized(),
    "insufficient_scope": lambda d: Fault.insufficient_scope(d.get("scope", "mcp:admin")),
    "rate_limited": lambda d: Fault.rate_limited(
        d.get("retry_after", 1.0), code=int(d.get("status", 429))
    ),
    "method_not_allowed": lambda d: Fault.method_not_allowed(),
    "session_expired": lambda d: Fault.session_expired(),
    "cut": lambda d: Fault.cut(int(d.get("after_events", 0))),
    "cut_mid_event": lambda d: Fault.cut_mid_event(int(d.get("after_events", 0))),
    "stall": lambda d: Fault.stall(after_headers=bool(d.get("after_headers", False))),
    "disconnect": lambda d: Fault.disconnect(),
    "delay": lambda d: Fault.delay(float(d["seconds"]), late_answer=bool(d.get("late_answer"))),
    "garbage": lambda d: Fault.garbage(),
    "oversized": lambda d: Fault.oversized(int(d.get("size", 8 << 20))),
    "non_json": lambda d: Fault.non_json(),
    "not_jsonrpc": lambda d: Fault.not_jsonrpc(),
    "wrong_content_type": lambda d: Fault.wrong_content_type(),
}


def fault_from_json(data: dict[str, Any]) -> Fault:
    """Build a `Fault` from ``{"kind": ..., <its options>}`` (the control API's format)."""
    builder = _FAULT_BUILDERS.get(str(data.get("kind")))
    if builder is None:
        raise ValueError(f"unknown fault kind {data.get('kind')!r}")
    fault: Fault = builder(data)
    return fault


async def handle_control(server: MockServer, request: Request, exchange: Exchange) -> None:
    try:
        body: Any = json.loads(request.body) if request.body else {}
        route = request.path[len(PREFIX) :]
        if request.method == "POST" and route == "emit" and isinstance(body, dict):
            result: Any = {"delivered": await _emit(server, body)}
        else:
            result = _dispatch(server, request.method, route, request, body)
    except (ValueError, KeyError, TypeError) as exc:
        payload = encode_json({"error": str(exc)})
        await exchange.respond(400, [("content-type", "application/json")], payload)
        return
    if result is None:
        await exchange.respond(404, [("content-type", "application/json")], b'{"error":"no route"}')
        return
    await exchange.respond(200, [("content-type", "application/json")], encode_json(result))


async def _emit(server: MockServer, body: dict[str, Any]) -> int:
    """``{"method", "params", "principal", "count"}``: one emit, or a flood with backpressure."""
    method = str(body.get("method", "notifications/message"))
    count = int(body.get("count", 1))
    principal = body.get("principal")
    if count == 1:
        return server.emit(method, body.get("params"), principal=principal)
    return await server.flood(method, body.get("params"), count=count, principal=principal)


def _dispatch(server: MockServer, method: str, route: str, request: Request, body: Any) -> Any:
    if not isinstance(body, dict):
        raise TypeError("body must be a JSON object")
    principal = body.get("principal")
    if method == "GET" and route == "stats":
        return server.stats().to_json()
    if method == "GET" and route == "records":
        since = float(request.query.get("since", "0"))
        return [asdict(r) for r in server.requests_since(since)]
    if method != "POST" and not (method == "DELETE" and route == "faults"):
        return None
    if route == "mint":
        lifetime = float(body.get("lifetime", server.token_lifetime))
        return {"token": server.mint(str(body["principal"]), lifetime=lifetime)}
    if route in ("revoke", "restore"):
        change = server.revoke if route == "revoke" else server.restore
        for who in body["principals"] if "principals" in body else [body["principal"]]:
            change(str(who))
        return {"revoked": sorted(server.revoked)}
    if route == "clock":
        server.clock_offset = float(body.get("offset", 0.0))
        return {"clock_offset": server.clock_offset}
    if route == "close-streams":
        return {"closed": server.close_streams(principal)}
    if route == "expire-sessions":
        return {"expired": server.expire_sessions(principal)}
    if route == "faults":
        if method == "DELETE":
            server.faults.clear()
            return {"rules": 0}
        rule = server.faults.add(
            fault_from_json(body),
            times=body.get("times"),
            path=body.get("path"),
            method=body.get("method"),
            rpc_method=body.get("rpc_method"),
            principal=principal,
        )
        return {"rules": len(server.faults), "kind": rule.fault.kind}
    return None
