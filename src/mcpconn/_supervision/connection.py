"""One downstream connection (server x principal): runs the machine, does its actions.

The connection's own task reads facts from an inbox, feeds them to the
sans-IO `Machine` and carries out the actions it returns. Everything that
waits (opening a session, the listener, timers) runs in a child task that
posts its outcome back as a fact tagged with the *epoch* it belongs to; a
fact from an abandoned session or a replaced timer is dropped, so a late
failure can never knock a fresh session over. The session is entered and
exited in the one task that owns it.
"""

from __future__ import annotations

import contextlib
import logging
import math
import random
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

import anyio
import anyio.abc
import httpx
from anyio.streams.memory import MemoryObjectReceiveStream, MemoryObjectSendStream

from .._config import ServerConfig
from .._core.actions import Action, Connect, DropSession, Fail, Listen, Park, Shutdown, Sleep
from .._core.budget import TokenBucket
from .._core.machine import Fact, Input, Machine, State, classify
from .._exceptions import (
    ConnectionClosed,
    Forbidden,
    JSONRPCError,
    MCPConnError,
    ReauthRequired,
    RequestTimeout,
    SessionExpired,
    Unauthorized,
)
from .._mcp.lists import ListCache
from .._mcp.session import EraCache, Session, SessionHandlers, client_capabilities, open_session
from .._tokens.auth import BearerAuth
from .._tokens.source import TokenSource
from .notifications import Broadcast, Subscription
from .stats import Counters, StateChange

logger = logging.getLogger("mcpconn")

RequestHandler = Callable[[dict[str, Any] | None], Awaitable[dict[str, Any]]]
ReauthCallback = Callable[[ReauthRequired], Awaitable[None] | None]

_AUTH_INPUTS = (Input.UNAUTHORIZED, Input.SCOPE_DENIED, Input.REAUTH_REQUIRED)


@dataclass
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


class Connection:
    """A live, self-healing MCP connection to one server for one principal.

    Calls on READY go straight through; on CONNECTING/BACKOFF they wait within
    their timeout; on NEEDS_REAUTH they raise `ReauthRequired` at once; on a
    closed or failed connection, `ConnectionClosed`.
    """

    def __init__(
        self, context: ConnectionContext, config: ServerConfig, principal: str, machine: Machine
    ) -> None:
        self.server = config
        self.principal = principal
        self.last_error: MCPConnError | BaseException | None = None
        self.challenge: Any = None
        self._ctx = context
        self._machine = machine
        #: Every record carries the server and principal (``record.mcp_server``/``.principal``).
        self._log = logging.LoggerAdapter(
            logger, {"mcp_server": config.name, "principal": principal}
        )
        # Events are made on demand: thousands of idle connections should not carry
        # a waiter queue each for nobody.
        self._changed: anyio.Event | None = None
        self._finished = anyio.Event()
        self._inbox_send: MemoryObjectSendStream[tuple[int | None, Fact]]
        self._inbox: MemoryObjectReceiveStream[tuple[int | None, Fact]]
        self._inbox_send, self._inbox = anyio.create_memory_object_stream[tuple[int | None, Fact]](
            math.inf
        )
        self._epoch = 0
        self._timer_id = 0
        self._timer_scope: anyio.CancelScope | None = None
        self._session: Session | None = None
        self._session_epoch = 0
        self._session_tg: anyio.abc.TaskGroup | None = None
        self._session_close: anyio.Event | None = None
        self._session_done: anyio.Event | None = None
        self._tg: anyio.abc.TaskGroup | None = None
        self._notes: Broadcast[dict[str, Any]] = Broadcast(config.limits.notification_buffer)
        self._lists = ListCache()
        self._inflight = 0
        self._idle: anyio.Event | None = None  # set while calls are in flight
        self.last_used = anyio.current_time()
        self._auth: BearerAuth | None = None
        if config.forward_token:
            self._auth = BearerAuth(
                context.tokens,
                principal,
                config.audience,
                allow_insecure_http=config.allow_insecure_http,
            )

    def __repr__(self) -> str:
        return (
            f"<Connection server={self.server.name!r} principal={self.principal!r} "
            f"state={self.state.name}>"
        )

    # ---- public surface ---------------------------------------------------------

    @property
    def state(self) -> State:
        # a connection whose task has ended is closed, however it ended
        return State.CLOSED if self._finished.is_set() else self._machine.state

    async def wait_for(self, state: State) -> None:
        """Wait until the connection is in ``state``. Bound it with ``anyio.fail_after``."""
        while self.state is not state:
            if self.state is State.CLOSED:
                raise ConnectionClosed(f"{self!r} closed while waiting for {state.name}")
            await self._next_change()

    def notifications(self) -> Subscription[dict[str, Any]]:
        """Every notification the server sends from now on, on whichever stream carried it.

        Use ``async for note in conn.notifications()``; `aclose()` (or ``async with``)
        stops the subscription. A consumer that falls behind loses the oldest.
        """
        return self._notes.subscribe()

    async def request(
        self,
        method: str,
        params: dict[str, Any] | None = None,
        *,
        timeout: float | None = None,
        on_progress: Callable[[dict[str, Any]], None] | None = None,
    ) -> dict[str, Any]:
        """Send one JSON-RPC request; return its ``result`` object."""
        timeout = self.server.timeouts.request if timeout is None else timeout
        deadline = anyio.current_time() + timeout
        session: Session | None = None
        epoch = self._epoch
        with anyio.move_on_after(timeout):
            session, epoch = await self._usable_session()
        if session is None:
            raise RequestTimeout(
                f"{self!r} not ready within {timeout:g}s (last error: {self.last_error!r})"
            )
        self._begin_call()
        try:
            return await session.request(
                method,
                params,
                timeout=max(0.001, deadline - anyio.current_time()),
                on_progress=on_progress,
            )
        except (Unauthorized, Forbidden, ReauthRequired, SessionExpired) as exc:
            self._report(exc, epoch)
            if isinstance(exc, ReauthRequired):
                raise self._reauth_error(exc) from exc
            raise
        finally:
            self._end_call()

    async def call_tool(
        self,
        name: str,
        arguments: dict[str, Any] | None = None,
        *,
        timeout: float | None = None,
        on_progress: Callable[[dict[str, Any]], None] | None = None,
    ) -> dict[str, Any]:
        params: dict[str, Any] = {"name": name, "arguments": arguments or {}}
        return await self.request("tools/call", params, timeout=timeout, on_progress=on_progress)

    async def list_tools(self, *, refresh: bool = False) -> list[dict[str, Any]]:
        """All tools, following pagination; cached until ``list_changed`` or a new session."""
        return await self._list("tools", refresh)

    async def list_resources(self, *, refresh: bool = False) -> list[dict[str, Any]]:
        return await self._list("resources", refresh)

    async def list_prompts(self, *, refresh: bool = False) -> list[dict[str, Any]]:
        return await self._list("prompts", refresh)

    async def aclose(self) -> None:
        """Close politely (DELETE for a session) and wait until the connection is CLOSED."""
        self.post(Fact(Input.CLOSE_REQUESTED, reason="closed by the embedder"))
        with anyio.move_on_after(self.server.timeouts.close + 2.0, shield=True):
            await self._finished.wait()

    # ---- supervisor hooks -------------------------------------------------------

    def post(self, fact: Fact, epoch: int | None = None) -> None:
        """Queue a fact from any task; ``epoch`` None means "whatever is current"."""
        # after shutdown the inbox is closed at either end: a late fact means nothing
        with contextlib.suppress(anyio.ClosedResourceError, anyio.BrokenResourceError):
            self._inbox_send.send_nowait((epoch, fact))

    async def drain(self) -> None:
        """Wait until no call is in flight (used when replacing a connection)."""
        if self._idle is not None:
            await self._idle.wait()

    @property
    def client(self) -> httpx.AsyncClient:
        """The HTTP client (shard) this connection sends through."""
        return self._ctx.client

    @property
    def inflight(self) -> int:
        return self._inflight

    @property
    def subscribers(self) -> int:
        return self._notes.subscriber_count

    async def run(self, *, task_status: anyio.abc.TaskStatus[None]) -> None:
        """The connection's own task. Never raises for the server's sake."""
        try:
            async with anyio.create_task_group() as tg:
                self._tg = tg
                task_status.started()
                self.post(Fact(Input.STARTED))
                async with self._inbox:
                    async for epoch, fact in self._inbox:
                        if epoch is not None and epoch != self._epoch:
                            continue
                        if await self._step(fact):
                            break
                tg.cancel_scope.cancel()
        finally:
            self._inbox_send.close()
            self._inbox.close()
            self._notes.close()
            self._finished.set()
            self._signal_change()

    # ---- the loop ---------------------------------------------------------------

    async def _step(self, fact: Fact) -> bool:
        old = self._machine.state
        actions = self._machine.feed(fact, now=anyio.current_time(), rng=self._ctx.rng)
        new = self._machine.state
        if new is not old:
            self._signal_change()
            self._ctx.on_state_change(self, old, new)
            self._ctx.state_changes.publish(
                StateChange(self.server.name, self.principal, old, new, fact.reason)
            )
        for action in actions:
            await self._do(action)
        return new is State.CLOSED

    async def _do(self, action: Action) -> None:
        assert self._tg is not None
        if isinstance(action, Sleep):
            if action.log:
                self._log.warning(
                    "%s: %s; backing off (attempt %d)", self._who(), action.reason, action.attempt
                )
            self._start_timer(action)
        elif isinstance(action, Connect):
            self._cancel_timer()
            self._epoch += 1
            self._ctx.counters.connects += 1
            self._tg.start_soon(self._session_task, self._epoch, action)
        elif isinstance(action, Listen):
            if self._session_tg is not None and self._session is not None:
                # tagged with its session's epoch: a session being dropped reports nothing
                self._session_tg.start_soon(self._listener, self._session, self._session_epoch)
        elif isinstance(action, DropSession):
            self._cancel_timer()
            self._drop_session(polite=action.polite)
        elif isinstance(action, Park):
            self._cancel_timer()
            self._on_park(action)
        elif isinstance(action, Fail):
            self._cancel_timer()
            self._log.error("%s: connection failed permanently: %s", self._who(), action.reason)
        elif isinstance(action, Shutdown):
            self._cancel_timer()
            await self._shutdown()

    # ---- timers -----------------------------------------------------------------

    def _start_timer(self, sleep: Sleep) -> None:
        assert self._tg is not None
        self._cancel_timer()
        self._timer_id += 1
        scope = anyio.CancelScope()
        self._timer_scope = scope
        extra = 0.0
        if sleep.budgeted:
            extra = self._ctx.retry_budget.reserve(anyio.current_time())
        self._tg.start_soon(self._timer, scope, sleep.seconds + extra, self._epoch)

    def _cancel_timer(self) -> None:
        if self._timer_scope is not None:
            self._timer_scope.cancel()
            self._timer_scope = None

    async def _timer(self, scope: anyio.CancelScope, seconds: float, epoch: int) -> None:
        with scope:
            await anyio.sleep(seconds)
            self.post(Fact(Input.TIMER_FIRED), epoch)

    # ---- the session task -------------------------------------------------------

    async def _session_task(self, epoch: int, connect: Connect) -> None:
        close, done = anyio.Event(), anyio.Event()
        handlers = SessionHandlers(
            on_notification=lambda msg: self._on_notification(msg, epoch),
            on_request=self._on_server_request,
            on_reinitialized=self._lists.invalidate,
            capabilities=client_capabilities(self._ctx.request_handlers),
        )
        try:
            if self._auth is not None:
                self._auth.retry_on_401 = connect.retry_on_401
                if connect.refresh_token:
                    await self._force_refresh()
            async with open_session(
                self._ctx.client,
                self.server,
                auth=self._auth,
                handlers=handlers,
                era_cache=self._ctx.era_cache,
            ) as session:
                if epoch != self._epoch:
                    return
                if self._auth is not None:
                    self._auth.retry_on_401 = True  # the server took our token: back to normal
                async with anyio.create_task_group() as tg:
                    self._session, self._session_epoch = session, epoch
                    self._session_tg, self._session_close, self._session_done = tg, close, done
                    self._lists.invalidate()
                    self.post(Fact(Input.OPENED, reason=f"opened ({session.era})"), epoch)
                    if self.server.ping_interval:
                        tg.start_soon(self._pinger, session, epoch)
                    await close.wait()
                    tg.cancel_scope.cancel()
        except MCPConnError as exc:
            self._fail_epoch(exc, epoch, "connect")
        except Exception as exc:  # a bug of ours or an unmapped library error
            self._log.exception("%s: unexpected error while connecting", self._who())
            self._fail_epoch(exc, epoch, "connect")
        finally:
            if self._session_done is done:
                self._session = self._session_tg = None
                self._session_close = self._session_done = None
            done.set()

    async def _listener(self, session: Session, epoch: int) -> None:
        try:
            await session.listen()
        except MCPConnError as exc:
            self._fail_epoch(exc, epoch, "listen")
        except Exception as exc:
            self._log.exception("%s: unexpected error in the listener", self._who())
            self._fail_epoch(exc, epoch, "listen")
        else:
            self.post(Fact(Input.STREAM_ENDED, reason="listener returned"), epoch)

    async def _pinger(self, session: Session, epoch: int) -> None:
        assert self.server.ping_interval is not None
        while True:
            await anyio.sleep(self.server.ping_interval)
            try:
                await session.request("ping", None, timeout=self.server.timeouts.request)
            except MCPConnError as exc:
                self._fail_epoch(exc, epoch, "ping")
                return

    def _fail_epoch(self, exc: BaseException, epoch: int, during: str) -> None:
        fact = classify(exc, during=during)
        if epoch == self._epoch and fact.input is not Input.NO_LISTENER:
            self.last_error = exc
            self._note_failure(exc, fact)
        self.post(fact, epoch)

    def _note_failure(self, exc: BaseException, fact: Fact) -> None:
        counters = self._ctx.counters
        if isinstance(exc, Unauthorized | Forbidden):
            counters.unauthorized += 1
            self.challenge = exc.challenge
        elif fact.input in (Input.TRANSIENT_FAILURE, Input.LISTENER_FAILED):
            counters.transient_failures += 1

    def _drop_session(self, *, polite: bool) -> None:
        close = self._session_close
        self._epoch += 1  # whatever the old session still reports is now stale
        if close is not None:
            if not polite and self._session is not None:
                self._session.discard()
            close.set()

    async def _shutdown(self) -> None:
        done = self._session_done
        self._drop_session(polite=True)
        if done is not None:
            with anyio.move_on_after(self.server.timeouts.close + 1.0, shield=True):
                await done.wait()

    async def _force_refresh(self) -> None:
        tokens, audience = self._ctx.tokens, self.server.audience
        rejected = self._auth.last_rejected if self._auth is not None else None
        if rejected is None:
            rejected = await tokens.get(self.principal, audience)
        await tokens.refresh(self.principal, audience, replacing=rejected)
        self._ctx.counters.forced_refreshes += 1

    # ---- parking ----------------------------------------------------------------

    def _reauth_error(self, cause: BaseException | None = None) -> ReauthRequired:
        challenge = getattr(cause, "challenge", None) or self.challenge
        return ReauthRequired(
            "the server rejected this principal's token; a new login is required",
            server=self.server.name,
            principal=self.principal,
            challenge=challenge,
        )

    def _on_park(self, park: Park) -> None:
        self._ctx.counters.parks += 1
        if park.log:
            self._log.warning(
                "%s: parked in NEEDS_REAUTH after %s; no traffic until a new token is "
                "published (parked %d time(s))",
                self._who(),
                park.reason or "repeated 401s",
                park.count,
            )
        callback = self._ctx.on_reauth_required
        if callback is not None and self._tg is not None:
            self._tg.start_soon(self._call_reauth_callback, callback, self._reauth_error())

    async def _call_reauth_callback(self, callback: ReauthCallback, err: ReauthRequired) -> None:
        try:
            result = callback(err)
            if result is not None:
                await result
        except Exception:
            self._log.exception("%s: on_reauth_required callback failed", self._who())

    # ---- calls ------------------------------------------------------------------

    async def _usable_session(self) -> tuple[Session | None, int]:
        while True:
            state = self.state
            if state is State.READY and self._session is not None:
                return self._session, self._epoch
            if state is State.NEEDS_REAUTH:
                raise self._reauth_error(self.last_error)
            if state in (State.CLOSED, State.FAILED):
                raise ConnectionClosed(f"{self!r} is {state.name}: {self.last_error!r}")
            await self._next_change()

    def _report(self, exc: BaseException, epoch: int) -> None:
        fact = classify(exc, during="call")
        if fact.input in _AUTH_INPUTS or fact.input is Input.SESSION_LOST:
            self._fail_epoch(exc, epoch, "call")

    def _begin_call(self) -> None:
        self._inflight += 1
        if self._idle is None:
            self._idle = anyio.Event()
        self.last_used = anyio.current_time()

    def _end_call(self) -> None:
        self._inflight -= 1
        self.last_used = anyio.current_time()
        if self._inflight == 0 and self._idle is not None:
            self._idle.set()
            self._idle = None

    def _signal_change(self) -> None:
        if self._changed is not None:
            self._changed.set()
            self._changed = None

    async def _next_change(self) -> None:
        if self._changed is None:
            self._changed = anyio.Event()
        await self._changed.wait()

    async def _list(self, kind: str, refresh: bool) -> list[dict[str, Any]]:
        cached = None if refresh else self._lists.cached(kind)
        if cached is not None:
            return cached
        with anyio.move_on_after(self.server.timeouts.request):
            await self._usable_session()  # a new session clears the cache: wait for it first
        return await self._lists.fetch(kind, self.request)

    # ---- server-to-client traffic ----------------------------------------------

    def _on_notification(self, message: dict[str, Any], epoch: int) -> None:
        self._lists.on_notification(message.get("method"))
        if epoch == self._epoch:
            self._ctx.counters.notifications += 1
        self._notes.publish(message)

    async def _on_server_request(
        self, method: str, params: dict[str, Any] | None
    ) -> dict[str, Any]:
        handler = self._ctx.request_handlers.get(method)
        if handler is None:
            raise JSONRPCError(-32601, f"method not found: {method}")
        return await handler(params)

    def _who(self) -> str:
        return f"server={self.server.name} principal={self.principal}"
