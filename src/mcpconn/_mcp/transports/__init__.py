"""The HTTP wires MCP runs over, one module per era, behind one small interface.

The session drives a `Transport`; a transport only moves messages and maps
HTTP facts to typed errors. Inbound messages go to the session's sync
``dispatch`` callback, whichever stream carried them.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, Protocol

from ..._core import jsonrpc as _jsonrpc
from .base import Dispatch, Era, HTTPChannel, StreamLost, StreamState
from .errors import map_httpx_errors
from .legacy_sse import LegacySSETransport
from .stateless import StatelessTransport
from .streamable_http import StreamableHTTPTransport

if TYPE_CHECKING:
    from .base import OnOpen
    from .reader import Watched

__all__ = [
    "Dispatch",
    "Era",
    "HTTPChannel",
    "LegacySSETransport",
    "StatelessTransport",
    "StreamLost",
    "StreamState",
    "StreamableHTTPTransport",
    "Transport",
    "map_httpx_errors",
]


class Transport(Protocol):
    """What the session needs from a wire."""

    era: Era
    session_id: str | None
    protocol_version: str | None

    @property
    def skipped(self) -> int: ...

    async def start(self, dispatch: Dispatch) -> None: ...

    async def send_request(
        self, request: _jsonrpc.Request, *, done: Any, dispatch: Dispatch
    ) -> None: ...

    async def send_message(self, message: _jsonrpc.Message) -> None: ...

    async def listen(
        self,
        dispatch: Dispatch,
        request: _jsonrpc.Request | None = None,
        *,
        on_open: OnOpen = None,
        restart_on: Watched | None = None,
    ) -> None: ...

    async def aclose(self, close_by: float | None = None) -> None: ...
