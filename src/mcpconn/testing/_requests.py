"""Per-request gatekeeping of the mock server: who is asking, and what goes wrong.

Principals come from the token's ``sub`` (unverified, so a rejected token is
still counted against its principal); ``exp`` is judged by the server's skewed
clock. Injected faults replace the response here; stream faults ride along on
the `RequestContext` to the writer.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import jwt

from ._events import SSE_HEADERS, sse_frame
from ._faults import Fault
from ._http import Exchange, Request
from ._jwt_issuer import TokenRejected
from ._stats import RequestRecord

if TYPE_CHECKING:
    from ._mock_server import MockServer

__all__ = ["Auth", "RequestContext", "authenticate", "inject", "prepare", "reject_auth"]


@dataclass
class RequestContext:
    """One request on its way through the server."""

    request: Request
    exchange: Exchange
    principal: str | None
    message: Any
    parse_error: bool
    rpc_method: str | None
    fault: Fault | None = None
    #: Records the request once, with the status it got (0: none).
    record: Callable[[int], None] = lambda status: None


@dataclass
class Auth:
    """Who is asking, by the token's (unverified) ``sub``, and whether to reject it."""

    principal: str | None = None
    present: bool = False
    expired: bool = False
    error: str | None = None


def prepare(
    server: MockServer, request: Request, exchange: Exchange
) -> tuple[RequestContext, Auth]:
    """Parse the body once, judge the token, and arm the request's record."""
    auth = authenticate(server, request)
    message: Any = None
    parse_error = False
    rpc_method = None
    if request.method == "POST" and request.body:
        try:
            message = server._decode(request.body)
        except ValueError:
            parse_error = True
        if isinstance(message, dict) and isinstance(message.get("method"), str):
            rpc_method = message["method"]
    rc = RequestContext(request, exchange, auth.principal, message, parse_error, rpc_method)
    done = False

    def record(status: int) -> None:
        nonlocal done
        if done:
            return
        done = True
        server._recorder.record(
            RequestRecord(
                principal=auth.principal,
                method=request.method,
                path=request.path,
                rpc_method=rpc_method,
                status=status,
                token_expired=auth.expired,
                token_present=auth.present,
                at=server.clock(),
            )
        )

    rc.record = record
    exchange.on_start = record
    return rc, auth


def authenticate(server: MockServer, request: Request) -> Auth:
    header = request.header("authorization")
    if header is None or not header.lower().startswith("bearer "):
        return Auth(error="no bearer token")
    raw = header[7:].strip()
    auth = Auth(present=True)
    now = server.now()
    verified = server.verified  # lean mode: a token verified before, not yet expired
    claims = verified.get(raw, now) if verified is not None else None
    if claims is None:
        try:
            unverified = jwt.decode(raw, options={"verify_signature": False})
        except jwt.PyJWTError:
            unverified = {}
        sub = unverified.get("sub")
        auth.principal = sub if isinstance(sub, str) else None
        exp = unverified.get("exp")
        if isinstance(exp, int | float) and not isinstance(exp, bool):
            auth.expired = now >= exp
        try:
            claims = server.issuer.verify(raw, now=now)
        except TokenRejected as exc:
            auth.error = exc.description
            return auth
        if verified is not None:
            verified.put(raw, claims)
    else:
        auth.principal = claims["sub"]
    if server.audience is not None and claims.get("aud") != server.audience:
        auth.error = "token audience does not match"
    elif claims["sub"] in server.revoked:
        auth.error = "principal revoked"
    return auth


async def reject_auth(
    server: MockServer,
    exchange: Exchange,
    error: str,
    description: str,
    *,
    status: int = 401,
    scope: str | None = None,
    headers: Sequence[tuple[str, str]] = (),
    body: bytes = b"",
) -> None:
    challenge = f'Bearer error="{error}", error_description="{description}"'
    if scope is not None:
        challenge += f', scope="{scope}"'
    challenge += f', resource_metadata="{server.resource_metadata_url}"'
    hdrs = [("www-authenticate", challenge), ("content-type", "application/json"), *headers]
    payload = body or server._encode({"error": error, "error_description": description})
    await exchange.respond(status, hdrs, payload)


async def inject(server: MockServer, fault: Fault, rc: RequestContext) -> None:
    """Answer with ``fault`` instead of serving the request."""
    exchange = rc.exchange
    kind = fault.kind
    if kind == "status":
        if fault.status_code in (401, 403) and fault.auth_error is not None:
            await reject_auth(
                server,
                exchange,
                fault.auth_error,
                fault.auth_description or "",
                status=fault.status_code,
                scope=fault.scope,
                headers=fault.headers,
                body=fault.body,
            )
        else:
            body = fault.body or b"injected fault"
            typed = any(name.lower() == "content-type" for name, _ in fault.headers)
            plain = [] if typed else [("content-type", "text/plain")]
            await exchange.respond(fault.status_code, [*plain, *fault.headers], body)
    elif kind == "expire_session":
        sid = rc.request.header("mcp-session-id") or rc.request.query.get("session_id")
        if sid is not None and sid in server.sessions:
            server.drop_session(server.sessions[sid])
        await exchange.respond(404, [("content-type", "text/plain")], b"session expired")
    elif kind == "disconnect":
        await exchange.abort()
    elif kind == "stall":
        if fault.after_headers:
            await exchange.start_stream(200, SSE_HEADERS)
        else:
            rc.record(0)  # counted now, with status 0: no response will come
        await exchange.client_gone.wait()
    elif kind == "wrong_content_type":
        await exchange.respond(
            200, [("content-type", "text/html")], b"<html><body>Login</body></html>"
        )
    else:
        await bad_bytes(server, rc, kind, fault.size)


_GARBAGE = b"\xff\xfe\x00garbage\r\x00\n::::\nid\x00: \xc3\x28\ndata: {\x00\x01}\n\n"


async def bad_bytes(server: MockServer, rc: RequestContext, kind: str, size: int) -> None:
    exchange = rc.exchange
    if kind in ("non_json", "not_jsonrpc") and server.json_response and rc.request.method == "POST":
        body = b"this is not json{" if kind == "non_json" else b'{"hello": "world"}'
        await exchange.respond(200, [("content-type", "application/json")], body)
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
