"""Is this token still good to hand out? Pure functions of (token, now, policy).

A token's life, when its expiry is known::

    issued ............ refresh_from ........ expired_from ...... expires_at
    |------ FRESH -------|--- REFRESH_AHEAD ---|----- EXPIRED (margin) -----|

* ``expired_from = expires_at - margin``: at or past it the token is EXPIRED
  and must not be handed out (the default 30 s margin covers clock skew and the
  time a request spends in flight). For a token whose lifetime is known the
  margin is at most a quarter of that lifetime: a 2-second token is usable for
  1.5 s rather than never.
* ``refresh_from = expired_from - stale_window``: from here on the token is
  still served, but a background refresh should start. The default window is
  ``max(60 s, 10 % of the lifetime)``, capped at 5 minutes.
* The window never opens before the halfway point between ``obtained_at``
  (when the token source received the token; ``issued_at`` if unknown) and
  ``expired_from``. A short-lived token, or one that arrives already inside
  its window, is therefore not refreshed the moment it arrives, and a provider
  that hands out such tokens is not called on every request.
* The lifetime is ``expires_at - issued_at`` (the ``iat`` claim), or, without
  ``iat``, ``expires_at - obtained_at``.

A token with no known expiry is FRESH forever (served until a server rejects
it) unless the policy has a ``max_age``: then it expires ``max_age`` seconds
after it was obtained (no margin: the age limit is ours, not the server's),
with the same refresh-ahead window before that.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass

from .settings import number
from .token import Token

__all__ = [
    "DEFAULT_MARGIN",
    "MAX_STALE_WINDOW",
    "MIN_STALE_WINDOW",
    "STALE_WINDOW_FRACTION",
    "Deadlines",
    "Freshness",
    "FreshnessPolicy",
    "deadlines",
    "freshness",
    "freshness_within",
    "refresh_timer_at",
    "stale_window",
]

DEFAULT_MARGIN = 30.0
MIN_STALE_WINDOW = 60.0
STALE_WINDOW_FRACTION = 0.10
MAX_STALE_WINDOW = 300.0
MAX_MARGIN_FRACTION = 0.25


class Freshness(enum.Enum):
    FRESH = "fresh"
    REFRESH_AHEAD = "refresh-ahead"
    EXPIRED = "expired"


@dataclass(frozen=True)
class FreshnessPolicy:
    """``margin``: seconds before expiry a token counts as expired.
    ``stale_window``: fixed refresh-ahead window (``None``: the default formula).
    ``max_age``: age limit for tokens without a known expiry (``None``: no limit).
    """

    margin: float = DEFAULT_MARGIN
    stale_window: float | None = None
    max_age: float | None = None

    def __post_init__(self) -> None:
        number(self.margin, "margin")
        if self.stale_window is not None:
            number(self.stale_window, "stale_window")
        if self.max_age is not None:
            number(self.max_age, "max_age", above=True)


@dataclass(frozen=True)
class Deadlines:
    """When a token enters REFRESH_AHEAD and EXPIRED; ``None``: never."""

    refresh_from: float | None
    expired_from: float | None


def stale_window(policy: FreshnessPolicy, lifetime: float | None) -> float:
    """The refresh-ahead window for a token of ``lifetime`` seconds (``None``: unknown)."""
    if policy.stale_window is not None:
        return policy.stale_window
    if lifetime is None:
        return MIN_STALE_WINDOW
    return min(max(MIN_STALE_WINDOW, STALE_WINDOW_FRACTION * lifetime), MAX_STALE_WINDOW)


def deadlines(
    token: Token, policy: FreshnessPolicy, *, obtained_at: float | None = None
) -> Deadlines:
    """Both boundaries of ``token``'s life under ``policy``; see the module docstring."""
    if token.expires_at is not None:
        born = token.issued_at if token.issued_at is not None else obtained_at
        lifetime = token.expires_at - born if born is not None else None
        margin = policy.margin
        if lifetime is not None and lifetime > 0:
            margin = min(margin, MAX_MARGIN_FRACTION * lifetime)
        expired_from = token.expires_at - margin
    elif policy.max_age is not None:
        born = obtained_at if obtained_at is not None else token.issued_at
        if born is None:
            return Deadlines(None, None)
        expired_from = born + policy.max_age
        lifetime = policy.max_age
    else:
        return Deadlines(None, None)
    if lifetime is not None and lifetime <= 0:
        lifetime = None
    refresh_from = expired_from - stale_window(policy, lifetime)
    floor = obtained_at if obtained_at is not None else born
    if floor is not None and floor < expired_from:
        refresh_from = max(refresh_from, floor + (expired_from - floor) / 2)
    return Deadlines(min(refresh_from, expired_from), expired_from)


def freshness(
    token: Token, now: float, policy: FreshnessPolicy, *, obtained_at: float | None = None
) -> Freshness:
    """FRESH, REFRESH_AHEAD or EXPIRED at ``now`` (epoch seconds)."""
    return freshness_within(deadlines(token, policy, obtained_at=obtained_at), now)


def freshness_within(d: Deadlines, now: float) -> Freshness:
    """FRESH, REFRESH_AHEAD or EXPIRED at ``now``, for a token's `deadlines`."""
    if d.expired_from is not None and now >= d.expired_from:
        return Freshness.EXPIRED
    if d.refresh_from is not None and now >= d.refresh_from:
        return Freshness.REFRESH_AHEAD
    return Freshness.FRESH


def refresh_timer_at(
    token: Token, policy: FreshnessPolicy, *, obtained_at: float | None = None
) -> float | None:
    """When a no-traffic refresh-ahead timer should fire for ``token`` (``None``: never).

    It fires when the stale window opens, which leaves the whole window (and
    its retries) for the provider to answer before the token expires.
    """
    return deadlines(token, policy, obtained_at=obtained_at).refresh_from
