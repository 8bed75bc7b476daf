"""Whether a cached token may be served: the token layer's one freshness judge.

The rules are the core's (`mcpconn._core.freshness`: pure functions of token,
time and policy); this is the one place in the token layer that applies them,
with the source's clock and policy, to a `StoredToken` (which knows when it was
obtained). Every question the token source asks about a token's age (serve it?
refresh it in the background? may another replica's copy replace ours? when
should the no-traffic timer fire? did the provider hand back an expired one?)
is answered here, so there is no second reading of the rules to drift.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field

from .._core.freshness import (
    Deadlines,
    Freshness,
    FreshnessPolicy,
    deadlines,
    freshness_within,
    refresh_timer_at,
)
from .store import StoredToken

__all__ = ["FreshnessJudge"]


@dataclass(frozen=True)
class FreshnessJudge:
    """``policy`` applied at ``clock()`` (epoch seconds) to stored tokens."""

    policy: FreshnessPolicy
    clock: Callable[[], float]
    #: the last entry judged and its deadlines (a frozen entry's never change): the cached
    #: token is judged on every request, its deadlines worked out once
    _last: list[tuple[StoredToken, Deadlines]] = field(
        default_factory=list, compare=False, repr=False
    )

    def __call__(self, entry: StoredToken) -> Freshness:
        """FRESH, REFRESH_AHEAD or EXPIRED now."""
        last = self._last
        if last and last[0][0] is entry:
            d = last[0][1]
        else:
            d = deadlines(entry.token, self.policy, obtained_at=entry.obtained_at)
            last[:] = [(entry, d)]
        return freshness_within(d, self.clock())

    def servable(self, entry: StoredToken | None) -> bool:
        """Whether ``entry`` may still be handed out (FRESH or REFRESH_AHEAD)."""
        return entry is not None and self(entry) is not Freshness.EXPIRED

    def refresh_ahead_in(self, entry: StoredToken) -> float | None:
        """Seconds until the no-traffic timer should refresh ``entry`` (<= 0: now; None: never).

        It fires when the stale window opens, which leaves the whole window (and
        its retries) for the provider to answer before the token expires.
        """
        fire_at = refresh_timer_at(entry.token, self.policy, obtained_at=entry.obtained_at)
        return None if fire_at is None else fire_at - self.clock()
