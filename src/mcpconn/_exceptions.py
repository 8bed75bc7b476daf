"""The whole error tree of mcpconn.

Every error we raise derives from `MCPConnError`, so one ``except`` catches all
of ours. Errors carry data (status codes, challenges, JSON-RPC codes), never a
token: no ``str()`` or ``repr()`` here may contain a credential.

    MCPConnError
    ├── MalformedTokenError          a JWT-looking string we cannot read
    ├── TokenProviderError           the provider raised, hung or returned garbage
    ├── ReauthRequired               only a human can fix this (parked connection)
    ├── InsecureTransportError       bearer token over plain http to a remote host
    ├── OAuthError                   an authorization server refused or sent garbage
    ├── ConnectionClosed             a call on a closed connection or supervisor
    ├── RequestTimeout               a request got no response in time
    ├── JSONRPCError                 the server answered with a JSON-RPC error
    ├── InputRequired                2026 MRTR: the server needs input before it can finish
    └── TransportError               anything between us and the server
        ├── NetworkError             refused, reset, DNS, TLS
        │   └── ConnectError         never connected: the request did not leave
        ├── ReadTimeout              a stalled stream or response
        ├── StreamEnded              a stream closed cleanly (carries `retry`)
        │   └── SessionReinitialized the listener's session was forgotten and made anew
        ├── SessionLost              the server's side of the session is gone
        │   └── SessionExpired       (also an HTTPStatusError, below)
        ├── ProtocolError            bytes that are not MCP
        │   ├── UnexpectedContentType
        │   ├── UnsupportedProtocolVersion  the server chose a version we do not speak
        │   ├── SSELimitExceeded
        │   └── InvalidMessage       non-JSON, or JSON that is not JSON-RPC
        └── HTTPStatusError          an unexpected HTTP status
            ├── Unauthorized         401 (carries the parsed challenge and the refused Token)
            ├── Forbidden            403 (insufficient_scope parks)
            ├── SessionExpired       404/410 on a request that carried a session (a SessionLost)
            ├── MethodNotAllowed     405 (no GET listener here)
            ├── RateLimited          429 / 503 with optional Retry-After
            └── ServerError          other 5xx

The transports raise what happened (a status, a stream end, the server's own
JSON-RPC error); `mcpconn._core.classify` alone turns an error into a fact for
the sans-IO state machine (transient, auth, session lost, permanent).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

from ._core.challenge import Challenge as Challenge
from ._core.challenge import quotable_error, quotable_oauth_error

if TYPE_CHECKING:
    from ._core.token import Token


class MCPConnError(Exception):
    """Root of every error mcpconn raises."""


class MalformedTokenError(MCPConnError, ValueError):
    """A string that looks like a JWT but whose claims cannot be read.

    The message says what is wrong with the *shape*; it never quotes the token.
    """


class TokenProviderError(MCPConnError):
    """The token provider failed: raised, timed out, or returned no usable token.

    The provider's own exception (if any) is the ``__cause__``.
    """

    def __init__(self, message: str, *, principal: str, audience: str | None = None) -> None:
        super().__init__(message)
        self.principal = principal
        self.audience = audience


class ReauthRequired(MCPConnError):
    """Only a human can fix this: the user must log in again.

    Raised by a provider to say so, and raised at once by calls on a connection
    parked in ``NEEDS_REAUTH``.
    """

    def __init__(
        self,
        message: str = "re-authentication required",
        *,
        server: str | None = None,
        principal: str | None = None,
        challenge: Challenge | None = None,
    ) -> None:
        super().__init__(message)
        self.server = server
        self.principal = principal
        self.challenge = challenge

    def __str__(self) -> str:
        where = []
        if self.server is not None:
            where.append(f"server={self.server!r}")
        if self.principal is not None:
            where.append(f"principal={self.principal!r}")
        error = quotable_error(self.challenge)
        if error:
            where.append(f"error={error!r}")
        base = super().__str__()
        return f"{base} ({', '.join(where)})" if where else base


class InsecureTransportError(MCPConnError):
    """Refused to send a bearer token over plain http to a non-loopback host."""


class OAuthError(MCPConnError):
    """An OAuth step failed (``mcpconn.oauth``): metadata, registration, redirect or token.

    ``error`` is the OAuth error code when the server sent a well-formed one
    (``invalid_grant``...); the server's description is never kept.
    """

    def __init__(
        self, message: str, *, error: str | None = None, status_code: int | None = None
    ) -> None:
        code = quotable_oauth_error(error)
        super().__init__(f"{message} ({code})" if code else message)
        self.error = code
        self.status_code = status_code


class ConnectionClosed(MCPConnError):
    """The connection (or its supervisor) is closed; the call was not sent."""


class RequestTimeout(MCPConnError):
    """No response arrived within the request's timeout.

    A ``notifications/cancelled`` was sent for the request (where the era has
    one); a late response is ignored.
    """


class JSONRPCError(MCPConnError):
    """The server answered a request with a JSON-RPC error object."""

    def __init__(self, code: int, message: str, data: Any = None) -> None:
        super().__init__(f"JSON-RPC error {code}: {message}")
        self.code = code
        self.message = message
        self.data = data

    def __reduce__(self) -> tuple[Any, ...]:
        return (type(self), (self.code, self.message, self.data))


class InputRequired(MCPConnError):
    """A 2026-07-28 result with ``resultType: "input_required"``: not a final answer.

    ``input_requests`` are the raw wire input requests (key -> request);
    ``request_state`` is the opaque state to echo verbatim on the retry (see
    ``call_tool(..., input_responses=..., request_state=...)``).
    """

    def __init__(
        self, message: str, *, input_requests: Mapping[str, Any], request_state: str | None
    ) -> None:
        super().__init__(message)
        self.input_requests: dict[str, Any] = dict(input_requests)
        self.request_state = request_state


class TransportError(MCPConnError):
    """Something between us and the server went wrong."""


class NetworkError(TransportError):
    """Connection refused, reset, or another socket-level failure."""


class ConnectError(NetworkError):
    """The connection could not be opened (refused, DNS, TLS, connect timeout).

    The request never reached the server, so it is safe to send again.
    """


class ReadTimeout(TransportError):
    """The server stopped sending: a stalled stream or a slow response."""


class StreamEnded(TransportError):
    """A stream closed cleanly. ``retry`` is the server's ``retry:`` in seconds, if it sent
    a usable one (``retry: 0`` and absurd values are none: see `mcpconn._core.bounds`)."""

    def __init__(self, message: str = "stream ended", *, retry: float | None = None) -> None:
        super().__init__(message)
        self.retry = retry


class SessionReinitialized(StreamEnded):
    """The server forgot the listener's session (a 404) and a new one was initialized.

    The listener's stream is over with its session: listen again at once, on
    the new session (``retry`` is None). Nothing the old stream missed is
    replayed: the new session's lists are fresh.
    """

    def __init__(
        self, message: str = "the server forgot the session; it was re-initialized"
    ) -> None:
        super().__init__(message, retry=None)


class SessionLost(TransportError):
    """The server's side of the session is gone; only a new session helps.

    Raised as is when the legacy SSE stream that *was* the session ends or
    breaks (its own error, if any, is the ``__cause__``); an HTTP 404/410 that
    says so is the more specific `SessionExpired`.
    """


class ProtocolError(TransportError):
    """The server sent something that is not valid MCP."""


class UnsupportedProtocolVersion(ProtocolError):
    """The server settled on a protocol version we do not speak: no retry can fix that."""


class UnexpectedContentType(ProtocolError):
    """A response had a content type we did not ask for."""

    def __init__(self, content_type: str | None) -> None:
        super().__init__(f"unexpected content type {content_type!r}")
        self.content_type = content_type


class SSELimitExceeded(ProtocolError):
    """An SSE line or event was larger than the configured limit."""

    def __init__(self, what: str, limit: int) -> None:
        super().__init__(f"SSE {what} exceeds the limit of {limit} bytes")
        self.what = what
        self.limit = limit


class InvalidMessage(ProtocolError):
    """Data that is not JSON, or JSON that is not a JSON-RPC 2.0 message."""


class HTTPStatusError(TransportError):
    """The server answered with a status we did not expect."""

    def __init__(self, status_code: int, message: str | None = None) -> None:
        super().__init__(message or f"unexpected HTTP status {status_code}")
        self.status_code = status_code


class Unauthorized(HTTPStatusError):
    """401: the server rejected our token (after the one forced refresh).

    ``challenge`` is the parsed ``WWW-Authenticate``; ``rejected`` the `Token`
    the server refused, when mcpconn sent it (what a forced refresh replaces).
    Neither ever shows the credential: the message names only the error code.
    """

    def __init__(
        self, challenge: Challenge | None = None, *, rejected: Token | None = None
    ) -> None:
        code = quotable_error(challenge)
        super().__init__(401, f"401 Unauthorized ({code})" if code else "401 Unauthorized")
        self.challenge = challenge
        self.rejected = rejected


class Forbidden(HTTPStatusError):
    """403: ``insufficient_scope`` means a human must grant more scope."""

    def __init__(self, challenge: Challenge | None = None) -> None:
        code = quotable_error(challenge)
        super().__init__(403, f"403 Forbidden ({code})" if code else "403 Forbidden")
        self.challenge = challenge

    @property
    def insufficient_scope(self) -> bool:
        return self.challenge is not None and self.challenge.error == "insufficient_scope"


class SessionExpired(HTTPStatusError, SessionLost):
    """404/410 on a request that carried ``Mcp-Session-Id``: the session is gone."""


class MethodNotAllowed(HTTPStatusError):
    """405: the endpoint does not offer this method (e.g. no GET listener)."""

    def __init__(self, message: str | None = None) -> None:
        super().__init__(405, message or "405 Method Not Allowed")


class RateLimited(HTTPStatusError):
    """429 or 503; ``retry_after`` is in seconds when the server gave a usable hint
    (uncapped; a past date, ``0``, a negative or garbage is ``None``)."""

    def __init__(self, status_code: int, retry_after: float | None = None) -> None:
        hint = f", retry after {retry_after:g}s" if retry_after is not None else ""
        super().__init__(status_code, f"HTTP {status_code}{hint}")
        self.retry_after = retry_after


class ServerError(HTTPStatusError):
    """A 5xx other than 503."""
