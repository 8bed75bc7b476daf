"""The one classifier: (operation x error) -> the fact the machine is fed.

Sans-IO: a plain function over our exception tree. Transports raise what
happened (a status, a stream end, a JSON-RPC error); only here does that
become a decision-shaped fact (auth, session lost, transient, permanent).
"""

from __future__ import annotations

from typing import Literal

from .._exceptions import (
    Forbidden,
    InsecureTransportError,
    JSONRPCError,
    MethodNotAllowed,
    RateLimited,
    ReauthRequired,
    SessionExpired,
    StreamEnded,
    Unauthorized,
    UnsupportedProtocolVersion,
)
from .machine import Fact, Input

__all__ = ["Operation", "classify", "describe"]

#: What was being done when the error happened.
Operation = Literal["connect", "listen", "call", "ping"]


def classify(error: BaseException, *, during: Operation) -> Fact:
    """Turn what went wrong into a fact. ``during`` is "connect", "listen" or "call".

    Only auth-shaped failures are auth facts; everything that a later attempt can
    fix is transient; what no retry can fix (our own configuration, a server that
    refuses every protocol version we speak) is permanent.
    """
    reason = describe(error)
    if isinstance(error, Unauthorized):
        return Fact(Input.UNAUTHORIZED, reason=reason)
    if isinstance(error, Forbidden | ReauthRequired):
        kind = Input.SCOPE_DENIED if isinstance(error, Forbidden) else Input.REAUTH_REQUIRED
        return Fact(kind, reason=reason)
    if isinstance(error, SessionExpired):
        return Fact(Input.SESSION_LOST, reason=reason)
    if isinstance(error, StreamEnded):
        return Fact(Input.STREAM_ENDED, retry=error.retry, reason=reason)
    if isinstance(error, UnsupportedProtocolVersion):  # on a connect or a re-initialize
        return Fact(Input.PERMANENT_FAILURE, reason=reason)
    if during == "listen":
        return _classify_listener(error, reason)
    if isinstance(error, RateLimited):
        return Fact(Input.TRANSIENT_FAILURE, retry_after=error.retry_after, reason=reason)
    if isinstance(error, InsecureTransportError) or (
        isinstance(error, JSONRPCError) and during == "connect"
    ):
        return Fact(Input.PERMANENT_FAILURE, reason=reason)
    return Fact(Input.TRANSIENT_FAILURE, reason=reason)


def _classify_listener(error: BaseException, reason: str) -> Fact:
    """A listener failure that is not about auth or the session.

    Only a 405 is the spec's "no listener here": not retried on this session.
    Everything else (network, 5xx, 429/503, timeouts, garbage, another 4xx, a
    wrong content type) retries the listener on the same session with backoff,
    so one bad answer never silences a long-lived session for good, and a
    server without a GET endpoint costs at most one request per backoff cap.
    """
    if isinstance(error, MethodNotAllowed):
        return Fact(Input.NO_LISTENER, reason=reason)
    retry_after = error.retry_after if isinstance(error, RateLimited) else None
    return Fact(Input.LISTENER_FAILED, retry_after=retry_after, reason=reason)


def describe(error: BaseException) -> str:
    """``"Name: message"``: our messages never carry a token (see `_exceptions`)."""
    text = str(error)
    name = type(error).__name__
    return f"{name}: {text}" if text else name
