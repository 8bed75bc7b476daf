"""The one classifier: every error class x every operation -> the fact it means.

The table below is written out by hand, one row per class of ours (and a bug of
ours); `test_every_error_class_has_a_row` fails when a new class appears without
one, so the classifier can never meet an error nobody decided about.
"""

from __future__ import annotations

from typing import get_args

import pytest

from mcpconn import _exceptions as errors
from mcpconn._core.classify import Operation, classify, describe
from mcpconn._core.eras import NotModern, StreamLost
from mcpconn._core.machine import Input
from mcpconn._core.token import Token

OPERATIONS: tuple[Operation, ...] = get_args(Operation)
In = Input
UNAUTH, SCOPE, REAUTH, LOST = In.UNAUTHORIZED, In.SCOPE_DENIED, In.REAUTH_REQUIRED, In.SESSION_LOST
ENDED, PERM, TRANS = In.STREAM_ENDED, In.PERMANENT_FAILURE, In.TRANSIENT_FAILURE
NO_LISTENER, LISTENER = In.NO_LISTENER, In.LISTENER_FAILED
#: What a call says about the connection when nothing: the caller's business.
MINE = None
#: (connect, listen, ping, call) for anything that a later attempt can fix.
RETRY = (TRANS, LISTENER, TRANS, MINE)

ROWS: list[tuple[BaseException, tuple[Input | None, ...]]] = [
    # auth and a lost session mean the same whatever was being done
    (
        errors.Unauthorized(errors.Challenge(error="invalid_token")),
        (UNAUTH, UNAUTH, UNAUTH, UNAUTH),
    ),
    (errors.Forbidden(errors.Challenge(error="insufficient_scope")), (SCOPE, SCOPE, SCOPE, SCOPE)),
    (errors.ReauthRequired(), (REAUTH, REAUTH, REAUTH, REAUTH)),
    (errors.SessionExpired(404), (LOST, LOST, LOST, LOST)),
    (errors.SessionExpired(410), (LOST, LOST, LOST, LOST)),
    (errors.SessionLost("the legacy SSE stream ended"), (LOST, LOST, LOST, LOST)),
    # the rest is the connection's only when the connection was doing it
    (errors.StreamEnded(retry=1.5), (ENDED, ENDED, ENDED, MINE)),
    (errors.SessionReinitialized(), (ENDED, ENDED, ENDED, MINE)),
    (errors.UnsupportedProtocolVersion("1999-01-01"), (PERM, PERM, PERM, MINE)),
    (errors.InsecureTransportError("http"), (PERM, LISTENER, PERM, MINE)),
    (errors.MethodNotAllowed(), (TRANS, NO_LISTENER, TRANS, MINE)),
    (errors.JSONRPCError(-32601, "no subscriptions/listen"), (PERM, NO_LISTENER, TRANS, MINE)),
    (errors.JSONRPCError(-32602, "bad params"), (PERM, LISTENER, TRANS, MINE)),
    (errors.RateLimited(429, 3.0), RETRY),
    (errors.RateLimited(503, None), RETRY),
    (errors.ServerError(502), RETRY),
    (errors.HTTPStatusError(400), RETRY),
    (errors.HTTPStatusError(404), RETRY),
    (errors.NetworkError("reset"), RETRY),
    (errors.ConnectError("refused"), RETRY),
    (errors.ReadTimeout("stalled"), RETRY),
    (errors.TransportError("odd"), RETRY),
    (errors.ProtocolError("garbage"), RETRY),
    (errors.UnexpectedContentType("text/html"), RETRY),
    (errors.SSELimitExceeded("line", 10), RETRY),
    (errors.InvalidMessage("not JSON"), RETRY),
    (StreamLost("the response stream ended"), RETRY),
    (NotModern("no modern version"), RETRY),
    (errors.RequestTimeout("no answer"), RETRY),
    (errors.ConnectionClosed("closed"), RETRY),
    (errors.TokenProviderError("provider down", principal="alice"), RETRY),
    (errors.OAuthError("the authorization server refused", error="invalid_grant"), RETRY),
    (errors.MalformedTokenError("not a JWT"), RETRY),
    # a call's own MRTR round is the caller's; a handshake or ping asking for input is odd
    (errors.InputRequired("input", input_requests={}, request_state=None), RETRY),
    (errors.MCPConnError("ours"), RETRY),
    (RuntimeError("a bug of ours"), RETRY),
]
CASES = [
    pytest.param(error, during, expected, id=f"{type(error).__name__}-{during}")
    for error, row in ROWS
    for during, expected in zip(OPERATIONS, row, strict=True)
]


@pytest.mark.parametrize(("error", "during", "expected"), CASES)
def test_every_error_x_every_operation(
    error: BaseException, during: Operation, expected: Input | None
) -> None:
    fact = classify(error, during=during)
    if expected is None:
        assert fact is None
        return
    assert fact is not None
    assert fact.input is expected
    assert fact.reason == describe(error)
    assert fact.retry == (error.retry if isinstance(error, errors.StreamEnded) else None)
    if isinstance(error, errors.RateLimited) and expected in (TRANS, LISTENER):
        assert fact.retry_after == error.retry_after
    else:
        assert fact.retry_after is None


def _subclasses(cls: type[BaseException]) -> set[type[BaseException]]:
    found = {cls}
    for sub in cls.__subclasses__():
        found |= _subclasses(sub)
    return found


def test_every_error_class_has_a_row() -> None:
    covered = {type(error) for error, _ in ROWS}
    missing = {c for c in _subclasses(errors.MCPConnError) if c.__module__.startswith("mcpconn")}
    assert missing - covered == set()


def test_the_operations_are_the_four_the_connection_has() -> None:
    assert OPERATIONS == ("connect", "listen", "ping", "call")


def test_describe_names_the_class_and_never_more_than_the_message() -> None:
    assert describe(errors.NetworkError("reset")) == "NetworkError: reset"
    assert describe(errors.MethodNotAllowed()) == "MethodNotAllowed: 405 Method Not Allowed"
    assert describe(RuntimeError()) == "RuntimeError"


def test_a_session_expiry_is_a_lost_session_and_an_http_status() -> None:
    error = errors.SessionExpired(404, "gone")
    assert isinstance(error, errors.SessionLost) and isinstance(error, errors.HTTPStatusError)
    assert error.status_code == 404
    assert not isinstance(
        errors.SessionLost("stream ended"), errors.HTTPStatusError
    )  # no fabricated status


@pytest.mark.parametrize("during", OPERATIONS)
def test_an_auth_fact_carries_the_refused_token_and_the_challenge(during: Operation) -> None:
    challenge = errors.Challenge(error="invalid_token")
    token = Token("the-refused-credential", expires_at=2_000_000_000.0)
    fact = classify(errors.Unauthorized(challenge, rejected=token), during=during)
    assert fact is not None and fact.rejected is token and fact.challenge is challenge
    assert "the-refused-credential" not in repr(fact) + fact.reason
    scope = errors.Challenge(error="insufficient_scope")
    denied = classify(errors.Forbidden(scope), during=during)
    assert denied is not None and denied.challenge is scope and denied.rejected is None
    parked = classify(errors.ReauthRequired(challenge=scope), during=during)
    assert parked is not None and parked.challenge is scope
