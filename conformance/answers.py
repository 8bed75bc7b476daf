"""What an embedding application answers when a server asks its client something.

The same handlers serve both eras: ``Supervisor(request_handlers=...)`` calls them for a
session-era server request, and `answer_inputs` for a 2026 ``inputRequests`` map.
"""

from __future__ import annotations

import json
from collections.abc import Awaitable, Callable
from typing import Any

import anyio
from clientlog import log

import mcpconn

JSON = dict[str, Any]
Handler = Callable[[mcpconn.ServerRequest], Awaitable[JSON]]


def _value_for(schema: JSON) -> Any:
    """A form answer for one field: its default when the schema gives one (SEP-1034)."""
    if "default" in schema:
        return schema["default"]
    if schema.get("enum"):
        return schema["enum"][0]
    kind = schema.get("type")
    if kind == "boolean":
        return True
    if kind in ("number", "integer"):
        return 0
    return ""


async def on_elicit(request: mcpconn.ServerRequest) -> JSON:
    params = request.params
    schema = (params or {}).get("requestedSchema") or {}
    props: JSON = schema.get("properties") or {}
    content = {name: _value_for(field) for name, field in props.items()}
    log("elicitation/create ->", json.dumps(content))
    return {"action": "accept", "content": content}


async def on_sampling(request: mcpconn.ServerRequest) -> JSON:
    params = request.params
    log("sampling/createMessage", json.dumps(params)[:200])
    return {
        "role": "assistant",
        "content": {"type": "text", "text": "conformance sample"},
        "model": "mcpconn-conformance-stub",
        "stopReason": "endTurn",
    }


async def on_roots(request: mcpconn.ServerRequest) -> JSON:
    return {"roots": [{"uri": "file:///tmp/mcpconn-conformance", "name": "conformance"}]}


HANDLERS: dict[str, Handler] = {
    "elicitation/create": on_elicit,
    "sampling/createMessage": on_sampling,
    "roots/list": on_roots,
}


async def answer_inputs(conn: Any, requests: JSON) -> JSON:
    """Answer a 2026 ``inputRequests`` map through the handlers, as the library would."""
    responses: JSON = {}
    for key, req in requests.items():
        handler = HANDLERS.get(req.get("method", ""))
        if handler is None:
            raise RuntimeError(f"no handler for input request {req.get('method')!r}")
        request = mcpconn.ServerRequest(
            method=req["method"],
            params=req.get("params") or {},
            request_id=key,
            connection=conn,
            server=conn.server.name,
            principal=conn.principal,
            context=None,
            cancelled=anyio.Event(),
        )
        responses[key] = await handler(request)
    return responses
