"""One downstream connection (server x principal): the handle users hold.

`Connection` is the public face: calls, lists, notifications, waiting for a
state, closing. It decides nothing and owns no I/O of its own beyond the
calls users make: it reads what its `Runner` publishes (state, the session,
``last_error``) and posts facts to it (a call's 401, a close). The runner owns
the machine, the session, its listener and pinger, and the timer.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Coroutine, Mapping
from typing import Any

import anyio
import anyio.abc
import httpx

from .._config import ServerConfig
from .._core.classify import classify
from .._core.machine import Fact, Input, Machine, State
from .._exceptions import Challenge, ConnectionClosed, MCPConnError, RequestTimeout
from .._mcp.calls import CallOptions
from .._mcp.session import Session
from .._mcp.wanted import Wanted
from .context import ConnectionContext as ConnectionContext
from .context import ReauthCallback as ReauthCallback
from .notifications import Subscription
from .runner import Runner
from .server_requests import RequestHandler
from .surface import Negotiated, ProtocolSurface


class Connection(ProtocolSurface):
    """A live, self-healing MCP connection to one server for one principal.

    Calls on READY go straight through; on CONNECTING/BACKOFF they wait within
    their timeout; on NEEDS_REAUTH they raise `ReauthRequired` at once; on a
    closed or failed connection, `ConnectionClosed`.
    """

    def __init__(
        self,
        context: ConnectionContext,
        config: ServerConfig,
        principal: str,
        machine: Machine,
        *,
        request_handlers: Mapping[str, RequestHandler] | None = None,
    ) -> None:
        self.server = config
        self.principal = principal
        self._ctx = context
        self._runner = Runner(self, context, machine, request_handlers)
        self._notes = self._runner.notes
        self._lists = self._runner.lists
        self._inflight = 0
        self._idle: anyio.Event | None = None  # a drain() waiting for the calls in flight
        self.last_used = anyio.current_time()

    def __repr__(self) -> str:
        return (
            f"<Connection server={self.server.name!r} principal={self.principal!r} "
            f"state={self.state.name}>"
        )

    # ---- public surface ---------------------------------------------------------

    @property
    def state(self) -> State:
        return self._runner.state

    @property
    def last_error(self) -> MCPConnError | BaseException | None:
        """What went wrong last (an `MCPConnError`), or None."""
        return self._runner.last_error

    @property
    def challenge(self) -> Challenge | None:
        """The last ``WWW-Authenticate`` challenge of a 401/403, or None."""
        return self._runner.challenge

    @property
    def reason(self) -> str:
        """Why the connection is in its state (the last fact's reason; never a token)."""
        return self._runner.reason

    @property
    def strikes(self) -> int:
        """Transient failures in a row (0 once it is productive again)."""
        return self._runner.strikes

    # what the protocol surface (`ProtocolSurface`) reads: the runner's
    @property
    def _session(self) -> Session | None:
        return self._runner.session

    @property
    def _wanted(self) -> Wanted:
        return self._runner.wanted

    @property
    def _negotiated(self) -> Negotiated | None:
        return self._runner.negotiated

    async def wait_for(self, state: State) -> None:
        """Wait until the connection is in ``state``. Bound it with ``anyio.fail_after``."""
        while self.state is not state:
            if self.state is State.CLOSED:
                raise ConnectionClosed(f"{self!r} closed while waiting for {state.name}")
            await self._runner.next_change(state)  # not woken by the states on the way

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
        meta: Mapping[str, Any] | None = None,
        on_notification: Callable[[dict[str, Any]], None] | None = None,
        context: Any = None,
        input_responses: Mapping[str, Any] | None = None,
        request_state: str | None = None,
    ) -> dict[str, Any]:
        """Send one JSON-RPC request; return its final ``result`` object.

        ``meta`` is merged into ``_meta``; ``on_notification`` gets every
        notification on this request's own stream (legacy SSE: its progress);
        ``context`` reaches the handler of a server request that stream (or a
        2026 input round) carried; ``input_responses``/``request_state`` answer
        a 2026 `InputRequired` (see `calls`).
        """
        options = CallOptions(
            meta=meta,
            on_progress=on_progress,
            on_notification=on_notification,
            context=context,
            input_responses=input_responses,
            request_state=request_state,
        )
        timeout = self.server.timeouts.request if timeout is None else timeout
        deadline = anyio.current_time() + timeout
        epoch = self._runner.epoch
        session = self._runner.usable
        if session is None:  # no session: wait for one (no cancel scope on the common path)
            with anyio.move_on_after(timeout):
                session, epoch = await self._usable_session()
        if session is None:
            raise RequestTimeout(
                f"{self!r} not ready within {timeout:g}s (last error: {self.last_error!r})"
            )
        cap, borrower = self._ctx.inflight_cap, object()
        if cap is not None:
            acquired = False
            with anyio.move_on_after(max(0.0, deadline - anyio.current_time())):
                await cap.acquire_on_behalf_of(borrower)
                acquired = True
            if not acquired:
                raise RequestTimeout(f"{self!r}: no room under limits.max_inflight in time")
        self._begin_call()
        try:
            return await session.request(
                method,
                params,
                timeout=max(0.001, deadline - anyio.current_time()),
                options=options,
            )
        except MCPConnError as exc:
            fact = classify(exc, during="call")
            if fact is None:
                raise  # the caller's business, not the connection's
            self._runner.post_failure(exc, fact, epoch)
            if fact.input is Input.REAUTH_REQUIRED:
                raise self._runner.reauth_error(exc) from exc
            raise
        finally:
            self._end_call()
            if cap is not None:
                cap.release_on_behalf_of(borrower)

    async def list_tools(self, *, refresh: bool = False) -> list[dict[str, Any]]:
        """All tools, following pagination; cached until ``list_changed`` or a new session."""
        return await self._list("tools", refresh)

    async def list_resources(self, *, refresh: bool = False) -> list[dict[str, Any]]:
        return await self._list("resources", refresh)

    async def list_prompts(self, *, refresh: bool = False) -> list[dict[str, Any]]:
        return await self._list("prompts", refresh)

    async def aclose(self) -> None:
        """Close politely (DELETE for a session) and wait until the connection is CLOSED."""
        await self._close_by(math.inf)

    async def _close_by(self, deadline: float) -> None:
        """`aclose`, over by ``deadline`` (``anyio.current_time()``) if that is sooner than
        ``timeouts.close``: the supervisor's ``close_timeout`` caps every close."""
        runner = self._runner
        runner._close_deadline = min(runner._close_deadline, deadline)
        self.post(Fact(Input.CLOSE_REQUESTED, reason="closed by the embedder"))
        with anyio.move_on_after(self.server.timeouts.close + 2.0, shield=True):
            await runner.finished.wait()

    # ---- supervisor hooks -------------------------------------------------------

    def post(self, fact: Fact, epoch: int | None = None) -> None:
        """Queue a fact from any task; ``epoch`` None means "whatever is current"."""
        self._runner.post(fact, epoch)

    async def drain(self) -> None:
        """Wait until no call is in flight (used when replacing a connection)."""
        if self._inflight:
            if self._idle is None:  # made only for a waiter, not per call
                self._idle = anyio.Event()
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

    def run(
        self, *, task_status: anyio.abc.TaskStatus[None] = anyio.TASK_STATUS_IGNORED
    ) -> Coroutine[Any, Any, None]:
        """The connection's own task (its runner's loop). Never raises for the server's sake.

        Await it: it hands back the runner's coroutine, so an idle connection's task
        keeps no frame of this method on its stack."""
        return self._runner.run(task_status=task_status)

    # ---- calls ------------------------------------------------------------------

    async def _usable_session(self) -> tuple[Session | None, int]:
        while True:
            session = self._runner.usable
            if session is not None:  # READY, or its listener backing off
                return session, self._runner.epoch
            state = self.state
            if state is State.NEEDS_REAUTH:
                raise self._runner.reauth_error(self.last_error)
            if state in (State.CLOSED, State.FAILED):
                raise ConnectionClosed(f"{self!r} is {state.name}: {self.last_error!r}")
            await self._runner.next_change()

    def _begin_call(self) -> None:
        self._inflight += 1
        self.last_used = anyio.current_time()

    def _end_call(self) -> None:
        self._inflight -= 1
        self.last_used = anyio.current_time()
        if self._inflight == 0 and self._idle is not None:
            self._idle.set()
            self._idle = None

    async def _list(self, kind: str, refresh: bool) -> list[dict[str, Any]]:
        cached = None if refresh else self._lists.cached(kind, anyio.current_time())
        if cached is not None:
            return cached
        with anyio.move_on_after(self.server.timeouts.request):
            await self._usable_session()  # a new session clears the cache: wait for it first
        return await self._lists.fetch(kind, self.request, anyio.current_time)

    def set_request_handlers(self, handlers: Mapping[str, RequestHandler]) -> None:
        """Replace this connection's own handlers (capabilities follow on the next session)."""
        self._runner.set_request_handlers(handlers)
