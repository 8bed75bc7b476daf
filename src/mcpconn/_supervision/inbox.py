"""Waiting that costs nothing until someone waits: a one-shot flag and a fact inbox.

An idle connection is mostly waiting, and thousands of them wait at once. An
``anyio.Event`` on asyncio carries a waiter deque (~760 bytes) from birth, and
a memory object stream two ordered dicts and an event per receive. `Flag` and
`Inbox` hold a plain value and make the one `anyio.Event` they need only while
a task is actually waiting, and drop it once woken. The inbox's one reader
waits for a put on a bare future on asyncio (an event would add its deque and
two wrapper frames to every idle runner's wait).
"""

from __future__ import annotations

import asyncio
from typing import Generic, TypeVar

import anyio
import anyio.lowlevel

__all__ = ["Flag", "Inbox"]

T = TypeVar("T")

_Waiter = anyio.Event | asyncio.Future[None]


def _new_waiter() -> _Waiter:
    """A bare future on asyncio (as `wire.now`, found by its running loop); else an event."""
    loop = asyncio._get_running_loop()
    return loop.create_future() if loop is not None else anyio.Event()


class Flag:
    """A one-shot event whose waiter queue exists only while someone waits."""

    __slots__ = ("_event", "_set")

    def __init__(self) -> None:
        self._set = False
        self._event: anyio.Event | None = None

    def is_set(self) -> bool:
        return self._set

    def set(self) -> None:
        self._set = True
        if self._event is not None:
            self._event.set()
            self._event = None

    async def wait(self) -> None:
        if self._set:
            await anyio.lowlevel.checkpoint()
            return
        if self._event is None:
            self._event = anyio.Event()
        await self._event.wait()


class Inbox(Generic[T]):
    """A FIFO of items posted from any task, read by one; a closed inbox takes nothing."""

    __slots__ = ("_closed", "_items", "_waiter")

    def __init__(self) -> None:
        self._items: list[T] = []  # a few at a time; an empty deque is ~760 bytes
        self._waiter: _Waiter | None = None
        self._closed = False

    def put(self, item: T) -> None:
        """Queue ``item`` (dropped once closed: a late item means nothing)."""
        if self._closed:
            return
        self._items.append(item)
        waiter = self._waiter
        if waiter is not None:
            self._waiter = None
            if isinstance(waiter, anyio.Event):
                waiter.set()
            elif not waiter.done():  # cancelled with its reader: nobody to wake
                waiter.set_result(None)

    async def get(self, deadline: float | None = None) -> T | None:
        """The next item; None once ``deadline`` (``anyio.current_time()``) has passed,
        which wins over items already queued (as a receive under a passed timeout)."""
        items = self._items
        if deadline is not None and anyio.current_time() >= deadline:
            await anyio.lowlevel.checkpoint()
            return None
        if items:
            await anyio.lowlevel.checkpoint()
            return items.pop(0)
        waiter = self._waiter = _new_waiter()
        woken = waiter.wait() if isinstance(waiter, anyio.Event) else waiter
        try:
            if deadline is None:
                await woken
            else:
                with anyio.move_on_at(deadline):
                    await woken
        finally:
            if self._waiter is waiter:
                self._waiter = None
        return items.pop(0) if items else None

    def close(self) -> None:
        self._closed = True
        self._items.clear()
