"""Tool, resource and prompt lists: every page fetched, kept until the server says they changed.

A list is cached per kind until a ``notifications/<kind>/list_changed`` arrives or a
new session starts (a new session may serve other lists). A fetch that raced such a
change is returned to its caller but not cached: it may already be stale.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any

__all__ = ["LIST_CHANGED", "MAX_PAGES", "ListCache"]

LIST_CHANGED = {
    "notifications/tools/list_changed": "tools",
    "notifications/resources/list_changed": "resources",
    "notifications/prompts/list_changed": "prompts",
}
#: A server whose cursors never end must not hang us.
MAX_PAGES = 10_000

Request = Callable[[str, dict[str, Any] | None], Awaitable[dict[str, Any]]]


class ListCache:
    """The cached lists of one connection; `fetch` follows ``nextCursor`` to the end."""

    __slots__ = ("_generation", "_items")

    def __init__(self) -> None:
        self._items: dict[str, list[dict[str, Any]]] = {}
        self._generation = 0

    def cached(self, kind: str) -> list[dict[str, Any]] | None:
        items = self._items.get(kind)
        return None if items is None else list(items)

    def invalidate(self) -> None:
        """A new session: every list may have changed."""
        self._items.clear()
        self._generation += 1

    def on_notification(self, method: object) -> None:
        kind = LIST_CHANGED.get(method) if isinstance(method, str) else None
        if kind is not None:
            self._items.pop(kind, None)
            self._generation += 1

    async def fetch(self, kind: str, request: Request) -> list[dict[str, Any]]:
        """Every page of ``<kind>/list``; entries that are not objects are dropped."""
        generation = self._generation
        items: list[dict[str, Any]] = []
        cursor: str | None = None
        for _ in range(MAX_PAGES):
            result = await request(f"{kind}/list", {"cursor": cursor} if cursor else None)
            page = result.get(kind)
            if isinstance(page, list):
                items.extend(item for item in page if isinstance(item, dict))
            next_cursor = result.get("nextCursor")
            if not isinstance(next_cursor, str) or not next_cursor:
                break
            cursor = next_cursor
        if generation == self._generation:
            self._items[kind] = items
        return list(items)
