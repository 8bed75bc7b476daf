"""The task that holds one session: opens it, runs its listener itself, closes it.

Mixed into `Runner`. A `Connect` action starts `_session_task` in the runner's
task group; it enters `open_session` (so it is the one task that enters and
exits it), posts OPENED, then waits for `Listen` orders and runs each listen
*in the same task*: an idle connection costs the runner's task and this one,
with no listener task and no task group living for the stream's life (a
pinger, when asked for, gets a task group of its own). Dropping the session
cancels what runs inside `open_session` (`Session.drop`: no scope of our own);
the task then leaves it, which closes politely (or not, after `Session.discard`).
Every fact it posts is tagged with its epoch, so a session being dropped
reports nothing that counts.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Mapping
from typing import TYPE_CHECKING, Any, Literal

import anyio

from .._config import ServerConfig
from .._core.actions import Connect
from .._core.machine import Fact, Input
from .._core.token import Token
from .._exceptions import Challenge, MCPConnError
from .._mcp.lists import ListCache
from .._mcp.server_requests import Incoming
from .._mcp.session import Session, SessionHandlers, open_session
from .._mcp.wanted import Wanted
from .._tokens.auth import BearerAuth
from .context import ConnectionContext
from .inbox import Flag
from .server_requests import RequestHandler, declared_capabilities
from .surface import Negotiated

__all__ = ["Held", "SessionKeeping"]


class Held:
    """The open session of one epoch, as its runner sees it."""

    __slots__ = ("_listen_due", "_wake", "done", "epoch", "session")

    def __init__(self, session: Session, epoch: int) -> None:
        self.session = session
        self.epoch = epoch
        #: Set once the task has left `open_session` (the session is closed).
        self.done = Flag()
        self._listen_due = False
        self._wake: anyio.Event | None = None

    def order_listen(self) -> None:
        self._listen_due = True
        wake, self._wake = self._wake, None
        if wake is not None:
            wake.set()

    async def next_listen(self) -> None:
        """Wait for the next `order_listen` (the waiter exists only while waiting)."""
        while not self._listen_due:
            self._wake = anyio.Event()
            await self._wake.wait()
        self._listen_due = False


class _NoPinger:
    """``async with`` it in place of the pinger's task group when there is no pinger."""

    async def __aenter__(self) -> None:
        return None

    async def __aexit__(self, *exc_info: object) -> None:
        return None


_NO_PINGER = _NoPinger()


class SessionKeeping:
    """The session half of `Runner` (see the module docstring)."""

    server: ServerConfig
    principal: str
    epoch: int
    challenge: Challenge | None
    wanted: Wanted
    lists: ListCache
    negotiated: Negotiated | None
    _ctx: ConnectionContext
    _auth: BearerAuth | None
    _rejected: Token | None
    _request_handlers: Mapping[str, RequestHandler]
    _held: Held | None
    _log: logging.LoggerAdapter[logging.Logger]
    #: (epoch, set once its task left `open_session`) while that epoch's opening
    #: ``initialize`` is in flight: `_shutdown` waits for it, to DELETE the session.
    _initializing: tuple[int, Flag] | None = None

    if TYPE_CHECKING:

        def post(self, fact: Fact, epoch: int | None = None) -> None: ...

        def fail_epoch(
            self, exc: BaseException, epoch: int, during: Literal["connect", "listen", "ping"]
        ) -> None: ...

        def _on_notification(self, message: dict[str, Any], epoch: int) -> None: ...

        async def _on_server_request(self, incoming: Incoming) -> dict[str, Any]: ...

        def _on_reinitialized(self) -> None: ...

        def _count_refused(self) -> None: ...

        def _who(self) -> str: ...

    @property
    def session(self) -> Session | None:
        """The open session (None while there is none)."""
        held = self._held
        return held.session if held is not None else None

    async def _session_task(self, epoch: int, connect: Connect) -> None:
        handlers = SessionHandlers(
            on_notification=lambda msg: self._on_notification(msg, epoch),
            on_request=self._on_server_request,
            on_reinitialized=self._on_reinitialized,
            capabilities=declared_capabilities(
                self._request_handlers, self.server.client_capabilities
            ),
            wanted=self.wanted,
            on_listener_fresh=self.lists.invalidate,
            on_refused=self._count_refused,
            on_initialize=self._initialize_hook(epoch),
        )
        held: Held | None = None
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
                principal=self.principal,
            ) as session:
                if epoch != self.epoch:
                    return
                if self._auth is not None:
                    self._auth.retry_on_401 = True  # the server took our token: back to normal
                held = self._held = Held(session, epoch)
                self._initializing = handlers.on_initialize = None  # opened: nothing to wait for
                self.lists.invalidate()
                self.negotiated = Negotiated.of(session)
                self.post(Fact(Input.OPENED, reason=f"opened ({session.era})"), epoch)
                # Each ordered listen runs right here, not in a method of its own: a
                # held listen's stack is one frame shallower per level (~250 bytes each).
                pinging = anyio.create_task_group() if self.server.ping_interval else _NO_PINGER
                async with pinging as tg:
                    if tg is not None:
                        tg.start_soon(self._pinger, session, epoch)
                    while True:
                        await held.next_listen()
                        try:
                            await session.listen()
                        except MCPConnError as exc:
                            self.fail_epoch(exc, epoch, "listen")
                        except Exception as exc:
                            self._log.exception("%s: unexpected error in the listener", self._who())
                            self.fail_epoch(exc, epoch, "listen")
                        else:
                            self.post(Fact(Input.STREAM_ENDED, reason="listener returned"), epoch)
        except MCPConnError as exc:
            self.fail_epoch(exc, epoch, "connect")
        except Exception as exc:  # a bug of ours or an unmapped library error
            self._log.exception("%s: unexpected error while connecting", self._who())
            self.fail_epoch(exc, epoch, "connect")
        finally:
            opening = self._initializing
            if opening is not None and opening[0] == epoch:
                self._initializing = None
                opening[1].set()
            if held is not None:
                if self._held is held:
                    self._held = None
                held.done.set()

    def _initialize_hook(self, epoch: int) -> Callable[[], None]:
        """``on_initialize`` for ``epoch``'s opening (dropped once the session is held)."""

        def sent() -> None:
            if epoch == self.epoch:
                self._initializing = (epoch, Flag())

        return sent

    async def _pinger(self, session: Session, epoch: int) -> None:
        assert self.server.ping_interval is not None
        while True:
            await anyio.sleep(self.server.ping_interval)
            try:
                await session.request("ping", None, timeout=self.server.timeouts.request)
            except MCPConnError as exc:
                self.fail_epoch(exc, epoch, "ping")
                return

    def _order_listen(self) -> None:
        held = self._held
        if held is not None:
            held.session.expect_listener()  # calls from now on wait for its stream
            held.order_listen()

    def _drop_session(self, *, polite: bool) -> None:
        held = self._held
        self.epoch += 1  # whatever the old session still reports is now stale
        if held is not None:
            if not polite:
                held.session.discard()
            held.session.drop()

    async def _shutdown(self) -> None:
        held, opening = self._held, self._initializing
        self._drop_session(polite=True)
        if held is not None:
            with anyio.move_on_after(self.server.timeouts.close + 1.0, shield=True):
                await held.done.wait()
        elif opening is not None:
            # The server may have opened a session that only the answer names: let the
            # opening finish (its epoch is stale now, so it closes at once, with DELETE).
            with anyio.move_on_after(self.server.timeouts.close, shield=True):
                await opening[1].wait()

    async def _force_refresh(self) -> None:
        tokens, audience = self._ctx.tokens, self.server.audience
        auth = self._auth
        rejected = self._rejected  # the token the last 401 refused, from its error
        resource = auth.resource if auth is not None else None
        if rejected is None:
            rejected = await tokens.get(self.principal, audience, resource=resource)
        await tokens.refresh(
            self.principal,
            audience,
            replacing=rejected,
            challenge=self.challenge,
            resource=resource,
        )
        self._ctx.counters.forced_refreshes += 1
