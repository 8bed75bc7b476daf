"""Numbers in our own settings, checked once, at construction, by one helper.

A setting is ours (an embedder's argument), not the server's: a wrong one is a
bug to report at once, so these raise (``TypeError`` for what is not a number,
``bool`` included; ``ValueError`` for NaN, infinity or a value out of range).
Numbers a *server* sends are never raised on: `bounds` reads those.
"""

from __future__ import annotations

import math

__all__ = ["number", "whole_number"]


def number(value: object, name: str, *, low: float = 0.0, above: bool = False) -> float:
    """``value`` as a finite float ``>= low`` (``> low`` when ``above``)."""
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise TypeError(f"{name} must be a number, not {type(value).__name__}")
    try:
        as_float = float(value)
    except OverflowError:  # an int too large for a float
        as_float = math.inf
    too_low = as_float <= low if above else as_float < low
    if not math.isfinite(as_float) or too_low:
        bound = "" if low == -math.inf else f" {'>' if above else '>='} {low:g}"
        raise ValueError(f"{name} must be a finite number{bound}")
    return as_float


def whole_number(value: object, name: str, *, low: int = 1) -> int:
    """``value`` as an ``int >= low`` (a count: shards, connections, buffered items)."""
    if isinstance(value, bool) or not isinstance(value, int):
        raise TypeError(f"{name} must be an int, not {type(value).__name__}")
    if value < low:
        raise ValueError(f"{name} must be an int >= {low}")
    return value
