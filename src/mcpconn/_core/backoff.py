"""Backoff policies: how long to wait before the next attempt, and when to stop.

Sans-IO: the caller passes the attempt number, the elapsed time and a random
source, so every delay is reproducible in tests. The exponential curve is the
one tenacity's ``wait_exponential`` draws, computed here; a user may hand in
any tenacity ``wait`` or ``stop`` strategy instead, and those are called with
a real tenacity call state set to our attempt and elapsed time. Jitter is
applied *after* the cap, as gRPC does, so a thousand connections waiting at
the cap still spread out.

Defaults follow gRPC's connection backoff: 1 s initial, x1.6, +-20 %, 120 s cap.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Literal

import tenacity

from .settings import number

if TYPE_CHECKING:
    import random

JitterKind = Literal["proportional", "full", "equal", "decorrelated", "none"]
_JITTER_KINDS = ("proportional", "full", "equal", "decorrelated", "none")


def _call_state(wait: Any, stop: Any, attempt: int, elapsed: float) -> tenacity.RetryCallState:
    """A real tenacity call state for the user's strategies, set to our attempt and clock.

    Tenacity stamps its own clock into a new state; we overwrite it with the
    caller's elapsed time, so the strategies see exactly what the machine saw.
    """
    retrying = tenacity.Retrying(
        wait=wait or tenacity.wait_none(), stop=stop or tenacity.stop_never
    )
    state = tenacity.RetryCallState(retrying, None, (), {})
    state.attempt_number = max(attempt, 1)
    state.start_time = 0.0
    state.outcome_timestamp = elapsed
    return state


@dataclass(frozen=True)
class Backoff:
    """An exponential backoff policy with jitter.

    ``attempt`` counts from 1 (the first retry). ``max_attempts`` and
    ``max_elapsed`` bound *transient* retries (``None``: retry forever, the
    default, since a server outage must not become a dead connection).
    ``auth_attempts`` bounds retries after a repeated 401 before the connection
    parks in ``NEEDS_REAUTH``. ``retry_after_cap`` bounds a server's
    ``Retry-After`` (a hostile server may say "a year").
    """

    initial: float = 1.0
    multiplier: float = 1.6
    max_delay: float = 120.0
    jitter: JitterKind = "proportional"
    jitter_ratio: float = 0.2
    max_attempts: int | None = None
    max_elapsed: float | None = None
    auth_attempts: int = 3
    retry_after_cap: float = 300.0
    #: A tenacity ``wait`` strategy replacing the curve and jitter above.
    wait: Any = field(default=None, compare=False)
    #: A tenacity ``stop`` strategy replacing ``max_attempts``/``max_elapsed``.
    stop: Any = field(default=None, compare=False)

    def __post_init__(self) -> None:
        for name in ("initial", "max_delay", "retry_after_cap"):
            number(getattr(self, name), f"backoff {name}")
        number(self.multiplier, "backoff multiplier", low=1)
        if self.max_elapsed is not None:
            number(self.max_elapsed, "max_elapsed")
        if self.jitter not in _JITTER_KINDS:
            raise ValueError(f"unknown jitter kind {self.jitter!r}")
        if not 0 <= self.jitter_ratio <= 1:
            raise ValueError("jitter_ratio must be within [0, 1]")
        if self.max_attempts is not None and self.max_attempts < 0:
            raise ValueError("max_attempts must be >= 0")
        if self.auth_attempts < 0:
            raise ValueError("auth_attempts must be >= 0")

    def base_delay(self, attempt: int) -> float:
        """The capped exponential delay before jitter: ``initial * multiplier**(attempt-1)``.

        The same curve as tenacity's ``wait_exponential``, computed directly; past the
        cap no power is taken, so attempt 10,000 is the cap, not an overflow.
        """
        steps = max(attempt, 1) - 1
        if self.initial == 0 or self.multiplier == 1 or self.initial >= self.max_delay:
            return min(self.initial, self.max_delay)
        if steps >= math.log(self.max_delay / self.initial, self.multiplier):
            return self.max_delay
        return min(self.initial * self.multiplier**steps, self.max_delay)

    def delay(
        self,
        attempt: int,
        rng: random.Random,
        *,
        previous: float | None = None,
        elapsed: float = 0.0,
    ) -> float:
        """Seconds to wait before retry number ``attempt`` (1-based).

        ``previous`` is the last delay, used by decorrelated jitter.
        """
        if self.wait is not None:
            wanted = float(self.wait(_call_state(self.wait, self.stop, attempt, elapsed)))
            return max(0.0, wanted) if math.isfinite(wanted) else self.max_delay
        base = self.base_delay(attempt)
        if self.jitter == "none":
            return base
        if self.jitter == "proportional":
            spread = base * self.jitter_ratio
            return max(0.0, base + rng.uniform(-spread, spread))
        if self.jitter == "full":
            return rng.uniform(0.0, base)
        if self.jitter == "equal":
            return base / 2 + rng.uniform(0.0, base / 2)
        # decorrelated (AWS): between initial and 3x the previous delay, capped.
        low = self.initial
        high = max(low, 3 * (previous if previous is not None else self.initial))
        return min(self.max_delay, rng.uniform(low, high))

    def exhausted(self, attempt: int, elapsed: float) -> bool:
        """True when retry number ``attempt`` should not happen at all."""
        if self.stop is not None:
            return bool(self.stop(_call_state(self.wait, self.stop, attempt, elapsed)))
        if self.max_attempts is not None and attempt > self.max_attempts:
            return True
        return self.max_elapsed is not None and elapsed >= self.max_elapsed

    def retry_after(self, seconds: float) -> float:
        """A server's ``Retry-After``, capped and never negative (NaN counts as 0)."""
        return min(max(0.0, seconds), self.retry_after_cap) if seconds == seconds else 0.0

    def hint(self, seconds: float | None) -> float | None:
        """A server's hint (``Retry-After``, SSE ``retry:``) as a usable wait, or None.

        Only a finite, positive number is a hint; it is capped at ``retry_after_cap``.
        Past dates, zero, negatives, NaN and infinities are no hint at all: the
        curve decides.
        """
        if seconds is None or not math.isfinite(seconds) or seconds <= 0:
            return None
        return min(seconds, self.retry_after_cap)


@dataclass(slots=True)
class Retries:
    """Where one connection is on a `Backoff` curve: the transient attempt, since when.

    Mutable and sans-IO like the machine that owns it: ``now`` and ``rng`` are
    passed in.
    """

    attempt: int = 0
    failing_since: float | None = None
    #: The last delay (decorrelated jitter grows from it).
    last_delay: float | None = None

    def reset(self) -> None:
        """The connection was productive: the next failure starts the curve over."""
        self.attempt = 0
        self.failing_since = None
        self.last_delay = None

    def next_delay(
        self,
        backoff: Backoff,
        hint: float | None,
        now: float,
        rng: random.Random,
        *,
        productive: bool = False,
    ) -> float | None:
        """The wait before the next attempt, or None when the policy gives up.

        A server's hint lengthens the curve's delay, never shortens it, except
        right after a productive period (one short wait per period is the most a
        server can win).
        """
        if productive:
            self.reset()
        self.attempt += 1
        if self.failing_since is None:
            self.failing_since = now
        elapsed = now - self.failing_since
        if backoff.exhausted(self.attempt, elapsed):
            return None
        delay = backoff.delay(self.attempt, rng, previous=self.last_delay, elapsed=elapsed)
        wanted = backoff.hint(hint)
        if wanted is not None:
            delay = wanted if productive else max(delay, wanted)
        self.last_delay = delay
        return delay
