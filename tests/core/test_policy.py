"""One reconnection policy, validated at construction; the curve without a fake tenacity state."""

from __future__ import annotations

import math
import random
from typing import Any

import pytest
import tenacity
from hypothesis import given
from hypothesis import strategies as st

from mcpconn import Backoff, ReconnectPolicy, StormControl, Supervisor, TokenSource

BAD_NUMBERS = [float("nan"), float("inf"), -1.0]


@pytest.mark.parametrize(
    "kwargs",
    [
        {"probe_interval": 0},  # a zero interval would spin, probing parked connections
        {"probe_interval": -1},
        {"probe_interval": float("nan")},
        {"probe_interval": float("inf")},
        {"wake_jitter": -0.1},
        {"wake_jitter": float("nan")},
        {"productive_after": 0},
        {"productive_after": float("inf")},
    ],
)
def test_a_policy_that_could_spin_or_stall_is_refused(kwargs: dict[str, Any]) -> None:
    with pytest.raises(ValueError, match=next(iter(kwargs))):
        ReconnectPolicy(**kwargs)


@pytest.mark.parametrize("name", ["retry_rate", "connect_rate", "retry_burst", "connect_burst"])
@pytest.mark.parametrize("value", [0.0, *BAD_NUMBERS])
def test_storm_control_is_validated_when_built(name: str, value: float) -> None:
    with pytest.raises(ValueError, match=name):
        StormControl(**{name: value})


@pytest.mark.parametrize("name", ["initial", "max_delay", "retry_after_cap", "multiplier"])
@pytest.mark.parametrize("value", BAD_NUMBERS)
def test_backoff_numbers_are_finite(name: str, value: float) -> None:
    with pytest.raises(ValueError):  # noqa: PT011
        Backoff(**{name: value})  # type: ignore[arg-type]


async def no_token(request: Any) -> str:
    raise AssertionError("never asked")


async def test_the_supervisor_keywords_map_onto_the_policy() -> None:
    tokens = TokenSource(no_token)
    fast = Backoff(initial=0.01)
    sup = Supervisor(tokens, backoff=fast, wake_jitter=0.0, probe_interval=5, productive_after=2)
    assert sup.policy == ReconnectPolicy(
        backoff=fast, wake_jitter=0.0, probe_interval=5, productive_after=2
    )
    assert sup.backoff is fast
    base = ReconnectPolicy(wake_jitter=1.0, storm_control=StormControl(retry_rate=3))
    sup = Supervisor(tokens, policy=base, productive_after=30)
    assert sup.policy.wake_jitter == 1.0 and sup.policy.storm_control.retry_rate == 3
    assert sup.policy.productive_after == 30  # a keyword replaces that field only
    with pytest.raises(ValueError, match="probe_interval"):
        Supervisor(tokens, probe_interval=0)
    with pytest.raises(ValueError, match="idle_timeout"):
        Supervisor(tokens, idle_timeout=0)


@given(
    initial=st.floats(0.001, 10),
    multiplier=st.floats(1, 4),
    max_delay=st.floats(0, 500),
    attempt=st.integers(1, 60),
)
def test_the_curve_is_tenacitys_wait_exponential(
    initial: float, multiplier: float, max_delay: float, attempt: int
) -> None:
    """Computed directly, checked against tenacity's own strategy and a real call state."""
    ours = Backoff(initial=initial, multiplier=multiplier, max_delay=max_delay).base_delay(attempt)
    theirs = tenacity.wait_exponential(multiplier=initial, exp_base=multiplier, max=max_delay)
    state = tenacity.RetryCallState(tenacity.Retrying(), None, (), {})
    state.attempt_number = attempt
    assert math.isclose(ours, theirs(state), rel_tol=1e-9, abs_tol=1e-12)


def test_a_huge_attempt_is_the_cap_not_an_overflow() -> None:
    b = Backoff(jitter="none")
    assert b.base_delay(10**9) == b.max_delay
    assert b.delay(10**9, random.Random(0)) == b.max_delay


def test_user_strategies_see_our_attempt_and_elapsed_time() -> None:
    seen: list[tuple[int, float | None]] = []

    def wait(state: tenacity.RetryCallState) -> float:
        assert isinstance(state, tenacity.RetryCallState)
        seen.append((state.attempt_number, state.seconds_since_start))
        return float("nan")  # a broken strategy waits the cap, never NaN

    b = Backoff(wait=wait, stop=tenacity.stop_after_delay(10), max_delay=7)
    assert b.delay(4, random.Random(0), elapsed=2.5) == 7
    assert seen == [(4, 2.5)]
    assert not b.exhausted(1, 9.9) and b.exhausted(1, 10.0)


@pytest.mark.parametrize(
    ("hint", "expected"),
    [
        (None, None),
        (0.0, None),
        (-5.0, None),
        (float("nan"), None),
        (float("inf"), None),
        (1e-300, 1e-300),
        (3.5, 3.5),
        (1e308, 60.0),
    ],
)
def test_only_a_finite_positive_hint_is_a_hint_and_it_is_capped(
    hint: float | None, expected: float | None
) -> None:
    assert Backoff(retry_after_cap=60).hint(hint) == expected
