"""Server-to-client notifications: to the call that caused them, then to every subscriber.

They run on the session's behalf but must never fail it: embedder callbacks
that raise are logged. Server requests are answered in `server_requests`.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Mapping
from typing import Any

from .._core import jsonrpc as _jsonrpc
from .calls import CallStream
from .transports.base import notification_dict

__all__ = ["ProgressCallback", "deliver_notification"]

# The session's logger: these are the session's callbacks going wrong.
logger = logging.getLogger("mcpconn.session")

ProgressCallback = Callable[[dict[str, Any]], None]


def deliver_notification(
    message: _jsonrpc.Notification,
    progress: Mapping[Any, ProgressCallback],
    on_notification: Callable[[dict[str, Any]], None],
    stream: CallStream | None = None,
) -> None:
    """Route progress to its request's callback, the note to its call, then hand it on."""
    params = message.params or {}
    if message.method == "notifications/progress":
        callback = progress.get(params.get("progressToken"))
        if callback is not None:
            try:
                callback(params)
            except Exception:
                logger.exception("an on_progress callback raised")
    note = notification_dict(message)
    if stream is not None:
        stream.notify(note)
    try:
        on_notification(note)
    except Exception:
        logger.exception("on_notification raised")
