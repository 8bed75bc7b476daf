"""What the halves of `Session` (`opening`, `recovering`) know of the session they join.

`Session` is assembled from mixins, one job each; this is the one place that
says which of the session's attributes they read and how its request matching
(``_roundtrip``) is called, so each half declares only what is its own.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import TYPE_CHECKING, Any, Protocol

import anyio

if TYPE_CHECKING:
    from .._config import ServerConfig
    from .._core.eras import EraRules
    from .._core.jsonrpc import RequestId
    from .calls import CallOptions
    from .handlers import Handlers
    from .tasks import Spawner
    from .transports import Transport

__all__ = ["Roundtrip", "SessionPart", "SessionRoundtrip", "ToolLearner"]

#: Sends one request and returns its ``result`` (the session's request matching).
Roundtrip = Callable[[str, dict[str, Any] | None], Awaitable[dict[str, Any]]]
#: Learns the tools' ``x-mcp-header`` maps from a ``tools/list`` result (2026-07-28).
ToolLearner = Callable[[dict[str, Any]], dict[str, Any]]


class SessionRoundtrip(Protocol):
    """The session's own ``_roundtrip``: a `Roundtrip` that also takes the call's options
    and a list collecting the ids it sent (for ``notifications/cancelled``)."""

    def __call__(
        self,
        method: str,
        params: dict[str, Any] | None,
        options: CallOptions | None = ...,
        sent: list[RequestId] | None = ...,
        *,
        scoped: bool = ...,
    ) -> Awaitable[dict[str, Any]]: ...


class SessionPart:
    """The session's attributes every half reads, and its request matching."""

    if not TYPE_CHECKING:  # `Session` names every attribute; mypy checks them there
        __slots__ = ()

    rules: EraRules
    _config: ServerConfig
    _handlers: Handlers
    _tg: Spawner
    _transport: Transport | None

    @property
    def _learn_tools(self) -> ToolLearner | None:
        """The wire's ``tools/list`` learner, if its era has one (2026-07-28); looked up
        when asked: a bound method kept for the session's life costs 64 bytes."""
        learner: ToolLearner | None = getattr(self._transport, "learn_tools", None)
        return learner

    def _close_by(self) -> float:
        """When a close starting now must be over: ``timeouts.close`` from now, or
        sooner if the opening was told to drop by then (`open_session.drop_at`: a close
        waiting for an ``initialize`` answer spends the same budget, not a second)."""
        return min(
            anyio.current_time() + self._config.timeouts.close, self._tg.cancel_scope.deadline
        )

    if TYPE_CHECKING:

        @property
        def _roundtrip(self) -> SessionRoundtrip: ...
