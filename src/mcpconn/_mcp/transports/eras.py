"""The era detected per server URL, so reconnects skip the probing.

Which era to try and what counts as "not this era" are decided in the core
(`mcpconn._core.eras`); this is only the memory of the verdicts. When a cached
era later fails with a fallback signal it is forgotten and detection runs again.
"""

from __future__ import annotations

from ..._core.eras import Era

__all__ = ["EraCache"]


class EraCache:
    """The era detected per server URL, so reconnects skip the probing."""

    def __init__(self) -> None:
        self._eras: dict[str, Era] = {}

    def get(self, url: str) -> Era | None:
        return self._eras.get(url)

    def set(self, url: str, era: Era) -> None:
        self._eras[url] = era

    def forget(self, url: str) -> None:
        self._eras.pop(url, None)

    def __len__(self) -> int:
        return len(self._eras)

    def __repr__(self) -> str:
        return f"EraCache({len(self._eras)} servers)"
