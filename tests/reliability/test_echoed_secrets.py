"""A server that echoes the bearer back, on every channel where its text enters our output.

Each scenario runs a real connection against a raw loopback server that copies the
credential it received (``Authorization: Bearer ...``) into one channel: the parameters
and scheme of a 401/403 challenge, a JSON-RPC error's message and data (on
``initialize``, in a 400 body, on a call), the ``Content-Type``, the ``jsonrpc`` member,
an id, a method name, a protocol version, the listener's event ids and response ids.
Tokens are opaque (a UUID starting with a letter: shaped like an RFC 6750 error code,
so a code-shaped filter alone lets it through) or JWTs, fresh on every provider call.

Afterwards no credential appears in any ``str()``/``repr()`` of the errors (their
attributes and causes included), ``last_error``, the connection, the supervisor, the
state-change reasons or the statistics; the conftest leak guard fails the test if one
reached a log record at any level. Where the echo is visible, it is the sanitizer's
marker: the text was redacted, not dropped.
"""

from __future__ import annotations

import json
import logging
import time
import uuid
from collections.abc import Awaitable, Callable
from typing import Any

import anyio
import jwt
import pytest

import mcpconn
from mcpconn import Connection, State, Supervisor, TokenRequest
from mcpconn._core.sanitize import REDACTED

from ._raw import (
    RawRequest,
    RawServer,
    Writer,
    config,
    head,
    init_result,
    no_leaks,
    once,
    raw_server,
    send_json,
    surfaces,
)
from ._supervised import recorded_changes, supervised

Stream = Any
Until = Callable[[RawServer, Connection, Supervisor], Awaitable[list[BaseException]]]


def mint(kind: str) -> str:
    if kind == "opaque":
        return "d" + str(uuid.uuid4())[1:]  # matches [a-z][a-z0-9_.-]{0,63}
    claims = {"sub": "alice", "exp": int(time.time()) + 3600, "jti": uuid.uuid4().hex}
    return jwt.encode(claims, "k" * 64, algorithm="HS256")


def echoed(req: RawRequest) -> str:
    return req.headers["authorization"].removeprefix("Bearer ")


def rpc_id(req: RawRequest) -> Any:
    msg = req.message
    return msg.get("id") if isinstance(msg, dict) else None


def rpc_error(req: RawRequest) -> dict[str, Any]:
    t = echoed(req)
    error = {"code": -32000, "message": f"token {t} was rejected", "data": {"token": t, "l": [t]}}
    return {"jsonrpc": "2.0", "id": rpc_id(req), "error": error}


async def challenge_401(stream: Stream, req: RawRequest) -> None:
    t = echoed(req)
    value = (
        f'Bearer error="{t}", error_description="{t}", scope="{t}", '
        f'resource_metadata="{t}", {t}="{t}", {t} realm="{t}"'
    )
    await stream.send(head(401, {"www-authenticate": value, "content-length": "0"}))


async def challenge_403(stream: Stream, req: RawRequest) -> None:
    t = echoed(req)
    value = f'Bearer error="insufficient_scope", error_description="{t}", scope="{t}"'
    await stream.send(head(403, {"www-authenticate": value, "content-length": "0"}))


async def error_on_initialize(stream: Stream, req: RawRequest) -> None:
    await send_json(stream, rpc_error(req))


async def error_in_a_400(stream: Stream, req: RawRequest) -> None:
    await send_json(stream, rpc_error(req), status=400)


async def content_type(stream: Stream, req: RawRequest) -> None:
    hdrs = {"content-type": f"text/{echoed(req)}; charset={echoed(req)}", "content-length": "2"}
    await stream.send(head(200, hdrs) + b"{}")


async def jsonrpc_member(stream: Stream, req: RawRequest) -> None:
    await send_json(stream, {**init_result(req.message), "jsonrpc": echoed(req)})


async def id_member(stream: Stream, req: RawRequest) -> None:
    await send_json(stream, {**init_result(req.message), "id": [echoed(req)]})


async def method_name(stream: Stream, req: RawRequest) -> None:
    await send_json(stream, {"jsonrpc": "2.0", "id": 1, "method": echoed(req)})


async def protocol_version(stream: Stream, req: RawRequest) -> None:
    await send_json(stream, init_result(req.message, version=echoed(req)))


async def error_on_a_call(stream: Stream, req: RawRequest) -> None:
    await send_json(stream, rpc_error(req))


async def listener_echo(stream: Stream, req: RawRequest) -> None:
    t = echoed(req)
    unknown = json.dumps({"jsonrpc": "2.0", "id": t, "result": {}})
    body = f"id: {t}\ndata: not json {t}\n\ndata: {unknown}\n\n"
    await stream.send(head(200, {"content-type": "text/event-stream"}) + body.encode())
    await stream.aclose()


def error_is(kind: type[BaseException], *states: State) -> Until:
    """Wait until the connection reported ``kind`` (and sits in one of ``states``)."""

    async def until(raw: RawServer, conn: Connection, sup: Supervisor) -> list[BaseException]:
        changes = sup.state_changes()
        try:
            while not (isinstance(conn.last_error, kind) and (not states or conn.state in states)):
                await changes.__anext__()
        finally:
            await changes.aclose()
        return []

    return until


async def call_fails(raw: RawServer, conn: Connection, sup: Supervisor) -> list[BaseException]:
    await conn.wait_for(State.READY)
    with pytest.raises(mcpconn.JSONRPCError) as info:
        await conn.call_tool("echo", {})
    error = info.value
    assert REDACTED in error.message and error.data == {"token": REDACTED, "l": [REDACTED]}
    return [error]


async def parked(raw: RawServer, conn: Connection, sup: Supervisor) -> list[BaseException]:
    await conn.wait_for(State.NEEDS_REAUTH)
    assert conn.challenge is not None and conn.challenge.error in (REDACTED, "insufficient_scope")
    with pytest.raises(mcpconn.ReauthRequired) as info:
        await conn.call_tool("echo", {})
    return [info.value]


async def listened(raw: RawServer, conn: Connection, sup: Supervisor) -> list[BaseException]:
    await raw.wait(lambda r: r.count("GET") >= 2)  # the echoing stream ended; then a 405
    await conn.wait_for(State.READY)
    assert isinstance(conn.last_error, mcpconn.StreamEnded)
    return []


# Writers are made per test: `once` remembers whether it was used.
CHANNELS: dict[str, tuple[Callable[[], dict[str, Writer]], Until]] = {
    "401-challenge-params-and-scheme": (lambda: {"on_initialize": challenge_401}, parked),
    "403-challenge-description": (lambda: {"on_initialize": challenge_403}, parked),
    "jsonrpc-error-on-initialize": (
        lambda: {"on_initialize": error_on_initialize},
        error_is(mcpconn.JSONRPCError, State.FAILED),
    ),
    "jsonrpc-error-in-a-400-body": (
        lambda: {"on_initialize": error_in_a_400},
        error_is(mcpconn.JSONRPCError, State.FAILED),
    ),
    "jsonrpc-error-on-a-call": (lambda: {"on_request": error_on_a_call}, call_fails),
    "content-type": (
        lambda: {"on_initialize": content_type},
        error_is(mcpconn.UnexpectedContentType),
    ),
    "jsonrpc-member": (lambda: {"on_initialize": jsonrpc_member}, error_is(mcpconn.InvalidMessage)),
    "id-member": (lambda: {"on_initialize": id_member}, error_is(mcpconn.InvalidMessage)),
    "method-name": (lambda: {"on_initialize": method_name}, error_is(mcpconn.InvalidMessage)),
    "protocol-version": (
        lambda: {"on_initialize": protocol_version},
        error_is(mcpconn.UnsupportedProtocolVersion, State.FAILED),
    ),
    "listener-event-ids-and-response-ids": (lambda: {"on_get": once(listener_echo)}, listened),
}


@pytest.mark.parametrize("kind", ["opaque", "jwt"])
@pytest.mark.parametrize("channel", sorted(CHANNELS))
async def test_an_echoed_token_is_redacted_everywhere(
    channel: str, kind: str, leak_guard: Any, caplog: pytest.LogCaptureFixture
) -> None:
    # httpcore logs response headers verbatim at DEBUG (SECURITY.md: keep it at INFO);
    # everything of mcpconn's stays at DEBUG, under the leak guard.
    caplog.set_level(logging.INFO, logger="httpcore")
    make_writers, until = CHANNELS[channel]
    issued: list[str] = []

    async def provider(request: TokenRequest) -> str:
        token = mint(kind)
        leak_guard.register(token)
        issued.append(token)
        return token

    async with no_leaks(), raw_server(**make_writers()) as raw:
        async with supervised(provider) as sup:
            tokens = sup.tokens
            async with recorded_changes(sup) as changes:
                conn = await sup.connect(config(raw.url), "alice")
                with anyio.fail_after(10):
                    caught = await until(raw, conn, sup)
            texts = surfaces(
                conn.last_error,
                *caught,
                conn,
                sup,
                tokens,
                sup.statistics(),
                tokens.statistics(),
                *changes,
            )
            texts += [repr(vars(conn.challenge))] if conn.challenge is not None else []
    assert issued and raw.requests
    assert all(r.headers.get("authorization") for r in raw.requests)  # it was sent: and echoed
    assert changes
    for text in texts:
        assert leak_guard.find(text) is None, f"a token leaked through {channel}"
