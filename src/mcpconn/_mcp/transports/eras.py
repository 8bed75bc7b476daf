"""The era detected per server URL, so reconnects skip the probing; and kept discover answers.

Which era to try and what counts as "not this era" are decided in the core
(`mcpconn._core.eras`); this is only the memory of the verdicts. When a cached
era later fails with a fallback signal it is forgotten and detection runs again.

The cache also keeps ``server/discover`` answers (`Discovery`, judged in
`mcpconn._core.discovery`) until they expire, per principal unless public: a
2026 reconnect may stand on one instead of asking again (`Opening` decides).
An expired answer is dropped when it is looked up.
"""

from __future__ import annotations

from ..._core.discovery import Discovery, is_fresh
from ..._core.eras import Era

__all__ = ["EraCache"]


class EraCache:
    """The era detected per server URL, and fresh ``server/discover`` answers."""

    def __init__(self) -> None:
        self._eras: dict[str, Era] = {}
        #: URL -> principal (None: public) -> the answer that principal may reuse.
        self._discoveries: dict[str, dict[str | None, Discovery]] = {}

    def get(self, url: str) -> Era | None:
        return self._eras.get(url)

    def set(self, url: str, era: Era) -> None:
        self._eras[url] = era

    def forget(self, url: str) -> None:
        """Forget the era verdict, and the discover answers that came with it."""
        self._eras.pop(url, None)
        self._discoveries.pop(url, None)

    def discovery(self, url: str, principal: str | None, now: float) -> Discovery | None:
        """A fresh answer ``principal`` may reuse (its own, else a public one), or None."""
        kept = self._discoveries.get(url)
        if not kept:
            return None
        for key in (principal, None):
            found = kept.get(key)
            if found is None:
                continue
            if is_fresh(found, now):
                return found
            del kept[key]  # stale: nothing keeps it any longer
        if not kept:
            del self._discoveries[url]
        return None

    def keep_discovery(self, url: str, principal: str | None, discovery: Discovery) -> None:
        if not discovery.public and principal is None:
            return  # private to nobody in particular: not reusable
        key = None if discovery.public else principal
        self._discoveries.setdefault(url, {})[key] = discovery

    def forget_discovery(self, url: str, principal: str | None) -> None:
        """Drop what ``principal`` would reuse: its own answer and any public one."""
        kept = self._discoveries.get(url)
        if kept is None:
            return
        kept.pop(principal, None)
        kept.pop(None, None)
        if not kept:
            del self._discoveries[url]

    def __len__(self) -> int:
        return len(self._eras)

    def __repr__(self) -> str:
        return f"EraCache({len(self._eras)} servers)"
