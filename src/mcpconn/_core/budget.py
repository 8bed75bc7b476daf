"""Token buckets that keep one server's outage a trickle, not a storm.

Sans-IO: the caller passes ``now``. `reserve()` always grants and returns how
long to wait first, going into debt like a reservation limiter: a thousand
connections retrying at once are spread out at ``rate`` per second instead of
being refused (a refused retry would need a retry of its own).
"""

from __future__ import annotations

from dataclasses import dataclass, field


@dataclass
class TokenBucket:
    """``rate`` tokens per second, at most ``burst`` saved up."""

    rate: float
    burst: float
    _tokens: float = field(init=False)
    _updated: float | None = field(default=None, init=False)
    #: Reservations that had to wait (the budget was exhausted).
    exhausted: int = field(default=0, init=False)

    def __post_init__(self) -> None:
        if self.rate <= 0 or self.burst < 1:
            raise ValueError("a bucket needs rate > 0 and burst >= 1")
        self._tokens = self.burst

    def _refill(self, now: float) -> None:
        if self._updated is not None and now > self._updated:
            self._tokens = min(self.burst, self._tokens + (now - self._updated) * self.rate)
        if self._updated is None or now > self._updated:
            self._updated = now

    def reserve(self, now: float) -> float:
        """Take one token; return the seconds to wait before using it (0 when available)."""
        self._refill(now)
        self._tokens -= 1
        if self._tokens >= 0:
            return 0.0
        self.exhausted += 1
        return -self._tokens / self.rate

    def available(self, now: float) -> float:
        """Tokens available now (negative: the debt still to be paid)."""
        self._refill(now)
        return self._tokens
