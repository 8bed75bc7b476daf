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
    Each wait has a waiter of its own (a bare future on asyncio, ~100 bytes, where
    an event is ~1 KiB with its deque), dropped by a wait that is cancelled.
    """

    __slots__ = ("_any", "_final", "_to")

    def __init__(self, final: Hashable) -> None:
        self._final = final
        self._any: list[_Waiter] | None = None
        self._to: dict[Hashable, list[_Waiter]] = {}

    async def wait(self, until: Hashable | None = None) -> None:
        """Until the next change (``until`` None), or one to ``until`` or ``final``."""
        if until is None:
            waiters = self._any
            if waiters is None:
                waiters = self._any = []
        else:
            waiters = self._to.get(until)
            if waiters is None:
                waiters = self._to[until] = []
        waiter = _new_waiter()
        waiters.append(waiter)
        try:
            if isinstance(waiter, anyio.Event):
                await waiter.wait()
            else:
                await waiter
        finally:
            if waiters and waiter in waiters:  # not woken: cancelled, leave the list
                waiters.remove(waiter)
                if not waiters:
                    if until is None:
                        if self._any is waiters:
                            self._any = None
                    elif self._to.get(until) is waiters:
                        del self._to[until]

    def changed(self, new: Hashable) -> bool:
        """The value is now ``new``: wake whom it concerns. True: nobody waits any more."""
        if self._any is not None:
            _wake_all(self._any)
            self._any = None
        if new == self._final:
            for waiters in self._to.values():
                _wake_all(waiters)
            self._to.clear()
        elif new in self._to:
            _wake_all(self._to.pop(new))
        return not self._to


def _wake_all(waiters: list[_Waiter]) -> None:
    """Wake each (a woken waiter is taken out of the list: its wait then leaves it)."""
    for waiter in waiters:  # in the order they came
        if isinstance(waiter, anyio.Event):
            waiter.set()
        else:
            _wake(waiter)
    waiters.clear()
