"""The era rules as data: every era x every rule written out by hand, and the fallback verdicts.

`test_every_rule_has_a_row` fails when a field is added to `EraRules` without a
row here, so no era behaviour can appear that nobody wrote down.
"""

from __future__ import annotations

import dataclasses
from typing import Any, get_args

import pytest

from mcpconn._core.eras import (
    ERAS,
    HEADER_MISMATCH,
    LEGACY_SSE,
    MISSING_CLIENT_CAPABILITY,
    SESSION_VERSIONS,
    STATELESS,
    STREAMABLE_HTTP,
    UNSUPPORTED_PROTOCOL_VERSION,
    Era,
    EraRules,
    NotModern,
    StreamLost,
    is_fallback,
    rules_of,
)
from mcpconn._exceptions import (
    ConnectError,
    Forbidden,
    HTTPStatusError,
    JSONRPCError,
    MCPConnError,
    MethodNotAllowed,
    RateLimited,
    ServerError,
    SessionExpired,
    TransportError,
    Unauthorized,
)

ORDER = (STREAMABLE_HTTP, STATELESS, LEGACY_SSE)
#: rule -> its value in (streamable-http, stateless, sse)
TABLE: dict[str, tuple[Any, Any, Any]] = {
    "name": ("streamable-http", "stateless", "sse"),
    "handshake": ("initialize", "discover", "initialize"),
    "sessions": (True, False, True),
    "session_id": (True, False, False),
    "reinitialize_on_expiry": (True, False, False),
    "reissue_lost_stream": (False, True, False),
    "relist_on_header_mismatch": (False, True, False),
    "listener": ("get", "subscriptions-listen", "session-stream"),
    "listener_replays": (True, False, False),
    "server_requests": (True, False, True),
    "capabilities": ("initialize", "request-meta", "initialize"),
    "log_level": ("set-level", "request-meta", "set-level"),
    "subscriptions": ("subscribe", "listen-filter", "subscribe"),
    "roots_list_changed": (True, False, True),
    "cancel_notification": (True, False, True),
    "keepalive": ("ping", "server/discover", "ping"),
    "call_streams": (True, True, False),
}
CASES = [
    pytest.param(rules, field, values[index], id=f"{rules.name}-{field}")
    for field, values in TABLE.items()
    for index, rules in enumerate(ORDER)
]


@pytest.mark.parametrize(("rules", "field", "expected"), CASES)
def test_every_era_x_every_rule(rules: EraRules, field: str, expected: Any) -> None:
    assert getattr(rules, field) == expected


def test_every_rule_has_a_row() -> None:
    assert [f.name for f in dataclasses.fields(EraRules)] == list(TABLE)


def test_every_era_name_has_its_rules_and_nothing_else() -> None:
    assert set(ERAS) == set(get_args(Era))
    for name in get_args(Era):
        assert rules_of(name).name == name
        assert ERAS[name] is rules_of(name)
    with pytest.raises(KeyError):
        rules_of("websocket")  # type: ignore[arg-type]


def test_rules_are_frozen() -> None:
    with pytest.raises(dataclasses.FrozenInstanceError):
        STATELESS.server_requests = True  # type: ignore[misc]


def test_the_rules_agree_with_each_other() -> None:
    for rules in ORDER:
        # only an era with a session id has a session to forget and re-make
        assert rules.reinitialize_on_expiry == rules.session_id
        assert not rules.session_id or rules.sessions
        # the handshake is where the capabilities go
        assert (rules.handshake == "discover") == (rules.capabilities == "request-meta")
        # the 2026 listener carries the subscriptions; it cannot replay
        assert (rules.listener == "subscriptions-listen") == (
            rules.subscriptions == "listen-filter"
        )
        assert not (rules.listener_replays and rules.listener != "get")


# ---- what counts as "not this era" ----------------------------------------------------------


def unsupported(*supported: str) -> JSONRPCError:
    return JSONRPCError(UNSUPPORTED_PROTOCOL_VERSION, "unsupported", {"supported": list(supported)})


#: error -> is it a fallback from (streamable-http, stateless, sse)?
FALLBACKS: list[tuple[MCPConnError, tuple[bool, bool, bool]]] = [
    (NotModern("no modern version"), (True, True, True)),
    (HTTPStatusError(400), (True, True, True)),
    (HTTPStatusError(404), (True, True, True)),
    (MethodNotAllowed(), (True, True, True)),
    (SessionExpired(404), (False, False, False)),  # a session answer, not an era verdict
    (Unauthorized(None), (False, False, False)),
    (Forbidden(None), (False, False, False)),
    (RateLimited(429, None), (False, False, False)),
    (ServerError(502), (False, False, False)),
    (HTTPStatusError(409), (False, False, False)),
    (ConnectError("refused"), (False, False, False)),
    (StreamLost("lost"), (False, False, False)),
    (TransportError("odd"), (False, False, False)),
    # JSON-RPC errors are era verdicts only on the modern probe
    (JSONRPCError(-32601, "no server/discover"), (False, True, False)),
    (JSONRPCError(-32600, "invalid request"), (False, True, False)),
    (JSONRPCError(HEADER_MISMATCH, "header mismatch"), (False, False, False)),
    (JSONRPCError(MISSING_CLIENT_CAPABILITY, "capability"), (False, False, False)),
    (unsupported("2099-01-01"), (False, False, False)),  # only modern versions we lack
    (unsupported(SESSION_VERSIONS[0]), (False, True, False)),
    (unsupported("2099-01-01", SESSION_VERSIONS[-1]), (False, True, False)),
    (JSONRPCError(UNSUPPORTED_PROTOCOL_VERSION, "no data"), (False, True, False)),
    (JSONRPCError(UNSUPPORTED_PROTOCOL_VERSION, "odd", {"supported": "x"}), (False, True, False)),
]
FALLBACK_CASES = [
    pytest.param(error, rules, row[index], id=f"{type(error).__name__}-{rules.name}-{i}")
    for i, (error, row) in enumerate(FALLBACKS)
    for index, rules in enumerate(ORDER)
]


@pytest.mark.parametrize(("error", "rules", "expected"), FALLBACK_CASES)
def test_every_error_x_every_era_fallback(
    error: MCPConnError, rules: EraRules, expected: bool
) -> None:
    assert is_fallback(error, rules) is expected
