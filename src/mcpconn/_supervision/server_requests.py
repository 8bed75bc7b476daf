"""Server-to-client requests as the embedder sees them: who asked, for which call.

An aggregator must send a downstream ``sampling/createMessage`` or
``elicitation/create`` back to the upstream session that caused it, so each
request handed to a handler says which connection, server and principal it
came from, and carries the ``context=`` of the call whose stream (or 2026
input round) carried it. Handlers are merged per method: the supervisor's,
then the connection's (which win).
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import anyio

from .._core import jsonrpc as _jsonrpc
from .._mcp.handshake import client_capabilities
from .._mcp.server_requests import Incoming

if TYPE_CHECKING:
    from .connection import Connection

__all__ = ["RequestHandler", "ServerRequest", "declared_capabilities", "merge_handlers"]


@dataclass(frozen=True)
class ServerRequest:
    """One request the server sent us (``sampling/createMessage``, ``roots/list``, ...).

    ``request_id`` is the JSON-RPC id (in 2026 MRTR: the input request's key in
    ``inputRequests``); ``context`` is the ``context=`` of the call that carried
    it, or None (the listener, legacy HTTP+SSE); ``cancelled`` is set when the
    server sends ``notifications/cancelled`` for it (the handler's task is then
    cancelled; never set in 2026).
    """

    method: str
    params: dict[str, Any] | None
    request_id: _jsonrpc.RequestId
    connection: Connection
    server: str
    principal: str
    context: Any
    cancelled: anyio.Event

    @classmethod
    def of(cls, incoming: Incoming, connection: Connection) -> ServerRequest:
        return cls(
            method=incoming.method,
            params=incoming.params,
            request_id=incoming.request_id,
            connection=connection,
            server=connection.server.name,
            principal=connection.principal,
            context=incoming.context,
            cancelled=incoming.cancelled,
        )


RequestHandler = Callable[[ServerRequest], Awaitable[dict[str, Any]]]


def merge_handlers(
    shared: Mapping[str, RequestHandler], own: Mapping[str, RequestHandler] | None
) -> Mapping[str, RequestHandler]:
    """Per method: the connection's handler wins over the supervisor's. Without its
    own, a connection reads the supervisor's (never changed): no copy per connection."""
    if not own:
        return shared
    merged = dict(shared)
    merged.update(own)
    return merged


def declared_capabilities(
    handlers: Mapping[str, RequestHandler], extra: Mapping[str, Any] | None
) -> dict[str, Any]:
    """What we declare: a capability per answerable method, merged with ``extra``.

    Nothing is declared that no handler (or ``client_capabilities``) stands behind:
    a server asks only for what the client declared.
    """
    declared = client_capabilities(handlers)
    for key, value in (extra or {}).items():
        if isinstance(value, Mapping) and isinstance(declared.get(key), dict):
            declared[key] = {**declared[key], **value}
        else:
            declared[key] = value
    return declared
