"""Fan-out of one producer's messages to many async-iterating subscribers.

A subscriber that falls behind loses its *oldest* buffered items (counted in
``dropped``), never blocks the producer and never grows without bound: one slow
consumer must not stall a connection's listener or eat the aggregator's memory.
"""

from __future__ import annotations

from collections import deque
from collections.abc import AsyncIterator
from typing import Generic, TypeVar

import anyio
import anyio.abc

T = TypeVar("T")


class Subscription(AsyncIterator[T], anyio.abc.AsyncResource, Generic[T]):
    """An async iterator over what a `Broadcast` publishes after it was created."""

    __slots__ = ("__weakref__", "_closed", "_items", "_owner", "_wakeup", "dropped")

    def __init__(self, owner: Broadcast[T], maxlen: int) -> None:
        self._owner = owner
        self._items: deque[T] = deque(maxlen=maxlen)
        # Made only while the consumer waits: a flood of items costs no Event.set
        # each, and an idle subscription holds no Event at all.
        self._wakeup: anyio.Event | None = None
        self._closed = False
        self.dropped = 0

    def _put(self, item: T) -> None:
        items = self._items
        if len(items) == items.maxlen:
            self.dropped += 1
        items.append(item)
        wakeup = self._wakeup
        if wakeup is not None:
            self._wakeup = None
            wakeup.set()

    def _end(self) -> None:
        self._closed = True
        wakeup, self._wakeup = self._wakeup, None
        if wakeup is not None:
            wakeup.set()

    def __aiter__(self) -> Subscription[T]:
        return self

    async def __anext__(self) -> T:
        items = self._items
        while not items:
            if self._closed:
                raise StopAsyncIteration
            if self._wakeup is None:
                self._wakeup = anyio.Event()
            await self._wakeup.wait()
        return items.popleft()

    async def aclose(self) -> None:
        """Stop receiving; pending items are discarded."""
        self._owner._discard(self)
        self._end()
        self._items.clear()


class Broadcast(Generic[T]):
    """Publish to every live subscription without awaiting."""

    __slots__ = ("_closed", "_maxlen", "_subscribers")

    def __init__(self, maxlen: int = 1024) -> None:
        self._maxlen = maxlen
        # a dict as an ordered set: an empty set is 216 bytes on every idle connection
        self._subscribers: dict[Subscription[T], None] = {}
        self._closed = False

    def subscribe(self) -> Subscription[T]:
        sub = Subscription(self, self._maxlen)
        if self._closed:
            sub._end()
        else:
            self._subscribers[sub] = None
        return sub

    def publish(self, item: T) -> None:
        for sub in self._subscribers:
            sub._put(item)

    def close(self) -> None:
        """End every subscription after it drains what it has."""
        self._closed = True
        for sub in self._subscribers:
            sub._end()
        self._subscribers.clear()

    @property
    def subscriber_count(self) -> int:
        return len(self._subscribers)

    def _discard(self, sub: Subscription[T]) -> None:
        self._subscribers.pop(sub, None)
