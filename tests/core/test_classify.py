"""The one classifier: every error class x every operation -> the fact it means."""

from __future__ import annotations

import pytest

from mcpconn._core.classify import Operation, classify
from mcpconn._core.machine import Input
from mcpconn._exceptions import (
    Forbidden,
    HTTPStatusError,
    InsecureTransportError,
    InvalidMessage,
    JSONRPCError,
    MethodNotAllowed,
    NetworkError,
    ProtocolError,
    RateLimited,
    ReauthRequired,
    ServerError,
    SessionExpired,
    StreamEnded,
    Unauthorized,
    UnexpectedContentType,
    UnsupportedProtocolVersion,
)


@pytest.mark.parametrize(
    ("error", "during", "expected"),
    [
        (Unauthorized(), "connect", Input.UNAUTHORIZED),
        (Forbidden(), "call", Input.SCOPE_DENIED),
        (ReauthRequired(), "connect", Input.REAUTH_REQUIRED),
        (SessionExpired(404), "listen", Input.SESSION_LOST),
        (StreamEnded(retry=1.0), "listen", Input.STREAM_ENDED),
        (RateLimited(429, 3.0), "connect", Input.TRANSIENT_FAILURE),
        (ServerError(502), "connect", Input.TRANSIENT_FAILURE),
        (NetworkError("refused"), "connect", Input.TRANSIENT_FAILURE),
        (MethodNotAllowed(), "listen", Input.NO_LISTENER),
        (HTTPStatusError(404), "listen", Input.LISTENER_FAILED),
        (HTTPStatusError(400), "listen", Input.LISTENER_FAILED),
        (UnexpectedContentType("application/json"), "listen", Input.LISTENER_FAILED),
        (InvalidMessage("garbage"), "listen", Input.LISTENER_FAILED),
        (NetworkError("reset"), "listen", Input.LISTENER_FAILED),
        (ServerError(500), "listen", Input.LISTENER_FAILED),
        (RateLimited(503, 2.0), "listen", Input.LISTENER_FAILED),
        (Unauthorized(), "listen", Input.UNAUTHORIZED),
        (SessionExpired(410), "listen", Input.SESSION_LOST),
        (MethodNotAllowed(), "connect", Input.TRANSIENT_FAILURE),
        (InsecureTransportError("http"), "connect", Input.PERMANENT_FAILURE),
        (JSONRPCError(-32602, "unsupported version"), "connect", Input.PERMANENT_FAILURE),
        (UnsupportedProtocolVersion("1999-01-01"), "connect", Input.PERMANENT_FAILURE),
        (UnsupportedProtocolVersion("1999-01-01"), "listen", Input.PERMANENT_FAILURE),
        (ProtocolError("garbage"), "connect", Input.TRANSIENT_FAILURE),
        (RuntimeError("bug"), "connect", Input.TRANSIENT_FAILURE),
    ],
)
def test_classify(error: BaseException, during: Operation, expected: Input) -> None:
    fact = classify(error, during=during)
    assert fact.input is expected
    if isinstance(error, RateLimited):
        assert fact.retry_after == error.retry_after
    if isinstance(error, StreamEnded):
        assert fact.retry == 1.0
