"""The supervisor: many downstream connections (server x principal) under one task group.

It owns the task group every connection runs in, the shared HTTP client, the
per-server budgets that keep an outage a trickle, and the wake-up path from
`TokenSource.publish()` to every parked connection of that principal. One
connection's failure is that connection's state, never the supervisor's.
"""

from __future__ import annotations

import logging
import math
import random
from collections import Counter as _Tally
from collections.abc import Iterable, Mapping
from dataclasses import replace
from types import TracebackType
from typing import Any

import anyio
import anyio.abc
import anyio.lowlevel
import httpx

from .._config import ServerConfig
from .._core.backoff import Backoff
from .._core.budget import TokenBucket
from .._core.machine import Fact, Input, Machine, State
from .._core.policy import ReconnectPolicy
from .._core.policy import StormControl as StormControl  # its home before the policy
from .._core.settings import number, whole_number
from .._exceptions import ConnectionClosed
from .._http.shards import ClientShards
from .._mcp.session import EraCache
from .._tokens.source import TokenSource
from .connection import Connection, ConnectionContext, ReauthCallback
from .notifications import Broadcast, Subscription
from .server_requests import RequestHandler
from .stats import (
    ConnectionHealth,
    Counters,
    ServerStatistics,
    StateChange,
    SupervisorStatistics,
)

logger = logging.getLogger("mcpconn")
#: Every connection's task is named so (one string for all of them).
_TASK_NAME = "mcpconn._supervision.connection.Connection.run"


class Supervisor:
    """Keeps every (server, principal) connection alive, authenticated and quiet when it must be.

    Use as ``async with Supervisor(tokens) as sup: conn = await sup.connect(server, "alice")``.

    How connections reconnect is one `ReconnectPolicy` (``policy=``); the keyword
    arguments ``backoff``, ``storm_control``, ``wake_jitter``, ``probe_interval`` and
    ``productive_after`` are shorthands that replace that field of the policy. Every
    number is validated here, before anything runs. ``max_connections_per_origin``
    caps the sockets the supervisor's own clients open to one origin (default: three
    quarters of the process's file descriptors); a request beyond it waits for one.
    Leaving the ``async with`` closes every connection within ``close_timeout`` in all,
    whatever each server's ``Timeouts.close``.
    """

    def __init__(
        self,
        tokens: TokenSource,
        *,
        policy: ReconnectPolicy | None = None,
        backoff: Backoff | None = None,
        client: httpx.AsyncClient | None = None,
        on_reauth_required: ReauthCallback | None = None,
        request_handlers: Mapping[str, RequestHandler] | None = None,
        storm_control: StormControl | None = None,
        wake_jitter: float | None = None,
        probe_interval: float | None = None,
        idle_timeout: float | None = None,
        productive_after: float | None = None,
        close_timeout: float = 10.0,
        shard_size: int = 32,
        max_connections_per_origin: int | None = None,
        rng: random.Random | None = None,
    ) -> None:
        shorthands: dict[str, Any] = {
            "backoff": backoff,
            "storm_control": storm_control,
            "wake_jitter": wake_jitter,
            "probe_interval": probe_interval,
            "productive_after": productive_after,
        }
        given = {name: value for name, value in shorthands.items() if value is not None}
        self.policy = replace(policy or ReconnectPolicy(), **given)
        if idle_timeout is not None:
            number(idle_timeout, "idle_timeout", above=True)
        number(close_timeout, "close_timeout")
        self.tokens = tokens
        if max_connections_per_origin is not None:
            whole_number(max_connections_per_origin, "max_connections_per_origin")
            if client is not None:
                raise ValueError(
                    "max_connections_per_origin applies to the supervisor's own clients; "
                    "give your client= its own httpx.Limits"
                )
        self._client = client  # an embedder's client carries every connection
        self._shards = ClientShards(shard_size, max_per_origin=max_connections_per_origin)
        self._on_reauth_required = on_reauth_required
        self._request_handlers = dict(request_handlers or {})
        self._idle_timeout = idle_timeout
        self._close_timeout = close_timeout
        self._rng = rng or random.Random()
        self._connections: dict[tuple[str, str], Connection] = {}
        self._retry_budgets: dict[str, TokenBucket] = {}
        self._caps: dict[str, anyio.CapacityLimiter] = {}
        self._connect_budgets: dict[str, TokenBucket] = {}
        self._counters = Counters()
        self._changes: Broadcast[StateChange] = Broadcast(4096)
        self._era_cache = EraCache()
        self._hellos: dict[str, tuple[dict[str, Any], dict[str, Any]]] = {}
        self._contexts: dict[tuple[str, Any, Any], ConnectionContext] = {}
        self._tg: anyio.abc.TaskGroup | None = None
        self._closing = False
        self._remove_listener: Any = None

    # ---- lifecycle --------------------------------------------------------------

    async def __aenter__(self) -> Supervisor:
        self._tg = anyio.create_task_group()
        self._contexts.clear()  # they carry the task group
        await self._tg.__aenter__()
        self._remove_listener = self.tokens.add_listener(self._token_published)
        if self._idle_timeout is not None:
            self._tg.start_soon(self._reap_idle, self._idle_timeout)
        if self.policy.probe_interval is not None:
            self._tg.start_soon(self._probe_parked, self.policy.probe_interval)
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> bool | None:
        assert self._tg is not None
        self._closing = True
        if callable(self._remove_listener):
            self._remove_listener()
        deadline = anyio.current_time() + self._close_timeout
        with anyio.CancelScope(deadline=deadline, shield=True):
            await self._close_all(list(self._connections.values()), deadline)
        self._tg.cancel_scope.cancel()
        try:
            return await self._tg.__aexit__(exc_type, exc, tb)
        finally:
            self._changes.close()
            await self._shards.aclose()

    @property
    def backoff(self) -> Backoff:
        """The supervisor-wide backoff (``policy.backoff``); a server may bring its own."""
        return self.policy.backoff

    # ---- connections ------------------------------------------------------------

    async def connect(
        self,
        server: ServerConfig,
        principal: str,
        *,
        request_handlers: Mapping[str, RequestHandler] | None = None,
    ) -> Connection:
        """The one connection for (server, principal), created and started if needed.

        A different `ServerConfig` under the same name replaces the old connection;
        calls in flight on the old one finish first. ``request_handlers`` answer
        this connection's server requests, merged per method over the
        supervisor's (the connection's win; given again, they replace the old).
        """
        if self._tg is None or self._closing:
            raise ConnectionClosed("the supervisor is not running")
        key = (server.name, principal)
        existing = self._connections.get(key)
        if existing is not None and existing.state is not State.CLOSED:
            if existing.server == server:
                if request_handlers is not None:
                    existing.set_request_handlers(request_handlers)
                return existing
            self._tg.start_soon(self._retire, existing)
        now = anyio.current_time()
        start_delay = self._budget(self._connect_budgets, server.name, connect=True).reserve(now)
        policy = self.policy
        machine = Machine(
            backoff=server.backoff or policy.backoff,
            wake_jitter=policy.wake_jitter,
            start_delay=start_delay,
            productive_after=policy.productive_after,
            listen=server.listen,
        )
        conn = Connection(
            self._context_for(server), server, principal, machine, request_handlers=request_handlers
        )
        self._connections[key] = conn
        # start_soon, not start: a task started with a status keeps its status's future
        # (and a closure holding it) for its whole life, ~400 bytes per connection; and
        # the connection's own coroutine, with no wrapper frame of ours around it
        self._tg.start_soon(conn.run, name=_TASK_NAME)
        await anyio.lowlevel.checkpoint()
        return conn

    def connections(
        self, *, server: str | None = None, principal: str | None = None
    ) -> list[Connection]:
        """The live connections, optionally of one server and/or one principal."""
        return [
            conn
            for (name, who), conn in self._connections.items()
            if (server is None or name == server)
            and (principal is None or who == principal)
            and conn.state is not State.CLOSED
        ]

    async def close_principal(self, principal: str) -> None:
        """Close every connection of a principal (the user logged out)."""
        await self._close_all(self.connections(principal=principal))

    async def close_server(self, name: str) -> None:
        """Close every connection to a server (it was deregistered)."""
        await self._close_all(self.connections(server=name))

    def state_changes(self) -> Subscription[StateChange]:
        """Every state change from now on: ``async for change in sup.state_changes()``."""
        return self._changes.subscribe()

    def statistics(self) -> SupervisorStatistics:
        """A snapshot; cheap enough to export every few seconds."""
        by_state = _Tally(conn.state for conn in self._connections.values())
        servers: dict[str, ServerStatistics] = {}
        now = anyio.current_time()
        for name in {name for name, _ in self._connections}:
            conns = self.connections(server=name)
            budget = self._budget(self._retry_budgets, name)
            servers[name] = ServerStatistics(
                connections=len(conns),
                by_state=dict(_Tally(c.state for c in conns)),
                retry_budget_available=budget.available(now),
                retry_budget_exhausted=budget.exhausted,
                health=tuple(
                    ConnectionHealth(c.principal, c.state, c.reason, c.strikes) for c in conns
                ),
                inflight=sum(c.inflight for c in conns),
            )
        token_stats = self.tokens.statistics()
        c = self._counters
        return SupervisorStatistics(
            connections=len(self._connections),
            by_state={state: by_state.get(state, 0) for state in State},
            parked=by_state.get(State.NEEDS_REAUTH, 0),
            connects=c.connects,
            reconnects=max(0, c.connects - len(self._connections)),
            forced_refreshes=c.forced_refreshes,
            unauthorized=c.unauthorized,
            transient_failures=c.transient_failures,
            parks=c.parks,
            notifications=c.notifications,
            token_refreshes=token_stats.refreshes,
            token_provider_calls=token_stats.provider_calls,
            retry_budget_exhausted=sum(s.retry_budget_exhausted for s in servers.values()),
            servers=servers,
            server_requests_refused=c.server_requests_refused,
        )

    # ---- internals --------------------------------------------------------------

    def _context_for(self, server: ServerConfig) -> ConnectionContext:
        """One context per (server name, client, cap), shared by those connections:
        every part of it is the supervisor's or the server name's, and thousands of
        connections would otherwise hold a copy each (and their bound methods)."""
        client = self._client or self._shards.acquire()
        cap = self._inflight_cap(server)
        key = (server.name, client, cap)
        context = self._contexts.get(key)
        if context is None:
            context = self._contexts[key] = ConnectionContext(
                tokens=self.tokens,
                client=client,
                rng=self._rng,
                era_cache=self._era_cache,
                retry_budget=self._budget(self._retry_budgets, server.name),
                counters=self._counters,
                state_changes=self._changes,
                on_state_change=self._state_changed,
                on_reauth_required=self._on_reauth_required,
                request_handlers=self._request_handlers,
                inflight_cap=cap,
                task_group=self._tg,
                hellos=self._hellos,
                on_ended=self._connection_ended,
            )
        return context

    def _inflight_cap(self, server: ServerConfig) -> anyio.CapacityLimiter | None:
        """One limiter per server name, shared by its connections (``Limits.max_inflight``)."""
        total = server.limits.max_inflight
        if total is None:
            return None
        cap = self._caps.get(server.name)
        if cap is None:
            cap = self._caps[server.name] = anyio.CapacityLimiter(total)
        else:
            cap.total_tokens = total  # a replaced config may change it
        return cap

    def _budget(
        self, budgets: dict[str, TokenBucket], name: str, *, connect: bool = False
    ) -> TokenBucket:
        bucket = budgets.get(name)
        if bucket is None:
            s = self.policy.storm_control
            bucket = (
                TokenBucket(s.connect_rate, s.connect_burst)
                if connect
                else TokenBucket(s.retry_rate, s.retry_burst)
            )
            budgets[name] = bucket
        return bucket

    def _connection_ended(self, conn: Connection) -> None:
        self._shards.release(conn.client)
        key = (conn.server.name, conn.principal)
        if self._connections.get(key) is conn:
            del self._connections[key]

    def _state_changed(self, conn: Connection, old: State, new: State) -> None:
        if not logger.isEnabledFor(logging.DEBUG):
            return  # every connection changes state twice on a publish: no argument work
        logger.debug(
            "server=%s principal=%s: %s -> %s",
            conn.server.name,
            conn.principal,
            old.name,
            new.name,
        )

    def _token_published(self, principal: str, audience: str | None) -> None:
        published = Fact(Input.TOKEN_PUBLISHED, reason="a new token was published")
        for conn in self.connections(principal=principal):
            conn.post(published)  # one frozen fact for all of them

    async def _retire(self, old: Connection) -> None:
        with anyio.move_on_after(self._close_timeout):
            await old.drain()
        await old.aclose()

    async def _close_all(self, conns: Iterable[Connection], deadline: float = math.inf) -> None:
        """Close each, every close over by ``deadline`` whatever its server's budget."""
        async with anyio.create_task_group() as tg:
            for conn in conns:
                tg.start_soon(conn._close_by, deadline)

    async def _reap_idle(self, idle_timeout: float) -> None:
        while True:
            await anyio.sleep(max(0.05, idle_timeout / 4))
            now = anyio.current_time()
            idle = [
                conn
                for conn in self._connections.values()
                if conn.inflight == 0
                and conn.subscribers == 0
                and now - conn.last_used >= idle_timeout
            ]
            if idle:
                await self._close_all(idle)

    async def _probe_parked(self, interval: float) -> None:
        while True:
            await anyio.sleep(interval * self._rng.uniform(0.8, 1.2))
            for conn in self.connections():
                if conn.state is State.NEEDS_REAUTH:
                    conn.post(Fact(Input.PROBE_DUE, reason="slow probe"))
