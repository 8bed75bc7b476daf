"""Tool, resource, template and prompt lists: every page fetched, kept while known fresh.

A list is cached per kind until a ``notifications/<kind>/list_changed`` arrives, a
new session starts (a new session may serve other lists), a listener starts
without replay (a change sent while it was down is lost: `invalidate`), or the
``ttlMs`` the server put on the result has passed (2026-07-28; the smallest of
the pages'). A fetch that raced such a change is returned to its caller but not
cached: it may already be stale. Resource templates change with resources.
"""

from __future__ import annotations

import math
from collections.abc import Awaitable, Callable
from typing import Any

__all__ = ["LIST_CHANGED", "MAX_PAGES", "ListCache"]

LIST_CHANGED = {
    "notifications/tools/list_changed": ("tools",),
    "notifications/resources/list_changed": ("resources", "resourceTemplates"),
    "notifications/prompts/list_changed": ("prompts",),
}
#: kind -> the list method (the kind is also the result's key).
_METHODS = {"resourceTemplates": "resources/templates/list"}
#: A server whose cursors never end must not hang us.
MAX_PAGES = 10_000

Request = Callable[[str, dict[str, Any] | None], Awaitable[dict[str, Any]]]


class ListCache:
    """The cached lists of one connection; `fetch` follows ``nextCursor`` to the end."""

    __slots__ = ("_expires", "_generation", "_items")

    def __init__(self) -> None:
        self._items: dict[str, list[dict[str, Any]]] = {}
        self._expires: dict[str, float] = {}
        self._generation = 0

    def cached(self, kind: str, now: float = 0.0) -> list[dict[str, Any]] | None:
        items = self._items.get(kind)
        if items is not None and now >= self._expires.get(kind, math.inf):
            del self._items[kind]
            return None
        return None if items is None else list(items)

    def invalidate(self) -> None:
        """A new session: every list may have changed."""
        self._items.clear()
        self._generation += 1

    def on_notification(self, method: object) -> None:
        kinds = LIST_CHANGED.get(method) if isinstance(method, str) else None
        if kinds is not None:
            for kind in kinds:
                self._items.pop(kind, None)
            self._generation += 1

    async def fetch(
        self, kind: str, request: Request, now: Callable[[], float] | None = None
    ) -> list[dict[str, Any]]:
        """Every page of ``<kind>/list``; entries that are not objects are dropped."""
        generation = self._generation
        started = now() if now is not None else 0.0
        ttl = math.inf
        method = _METHODS.get(kind, f"{kind}/list")
        items: list[dict[str, Any]] = []
        cursor: str | None = None
        for _ in range(MAX_PAGES):
            result = await request(method, {"cursor": cursor} if cursor else None)
            ttl_ms = result.get("ttlMs")
            if isinstance(ttl_ms, int) and not isinstance(ttl_ms, bool) and ttl_ms >= 0:
                ttl = min(ttl, ttl_ms / 1000.0)
            page = result.get(kind)
            if isinstance(page, list):
                items.extend(item for item in page if isinstance(item, dict))
            next_cursor = result.get("nextCursor")
            if not isinstance(next_cursor, str) or not next_cursor:
                break
            cursor = next_cursor
        if generation == self._generation and ttl > 0:
            self._items[kind] = items
            self._expires[kind] = started + ttl
        return list(items)
