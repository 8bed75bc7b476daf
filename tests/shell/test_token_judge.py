"""The token layer's one freshness judge: the core's rules at the source's clock."""

from __future__ import annotations

from mcpconn._core.freshness import Freshness, FreshnessPolicy
from mcpconn._core.token import Token
from mcpconn._tokens.judge import FreshnessJudge
from mcpconn._tokens.store import StoredToken

T0 = 1_000_000.0


def judge_at(now: list[float], **policy: float) -> FreshnessJudge:
    return FreshnessJudge(FreshnessPolicy(**policy), lambda: now[0])


def test_a_token_ages_from_fresh_through_refresh_ahead_to_expired() -> None:
    now = [T0]
    judge = judge_at(now, margin=30.0, stale_window=60.0)
    entry = StoredToken(Token("t", expires_at=T0 + 3600, issued_at=T0), T0)
    assert judge(entry) is Freshness.FRESH and judge.servable(entry)
    assert judge.refresh_ahead_in(entry) == 3600 - 30 - 60
    now[0] = T0 + 3600 - 30 - 60
    assert judge(entry) is Freshness.REFRESH_AHEAD and judge.servable(entry)
    assert judge.refresh_ahead_in(entry) == 0
    now[0] = T0 + 3600 - 30
    assert judge(entry) is Freshness.EXPIRED and not judge.servable(entry)


def test_nothing_is_not_servable_and_a_token_without_expiry_never_needs_a_timer() -> None:
    judge = judge_at([T0])
    assert not judge.servable(None)
    forever = StoredToken(Token("t"), T0)
    assert judge(forever) is Freshness.FRESH
    assert judge.refresh_ahead_in(forever) is None


def test_max_age_counts_from_when_the_source_obtained_the_token() -> None:
    now = [T0 + 100]
    judge = judge_at(now, max_age=100.0, stale_window=10.0)
    assert not judge.servable(StoredToken(Token("t"), T0))
    assert judge.servable(StoredToken(Token("t"), T0 + 50))


def test_entries_judged_in_turn_each_keep_their_own_deadlines() -> None:
    now = [T0]
    judge = judge_at(now, margin=30.0, stale_window=60.0)
    old = StoredToken(Token("old", expires_at=T0 + 10, issued_at=T0 - 3590), T0 - 3590)
    new = StoredToken(Token("new", expires_at=T0 + 3600, issued_at=T0), T0)
    same_token_later = StoredToken(new.token, T0 + 3000)
    for _ in range(2):
        assert judge(old) is Freshness.EXPIRED
        assert judge(new) is Freshness.FRESH
    now[0] = T0 + 3600 - 30 - 60
    assert judge(new) is Freshness.REFRESH_AHEAD
    assert judge(old) is Freshness.EXPIRED
    assert judge(same_token_later) is Freshness.REFRESH_AHEAD
