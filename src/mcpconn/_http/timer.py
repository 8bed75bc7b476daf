"""One timer per connection for httpx's per-operation timeouts (connect, write, each read).

httpx's timeouts bound each operation: a connect, a write, every single read.
A cancel scope whose deadline is moved per operation costs a new loop timer on
asyncio at every move (anyio cancels its timer handle and makes another), and
a request is a connect, a write and two or three reads: a burst of a thousand
reconnects made ~6 timers each, every one a heap push, a handle and a bound
method that outlive the young collections. Here the connection keeps one
timer for whatever operation is under way: starting an operation only notes
its due time, and the timer is re-armed only when it would fire too late (a
sooner due) or when it fired early (the operation under way is due later).
Operations only get later in a request (connect, write, then reads), so a
request costs at most one timer, and a held stream's reads re-arm it once per
read timeout rather than once per read. On trio the scope's own deadline is
moved (trio keeps no handle per deadline).
"""

from __future__ import annotations

import asyncio
import math

import anyio

__all__ = ["OperationTimer"]


class OperationTimer:
    """Cancels the watched scope once the operation under way has taken its timeout."""

    __slots__ = ("_due", "_timer", "_watched")

    def __init__(self) -> None:
        self._timer: asyncio.TimerHandle | None = None
        self._watched: anyio.CancelScope | None = None
        self._due = math.inf

    def watch(self, scope: anyio.CancelScope, timeout: float | None) -> None:
        """An operation starts now in ``scope`` (a scope without a deadline of its own):
        cancel the scope if it takes more than ``timeout`` seconds (None: no bound),
        until the next `watch` or `unwatch`."""
        loop = asyncio._get_running_loop()
        if loop is None:  # trio: a deadline move is cheap there
            scope.deadline = math.inf if timeout is None else anyio.current_time() + timeout
            return
        self._watched = scope
        if timeout is None:
            self._due = math.inf  # an armed timer finds nothing due and is not re-armed
            return
        due = self._due = loop.time() + timeout
        timer = self._timer
        if timer is None or timer.when() > due:
            if timer is not None:
                timer.cancel()
            self._timer = loop.call_at(due, self._ring)

    def unwatch(self) -> None:
        """No operation under way: an armed timer fires for nothing (and stops)."""
        self._watched = None

    def stop_timer(self) -> None:
        """The connection is closed: no timer left in the loop (it would keep it alive)."""
        self._watched = None
        timer, self._timer = self._timer, None
        if timer is not None:
            timer.cancel()

    def _ring(self) -> None:
        self._timer = None
        scope = self._watched
        due = self._due
        if scope is None or due == math.inf:
            return
        loop = asyncio.get_running_loop()
        if loop.time() >= due:
            self._watched = None
            scope.cancel()
        else:  # fired for an earlier operation: the one under way is due later
            self._timer = loop.call_at(due, self._ring)
