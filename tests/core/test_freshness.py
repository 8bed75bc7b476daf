"""FRESH / REFRESH_AHEAD / EXPIRED as pure functions of (token, now, policy)."""

from __future__ import annotations

import math

import pytest
from hypothesis import given
from hypothesis import strategies as st

from mcpconn._core.freshness import (
    Deadlines,
    Freshness,
    FreshnessPolicy,
    deadlines,
    freshness,
    refresh_timer_at,
    stale_window,
)
from mcpconn._core.token import Token

T0 = 1_900_000_000.0
DEFAULT = FreshnessPolicy()
F, R, E = Freshness.FRESH, Freshness.REFRESH_AHEAD, Freshness.EXPIRED


def token(lifetime: float | None, *, iat: bool = True) -> Token:
    exp = None if lifetime is None else T0 + lifetime
    return Token("credential", expires_at=exp, issued_at=T0 if iat else None)


@pytest.mark.parametrize(
    ("lifetime", "expected_window"),
    [
        (None, 60.0),
        (100.0, 60.0),
        (600.0, 60.0),
        (1200.0, 120.0),
        (3000.0, 300.0),
        (86400.0, 300.0),  # capped at 5 minutes
    ],
)
def test_default_stale_window(lifetime: float | None, expected_window: float) -> None:
    assert stale_window(DEFAULT, lifetime) == expected_window


def test_explicit_stale_window_is_used_as_is() -> None:
    assert stale_window(FreshnessPolicy(stale_window=7.0), 86400.0) == 7.0


@pytest.mark.parametrize(
    ("offset", "expected"),
    [
        (0.0, F),
        (3269.9, F),
        (3270.0, R),  # exp - margin(30) - window(300): the window opens
        (3569.9, R),
        (3570.0, E),  # at the margin: expired
        (3600.0, E),
        (99999.0, E),
    ],
)
def test_one_hour_token_timeline(offset: float, expected: Freshness) -> None:
    assert freshness(token(3600), T0 + offset, DEFAULT, obtained_at=T0) is expected


def test_deadlines_of_a_one_hour_token() -> None:
    assert deadlines(token(3600), DEFAULT, obtained_at=T0) == Deadlines(T0 + 3270, T0 + 3570)


def test_window_never_opens_before_the_halfway_point() -> None:
    # 120 s token: window 60 would open at +30; the halfway point (+45) wins.
    assert deadlines(token(120), DEFAULT, obtained_at=T0) == Deadlines(T0 + 45, T0 + 90)
    assert freshness(token(120), T0 + 44, DEFAULT, obtained_at=T0) is F


def test_a_token_that_arrives_inside_its_window_is_fresh_for_half_its_remaining_life() -> None:
    tok = token(3600)
    got = T0 + 3400  # inside [3270, 3570)
    d = deadlines(tok, DEFAULT, obtained_at=got)
    assert d == Deadlines(got + 85, T0 + 3570)
    assert freshness(tok, got, DEFAULT, obtained_at=got) is F
    assert refresh_timer_at(tok, DEFAULT, obtained_at=got) == got + 85


def test_a_token_shorter_than_the_margin_gets_a_quarter_of_its_life_as_margin() -> None:
    """A 2 s token under the default 30 s margin is usable for 1.5 s, not never."""
    short = token(2)
    assert deadlines(short, DEFAULT, obtained_at=T0).expired_from == T0 + 1.5
    assert freshness(short, T0, DEFAULT, obtained_at=T0) is not E
    assert freshness(short, T0 + 1.5, DEFAULT, obtained_at=T0) is E
    # a long-lived token keeps the full margin
    assert deadlines(token(3600), DEFAULT, obtained_at=T0).expired_from == T0 + 3570


def test_without_iat_the_lifetime_counts_from_obtained_at() -> None:
    tok = token(3600, iat=False)
    assert deadlines(tok, DEFAULT, obtained_at=T0).refresh_from == T0 + 3270
    # Without either, the window is the 60 s minimum and there is no halfway floor.
    assert deadlines(tok, DEFAULT) == Deadlines(T0 + 3510, T0 + 3570)


def test_seed_regression_an_expired_jwt_is_never_fresh() -> None:
    # The seed's store treated "no ExpiresAt" as never expiring. Here the JWT's
    # own exp is the expiry, and past it the token is EXPIRED whatever else is known.
    tok = Token("id-token", expires_at=T0 - 1)
    assert freshness(tok, T0, DEFAULT) is E
    assert freshness(tok, T0, DEFAULT, obtained_at=T0 - 3600) is E


def test_margin_zero_expires_exactly_at_exp() -> None:
    policy = FreshnessPolicy(margin=0, stale_window=0)
    assert freshness(token(100), T0 + 99.999, policy) is F
    assert freshness(token(100), T0 + 100, policy) is E


def test_no_expiry_is_fresh_forever_without_max_age() -> None:
    tok = token(None)
    assert deadlines(tok, DEFAULT, obtained_at=T0) == Deadlines(None, None)
    assert freshness(tok, 1e12, DEFAULT, obtained_at=T0) is F
    assert refresh_timer_at(tok, DEFAULT, obtained_at=T0) is None


def test_max_age_bounds_a_token_without_expiry() -> None:
    policy = FreshnessPolicy(max_age=600)
    tok = Token("opaque")
    assert deadlines(tok, policy, obtained_at=T0) == Deadlines(T0 + 540, T0 + 600)
    assert freshness(tok, T0 + 539, policy, obtained_at=T0) is F
    assert freshness(tok, T0 + 540, policy, obtained_at=T0) is R
    assert freshness(tok, T0 + 600, policy, obtained_at=T0) is E  # no margin: our own limit
    assert refresh_timer_at(tok, policy, obtained_at=T0) == T0 + 540


def test_max_age_uses_iat_when_obtained_at_is_unknown() -> None:
    policy = FreshnessPolicy(max_age=600)
    tok = Token("opaque", issued_at=T0)
    assert deadlines(tok, policy).expired_from == T0 + 600
    assert deadlines(Token("opaque"), policy) == Deadlines(None, None)


def test_max_age_does_not_apply_to_a_token_with_expiry() -> None:
    policy = FreshnessPolicy(max_age=60)
    assert freshness(token(3600), T0 + 1000, policy, obtained_at=T0) is F


@pytest.mark.parametrize(
    "kwargs",
    [
        {"margin": -1},
        {"margin": math.nan},
        {"margin": math.inf},
        {"stale_window": -0.1},
        {"max_age": 0},
        {"max_age": -5},
        {"max_age": math.inf},
    ],
)
def test_policy_rejects_nonsense(kwargs: dict[str, float]) -> None:
    with pytest.raises(ValueError, match="finite"):
        FreshnessPolicy(**kwargs)


def test_policy_rejects_bool() -> None:
    with pytest.raises(TypeError):
        FreshnessPolicy(margin=True)


ORDER = {F: 0, R: 1, E: 2}

finite = st.floats(min_value=-1e6, max_value=1e6, allow_nan=False)


@given(
    lifetime=st.one_of(st.none(), st.floats(min_value=-1e5, max_value=1e6)),
    has_iat=st.booleans(),
    obtained=st.one_of(st.none(), finite),
    margin=st.floats(min_value=0, max_value=1e4),
    window=st.one_of(st.none(), st.floats(min_value=0, max_value=1e4)),
    max_age=st.one_of(st.none(), st.floats(min_value=1e-3, max_value=1e6)),
    a=finite,
    b=finite,
)
def test_freshness_only_gets_worse_as_time_passes(
    lifetime: float | None,
    has_iat: bool,
    obtained: float | None,
    margin: float,
    window: float | None,
    max_age: float | None,
    a: float,
    b: float,
) -> None:
    policy = FreshnessPolicy(margin=margin, stale_window=window, max_age=max_age)
    tok = token(lifetime, iat=has_iat)
    got = None if obtained is None else T0 + obtained
    early, late = sorted((T0 + a, T0 + b))
    assert (
        ORDER[freshness(tok, early, policy, obtained_at=got)]
        <= ORDER[freshness(tok, late, policy, obtained_at=got)]
    )
    d = deadlines(tok, policy, obtained_at=got)
    if d.refresh_from is not None and d.expired_from is not None:
        assert d.refresh_from <= d.expired_from
    if tok.expires_at is not None:
        # Never served inside the margin (at most a quarter of a known lifetime).
        born = tok.issued_at if tok.issued_at is not None else got
        life = tok.expires_at - born if born is not None else None
        effective = min(margin, 0.25 * life) if life is not None and life > 0 else margin
        assert d.expired_from == tok.expires_at - effective
        assert freshness(tok, tok.expires_at - effective, policy, obtained_at=got) is E
        assert d.expired_from <= tok.expires_at
    assert refresh_timer_at(tok, policy, obtained_at=got) == d.refresh_from
