"""The deprecated HTTP+SSE transport (protocol 2024-11-05).

A GET opens the SSE stream; its first ``endpoint`` event names where to POST
messages (resolved against the SSE URL; another origin is refused: it would
receive our token). Responses arrive on the SSE stream, which a task in the
session's task group reads; that task owns the stream (enters and exits it)
and never raises: its outcome is stored and reported through ``on_lost``.

The stream *is* the session. When it ends or breaks, the session is gone:
pending requests fail, later requests and `listen` raise `SessionLost`
(no HTTP status: none was sent; the stream's own error, if any, is the
``__cause__``), and the connection opens a new session. A message on the
stream that is not JSON-RPC is counted in ``skipped`` and dropped.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

import anyio
import httpx

from ..._core import jsonrpc as _jsonrpc
from ..._core.eras import LEGACY_SSE
from ..._core.sse import ServerSentEvent
from ..._exceptions import InvalidMessage, MCPConnError, ProtocolError, SessionLost
from .base import ACCEPT_BOTH, ACCEPT_SSE, JSON, Dispatch, Era, HTTPChannel, StreamState

if TYPE_CHECKING:
    from ..tasks import Spawner
    from .base import OnOpen
    from .reader import Watched

__all__ = ["LegacySSETransport", "resolve_endpoint"]

logger = logging.getLogger("mcpconn.transport")

_DEFAULT_PORTS = {"http": 80, "https": 443}


def _origin(url: httpx.URL) -> tuple[str, str, int | None]:
    return (url.scheme, url.host.lower(), url.port or _DEFAULT_PORTS.get(url.scheme))


def resolve_endpoint(sse_url: str, data: str) -> str:
    """Resolve the ``endpoint`` event's URI; refuse one on another origin."""
    base = httpx.URL(sse_url)
    try:
        target = base.join(data.strip())
        # .host decodes punycode: "http://xn--a/" raises idna's UnicodeError here
        origin = _origin(target)
    except (httpx.InvalidURL, ValueError) as exc:
        raise ProtocolError("the endpoint event is not a valid URI") from exc
    if origin != _origin(base):
        raise ProtocolError("the endpoint event names another origin; refusing to post there")
    return str(target)


class LegacySSETransport:
    """One 2024-11-05 session: the SSE stream (read by a task) plus POSTs."""

    era: Era = LEGACY_SSE.name

    def __init__(
        self,
        channel: HTTPChannel,
        url: str,
        task_group: Spawner,
        on_lost: Callable[[MCPConnError], None],
    ) -> None:
        self.channel = channel
        self.url = url
        self.endpoint: str | None = None
        self.protocol_version: str | None = None
        self.session_id: str | None = None
        self._tg = task_group
        self._on_lost = on_lost
        self._ready = anyio.Event()
        self._closed = anyio.Event()
        self._error: MCPConnError | None = None
        self._skipped = 0
        self._scope = anyio.CancelScope()

    @property
    def skipped(self) -> int:
        return self._skipped

    async def start(self, dispatch: Dispatch) -> None:
        """Open the SSE stream and wait for its ``endpoint`` event."""
        self._tg.start_soon(self._read, dispatch)
        await self._ready.wait()
        if self.endpoint is None:
            assert self._error is not None
            raise self._error

    async def _read(self, dispatch: Dispatch) -> None:
        error: MCPConnError = SessionLost("the legacy SSE session is closed")
        try:
            with self._scope:
                await self._run(dispatch)
            if not self._scope.cancel_called:
                error = SessionLost("the legacy SSE stream ended; the session is gone")
        except MCPConnError as exc:
            error = exc
        finally:
            self._error = error
            self._ready.set()
            self._closed.set()
            logger.debug("legacy SSE stream closed: %s", type(error).__name__)
            if not self._scope.cancel_called:  # closed by us: nobody left to tell
                self._on_lost(self.gone())

    async def _run(self, dispatch: Dispatch) -> None:
        async with self.channel.open("GET", self.url, headers={"Accept": ACCEPT_SSE}) as resp:
            self.channel.raise_for_status(resp, had_session=False, era=self.era)
            self.channel.accept_stream(resp, None)
            await self._pump(resp, dispatch)

    async def _pump(self, response: httpx.Response, dispatch: Dispatch) -> None:
        def on_event(event: ServerSentEvent) -> bool:
            if self.endpoint is None:
                if event.event == "endpoint":
                    self.endpoint = resolve_endpoint(self.url, event.data)
                    self._ready.set()
                else:
                    self._skipped += 1
                return False
            if event.event not in ("", "message") or not event.data:
                return False
            try:
                message = self.channel.parse(event.data)
            except InvalidMessage:
                self._skipped += 1
                logger.debug("skipped an SSE event that is not JSON-RPC")
                return False
            dispatch(message)
            return False

        await self.channel.consume(response, StreamState(), on_event)
        if self.endpoint is None:
            raise ProtocolError("the SSE stream ended before its endpoint event")

    def gone(self) -> MCPConnError:
        """The error every call gets once the stream is gone."""
        error = self._error
        if isinstance(error, SessionLost) or error is None:
            return error or SessionLost("the legacy SSE session is closed")
        gone = SessionLost(f"the legacy SSE stream failed ({type(error).__name__})")
        gone.__cause__ = error
        return gone

    async def _post(self, message: _jsonrpc.Message) -> None:
        if self._closed.is_set() or self.endpoint is None:
            raise self.gone()
        headers = {"Accept": ACCEPT_BOTH, "Content-Type": JSON}
        if self.protocol_version is not None:
            headers["MCP-Protocol-Version"] = self.protocol_version
        async with self.channel.open(
            "POST", self.endpoint, headers=headers, content=_jsonrpc.encode(message)
        ) as response:
            self.channel.raise_for_status(response, had_session=True, era=self.era)

    async def send_request(
        self, request: _jsonrpc.Request, *, done: Any, dispatch: Dispatch
    ) -> None:
        """POST ``request``; its response arrives on the SSE stream."""
        await self._post(request)

    async def send_message(self, message: _jsonrpc.Message) -> None:
        await self._post(message)

    async def listen(
        self,
        dispatch: Dispatch,
        request: _jsonrpc.Request | None = None,
        *,
        on_open: OnOpen = None,
        restart_on: Watched | None = None,
    ) -> None:
        """Wait until the SSE stream ends, then raise `SessionLost`.

        The stream is the session: it has been open since `start`, so ``on_open``
        is called at once.
        """
        if on_open is not None:
            on_open()
        await self._closed.wait()
        raise self.gone()

    async def aclose(self, close_by: float | None = None) -> None:
        """Stop the reader, which closes the stream in its own task."""
        self._scope.cancel()
        self._closed.set()
