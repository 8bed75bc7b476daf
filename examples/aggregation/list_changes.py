"""A downstream server's ``list_changed``, told to the upstream sessions of that principal only.

Listings are per principal (each user sees what their own token may see), so a change on
one user's connection is announced to that user's clients: session-era ones on their
sessions, 2026 ones on their ``subscriptions/listen`` streams.
"""

from __future__ import annotations

from typing import Any

import anyio.abc
from mcp.server.context import ServerRequestContext
from mcp.server.subscriptions import (
    InMemorySubscriptionBus,
    ListenHandler,
    PromptsListChanged,
    ResourcesListChanged,
    ToolsListChanged,
)

import mcpconn

from .limits import MAX_SESSIONS, MODERN

#: Downstream notification -> (the SDK session's method, the 2026 subscription event).
LIST_CHANGED = {
    "notifications/tools/list_changed": ("send_tool_list_changed", ToolsListChanged),
    "notifications/prompts/list_changed": ("send_prompt_list_changed", PromptsListChanged),
    "notifications/resources/list_changed": ("send_resource_list_changed", ResourcesListChanged),
}


class ListChanges:
    """Who hears a principal's changes, and one watcher per downstream connection."""

    def __init__(self) -> None:
        self._sessions: dict[str, dict[str, Any]] = {}  # principal -> upstream sessions by id
        self._buses: dict[str, tuple[InMemorySubscriptionBus, ListenHandler]] = {}
        self._watched: set[mcpconn.Connection] = set()

    def hear(self, principal: str, ctx: ServerRequestContext[Any, Any]) -> None:
        """A session-era request: its session hears the principal's list_changed from now on."""
        if ctx.protocol_version == MODERN or ctx.request is None:
            return
        session_id = ctx.request.headers.get("mcp-session-id")
        sessions = self._sessions.setdefault(principal, {})
        if session_id and session_id not in sessions:
            sessions[session_id] = ctx.session
            while len(sessions) > MAX_SESSIONS:  # forget the oldest
                sessions.pop(next(iter(sessions)))

    def bus(self, principal: str) -> tuple[InMemorySubscriptionBus, ListenHandler]:
        """2026-07-28 ``subscriptions/listen`` streams, one bus per principal."""
        if principal not in self._buses:
            bus = InMemorySubscriptionBus()
            self._buses[principal] = (bus, ListenHandler(bus))
        return self._buses[principal]

    def follow(self, conn: mcpconn.Connection, tg: anyio.abc.TaskGroup) -> bool:
        """Watch ``conn`` in ``tg`` unless already watched; True if it is a new connection."""
        if conn in self._watched:
            return False
        self._watched.add(conn)
        tg.start_soon(self._watch, conn)
        return True

    async def _watch(self, conn: mcpconn.Connection) -> None:
        """Downstream list_changed -> upstream list_changed, to that principal only."""
        try:
            async with conn.notifications() as notes:
                async for note in notes:
                    change = LIST_CHANGED.get(note.get("method", ""))
                    if change is not None:
                        await self._announce(conn.principal, *change)
        finally:  # the connection closed (or was replaced): a new one gets a new watcher
            self._watched.discard(conn)

    async def _announce(self, principal: str, session_method: str, event: Any) -> None:
        sessions = self._sessions.get(principal, {})
        for session_id, session in list(sessions.items()):
            try:
                await getattr(session, session_method)()
            except Exception:  # that upstream session is gone
                sessions.pop(session_id, None)
        await self.bus(principal)[0].publish(event())
