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

from .._core.bounds import json_int

__all__ = ["LIST_CHANGED", "MAX_PAGES", "ListCache", "paginate"]

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


async def paginate(
    request: Request, method: str, on_page: Callable[[dict[str, Any]], object]
) -> None:
    """Every page of the paginated ``method``: ``on_page(result)`` for each, in order.

    Follows ``nextCursor`` until the server stops sending one (or sends a
    non-string or empty one), for at most `MAX_PAGES` pages: the one pagination
    loop of mcpconn (the list cache and the stateless era's tools re-read).
    """
    cursor: str | None = None
    for _ in range(MAX_PAGES):
        result = await request(method, {"cursor": cursor} if cursor else None)
        on_page(result)
        next_cursor = result.get("nextCursor")
        if not isinstance(next_cursor, str) or not next_cursor:
            return
        cursor = next_cursor


class ListCache:
    """The cached lists of one connection; `fetch` follows ``nextCursor`` to the end."""

    __slots__ = ("_expires", "_generation", "_items")

    def __init__(self) -> None:
        # made at the first list kept, dropped when emptied: most idle connections keep none
        self._items: dict[str, list[dict[str, Any]]] | None = None
        self._expires: dict[str, float] | None = None
        self._generation = 0

    def cached(self, kind: str, now: float = 0.0) -> list[dict[str, Any]] | None:
        kept = self._items
        items = kept.get(kind) if kept is not None else None
        if items is None:
            return None
        if now >= (self._expires or {}).get(kind, math.inf):
            self._forget(kind)
            return None
        return list(items)

    def invalidate(self) -> None:
        """A new session: every list may have changed."""
        self._items = self._expires = None
        self._generation += 1

    def on_notification(self, method: object) -> None:
        kinds = LIST_CHANGED.get(method) if isinstance(method, str) else None
        if kinds is not None:
            for kind in kinds:
                self._forget(kind)
            self._generation += 1

    def _forget(self, kind: str) -> None:
        kept = self._items
        if kept is not None:
            kept.pop(kind, None)
            if not kept:
                self._items = self._expires = None

    async def fetch(
        self, kind: str, request: Request, now: Callable[[], float] | None = None
    ) -> list[dict[str, Any]]:
        """Every page of ``<kind>/list``; entries that are not objects are dropped."""
        generation = self._generation
        started = now() if now is not None else 0.0
        ttl = math.inf
        method = _METHODS.get(kind, f"{kind}/list")
        items: list[dict[str, Any]] = []

        def on_page(result: dict[str, Any]) -> None:
            nonlocal ttl
            ttl_ms = json_int(result.get("ttlMs"), low=0)  # bounded: 10**400 is no float
            if ttl_ms is not None:
                ttl = min(ttl, ttl_ms / 1000.0)
            page = result.get(kind)
            if isinstance(page, list):
                items.extend(item for item in page if isinstance(item, dict))

        await paginate(request, method, on_page)
        if generation == self._generation and ttl > 0:
            if self._items is None or self._expires is None:
                self._items, self._expires = {}, {}
            self._items[kind] = items
            self._expires[kind] = started + ttl
        return list(items)
