"""One task that times out (and stops) every parked listener read of a transport.

A listener holds its read for hours, thousands at once. A cancel scope per
held read costs ~1 KiB on asyncio (the scope, its two sets, its timer handle
and that handle's context); here a read costs one entry in a heap, and a read
that moves its deadline (each chunk does) only writes a float: an entry is a
lower bound, and the sweeper, finding one whose read is due later, pushes it
again at the real deadline. So the per-read timeout fires exactly as a scope's
would, and what it raises is the reader's to choose (`ResponseBody` raises
`httpx.ReadTimeout`).

The sweeper ends a read by closing its socket (the read then raises in the
reader's task, which was its only way out: no scope of its own). A stop is a
deadline of minus infinity. The sweeper runs in a task group of whoever owns
the transport for long (`sweep_in`: the supervisor's); a transport without a
running sweeper leaves its readers to their own scopes.
"""

from __future__ import annotations

import heapq
import itertools
import logging
import math
from typing import Protocol

import anyio
import anyio.abc
import httpx

from .wire import now

__all__ = ["ReadDeadlines", "Swept", "sweep_in"]

logger = logging.getLogger("mcpconn.transport")


class Swept(Protocol):
    """A reader the sweeper watches: ``due`` is its read's deadline (``inf``: none, or not
    reading), ``sweep_at`` the time of its entry in the heap (``inf``: none)."""

    due: float
    sweep_at: float

    async def expire(self) -> None:
        """The deadline passed during a read: end it (close its socket)."""


class ReadDeadlines:
    """The deadlines of many parked reads, swept by one task (see the module docstring)."""

    __slots__ = ("_heap", "_order", "_sleep", "running", "started")

    def __init__(self) -> None:
        self._heap: list[tuple[float, int, Swept]] = []
        self._order = itertools.count()  # ties: never compare two readers
        self._sleep: anyio.CancelScope | None = None  # the sweeper's, while it sleeps
        #: The sweeper runs (it has not ended): readers may rely on it.
        self.running = False
        self.started = False  # `sweep_in` started it (it may not run yet)

    def __len__(self) -> int:
        return len(self._heap)

    def watch(self, reader: Swept) -> None:
        """``reader.due`` was set: make sure an entry at or before it is in the heap."""
        due = reader.due
        if due >= reader.sweep_at:
            return  # its entry comes first; the sweeper pushes it again at ``due``
        reader.sweep_at = due
        heapq.heappush(self._heap, (due, next(self._order), reader))
        sleep = self._sleep
        if sleep is not None and due < sleep.deadline:
            sleep.deadline = due

    async def run(self) -> None:
        """The sweeper: never returns (cancel its task group to end it)."""
        self.running = True
        heap = self._heap
        try:
            while True:
                t = now()
                while heap and heap[0][0] <= t:
                    at, _, reader = heapq.heappop(heap)
                    if reader.sweep_at != at:
                        continue  # superseded by an earlier entry, already swept
                    reader.sweep_at = math.inf
                    due = reader.due
                    if due <= t:
                        try:
                            await reader.expire()
                        except Exception:  # never into the host's group: the others go on
                            logger.exception("ending a timed-out read failed")
                    elif due != math.inf:  # read on: its deadline moved
                        reader.sweep_at = due
                        heapq.heappush(heap, (due, next(self._order), reader))
                with anyio.CancelScope(deadline=heap[0][0] if heap else math.inf) as sleep:
                    self._sleep = sleep
                    await anyio.sleep_forever()
                self._sleep = None
        finally:
            self.running = self.started = False
            self._sleep = None


def sweep_in(client: httpx.AsyncClient, task_group: anyio.abc.TaskGroup | None) -> None:
    """Start ``client``'s sweeper in ``task_group`` unless one runs (or it has none)."""
    deadlines = getattr(client._transport, "deadlines", None)
    if task_group is None or not isinstance(deadlines, ReadDeadlines) or deadlines.started:
        return
    deadlines.started = True
    task_group.start_soon(deadlines.run)
