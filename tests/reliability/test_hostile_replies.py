"""Any reply to a call or the listener, over a real loopback socket: ours or nothing.

Hypothesis picks the status, the headers (content type and coding, length, Retry-After,
WWW-Authenticate, session id) and a body (JSON-RPC-like objects with hostile members,
SSE frames with hostile ``retry:``/``id:`` lines, compressed or random bytes); a raw
server sends exactly that to a ``tools/call`` or to the listener's GET. Whatever it is,
the call returns a dict or raises an `MCPConnError`, the listener ends with an
`MCPConnError`, and nothing is logged at ERROR. CI runs 12 cases per
backend; ``MCPCONN_REPLY_EXAMPLES=2000`` for a long run.
"""

from __future__ import annotations

import gzip
import json
import logging
import os
import zlib
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from typing import Any

import anyio
import httpx
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import mcpconn
from mcpconn import Timeouts
from mcpconn._mcp.session import Session, SessionHandlers, open_session

from ._raw import RawRequest, config, head, raw_server

EXAMPLES = int(os.environ.get("MCPCONN_REPLY_EXAMPLES", "12"))

hostile_text = st.one_of(
    st.text(max_size=20),
    st.sampled_from(["9" * 400, "\u00b2", "-1", "0", "1e999", "NaN", "eyJa.eyJb.c", "\x00\r\n"]),
)
json_values = st.recursive(
    st.none()
    | st.booleans()
    | st.integers(min_value=-(10**30), max_value=10**30)
    | st.floats()
    | hostile_text,
    lambda children: (
        st.lists(children, max_size=3) | st.dictionaries(hostile_text, children, max_size=3)
    ),
    max_leaves=8,
)


@st.composite
def messages(draw: st.DrawFn, rid: int) -> Any:
    """A JSON-RPC-shaped object, usually for our id, with any member hostile."""
    obj: dict[str, Any] = {"jsonrpc": draw(st.sampled_from(["2.0", "2.0", "1.0", None]))}
    obj["id"] = draw(st.one_of(st.just(rid), st.just(rid), json_values))
    kind = draw(st.sampled_from(["result", "error", "method", "both", "none"]))
    if kind in ("result", "both"):
        obj["result"] = draw(st.one_of(st.dictionaries(hostile_text, json_values), json_values))
    if kind in ("error", "both"):
        code = st.one_of(st.integers(), st.floats(), hostile_text)
        error = st.fixed_dictionaries({"code": code, "message": hostile_text, "data": json_values})
        obj["error"] = draw(st.one_of(error, json_values))
    if kind == "method":
        obj["method"] = draw(
            st.one_of(st.sampled_from(["notifications/progress", "ping"]), hostile_text)
        )
        obj["params"] = draw(
            st.one_of(
                st.fixed_dictionaries({"progressToken": json_values, "progress": json_values}),
                json_values,
            )
        )
    return obj


@st.composite
def replies(draw: st.DrawFn) -> dict[str, Any]:
    rid = 2  # the call's id: 1 was initialize
    status = draw(
        st.sampled_from([200, 200, 200, 202, 400, 401, 403, 404, 410, 429, 500, 503, 307])
    )
    ctype = draw(
        st.sampled_from(["application/json", "text/event-stream", "text/html", "", None])
        | hostile_text
    )
    items = draw(st.lists(messages(rid), min_size=1, max_size=3))
    if ctype == "text/event-stream":
        lines = draw(st.lists(st.sampled_from(["retry: ", "id: ", "event: ", ": "]), max_size=3))
        body = "".join(f"{line}{draw(hostile_text)}\n" for line in lines)
        body += "".join(f"data: {json.dumps(item)}\n\n" for item in items)
        raw = body.encode()
    else:
        raw = draw(st.one_of(st.just(json.dumps(items[0]).encode()), st.binary(max_size=200)))
    coding = draw(st.sampled_from([None, None, "gzip", "deflate", "br", "gzip, gzip", "x"]))
    if coding == "gzip" and draw(st.booleans()):
        raw = gzip.compress(raw)
    elif coding == "deflate" and draw(st.booleans()):
        raw = zlib.compress(raw)
    headers: dict[str, str] = {}
    if ctype is not None:
        headers["content-type"] = ctype
    if coding is not None:
        headers["content-encoding"] = coding
    for name in ("retry-after", "www-authenticate", "mcp-session-id"):
        if draw(st.booleans()):
            headers[name] = draw(hostile_text)
    return {"status": status, "headers": headers, "body": raw}


HOSTILE = settings(
    max_examples=EXAMPLES,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)


def replying(reply: dict[str, Any]) -> Callable[[Any, RawRequest], Awaitable[None]]:
    """A raw-server handler that sends ``reply`` (status, headers, body) as drawn."""

    async def answer(stream: Any, req: RawRequest) -> None:
        hdrs = header_safe(reply["headers"])
        body = reply["body"]
        hdrs["content-length"] = str(len(body))
        await stream.send(head(reply["status"], hdrs) + body)

    return answer


def header_safe(headers: dict[str, str]) -> dict[str, str]:
    # What can go on the wire at all: h11 (the raw server is ours) refuses CR/LF/NUL.
    return {k: v for k, v in headers.items() if not any(c in v for c in "\r\n\x00")}


@asynccontextmanager
async def session_answered_with(
    reply: dict[str, Any], *, on: str, read: float, **options: Any
) -> AsyncIterator[Session]:
    """A session (no supervisor) to a raw server whose ``on`` handler sends ``reply``."""
    async with raw_server(**{on: replying(reply)}) as raw, httpx.AsyncClient() as client:
        timeouts = Timeouts(connect=2, request=2, read=read, close=1)
        cfg = config(raw.url, timeouts=timeouts, **options)
        handlers = SessionHandlers(on_notification=lambda _m: None)
        async with open_session(client, cfg, auth=None, handlers=handlers) as session:
            yield session


def errors_logged(caplog: pytest.LogCaptureFixture) -> list[str]:
    return [r.getMessage() for r in caplog.records if r.levelno >= logging.ERROR]


@HOSTILE
@given(reply=replies())
async def test_any_reply_to_a_call_is_a_result_or_an_mcpconn_error(
    reply: dict[str, Any], caplog: pytest.LogCaptureFixture
) -> None:
    caplog.clear()
    async with session_answered_with(reply, on="on_request", read=2, listen=False) as session:
        with anyio.fail_after(5):
            try:
                result = await session.request("tools/call", {"name": "x"}, timeout=0.3)
            except mcpconn.MCPConnError:
                pass
            else:
                assert isinstance(result, dict)
    assert errors_logged(caplog) == []


@HOSTILE
@given(reply=replies())
async def test_any_reply_to_the_listener_ends_it_with_an_mcpconn_error(
    reply: dict[str, Any], caplog: pytest.LogCaptureFixture
) -> None:
    caplog.clear()
    async with session_answered_with(reply, on="on_get", read=0.5) as session:
        with anyio.fail_after(5), pytest.raises(mcpconn.MCPConnError):
            await session.listen()  # it always ends in an exception: ours
    assert errors_logged(caplog) == []
