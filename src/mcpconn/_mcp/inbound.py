"""Server-to-client messages that answer no request of ours: notifications and server requests.

Both run on the session's behalf but must never fail it: embedder callbacks
that raise are logged, and a server request always gets a reply (or a logged
reason why it could not be sent). Plain functions, handed what they need, so
the session keeps its own state.
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable, Mapping
from typing import Any

import anyio

from .._core import jsonrpc as _jsonrpc
from .._exceptions import JSONRPCError, MCPConnError
from .transports.base import notification_dict

__all__ = ["ProgressCallback", "RequestHandler", "answer", "deliver_notification"]

# The session's logger: these are the session's callbacks going wrong.
logger = logging.getLogger("mcpconn.session")

ProgressCallback = Callable[[dict[str, Any]], None]
RequestHandler = Callable[[str, dict[str, Any] | None], Awaitable[dict[str, Any]]]


def deliver_notification(
    message: _jsonrpc.Notification,
    progress: Mapping[_jsonrpc.RequestId, ProgressCallback],
    on_notification: Callable[[dict[str, Any]], None],
) -> None:
    """Route progress to its request's callback, then hand every notification on."""
    params = message.params or {}
    if message.method == "notifications/progress":
        callback = progress.get(params.get("progressToken"))  # type: ignore[arg-type]
        if callback is not None:
            try:
                callback(params)
            except Exception:
                logger.exception("an on_progress callback raised")
    try:
        on_notification(notification_dict(message))
    except Exception:
        logger.exception("on_notification raised")


async def answer(
    request: _jsonrpc.Request,
    handler: RequestHandler | None,
    timeout: float,
    send: Callable[[_jsonrpc.Message], Awaitable[None]],
) -> None:
    """Answer one server request: ``ping`` ourselves, the rest via ``handler`` (or -32601)."""
    reply: _jsonrpc.Message
    try:
        if request.method == "ping":
            reply = _jsonrpc.Response(request.id, {})
        elif handler is None:
            missing = f"Method not found: {request.method}"
            reply = _jsonrpc.ErrorResponse(
                request.id, JSONRPCError(_jsonrpc.METHOD_NOT_FOUND, missing)
            )
        else:
            with anyio.fail_after(timeout):
                result = await handler(request.method, request.params)
            reply = _jsonrpc.Response(request.id, result)
    except JSONRPCError as exc:
        reply = _jsonrpc.ErrorResponse(request.id, exc)
    except Exception:
        logger.exception("the handler for a server request raised")
        error = JSONRPCError(_jsonrpc.INTERNAL_ERROR, "internal error in the client")
        reply = _jsonrpc.ErrorResponse(request.id, error)
    try:
        await send(reply)
    except MCPConnError as exc:
        logger.debug("could not answer a server request: %s", type(exc).__name__)
