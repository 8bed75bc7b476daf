"""Numbers a server sends, read with bounds: one helper for every header, field and value.

A server picks the digits: 400 of them in an SSE ``retry:`` overflow a float,
5,000 in a ``Content-Length`` make ``int()`` raise ``ValueError``, ``"²"`` passes
``str.isdigit`` and then fails ``int()``, a JSON ``1e999`` is infinity and a JSON
``NaN`` is not even equal to itself. Every number a server sends is read here
instead, and every reader has the same contract: **the value, within the bounds
given, or ``None``**. Nothing here raises on input; a caller treats ``None`` as
"the server said nothing usable" (a missing hint, an unknown length, an invalid
message), never as an error of ours.

* `parse_digits`: a decimal field of text (``retry:``, ``Content-Length``,
  delta-seconds). ASCII digits only, leading zeros allowed, the digit count is
  checked before any conversion, so the work is bounded by the bound.
* `json_int`, `json_number`: a decoded JSON value (ids, error codes, progress).
  ``bool`` is not a number; an integral float is read as the int it means.
* `wait_hint`: a server's "wait this long" (``Retry-After``, ``retry:``) in
  seconds. Zero, negative, not finite or beyond `MAX_HINT_SECONDS` is no hint:
  a hint may lengthen a wait, so a value that cannot mean "wait longer" is not
  one, and the backoff curve applies. Capping a valid hint is the policy's job
  (`Backoff.retry_after_cap`), not the parser's.
"""

from __future__ import annotations

import math

__all__ = [
    "INT64_MAX",
    "INT64_MIN",
    "MAX_HINT_SECONDS",
    "json_int",
    "json_number",
    "parse_digits",
    "wait_hint",
]

INT64_MAX = (1 << 63) - 1
INT64_MIN = -(1 << 63)
#: The longest server wait hint taken as meant: a century. Beyond is absurd, not a wait.
MAX_HINT_SECONDS = 100 * 365 * 86400.0

_ASCII_DIGITS = frozenset(b"0123456789")


def parse_digits(text: str | bytes, *, high: int, low: int = 0) -> int | None:
    """``text`` as a decimal integer in ``[low, high]``, or ``None``.

    Only ASCII digits (no sign, no spaces, no fraction, no other script's
    digits); surrounding whitespace is the caller's to strip.
    """
    raw = text.encode("ascii", "replace") if isinstance(text, str) else text
    if not raw or not _ASCII_DIGITS.issuperset(raw):
        return None
    significant = raw.lstrip(b"0") or b"0"
    if len(significant) > len(str(high)):
        return None
    value = int(significant)
    return value if low <= value <= high else None


def json_int(value: object, *, low: int = INT64_MIN, high: int = INT64_MAX) -> int | None:
    """A JSON integer (or integral float) in ``[low, high]``; ``bool`` and the rest are ``None``."""
    if isinstance(value, bool):
        return None
    if isinstance(value, float):
        if not value.is_integer() or not float(low) <= value <= float(high):
            return None
        value = int(value)
    if isinstance(value, int) and low <= value <= high:
        return value
    return None


def json_number(value: object, *, low: float = -math.inf, high: float = math.inf) -> float | None:
    """A finite JSON number in ``[low, high]`` as a float; ``bool``, NaN, infinity: ``None``."""
    if isinstance(value, bool) or not isinstance(value, int | float):
        return None
    try:
        number = float(value)
    except OverflowError:  # an int too large for a float
        return None
    if not math.isfinite(number) or not low <= number <= high:
        return None
    return number


def wait_hint(seconds: float | None) -> float | None:
    """A server's wait hint in seconds if it can mean "wait this long", else ``None``."""
    if seconds is None or not math.isfinite(seconds):
        return None
    return seconds if 0.0 < seconds <= MAX_HINT_SECONDS else None
