"""One line of an event stream, split as the WHATWG rules say, for the tests' own SSE readers.

Tests read SSE without mcpconn's decoder (so a bug there cannot hide itself); this is the
one place the line grammar is written for them.
"""

from __future__ import annotations


def field(line: str) -> tuple[str, str] | None:
    """``name: value`` as ``(name, value)``, one leading space dropped; None for a comment."""
    if line.startswith(":"):
        return None
    name, _, value = line.partition(":")
    return name, value.removeprefix(" ")
