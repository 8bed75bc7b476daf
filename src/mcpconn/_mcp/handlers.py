"""What a session calls back into, and what it counts: plain values shared with the connection."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, Protocol

from .server_requests import IncomingHandler
from .wanted import Wanted

__all__ = ["Handlers", "SessionHandlers", "SessionStatistics"]


class Handlers(Protocol):
    """What a session reads of its handlers: `SessionHandlers` is one; a connection has
    its own, which keeps no bound method per callback for the session's life."""

    @property
    def on_notification(self) -> Callable[[dict[str, Any]], None]: ...

    @property
    def on_request(self) -> IncomingHandler | None: ...

    @property
    def on_reinitialized(self) -> Callable[[], None] | None: ...

    @property
    def capabilities(self) -> dict[str, Any] | None: ...

    @property
    def wanted(self) -> Wanted: ...

    @property
    def on_listener_fresh(self) -> Callable[[], None] | None: ...

    @property
    def on_refused(self) -> Callable[[], None] | None: ...

    @property
    def on_initialize(self) -> Callable[[], None] | None: ...


@dataclass(slots=True)
class SessionHandlers:
    """What the session calls back into (`Handlers`); ``on_notification`` is sync and must
    not block.

    ``capabilities`` is what ``initialize`` and every 2026-07-28 request declare
    (see `client_capabilities`); ``None`` declares none.
    """

    on_notification: Callable[[dict[str, Any]], None]
    on_request: IncomingHandler | None = None
    on_reinitialized: Callable[[], None] | None = None
    capabilities: dict[str, Any] | None = None
    #: The level and subscriptions to keep in force (shared with the connection).
    wanted: Wanted = field(default_factory=Wanted)
    #: A listener (re)started without replay: notifications may have been missed.
    on_listener_fresh: Callable[[], None] | None = None
    #: A server request was refused (over ``limits.max_server_requests``).
    on_refused: Callable[[], None] | None = None
    #: An ``initialize`` is about to be sent: the session it opens on the server is
    #: known only from its answer, so a close should wait for that answer (and DELETE).
    on_initialize: Callable[[], None] | None = None


@dataclass(frozen=True)
class SessionStatistics:
    requests: int
    pending: int
    unknown_responses: int
    duplicate_responses: int
    skipped_messages: int
    resumptions: int
    reinitializations: int
    reissued: int
    server_requests: int = 0
    server_requests_refused: int = 0
    server_requests_dropped: int = 0
    server_requests_cancelled: int = 0
