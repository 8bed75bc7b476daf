"""The upstream request a downstream call serves, and how to talk back to its client.

mcpconn passes it through as the call's ``context=``: a downstream server's question
(elicitation, sampling, roots), its progress and its log messages all reach the one
upstream request that caused them, never another user's.
"""

from __future__ import annotations

import contextlib
import dataclasses
from typing import TYPE_CHECKING, Any

import mcp_types as types
from anyio.streams.memory import MemoryObjectReceiveStream
from mcp.server.context import ServerRequestContext
from mcp.shared.exceptions import MCPError
from mcp.shared.message import ServerMessageMetadata

import mcpconn

from .limits import LEVELS, MODERN
from .shaping import dump

if TYPE_CHECKING:
    from .input_rounds import Bridge

#: The server-to-client requests the aggregator passes up, with their SDK models.
SERVER_REQUESTS: dict[str, tuple[type[Any], type[Any]]] = {
    "elicitation/create": (types.ElicitRequest, types.ElicitResult),
    "sampling/createMessage": (types.CreateMessageRequest, types.CreateMessageResult),
    "roots/list": (types.ListRootsRequest, types.ListRootsResult),
}


@dataclasses.dataclass
class Upstream:
    """The upstream request a downstream call serves (passed down as the call's ``context=``)."""

    ctx: ServerRequestContext[Any, Any]
    principal: str
    fresh: bool  # this request brought a bearer we had not published yet
    log_level: str | None  # 2026: this request's opt-in; session era: logging/setLevel
    bridge: Bridge | None = None  # set when its server requests become MRTR rounds

    @property
    def modern(self) -> bool:
        """2026-07-28: no server-to-client requests; input goes through MRTR instead."""
        return self.ctx.protocol_version == MODERN

    async def ask(self, method: str, params: dict[str, Any] | None) -> dict[str, Any]:
        """Send a server-to-client request on this upstream request's own stream."""
        if method not in SERVER_REQUESTS:
            raise mcpconn.JSONRPCError(-32601, "method not found")
        request_type, result_type = SERVER_REQUESTS[method]
        related = ServerMessageMetadata(related_request_id=self.ctx.request_id)
        try:
            request = request_type.model_validate({"method": method, "params": params or {}})
            result = await self.ctx.session.send_request(request, result_type, metadata=related)
        except MCPError as exc:  # the client said no: the downstream server hears the same
            raise mcpconn.JSONRPCError(exc.code, exc.message) from None
        except Exception as exc:  # a malformed request, or a client that cannot be asked
            raise mcpconn.JSONRPCError(types.INTERNAL_ERROR, type(exc).__name__) from None
        return dump(result)  # type: ignore[no-any-return]

    async def relay(self, receive: MemoryObjectReceiveStream[dict[str, Any]]) -> None:
        """Progress and log messages of a downstream call, onto this upstream request."""
        session = self.ctx.session
        async with receive:
            async for note in receive:
                p = note.get("params") or {}
                with contextlib.suppress(Exception):  # the upstream client may be gone
                    if note.get("method") == "notifications/progress":
                        await session.report_progress(
                            p["progress"], p.get("total"), p.get("message")
                        )
                    elif note.get("method") == "notifications/message" and self.wants(p):
                        level, data, name = p.get("level", "info"), p.get("data"), p.get("logger")
                        await session.send_log_message(level, data, name, self.ctx.request_id)

    def wants(self, log: dict[str, Any]) -> bool:
        """A log message at or above the level this client asked for (all if it did not)."""
        if self.log_level not in LEVELS or log.get("level") not in LEVELS:
            return self.log_level is None
        return LEVELS.index(log["level"]) >= LEVELS.index(self.log_level)
