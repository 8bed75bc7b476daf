"""Backoff policies: the curve, every jitter kind, tenacity interop, bounds."""

from __future__ import annotations

import random

import pytest
import tenacity
from hypothesis import given
from hypothesis import strategies as st

from mcpconn import Backoff
from mcpconn._core.budget import TokenBucket


def test_defaults_follow_grpc_connection_backoff() -> None:
    b = Backoff(jitter="none")
    assert [round(b.delay(n, random.Random(0)), 3) for n in (1, 2, 3)] == [1.0, 1.6, 2.56]
    assert b.delay(50, random.Random(0)) == 120.0


def test_proportional_jitter_stays_within_twenty_percent_even_at_the_cap() -> None:
    b = Backoff()
    rng = random.Random(3)
    at_cap = [b.delay(40, rng) for _ in range(500)]
    assert min(at_cap) >= 96.0 and max(at_cap) <= 144.0
    assert len({round(d, 3) for d in at_cap}) > 400  # spread, not one instant


@pytest.mark.parametrize("kind", ["full", "equal", "decorrelated", "none", "proportional"])
@given(attempt=st.integers(1, 200), seed=st.integers(0, 2**32))
def test_every_jitter_kind_is_bounded_and_reproducible(kind: str, attempt: int, seed: int) -> None:
    b = Backoff(jitter=kind, initial=0.5, max_delay=30)  # type: ignore[arg-type]
    d1 = b.delay(attempt, random.Random(seed), previous=4.0)
    d2 = b.delay(attempt, random.Random(seed), previous=4.0)
    assert d1 == d2
    assert 0 <= d1 <= 30 * 1.2


def test_a_tenacity_wait_and_stop_can_be_handed_in() -> None:
    b = Backoff(wait=tenacity.wait_fixed(7), stop=tenacity.stop_after_attempt(3))
    assert b.delay(1, random.Random(0)) == 7
    assert not b.exhausted(2, 0.0)
    assert b.exhausted(3, 0.0)
    b = Backoff(stop=tenacity.stop_after_delay(10))
    assert not b.exhausted(99, 9.9) and b.exhausted(1, 10.0)


def test_limits_on_attempts_and_elapsed_time() -> None:
    assert not Backoff().exhausted(10_000, 1e9)  # transient retries never stop by default
    assert Backoff(max_attempts=3).exhausted(4, 0)
    assert Backoff(max_elapsed=60).exhausted(1, 60)


def test_retry_after_is_capped_and_never_negative() -> None:
    b = Backoff(retry_after_cap=120)
    assert b.retry_after(365 * 86400) == 120
    assert b.retry_after(-5) == 0
    assert b.retry_after(3.5) == 3.5


@pytest.mark.parametrize(
    "kwargs",
    [{"initial": -1}, {"multiplier": 0.5}, {"jitter": "wobbly"}, {"jitter_ratio": 2}],
)
def test_invalid_policies_are_refused(kwargs: dict[str, object]) -> None:
    with pytest.raises(ValueError):  # noqa: PT011
        Backoff(**kwargs)  # type: ignore[arg-type]


def test_token_bucket_spreads_a_stampede_at_its_rate() -> None:
    bucket = TokenBucket(rate=10, burst=5)
    waits = [bucket.reserve(100.0) for _ in range(25)]
    assert waits[:5] == [0.0] * 5
    assert waits[5:] == pytest.approx([0.1 * n for n in range(1, 21)])
    assert bucket.exhausted == 20
    # the debt is paid at the refill rate
    assert bucket.reserve(102.0 + 0.05) == pytest.approx(0.0 + 0.1 * 1 - 0.05 + 0.0, abs=1e-9)


def test_token_bucket_refills_to_burst_only() -> None:
    bucket = TokenBucket(rate=1, burst=3)
    for _ in range(3):
        bucket.reserve(0.0)
    assert bucket.available(1000.0) == 3
