"""Waiting that costs nothing until someone waits: a one-shot flag and an alarm.

An idle connection is mostly waiting, and thousands of them wait at once. An
``anyio.Event`` on asyncio carries a waiter deque (~760 bytes) from birth.
`Flag` and `Alarm` hold a plain value and make the one waiter they need only
while a task is actually waiting, and drop it once woken. The alarm's one
sleeper waits on a bare future on asyncio (an event would add its deque and
two wrapper frames to every idle connection's wait), resolved by its deadline
too (a deadline scope would wake it by cancelling it). `Changes` wakes a task
waiting for one value (a connection's state) only when that value comes.
"""

from __future__ import annotations

import asyncio
from collections.abc import Hashable

import anyio
import anyio.lowlevel

__all__ = ["Alarm", "Changes", "Flag"]

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


class Alarm:
    """One task's sleep until a deadline or a `ring` from any task, whichever comes first.

    A ring with nobody asleep is not kept: the sleeper checks what it waits for
    before it sleeps, and nothing else runs in between.
    """

    __slots__ = ("_waiter",)

    def __init__(self) -> None:
        self._waiter: _Waiter | None = None

    def ring(self) -> None:
        waiter = self._waiter
        if waiter is not None:
            self._waiter = None
            if isinstance(waiter, anyio.Event):
                waiter.set()
            elif not waiter.done():  # cancelled with its sleeper: nobody to wake
                waiter.set_result(None)

    def ring_at(self, deadline: float) -> None:
        """Wake the sleeper by ``deadline`` (``anyio.current_time()``): a new, sooner end of
        its sleep. On asyncio a loop timer resolves its future then (a `ring` would wake
        it now only to sleep again until the deadline); elsewhere, a `ring`."""
        waiter = self._waiter
        if waiter is None or isinstance(waiter, anyio.Event):
            self.ring()
        elif not waiter.done():
            waiter.get_loop().call_at(deadline, _wake, waiter)

    async def sleep(self, deadline: float | None = None) -> None:
        """Until the next `ring`, or ``deadline`` (``anyio.current_time()``) if it is sooner."""
        if deadline is not None and anyio.current_time() >= deadline:
            await anyio.lowlevel.checkpoint()
            return
        waiter = self._waiter = _new_waiter()
        if isinstance(waiter, anyio.Event):
            try:
                if deadline is None:
                    await waiter.wait()
                else:
                    with anyio.move_on_at(deadline):
                        await waiter.wait()
            finally:
                if self._waiter is waiter:
                    self._waiter = None
            return
        # asyncio: the deadline resolves the future, as a ring does (no cancel scope, whose
        # deadline would wake the sleeper by cancelling it: an exception through its stack)
        timer = None if deadline is None else waiter.get_loop().call_at(deadline, _wake, waiter)
        try:
            await waiter
        finally:
            if timer is not None:
                timer.cancel()
            if self._waiter is waiter:
                self._waiter = None


def _wake(waiter: asyncio.Future[None]) -> None:
    if not waiter.done():  # rung (or cancelled with its sleeper) first
        waiter.set_result(None)


class Changes:
    """Tasks waiting for the next change of a value, or for it to become one given value.

    A waiter for one value is not woken by every change on the way (a parked
    connection's READY watcher sleeps through CONNECTING); ``final`` (CLOSED)
    wakes every waiter. Made at the first waiter; `changed` says when none is left.
    """

    __slots__ = ("_any", "_final", "_to")

    def __init__(self, final: Hashable) -> None:
        self._final = final
        self._any: anyio.Event | None = None
        self._to: dict[Hashable, anyio.Event] = {}

    async def wait(self, until: Hashable | None = None) -> None:
        """Until the next change (``until`` None), or one to ``until`` or ``final``."""
        found = self._any if until is None else self._to.get(until)
        if found is None:
            found = anyio.Event()
            if until is None:
                self._any = found
            else:
                self._to[until] = found
        await found.wait()

    def changed(self, new: Hashable) -> bool:
        """The value is now ``new``: wake whom it concerns. True: nobody waits any more."""
        if self._any is not None:
            self._any.set()
            self._any = None
        if new == self._final:
            for event in self._to.values():
                event.set()
            self._to.clear()
        elif new in self._to:
            self._to.pop(new).set()
        return not self._to
