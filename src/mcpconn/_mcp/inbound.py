"""Server-to-client notifications: to the call that caused them, then to every subscriber.

They run on the session's behalf but must never fail it: embedder callbacks
that raise are logged. Server requests are answered in `server_requests`.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Mapping
from typing import Any

from .._core import jsonrpc as _jsonrpc
from .._core.bounds import json_number
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
    """Route progress to its request's callback, the note to its call, then hand it on.

    A progress notification reaches its callback only with a usable token and a
    finite ``progress`` number (`bounds.json_number`); either way it is handed on.
    """
    if message.method == "notifications/progress":
        params = message.params or {}
        token = params.get("progressToken")
        # A token is an int or a string (ours are ints); a list would not even hash.
        known = isinstance(token, int | str) and not isinstance(token, bool)
        callback = progress.get(token) if known else None
        if callback is not None and json_number(params.get("progress")) is not None:
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
