"""The recovery decision: every era x every error x every method x what was already tried."""

from __future__ import annotations

import dataclasses
import itertools

import pytest

from mcpconn._core.eras import (
    HEADER_MISMATCH,
    LEGACY_SSE,
    STATELESS,
    STREAMABLE_HTTP,
    EraRules,
    StreamLost,
)
from mcpconn._core.recovery import LISTENER, Recovery, recover
from mcpconn._exceptions import (
    JSONRPCError,
    NetworkError,
    SessionExpired,
    SessionLost,
    StreamEnded,
    TransportError,
)

R = Recovery
ERAS = (STREAMABLE_HTTP, STATELESS, LEGACY_SSE)
METHODS = ("tools/call", "tools/list", "initialize", LISTENER)

ERRORS: dict[str, BaseException] = {
    "expired": SessionExpired(404),
    "gone": SessionExpired(410),
    "lost-stream": StreamLost("the response stream ended before the response"),
    "header-mismatch": JSONRPCError(HEADER_MISMATCH, "Mcp-Name does not match"),
    "other-rpc": JSONRPCError(-32602, "bad params"),
    "session-lost": SessionLost("the legacy SSE stream ended"),
    "network": NetworkError("reset"),
    "ended": StreamEnded(retry=None),
    "transport": TransportError("odd"),
    "bug": RuntimeError("a bug of ours"),
}

#: (era, error, method) -> the step, when there is one; every other combination is None.
STEPS: dict[tuple[str, str, str | None], Recovery] = {
    ("streamable-http", "expired", "tools/call"): R.REINITIALIZE,
    ("streamable-http", "expired", "tools/list"): R.REINITIALIZE,
    ("streamable-http", "expired", LISTENER): R.REINITIALIZE,
    ("streamable-http", "gone", "tools/call"): R.REINITIALIZE,
    ("streamable-http", "gone", "tools/list"): R.REINITIALIZE,
    ("streamable-http", "gone", LISTENER): R.REINITIALIZE,
    ("stateless", "lost-stream", "tools/call"): R.REISSUE,
    ("stateless", "lost-stream", "tools/list"): R.REISSUE,
    ("stateless", "lost-stream", "initialize"): R.REISSUE,
    ("stateless", "header-mismatch", "tools/call"): R.RELIST_TOOLS,
}

CASES = [
    pytest.param(
        rules,
        error,
        method,
        STEPS.get((rules.name, key, method)),
        id=f"{rules.name}-{key}-{method or 'listener'}",
    )
    for rules, (key, error), method in itertools.product(ERAS, ERRORS.items(), METHODS)
]


@pytest.mark.parametrize(("rules", "error", "method", "expected"), CASES)
def test_every_era_x_error_x_method(
    rules: EraRules, error: BaseException, method: str | None, expected: Recovery | None
) -> None:
    assert recover(rules, error, method=method) is expected
    if expected is not None:
        # each step at most once per call; another step already taken does not stop it
        assert recover(rules, error, method=method, tried=[expected]) is None
        others = [step for step in Recovery if step is not expected]
        assert recover(rules, error, method=method, tried=others) is expected


def test_the_table_names_only_real_cases() -> None:
    names = {rules.name for rules in ERAS}
    for era, key, method in STEPS:
        assert era in names and key in ERRORS and method in METHODS


def test_the_steps_follow_the_rules() -> None:
    # the decision reads the rules, not the era name: flip one rule, the step follows
    no_reinit = dataclasses.replace(STREAMABLE_HTTP, reinitialize_on_expiry=False)
    assert recover(no_reinit, ERRORS["expired"], method="tools/call") is None
    reissuing = dataclasses.replace(LEGACY_SSE, reissue_lost_stream=True)
    assert recover(reissuing, ERRORS["lost-stream"], method="tools/call") is R.REISSUE
    relisting = dataclasses.replace(STREAMABLE_HTTP, relist_on_header_mismatch=True)
    assert recover(relisting, ERRORS["header-mismatch"], method="tools/call") is R.RELIST_TOOLS
