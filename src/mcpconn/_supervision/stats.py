"""Snapshots for observability: plain frozen values, never live state or tokens."""

from __future__ import annotations

import time
from collections.abc import Mapping
from dataclasses import dataclass, field

from .._core.machine import State


@dataclass(frozen=True)
class StateChange:
    """One connection moved from ``old`` to ``new``; ``reason`` says why (never a token)."""

    server: str
    principal: str
    old: State
    new: State
    reason: str
    at: float = field(default_factory=time.time)


@dataclass
class Counters:
    """Monotonic counters the connections of one supervisor bump."""

    connects: int = 0
    forced_refreshes: int = 0
    unauthorized: int = 0
    transient_failures: int = 0
    parks: int = 0
    notifications: int = 0
    server_requests_refused: int = 0


@dataclass(frozen=True)
class ConnectionHealth:
    """One connection of a server: its state, why it is there, its failures in a row."""

    principal: str
    state: State
    reason: str
    strikes: int


@dataclass(frozen=True)
class Census:
    """How many connections there are, and how many are in each state."""

    connections: int
    by_state: Mapping[State, int]


@dataclass(frozen=True)
class ServerStatistics(Census):
    """Per-server figures: what an operator watches during an outage."""

    retry_budget_available: float
    retry_budget_exhausted: int
    #: Per connection (principal): state, last reason, transient failures in a row.
    health: tuple[ConnectionHealth, ...] = ()
    #: Requests in flight now (all principals); see ``Limits.max_inflight``.
    inflight: int = 0


@dataclass(frozen=True)
class SupervisorStatistics(Census):
    """A snapshot of `Supervisor.statistics()`."""

    parked: int
    connects: int
    reconnects: int
    forced_refreshes: int
    unauthorized: int
    transient_failures: int
    parks: int
    notifications: int
    token_refreshes: int
    token_provider_calls: int
    retry_budget_exhausted: int
    servers: Mapping[str, ServerStatistics]
    #: Server-to-client requests refused or dropped over ``limits.max_server_requests``.
    server_requests_refused: int = 0
