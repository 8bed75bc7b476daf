"""What every HTTP transport shares: one error boundary, bounded reads, one send path.

httpx errors are translated exactly once, in `map_httpx_errors` (`errors`).
Server text enters our errors only through the channel
(`HTTPChannel.raise_for_status`, `HTTPChannel.parse`, `HTTPChannel.content_type`,
`HTTPChannel.clean`), which hands the core's parsers the credentials it sent
(`HTTPChannel.secrets`, read back from each response's request, or from the
response itself when `mcpconn._http.send` sent it without one) so that the one
sanitizer can redact an echoed token. Every request goes through `HTTPChannel.open`,
which passes the caller's ``auth`` object to `mcpconn._http.send` on *every*
request (GET streams and DELETE included), so the token is read per request,
never frozen into a header at connect time. Every
request sets ``follow_redirects=False``: an MCP endpoint that answers 3xx is
misconfigured, and following it could carry the bearer token elsewhere, so a
3xx is reported as an unexpected status.
"""

from __future__ import annotations

import functools
import json
import logging
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

import httpx

from ..._config import ServerConfig
from ..._core import http_rules as _http_rules
from ..._core import jsonrpc as _jsonrpc
from ..._core.bounds import parse_digits, wait_hint
from ..._core.content_coding import ACCEPT_ENCODING
from ..._core.eras import Era, StreamLost
from ..._core.sanitize import sanitize
from ..._core.sse import ServerSentEvent, SSEDecoder
from ..._exceptions import (
    Forbidden,
    HTTPStatusError,
    JSONRPCError,
    NetworkError,
    ProtocolError,
    ReadTimeout,
    Unauthorized,
)
from ..._http import send as _http_send
from ..._tokens.auth import BearerAuth
from .bodies import iterate
from .errors import map_httpx_errors
from .opened import Opened

__all__ = [
    "ACCEPT_BOTH",
    "ACCEPT_SSE",
    "Dispatch",
    "Era",
    "OnOpen",
    "HTTPChannel",
    "StreamLost",
    "StreamState",
    "map_httpx_errors",
]

logger = logging.getLogger("mcpconn.transport")

#: The session's sync message sink: resolves requests, routes notifications.
Dispatch = Callable[[_jsonrpc.Message], None]
#: Called once a listener's stream is accepted (2xx, SSE): it can deliver from then on.
OnOpen = Callable[[], None] | None


ACCEPT_BOTH = "application/json, text/event-stream"
ACCEPT_SSE = "text/event-stream"
JSON = "application/json"
SSE = "text/event-stream"
#: Distinct credentials a channel remembers (newest first) to redact from server text.
REMEMBERED_CREDENTIALS = 4
#: The largest Content-Length read as one (8 EiB): beyond, the header is no number.
_MAX_CONTENT_LENGTH = (1 << 63) - 1


@dataclass(slots=True)
class StreamState:
    """What survives a broken SSE stream: the id to resume from and the server's retry."""

    last_event_id: str = ""
    retry_ms: int | None = None

    @property
    def retry(self) -> float | None:
        """The server's ``retry:`` as a wait hint in seconds; ``retry: 0`` is no hint."""
        return None if self.retry_ms is None else wait_hint(self.retry_ms / 1000.0)


def sent_credentials(response: httpx.Response) -> list[str]:
    """The credentials in the ``Authorization`` headers of the requests behind ``response``
    (an auth flow's retried request and the first one it replaced), scheme removed."""
    found: list[str] = []
    for answered in (*response.history, response):
        direct = answered.extensions.get(_http_send.SENT_CREDENTIAL)
        if direct is not None:  # sent without an httpx.Request
            found.append(direct)
            continue
        try:
            value = answered.request.headers.get("authorization")
        except RuntimeError:  # a response built without a request
            continue
        if value:
            scheme, _, credential = value.strip().partition(" ")
            found.append(credential.strip() or scheme)
    return found


@functools.lru_cache(maxsize=256)
def _parsed_url(url: str) -> httpx.URL:
    """Parsed once per URL for every session (httpx.URL is immutable), not once per request."""
    return httpx.URL(url)


@functools.lru_cache(maxsize=64)
def _timeout(connect: float | None, read: float | None) -> httpx.Timeout:
    """One `httpx.Timeout` per setting, shared by every session that has it."""
    return httpx.Timeout(connect, read=read)


class HTTPChannel:
    """The I/O every transport needs: send with auth and limits, read JSON or SSE."""

    __slots__ = ("_secrets", "auth", "client", "config", "timeout")

    def __init__(
        self, client: httpx.AsyncClient, config: ServerConfig, auth: httpx.Auth | None
    ) -> None:
        self.client = client
        self.config = config
        self.auth = auth
        self.timeout = _timeout(config.timeouts.connect, config.timeouts.read)
        self._secrets: tuple[str, ...] = ()

    def __repr__(self) -> str:
        return f"<HTTPChannel {self.config.name!r}>"

    @property
    def secrets(self) -> tuple[str, ...]:
        """The last few credentials sent on this channel: what a server may echo back.

        All of them, not only the one of the response at hand: on the legacy SSE
        transport a POST's answer arrives on the GET stream, sent with another
        token if it was refreshed in between.
        """
        return self._secrets

    def _remember(self, response: httpx.Response) -> None:
        sent = sent_credentials(response)
        if not sent or (len(sent) == 1 and self._secrets[:1] == (sent[0],)):
            return  # the common case: the same token as last time
        newest_first = [*reversed(sent), *self._secrets]
        self._secrets = tuple(dict.fromkeys(newest_first))[:REMEMBERED_CREDENTIALS]

    def clean(self, value: object) -> str:
        """Server text made safe for an error message or a log line (see `sanitize`)."""
        return sanitize(value, self._secrets)

    def parse(self, data: str | bytes) -> _jsonrpc.Message:
        """One JSON-RPC message from the server; its error text is sanitized."""
        return _jsonrpc.parse_message(data, self._secrets)

    def content_type(self, response: httpx.Response, allowed: tuple[str, ...]) -> str:
        """The response's media type if it is one of ``allowed``, else `UnexpectedContentType`."""
        return _http_rules.check_content_type(
            response.headers.get("content-type"), allowed, self._secrets
        )

    def headers(self, extra: Mapping[str, str]) -> dict[str, str]:
        merged = {"Accept-Encoding": ACCEPT_ENCODING}  # what `iterate` decodes
        merged.update(self.config.headers)
        merged.update(extra)
        return merged

    def open(
        self,
        method: str,
        url: str,
        *,
        headers: Mapping[str, str],
        content: bytes | None = None,
    ) -> Opened:
        """``async with`` it: send one request, get the streaming response; always closed."""
        return Opened(self, method, url, headers, content)

    async def _send(
        self, method: str, url: str, headers: Mapping[str, str], content: bytes | None
    ) -> httpx.Response:
        merged = self.headers(headers)
        del headers  # merged: the caller's dict is not kept for the round trip
        with map_httpx_errors():
            response = await _http_send.send(
                self.client,
                method,
                _parsed_url(url),
                headers=merged,
                content=content,
                auth=self.auth,
                timeout=self.timeout,
            )
        self._remember(response)
        return response

    def accept_stream(self, response: httpx.Response, on_open: OnOpen) -> None:
        """A listener's stream the server accepted (status checked): SSE, or
        `UnexpectedContentType`; then ``on_open``.

        The stream may stay open for hours, so it keeps nothing of its request
        (headers, URL, body: ~3 KiB): the credentials it carried are remembered
        (`secrets`), and httpx reads a response's request only as error context.
        """
        self.content_type(response, (SSE,))
        response._request = None
        if on_open is not None:
            on_open()

    def raise_for_status(self, response: httpx.Response, *, had_session: bool, era: Era) -> None:
        """Raise the typed error for a non-2xx status (3xx included: we never follow)."""
        status = response.status_code
        if 200 <= status < 300:
            return
        rejection = BearerAuth.rejection(response)  # read (and parsed) by the auth flow
        if rejection is not None:
            if status == 401:
                raise Unauthorized(rejection.challenge, rejected=rejection.token)
            raise Forbidden(rejection.challenge)
        error = _http_rules.error_for_status(
            status,
            response.headers,
            had_session=had_session,
            era=era,
            now=time.time(),
            secrets=self._secrets,
        )
        raise error if error is not None else HTTPStatusError(status)

    async def read_body(self, response: httpx.Response) -> bytes:
        """Read a JSON body incrementally, refusing more than the configured limit."""
        limit = self.config.limits.max_json_response_bytes
        declared = parse_digits(
            response.headers.get("content-length", "").strip(), high=_MAX_CONTENT_LENGTH
        )
        if declared is not None and declared > limit:
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
        return self.parse(await self.read_body(response))

    async def rpc_error_body(self, response: httpx.Response) -> JSONRPCError | None:
        """The JSON-RPC error a 4xx carries in its JSON body, if it carries one."""
        if _http_rules.media_type(response.headers.get("content-type")) != JSON:
            return None
        try:
            message = self.parse(await self.read_body(response))
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
        if await iterate(response, _SSEChunks(decoder, state, on_event)):
            return True
        return any(on_event(event) for event in decoder.close())


@dataclass(slots=True, eq=False)
class _SSEChunks:
    """`HTTPChannel.consume`'s chunk sink: SSE-decode, keep the stream state, hand each
    event on (True once ``on_event`` says stop). One object where a closure is four,
    for as long as a listener is held."""

    decoder: SSEDecoder
    state: StreamState
    on_event: Callable[[ServerSentEvent], bool]

    def __call__(self, chunk: bytes) -> bool:
        decoder, state, on_event = self.decoder, self.state, self.on_event
        events = decoder.feed(chunk)
        state.last_event_id = decoder.last_event_id
        if decoder.retry is not None:
            state.retry_ms = decoder.retry
        for event in events:  # noqa: SIM110 - a plain loop: no generator per chunk
            if on_event(event):
                return True
        return False


def is_message_event(event: ServerSentEvent) -> bool:
    """MCP messages ride on ``message`` events (the SSE default type) with data."""
    return event.event in ("", "message") and bool(event.data)


def notification_dict(message: _jsonrpc.Notification) -> dict[str, Any]:
    """The wire shape handed to ``on_notification``."""
    out: dict[str, Any] = {"jsonrpc": "2.0", "method": message.method}
    if message.params is not None:
        out["params"] = message.params
    return out


def describe(message: object, secrets: tuple[str, ...] = ()) -> str:
    """A log-safe description: the type and the (sanitized) method, never the payload."""
    method = getattr(message, "method", None)
    if not method:
        return type(message).__name__
    return f"{type(message).__name__}({sanitize(method, secrets, limit=64)!r})"


def dumps(obj: Any) -> bytes:
    return json.dumps(obj, separators=(",", ":")).encode()
