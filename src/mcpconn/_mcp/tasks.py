"""The tasks one session starts, run in a task group that outlives it.

A session starts a few tasks (a server request's answer, a late
``notifications/cancelled``, the legacy SSE reader, the handshake's first
listen), most sessions none at all. A task group of its own cost every idle
session ~400 bytes (the group and the set of its tasks) for nothing. Here each
task runs in the host's group (the supervisor's, or one `open_session` makes
when it is given none) under a scope of its own, made when it starts;
`SessionTasks.aclose` cancels them and waits for them as leaving a group would.
``cancel_scope`` is the holder's: `open_session` enters and leaves it around
the session's life, and a drop cancels it with every task.
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable
from typing import Any, Protocol

import anyio
from anyio.abc import TaskGroup

__all__ = ["SessionTasks", "Spawner"]

logger = logging.getLogger("mcpconn.session")


class Spawner(Protocol):
    """What starts a session's tasks (a `SessionTasks`, or any task group); its
    ``cancel_scope`` bounds the session's life (a drop moves its deadline)."""

    cancel_scope: anyio.CancelScope

    def start_soon(self, func: Callable[..., Awaitable[Any]], *args: Any) -> None: ...


class SessionTasks:
    """The session's tasks in ``host`` (see the module docstring)."""

    __slots__ = ("_done", "_host", "_scopes", "cancel_scope")

    def __init__(self, host: TaskGroup) -> None:
        self._host = host
        self.cancel_scope = anyio.CancelScope()
        #: The running tasks' scopes (made at the first, dropped when emptied).
        self._scopes: dict[anyio.CancelScope, None] | None = None
        self._done: anyio.Event | None = None  # set when the last one ends

    @property
    def running(self) -> int:
        return len(self._scopes or ())

    def start_soon(self, func: Callable[..., Awaitable[Any]], *args: Any) -> None:
        """Start ``func(*args)``; cancelled with the session (at once if it was dropped)."""
        holder = self.cancel_scope
        scope = anyio.CancelScope(deadline=holder.deadline)
        if holder.cancel_called:
            scope.cancel()
        scopes = self._scopes
        if scopes is None:
            scopes = self._scopes = {}
        scopes[scope] = None
        self._host.start_soon(self._run, scope, func, args)

    async def _run(
        self, scope: anyio.CancelScope, func: Callable[..., Awaitable[Any]], args: tuple[Any, ...]
    ) -> None:
        try:
            with scope:
                await func(*args)
        except Exception:  # never into the host's group: it is not the session's own
            logger.exception("a session task raised")
        finally:
            scopes = self._scopes
            if scopes is not None:
                scopes.pop(scope, None)
                if not scopes:
                    self._scopes = None
                    if self._done is not None:
                        self._done.set()

    def cancel(self) -> None:
        """Stop the holder's body and every task."""
        self.cancel_scope.cancel()
        for scope in list(self._scopes or ()):
            scope.cancel()

    def cancel_at(self, deadline: float) -> None:
        """`cancel` at ``deadline`` (``anyio.current_time()``) unless it is over by then."""
        for scope in (self.cancel_scope, *(self._scopes or ())):
            scope.deadline = min(scope.deadline, deadline)

    async def aclose(self) -> None:
        """Cancel every task and wait until all have ended (however the holder is)."""
        for scope in list(self._scopes or ()):
            scope.cancel()
        with anyio.CancelScope(shield=True):
            while self._scopes:
                done = self._done = anyio.Event()
                await done.wait()
            self._done = None
