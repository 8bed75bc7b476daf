"""ListCache: pagination to the end, garbage pages dropped, no caching across a change."""

from __future__ import annotations

from typing import Any

import pytest

from mcpconn._mcp import lists as _lists
from mcpconn._mcp.lists import ListCache


class Pages:
    """A scripted ``<kind>/list`` endpoint: replies in order, records the params."""

    def __init__(self, *replies: dict[str, Any]) -> None:
        self.replies = list(replies)
        self.params: list[dict[str, Any] | None] = []

    async def __call__(self, method: str, params: dict[str, Any] | None) -> dict[str, Any]:
        assert method == "tools/list"
        self.params.append(params)
        return self.replies.pop(0)


async def test_fetch_follows_cursors_and_caches_the_whole_list() -> None:
    cache = ListCache()
    pages = Pages(
        {"tools": [{"name": "a"}], "nextCursor": "c1"},
        {"tools": [{"name": "b"}, "junk", 7]},  # entries that are not objects are dropped
    )
    assert await cache.fetch("tools", pages) == [{"name": "a"}, {"name": "b"}]
    assert pages.params == [None, {"cursor": "c1"}]
    assert cache.cached("tools") == [{"name": "a"}, {"name": "b"}]
    assert cache.cached("prompts") is None


@pytest.mark.parametrize("page", [5, "tools", None, {"name": "a"}])
async def test_a_page_that_is_not_a_list_is_empty_not_a_crash(page: object) -> None:
    assert await ListCache().fetch("tools", Pages({"tools": page})) == []


async def test_list_changed_and_a_new_session_drop_the_cache() -> None:
    cache = ListCache()
    await cache.fetch("tools", Pages({"tools": [{"name": "a"}]}))
    cache.on_notification("notifications/prompts/list_changed")
    assert cache.cached("tools") is not None
    cache.on_notification("notifications/tools/list_changed")
    assert cache.cached("tools") is None
    await cache.fetch("tools", Pages({"tools": [{"name": "a"}]}))
    cache.invalidate()
    assert cache.cached("tools") is None


async def test_a_fetch_that_raced_a_change_is_returned_but_not_cached() -> None:
    cache = ListCache()

    async def changes_midway(method: str, params: dict[str, Any] | None) -> dict[str, Any]:
        cache.on_notification("notifications/tools/list_changed")
        return {"tools": [{"name": "old"}]}

    assert await cache.fetch("tools", changes_midway) == [{"name": "old"}]
    assert cache.cached("tools") is None


async def test_endless_cursors_stop_after_max_pages(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(_lists, "MAX_PAGES", 5)
    calls = 0

    async def endless(method: str, params: dict[str, Any] | None) -> dict[str, Any]:
        nonlocal calls
        calls += 1
        return {"tools": [{"n": calls}], "nextCursor": f"c{calls}"}

    assert len(await ListCache().fetch("tools", endless)) == 5
    assert calls == 5


async def test_paginate_is_the_one_loop_and_stops_on_any_unusable_cursor() -> None:
    seen: list[dict[str, Any] | None] = []

    async def server(method: str, params: dict[str, Any] | None) -> dict[str, Any]:
        assert method == "tools/list"
        seen.append(params)
        cursors: list[object] = ["c1", 7, None]
        return {"page": len(seen), "nextCursor": cursors[len(seen) - 1]}

    pages: list[dict[str, Any]] = []
    await _lists.paginate(server, "tools/list", pages.append)
    assert seen == [None, {"cursor": "c1"}]  # a non-string cursor ends it
    assert [p["page"] for p in pages] == [1, 2]


async def test_a_cache_keeps_no_dict_until_a_list_and_none_once_emptied() -> None:
    """Thousands of idle connections fetch no list: their caches hold no dicts."""
    cache = ListCache()
    assert cache._items is None and cache.cached("tools") is None

    async def request(method: str, params: Any) -> dict[str, Any]:
        return {"tools": [{"name": "a"}]}

    await cache.fetch("tools", request)
    assert cache.cached("tools") == [{"name": "a"}]
    cache.on_notification("notifications/tools/list_changed")
    assert cache.cached("tools") is None and cache._items is None
    await cache.fetch("tools", request)
    cache.invalidate()
    assert cache._items is None and cache.cached("tools") is None
