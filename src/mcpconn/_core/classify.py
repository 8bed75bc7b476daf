"""The one classifier: (operation x error) -> the fact the machine is fed.

Sans-IO: a plain function over our exception tree. The transports raise what
happened (an HTTP status, a stream end, the server's own JSON-RPC error, a
connect that never left); only here does that become a decision-shaped fact:
auth, session lost, no listener, transient or permanent. Nothing else in
mcpconn turns an error into a fact, and nothing here looks at ``__cause__``.

The operations:

* ``connect``: opening a session (the handshake included).
* ``listen``: the server-to-client stream of an open session.
* ``ping``: the keep-alive request on an open session.
* ``call``: the embedder's own request. Most of its errors are the caller's
  business (a tool's JSON-RPC error, a timeout): those are no fact at all
  (``None``); only what says something about the connection is one.
"""

from __future__ import annotations

from typing import Literal, overload

from .._exceptions import (
    Forbidden,
    InsecureTransportError,
    JSONRPCError,
    MethodNotAllowed,
    RateLimited,
    ReauthRequired,
    SessionLost,
    SessionReinitialized,
    StreamEnded,
    Unauthorized,
    UnsupportedProtocolVersion,
)
from .jsonrpc import METHOD_NOT_FOUND
from .machine import Fact, Input

__all__ = ["Operation", "classify", "describe"]

#: What was being done when the error happened.
Operation = Literal["connect", "listen", "ping", "call"]


@overload
def classify(error: BaseException, *, during: Literal["connect", "listen", "ping"]) -> Fact: ...
@overload
def classify(error: BaseException, *, during: Operation) -> Fact | None: ...
def classify(error: BaseException, *, during: Operation) -> Fact | None:
    """The fact ``error`` means when it happened ``during`` an operation.

    Only auth-shaped failures are auth facts; everything that a later attempt can
    fix is transient; what no retry can fix (our own configuration, a server that
    refuses every protocol version we speak) is permanent.
    """
    fact = _about_the_connection(error)
    if fact is not None or during == "call":
        return fact
    reason = describe(error)
    if isinstance(error, SessionReinitialized):  # a new session under the listener: listen now
        return Fact(Input.STREAM_ENDED, retry=None, reason=reason)
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


def _about_the_connection(error: BaseException) -> Fact | None:
    """What means the same whatever was being done: auth and a lost session.

    An auth fact carries the rejection's data (challenge, refused token) so the
    shell never has to look inside the error or the auth object for it.
    """
    if isinstance(error, Unauthorized):
        return Fact(
            Input.UNAUTHORIZED,
            reason=describe(error),
            challenge=error.challenge,
            rejected=error.rejected,
        )
    if isinstance(error, Forbidden):
        return Fact(Input.SCOPE_DENIED, reason=describe(error), challenge=error.challenge)
    if isinstance(error, ReauthRequired):
        return Fact(Input.REAUTH_REQUIRED, reason=describe(error), challenge=error.challenge)
    if isinstance(error, SessionLost):  # SessionExpired included
        return Fact(Input.SESSION_LOST, reason=describe(error))
    return None


def _classify_listener(error: BaseException, reason: str) -> Fact:
    """A listener failure that is not about auth or the session.

    Only the spec's "no listener here" is not retried on this session: a 405 to
    the GET, or -32601 (method not found) to ``subscriptions/listen``.
    Everything else (network, 5xx, 429/503, timeouts, garbage, another 4xx, a
    wrong content type, another JSON-RPC error) retries the listener on the
    same session with backoff, so one bad answer never silences a long-lived
    session for good, and a server without a listener costs at most one request
    per backoff cap.
    """
    if isinstance(error, MethodNotAllowed) or (
        isinstance(error, JSONRPCError) and error.code == METHOD_NOT_FOUND
    ):
        return Fact(Input.NO_LISTENER, reason=reason)
    retry_after = error.retry_after if isinstance(error, RateLimited) else None
    return Fact(Input.LISTENER_FAILED, retry_after=retry_after, reason=reason)


def describe(error: BaseException) -> str:
    """``"Name: message"``: our messages never carry a token (see `_exceptions`)."""
    text = str(error)
    name = type(error).__name__
    return f"{name}: {text}" if text else name
