"""What the supervisor shares with every connection it runs (one object, not per connection)."""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import anyio
import httpx
from anyio.abc import TaskGroup

from .._core.budget import TokenBucket
from .._core.machine import State
from .._exceptions import ReauthRequired
from .._mcp.session import EraCache
from .._tokens.source import TokenSource
from .notifications import Broadcast
from .server_requests import RequestHandler
from .stats import Counters, StateChange

if TYPE_CHECKING:
    import random

    from .connection import Connection

__all__ = ["ConnectionContext", "ReauthCallback"]

ReauthCallback = Callable[[ReauthRequired], Awaitable[None] | None]


@dataclass(slots=True)
class ConnectionContext:
    """What the supervisor shares with every connection it runs."""

    tokens: TokenSource
    client: httpx.AsyncClient
    rng: random.Random
    era_cache: EraCache
    retry_budget: TokenBucket
    counters: Counters
    state_changes: Broadcast[StateChange]
    on_state_change: Callable[[Connection, State, State], None]
    on_reauth_required: ReauthCallback | None = None
    request_handlers: Mapping[str, RequestHandler] = field(default_factory=dict)
    #: The server's cap on requests in flight (``Limits.max_inflight``), shared.
    inflight_cap: anyio.CapacityLimiter | None = None
    #: Where a connection starts what outlives a wait of its own (``on_reauth_required``).
    task_group: TaskGroup | None = None
    #: Server name -> the last (server info, capabilities) a session of it was told,
    #: shared by every connection told the same (`SessionKeeping._share_hello`).
    hellos: dict[str, tuple[dict[str, Any], dict[str, Any]]] = field(default_factory=dict)
    #: Called once a connection's task has ended, however it ended.
    on_ended: Callable[[Connection], None] | None = None
