"""The `Token` value: a credential string plus what we know about its lifetime.

``raw`` is the credential. It never appears in ``repr()``/``str()``: those show
a short SHA-256 fingerprint (enough to tell two tokens apart in a log line,
useless to an attacker) and the expiry. Sans-IO: ``from_jwt`` takes ``now`` as a
parameter instead of reading a clock.
"""

from __future__ import annotations

import hashlib
import math
from dataclasses import dataclass
from datetime import UTC, datetime

from .._exceptions import MalformedTokenError
from .jwt import read_claims
from .settings import number

__all__ = ["Token"]


def _check_raw(raw: object) -> str:
    if not isinstance(raw, str):
        raise MalformedTokenError(f"a token must be a str, not {type(raw).__name__}")
    if not raw:
        raise MalformedTokenError("a token must not be empty")
    # RFC 6750 b64token, loosely: visible ASCII only. Whitespace or a control
    # character (CR/LF: header injection) is never part of a bearer token.
    # str methods, not a per-character generator: every reconnect checks its token.
    if not (raw.isascii() and raw.isprintable()) or " " in raw:
        raise MalformedTokenError(
            "a token must be visible ASCII (no whitespace or control characters)"
        )
    return raw


def _check_time(value: object, name: str) -> float | None:
    return None if value is None else number(value, name, low=-math.inf)


def _iso(ts: float) -> str:
    try:
        return datetime.fromtimestamp(ts, tz=UTC).isoformat(timespec="seconds")
    except (OverflowError, OSError, ValueError):
        return f"{ts:g}"


@dataclass(frozen=True, repr=False, slots=True)
class Token:
    """A bearer credential. ``expires_at``/``issued_at`` are epoch seconds or ``None`` (unknown).

    Equality compares everything; the token *identity* used by
    compare-and-refresh is ``raw`` (see `same_credential`).
    """

    raw: str
    expires_at: float | None = None
    issued_at: float | None = None

    def __post_init__(self) -> None:
        _check_raw(self.raw)
        object.__setattr__(self, "expires_at", _check_time(self.expires_at, "expires_at"))
        object.__setattr__(self, "issued_at", _check_time(self.issued_at, "issued_at"))

    @classmethod
    def from_jwt(
        cls,
        raw: str,
        *,
        expires_at: float | None = None,
        expires_in: float | None = None,
        now: float | None = None,
    ) -> Token:
        """Build a token, reading ``exp``/``iat`` when ``raw`` is a JWT (not verified).

        An opaque string is a valid token with no known expiry. An explicit
        ``expires_at`` or ``now + expires_in`` wins over the ``exp`` claim only
        when earlier: we never believe a token lives longer than it says.
        Raises `MalformedTokenError` for a JWT-shaped string we cannot read.
        """
        _check_raw(raw)
        claims = read_claims(raw)
        candidates = [claims.expires_at, _check_time(expires_at, "expires_at")]
        seconds = _check_time(expires_in, "expires_in")
        if seconds is not None:
            start = _check_time(now, "now")
            if start is None:
                raise ValueError("expires_in needs now= (the core never reads a clock)")
            candidates.append(start + seconds)
        known = [c for c in candidates if c is not None]
        return cls(raw, expires_at=min(known) if known else None, issued_at=claims.issued_at)

    @property
    def fingerprint(self) -> str:
        """``sha256:`` and 8 hex digits: tells tokens apart without revealing them."""
        return "sha256:" + hashlib.sha256(self.raw.encode()).hexdigest()[:8]

    @property
    def lifetime(self) -> float | None:
        """``expires_at - issued_at`` when both are known and sensible, else ``None``."""
        if self.expires_at is None or self.issued_at is None:
            return None
        span = self.expires_at - self.issued_at
        return span if span > 0 else None

    def same_credential(self, other: Token | None) -> bool:
        """True when ``other`` carries the same credential string."""
        return other is not None and other.raw == self.raw

    def __repr__(self) -> str:
        expiry = "unknown" if self.expires_at is None else _iso(self.expires_at)
        return f"<Token {self.fingerprint} expires_at={expiry}>"

    __str__ = __repr__
