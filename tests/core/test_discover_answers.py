"""Reusing a server/discover answer: when the era and config allow it, what a refused proof is."""

from __future__ import annotations

import dataclasses

import pytest

from mcpconn._core.discovery import (
    MAX_DISCOVERY_TTL,
    SERVER_INFO_KEY,
    Discovery,
    discovery_of,
    is_fresh,
    may_reuse,
    proof_refused,
)
from mcpconn._core.eras import ERAS, STATELESS, EraRules
from mcpconn._exceptions import (
    Forbidden,
    JSONRPCError,
    RateLimited,
    ServerError,
    StreamEnded,
    Unauthorized,
)


@pytest.mark.parametrize("rules", list(ERAS.values()), ids=list(ERAS))
def test_only_a_discover_era_with_a_listen_request_may_reuse(rules: EraRules) -> None:
    assert may_reuse(rules, listen=True) is (rules is STATELESS)
    assert may_reuse(rules, listen=False) is False  # nothing else proves the token


def test_the_proof_is_the_listen_request_not_the_era_name() -> None:
    no_listen_request = dataclasses.replace(STATELESS, listener="get")
    assert not may_reuse(no_listen_request, listen=True)


def test_a_refused_token_is_raised_anything_else_asks_discover() -> None:
    assert proof_refused(Unauthorized())
    assert proof_refused(Forbidden())
    assert not proof_refused(ServerError(503))
    assert not proof_refused(RateLimited(429, 1.0))
    assert not proof_refused(StreamEnded("gone", retry=None))
    assert not proof_refused(JSONRPCError(-32601, "no listener"))
    assert not proof_refused(ValueError("a bug"))


def test_freshness_ends_at_expires_at() -> None:
    kept = Discovery("2026-07-28", {}, expires_at=10.0)
    assert is_fresh(kept, 9.999)
    assert not is_fresh(kept, 10.0)


def test_ttl_ms_is_milliseconds_and_private_by_default() -> None:
    found = discovery_of("2026-07-28", {"ttlMs": 1500, "cacheScope": "shared"}, now=2.0)
    assert found is not None and not found.public
    assert found.expires_at == 3.5
    # an integral float is the integer it means
    found = discovery_of("2026-07-28", {"ttlMs": 2000.0}, now=0.0)
    assert found is not None and found.expires_at == 2.0
    assert found.result == {}
    info = {"name": "s"}
    found = discovery_of("2026-07-28", {"ttlMs": 1, "_meta": {SERVER_INFO_KEY: info}}, now=0.0)
    assert found is not None and found.result == {"_meta": {SERVER_INFO_KEY: info}}
    assert MAX_DISCOVERY_TTL == 3600.0
