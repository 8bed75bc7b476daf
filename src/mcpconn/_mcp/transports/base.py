"""What every HTTP transport shares: one error boundary, bounded reads, one send path.

httpx errors are translated exactly once, in `map_httpx_errors` (the shape of
httpx's own ``map_httpcore_exceptions``). Every request goes through
`HTTPChannel.open`, which passes the caller's ``auth`` object to
``client.send`` on *every* request (GET streams and DELETE included), so the
token is read per request, never frozen into a header at connect time. Every
request sets ``follow_redirects=False``: an MCP endpoint that answers 3xx is
misconfigured, and following it could carry the bearer token elsewhere, so a
3xx is reported as an unexpected status.
"""

from __future__ import annotations

import json
import logging
import time
from collections.abc import AsyncIterator, Callable, Iterator, Mapping
from contextlib import asynccontextmanager, contextmanager
from dataclasses import dataclass
from typing import Any, Literal

import anyio
import httpx
from httpx_sse import ServerSentEvent

from ..._config import ServerConfig
from ..._core import http_rules as _http_rules
from ..._core import jsonrpc as _jsonrpc
from ..._core.sse import SSEDecoder
from ..._exceptions import (
    HTTPStatusError,
    JSONRPCError,
    MCPConnError,
    NetworkError,
    ProtocolError,
    ReadTimeout,
    TransportError,
)
from ..._http import send as _http_send

__all__ = [
    "ACCEPT_BOTH",
    "ACCEPT_SSE",
    "Dispatch",
    "Era",
    "HTTPChannel",
    "StreamLost",
    "StreamState",
    "map_httpx_errors",
]

logger = logging.getLogger("mcpconn.transport")

Era = Literal["sse", "streamable-http", "stateless"]
#: The session's sync message sink: resolves requests, routes notifications.
Dispatch = Callable[[_jsonrpc.Message], None]

ACCEPT_BOTH = "application/json, text/event-stream"
ACCEPT_SSE = "text/event-stream"
JSON = "application/json"
SSE = "text/event-stream"


class StreamLost(TransportError):
    """A request's response stream ended or broke before its response arrived.

    Private to the transports and the session: in the stateless era the
    session re-issues the request once (with a new id) on this; elsewhere it
    reaches the caller as the `TransportError` it is.
    """


@contextmanager
def map_httpx_errors() -> Iterator[None]:
    """Translate httpx's exceptions into ours, once, at the boundary."""
    try:
        yield
    except httpx.TimeoutException as exc:
        # Connect/write/pool timeouts are network failures; a read timeout is a stall.
        if isinstance(exc, httpx.ReadTimeout):
            raise ReadTimeout(f"no data within the read timeout ({type(exc).__name__})") from exc
        raise NetworkError(f"timed out connecting or sending ({type(exc).__name__})") from exc
    except (httpx.ConnectError, httpx.ReadError, httpx.WriteError, httpx.CloseError) as exc:
        raise NetworkError(f"network error ({type(exc).__name__})") from exc
    except httpx.RemoteProtocolError as exc:
        raise NetworkError(f"connection broken ({type(exc).__name__})") from exc
    except httpx.ProxyError as exc:
        raise NetworkError(f"proxy error ({type(exc).__name__})") from exc
    except httpx.UnsupportedProtocol as exc:
        raise ProtocolError(f"unsupported URL scheme ({type(exc).__name__})") from exc
    except httpx.TransportError as exc:
        raise NetworkError(f"transport error ({type(exc).__name__})") from exc


@dataclass
class StreamState:
    """What survives a broken SSE stream: the id to resume from and the server's retry."""

    last_event_id: str = ""
    retry_ms: int | None = None

    @property
    def retry(self) -> float | None:
        return None if self.retry_ms is None else self.retry_ms / 1000.0


class HTTPChannel:
    """The I/O every transport needs: send with auth and limits, read JSON or SSE."""

    def __init__(
        self, client: httpx.AsyncClient, config: ServerConfig, auth: httpx.Auth | None
    ) -> None:
        self.client = client
        self.config = config
        self.auth = auth
        t = config.timeouts
        self.timeout = httpx.Timeout(t.connect, read=t.read)
        self._urls: dict[str, httpx.URL] = {}

    def _url(self, url: str) -> httpx.URL:
        """Parsed once per URL (a session uses one or two), not once per request."""
        parsed = self._urls.get(url)
        if parsed is None:
            if len(self._urls) >= 8:
                self._urls.clear()
            parsed = self._urls[url] = httpx.URL(url)
        return parsed

    def headers(self, extra: Mapping[str, str]) -> dict[str, str]:
        merged = dict(self.config.headers)
        merged.update(extra)
        return merged

    @asynccontextmanager
    async def open(
        self,
        method: str,
        url: str,
        *,
        headers: Mapping[str, str],
        content: bytes | None = None,
    ) -> AsyncIterator[httpx.Response]:
        """Send one request and yield the streaming response; always closes it."""
        with map_httpx_errors():
            response = await _http_send.send(
                self.client,
                method,
                self._url(url),
                headers=self.headers(headers),
                content=content,
                auth=self.auth,
                timeout=self.timeout,
            )
        try:
            yield response
        finally:
            with map_httpx_errors():
                await response.aclose()

    def raise_for_status(self, response: httpx.Response, *, had_session: bool, era: Era) -> None:
        """Raise the typed error for a non-2xx status (3xx included: we never follow)."""
        status = response.status_code
        if 200 <= status < 300:
            return
        error = _http_rules.error_for_status(
            status, response.headers, had_session=had_session, era=era, now=time.time()
        )
        raise error if error is not None else HTTPStatusError(status)

    async def read_body(self, response: httpx.Response) -> bytes:
        """Read a JSON body incrementally, refusing more than the configured limit."""
        limit = self.config.limits.max_json_response_bytes
        declared = response.headers.get("content-length", "")
        if declared.isdigit() and int(declared) > limit:
            raise ProtocolError(f"JSON body of {declared} bytes exceeds the limit of {limit}")
        chunks: list[bytes] = []
        size = 0

        def on_chunk(chunk: bytes) -> bool:
            nonlocal size
            size += len(chunk)
            if size > limit:
                raise ProtocolError(f"JSON body exceeds the limit of {limit} bytes")
            chunks.append(chunk)
            return False

        await iterate(response, on_chunk)
        return b"".join(chunks)

    async def read_message(self, response: httpx.Response) -> _jsonrpc.Message:
        return _jsonrpc.parse_message(await self.read_body(response))

    async def rpc_error_body(self, response: httpx.Response) -> JSONRPCError | None:
        """The JSON-RPC error a 4xx carries in its JSON body, if it carries one."""
        if _http_rules.media_type(response.headers.get("content-type")) != JSON:
            return None
        try:
            message = _jsonrpc.parse_message(await self.read_body(response))
        except (ProtocolError, NetworkError, ReadTimeout):
            return None
        if isinstance(message, _jsonrpc.ErrorResponse):
            return message.error
        return None

    async def consume(
        self,
        response: httpx.Response,
        state: StreamState,
        on_event: Callable[[ServerSentEvent], bool],
    ) -> bool:
        """Feed the SSE events of ``response`` to ``on_event`` until it returns True.

        Returns True if ``on_event`` stopped it, False at the end of the stream.
        Bounded by the SSE limits; ``state`` keeps the last event id and retry.
        """
        limits = self.config.limits
        decoder = SSEDecoder(
            max_line_bytes=limits.max_sse_line_bytes,
            max_event_bytes=limits.max_sse_event_bytes,
            last_event_id=state.last_event_id,
        )

        def on_chunk(chunk: bytes) -> bool:
            events = decoder.feed(chunk)
            state.last_event_id = decoder.last_event_id
            if decoder.retry is not None:
                state.retry_ms = decoder.retry
            for event in events:  # noqa: SIM110 - a plain loop: no generator per chunk
                if on_event(event):
                    return True
            return False

        if await iterate(response, on_chunk):
            return True
        return any(on_event(event) for event in decoder.close())


async def iterate(response: httpx.Response, on_chunk: Callable[[bytes], bool]) -> bool:
    """Feed the body to ``on_chunk`` until it returns True (-> True) or raises.

    We never leave the body's iterator early: httpx/httpcore nest async
    generators, and abandoning them suspended at a ``yield`` leaves them to the
    garbage collector (trio warns). To stop early we cancel a scope around the
    loop instead: the cancellation lands inside the innermost read and unwinds
    every generator properly. Then the caller closes the response.
    """
    stopped = False
    failure: MCPConnError | None = None
    with anyio.CancelScope() as scope, map_httpx_errors():
        async for chunk in response.aiter_bytes():
            if stopped or failure is not None:
                continue
            try:
                stopped = on_chunk(chunk)
            except MCPConnError as exc:
                failure = exc
            if stopped or failure is not None:
                scope.cancel()
    if failure is not None:
        raise failure
    return stopped


def is_message_event(event: ServerSentEvent) -> bool:
    """MCP messages ride on ``message`` events (the SSE default type) with data."""
    return event.event in ("", "message") and bool(event.data)


def notification_dict(message: _jsonrpc.Notification) -> dict[str, Any]:
    """The wire shape handed to ``on_notification``."""
    out: dict[str, Any] = {"jsonrpc": "2.0", "method": message.method}
    if message.params is not None:
        out["params"] = message.params
    return out


def describe(message: object) -> str:
    """A log-safe description: the type and method, never the payload."""
    method = getattr(message, "method", None)
    return f"{type(message).__name__}({method!r})" if method else type(message).__name__


def dumps(obj: Any) -> bytes:
    return json.dumps(obj, separators=(",", ":")).encode()
