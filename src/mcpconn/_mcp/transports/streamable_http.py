"""Streamable HTTP with sessions: protocol versions 2025-03-26, 2025-06-18, 2025-11-25.

Every message is its own POST. A request's reply is one JSON object or an SSE
stream carrying related notifications (and server requests) before the
response. ``Mcp-Session-Id`` comes from the initialize reply and goes on
every later request; a 404 on a request that carried it is `SessionExpired`
(the session layer re-initializes). The optional GET stream is the listener.

Resumption: we remember each stream's last event id. A POST stream that
breaks (or ends cleanly) before its response is resumed with GET +
``Last-Event-ID`` after exactly the server's ``retry:`` (no backoff on top),
at most `MAX_RESUMES` times. The listener does not resume by itself: it
raises `StreamEnded(retry=...)` and the next `listen` sends ``Last-Event-ID``.

Listener policy: an event that is not JSON-RPC is counted in ``skipped`` and
dropped (logged at debug, without the payload); one bad message must not cost
every later notification. On a request's own stream it fails the request.
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable
from typing import Any

import anyio
import httpx

from ..._core import jsonrpc as _jsonrpc
from ..._core.eras import STREAMABLE_HTTP
from ..._exceptions import (
    InvalidMessage,
    MCPConnError,
    MethodNotAllowed,
    NetworkError,
    ProtocolError,
    StreamEnded,
)
from .base import (
    ACCEPT_BOTH,
    ACCEPT_SSE,
    JSON,
    SSE,
    Dispatch,
    Era,
    HTTPChannel,
    OnOpen,
    StreamLost,
    StreamState,
    describe,
)
from .errors import map_httpx_errors
from .reader import MessageReader, Watched

__all__ = ["MAX_RESUMES", "StreamableHTTPTransport", "check_rpc_status", "pump"]

logger = logging.getLogger("mcpconn.transport")

#: GET + Last-Event-ID attempts for one broken POST response stream.
MAX_RESUMES = 3


def _valid_session_id(value: str) -> bool:
    return bool(value) and all(0x21 <= ord(ch) <= 0x7E for ch in value)


async def check_rpc_status(
    channel: HTTPChannel, response: httpx.Response, *, had_session: bool, era: Era
) -> None:
    """Raise for a non-2xx reply; a 400 (or a 404 without a session) with a JSON-RPC
    error body raises that `JSONRPCError`: the server answered the request after all."""
    status = response.status_code
    if 200 <= status < 300:
        return
    if status == 400 or (status == 404 and not had_session):
        error = await channel.rpc_error_body(response)
        if error is not None:
            raise error
    channel.raise_for_status(response, had_session=had_session, era=era)


def pump(
    channel: HTTPChannel,
    response: httpx.Response,
    state: StreamState,
    dispatch: Dispatch,
    *,
    strict: bool,
    done: Any = None,
    counter: list[int] | None = None,
) -> Awaitable[bool]:
    """Feed the SSE messages of ``response`` to ``dispatch`` until ``done()``.

    Await it: True when ``done()`` became true, False when the stream ended. Not a
    coroutine itself: it hands back `HTTPChannel.consume`'s, so a listener held for
    hours keeps no frame of this function on its stack.
    ``strict``: a message that is not JSON-RPC raises (a request's own stream);
    otherwise it is counted in ``counter[0]`` and skipped (a listener).
    """

    reader = MessageReader(channel, state, dispatch, strict=strict, done=done, counter=counter)
    return reader.read(response)


class StreamableHTTPTransport:
    """One Streamable HTTP session's wire: POSTs, the GET listener, resumption, DELETE."""

    era: Era = STREAMABLE_HTTP.name

    def __init__(self, channel: HTTPChannel, url: str) -> None:
        self.channel = channel
        self.url = url
        self.session_id: str | None = None
        #: Set by the session once negotiated; sent on every later request.
        self.protocol_version: str | None = None
        self.listen_state = StreamState()
        self.resumptions = 0
        self._skipped = [0]

    @property
    def skipped(self) -> int:
        return self._skipped[0]

    def _headers(self, accept: str, *, body: bool = False, session: bool = True) -> dict[str, str]:
        headers = {"Accept": accept}
        if body:
            headers["Content-Type"] = JSON
        if session and self.session_id is not None:
            headers["Mcp-Session-Id"] = self.session_id
        if session and self.protocol_version is not None:
            headers["MCP-Protocol-Version"] = self.protocol_version
        return headers

    async def start(self, dispatch: Dispatch) -> None:
        """Nothing to open before the first POST."""

    async def send_request(
        self, request: _jsonrpc.Request, *, done: Any, dispatch: Dispatch
    ) -> None:
        """POST ``request`` and pump its reply until ``done()`` (the response arrived)."""
        # initialize opens a new session, so it never carries the old one: until it
        # succeeds, concurrent requests keep the old id and meet its 404 themselves.
        initialize = request.method == "initialize"
        headers = self._headers(ACCEPT_BOTH, body=True, session=not initialize)
        had_session = "Mcp-Session-Id" in headers
        state = StreamState()
        cause: MCPConnError | None = None
        async with self.channel.open(
            "POST", self.url, headers=headers, content=_jsonrpc.encode(request)
        ) as response:
            await check_rpc_status(self.channel, response, had_session=had_session, era=self.era)
            if initialize:
                self._capture_session_id(response)
            if response.status_code == 202:
                raise ProtocolError("the server answered a request with 202 and no response")
            kind = self.channel.content_type(response, (JSON, SSE))
            if kind == JSON:
                message = await self.channel.read_message(response)
                if isinstance(message, _jsonrpc.ErrorResponse) and message.id is None:
                    raise message.error  # e.g. a parse error the server could not attribute
                dispatch(message)
                if not done():
                    got = describe(message, self.channel.secrets)
                    raise InvalidMessage(f"the JSON reply was {got}, not the response")
                return
            try:
                if await pump(self.channel, response, state, dispatch, strict=True, done=done):
                    return
            except NetworkError as exc:
                cause = exc
        await self._resume(state, dispatch, done, cause)

    def _capture_session_id(self, response: httpx.Response) -> None:
        value = response.headers.get("mcp-session-id")
        if value is None:
            return
        if not _valid_session_id(value):
            raise ProtocolError("the server sent an Mcp-Session-Id that is not visible ASCII")
        if value != self.session_id:
            self.session_id = value
            self.listen_state = StreamState()  # event ids of the old session mean nothing

    async def _resume(
        self, state: StreamState, dispatch: Dispatch, done: Any, cause: MCPConnError | None
    ) -> None:
        for _ in range(MAX_RESUMES):
            if not state.last_event_id:
                break
            if state.retry is not None:
                await anyio.sleep(state.retry)
            self.resumptions += 1
            headers = self._headers(ACCEPT_SSE)
            headers["Last-Event-ID"] = state.last_event_id
            had_session = "Mcp-Session-Id" in headers
            try:
                async with self.channel.open("GET", self.url, headers=headers) as response:
                    await check_rpc_status(
                        self.channel, response, had_session=had_session, era=self.era
                    )
                    self.channel.content_type(response, (SSE,))
                    if await pump(self.channel, response, state, dispatch, strict=True, done=done):
                        return
            except MethodNotAllowed as exc:
                raise StreamLost("the response stream broke and cannot be resumed") from exc
            except NetworkError as exc:
                cause = exc
        raise StreamLost("the response stream ended before the response") from cause

    async def send_message(self, message: _jsonrpc.Message) -> None:
        """POST a notification or a response; the server acknowledges with 202."""
        headers = self._headers(ACCEPT_BOTH, body=True)
        had_session = "Mcp-Session-Id" in headers
        async with self.channel.open(
            "POST", self.url, headers=headers, content=_jsonrpc.encode(message)
        ) as response:
            await check_rpc_status(self.channel, response, had_session=had_session, era=self.era)

    async def listen(
        self,
        dispatch: Dispatch,
        request: _jsonrpc.Request | None = None,
        *,
        on_open: OnOpen = None,
        restart_on: Watched | None = None,
    ) -> None:
        """Run the GET listener once; see `Session.listen` for what it raises.

        ``on_open`` is called once the server accepted the stream (2xx, SSE):
        from then on it can deliver what it sends on the GET stream.
        """
        state = self.listen_state
        headers = self._headers(ACCEPT_SSE)
        had_session = "Mcp-Session-Id" in headers
        if state.last_event_id:
            headers["Last-Event-ID"] = state.last_event_id
        opened = self.channel.open("GET", self.url, headers=headers)
        async with opened as response:
            del headers
            self.channel.raise_for_status(response, had_session=had_session, era=self.era)
            self.channel.accept_stream(response, on_open)
            del response  # the reader lets go of it (`MessageReader.read_opened`)
            reader = MessageReader(
                self.channel, state, dispatch, strict=False, counter=self._skipped
            )
            with map_httpx_errors():
                await reader.read_opened(opened)
        raise StreamEnded("the listener stream ended", retry=state.retry)

    async def aclose(self, close_by: float | None = None) -> None:
        """DELETE the session by ``close_by`` (default ``timeouts.close`` from now); any
        failure is only logged. No time left: dropped without it (the server's idle
        timeout ends it), as when the DELETE runs out of time."""
        if self.session_id is None:
            return
        headers = self._headers(ACCEPT_BOTH)
        self.session_id = None
        now = anyio.current_time()
        if close_by is None:
            close_by = now + self.channel.config.timeouts.close
        elif close_by <= now:
            logger.debug("DELETE session skipped: the close had no time left")
            return
        with anyio.CancelScope(shield=True), anyio.CancelScope(deadline=close_by):
            try:
                async with self.channel.open("DELETE", self.url, headers=headers) as response:
                    logger.debug("DELETE session: HTTP %d", response.status_code)
            except MCPConnError as exc:
                logger.debug("DELETE session failed: %s", type(exc).__name__)
