"""One downstream connection (server x principal): the handle users hold.

`Connection` is the public face: calls, lists, notifications, waiting for a
state, closing. It decides nothing and owns no I/O of its own beyond the
calls users make: it reads what its `Runner` publishes (state, the session,
``last_error``) and posts facts to it (a call's 401, a close). The runner owns
the machine, the session, its listener and pinger, and the timer.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import anyio
import anyio.abc
import httpx

from .._config import ServerConfig
from .._core.machine import Fact, Input, Machine, State, classify
from .._exceptions import (
    ConnectionClosed,
    Forbidden,
    MCPConnError,
    ReauthRequired,
    RequestTimeout,
    SessionExpired,
    Unauthorized,
)
from .._mcp.session import Session
from .notifications import Subscription
from .runner import ConnectionContext as ConnectionContext
from .runner import ReauthCallback as ReauthCallback
from .runner import RequestHandler as RequestHandler
from .runner import Runner

_AUTH_INPUTS = (Input.UNAUTHORIZED, Input.SCOPE_DENIED, Input.REAUTH_REQUIRED)


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
        self._ctx = context
        self._runner = Runner(
            context,
            config,
            principal,
            machine,
            on_change=lambda old, new: context.on_state_change(self, old, new),
        )
        self._notes = self._runner.notes
        self._lists = self._runner.lists
        self._inflight = 0
        self._idle: anyio.Event | None = None  # set while calls are in flight
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
    def challenge(self) -> Any:
        """The last ``WWW-Authenticate`` challenge of a 401/403, or None."""
        return self._runner.challenge

    async def wait_for(self, state: State) -> None:
        """Wait until the connection is in ``state``. Bound it with ``anyio.fail_after``."""
        while self.state is not state:
            if self.state is State.CLOSED:
                raise ConnectionClosed(f"{self!r} closed while waiting for {state.name}")
            await self._runner.next_change()

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
        epoch = self._runner.epoch
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
                raise self._runner.reauth_error(exc) from exc
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
            await self._runner.finished.wait()

    # ---- supervisor hooks -------------------------------------------------------

    def post(self, fact: Fact, epoch: int | None = None) -> None:
        """Queue a fact from any task; ``epoch`` None means "whatever is current"."""
        self._runner.post(fact, epoch)

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
        """The connection's own task (its runner's loop). Never raises for the server's sake."""
        await self._runner.run(task_status=task_status)

    # ---- calls ------------------------------------------------------------------

    async def _usable_session(self) -> tuple[Session | None, int]:
        while True:
            state = self.state
            session = self._runner.session
            if state is State.READY and session is not None:
                return session, self._runner.epoch
            if state is State.NEEDS_REAUTH:
                raise self._runner.reauth_error(self.last_error)
            if state in (State.CLOSED, State.FAILED):
                raise ConnectionClosed(f"{self!r} is {state.name}: {self.last_error!r}")
            await self._runner.next_change()

    def _report(self, exc: BaseException, epoch: int) -> None:
        fact = classify(exc, during="call")
        if fact.input in _AUTH_INPUTS or fact.input is Input.SESSION_LOST:
            self._runner.fail_epoch(exc, epoch, "call")

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

    async def _list(self, kind: str, refresh: bool) -> list[dict[str, Any]]:
        cached = None if refresh else self._lists.cached(kind)
        if cached is not None:
            return cached
        with anyio.move_on_after(self.server.timeouts.request):
            await self._usable_session()  # a new session clears the cache: wait for it first
        return await self._lists.fetch(kind, self.request)
