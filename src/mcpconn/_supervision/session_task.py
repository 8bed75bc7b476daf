"""Holding one session in the connection's task: open it, run its listener, close it.

Mixed into `Runner`. A `Connect` order is carried out by the connection's task
itself (`run`): it enters `open_session` (so it is the one task that enters
and exits it), posts OPENED, then waits for `Listen` orders (and the machine's
timer, for the wait before a re-listen) and runs each listen *itself*: an idle
connection costs this one task, with no listener task and no task group living
for the stream's life (a pinger, when asked for, gets a task group of its
own). Dropping the session cancels what runs inside `open_session`
(`Session.drop`, or `open_session.drop` while it is still opening: no scope of
our own); the task then leaves it, which closes politely (or not, after
`Session.discard`). Every fact it posts is tagged with its epoch, so a session
being dropped reports nothing that counts.
"""

from __future__ import annotations

import functools
import logging
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from typing import TYPE_CHECKING, Any, Literal

import anyio
import anyio.abc

from .._config import ServerConfig
from .._core.actions import Connect
from .._core.machine import Fact, Input
from .._core.token import Token
from .._exceptions import Challenge, MCPConnError
from .._http.deadlines import sweep_in
from .._mcp.lists import ListCache
from .._mcp.server_requests import Incoming, IncomingHandler
from .._mcp.session import Session, open_session
from .._mcp.wanted import Wanted
from .._tokens.auth import BearerAuth
from .context import ConnectionContext
from .inbox import Alarm
from .server_requests import RequestHandler, declared_capabilities
from .surface import Negotiated

__all__ = ["SessionKeeping"]


@functools.lru_cache(maxsize=8)
def _opened_reason(era: str) -> str:
    """One string per era: the machine keeps a connection's last reason for hours."""
    return f"opened ({era})"


class _NoPinger:
    """``async with`` it in place of the pinger's task group when there is no pinger.

    Static methods: ``async with`` then keeps no bound ``__aexit__`` (64 bytes) on
    the holder's frame for the session's life."""

    __slots__ = ()

    @staticmethod
    async def __aenter__() -> None:
        return None

    @staticmethod
    async def __aexit__(*exc_info: object) -> None:
        return None


_NO_PINGER = _NoPinger()


class _Callbacks:
    """The connection's `Handlers` for one session: where a `SessionHandlers` kept a bound
    method per callback for the session's life (~64 bytes each), the callbacks are
    looked up on the connection when called."""

    __slots__ = ("_keeper", "capabilities", "on_initialize", "wanted")

    def __init__(self, keeper: SessionKeeping, capabilities: dict[str, Any] | None) -> None:
        self._keeper = keeper
        self.capabilities = capabilities
        self.wanted = keeper.wanted
        #: Until the session is open (then None: nothing waits for its ``initialize``).
        self.on_initialize: Callable[[], None] | None = keeper._on_initialize

    @property
    def on_notification(self) -> Callable[[dict[str, Any]], None]:
        return self._keeper._on_notification

    @property
    def on_request(self) -> IncomingHandler:
        return self._keeper._on_server_request

    @property
    def on_reinitialized(self) -> Callable[[], None]:
        return self._keeper._on_reinitialized

    @property
    def on_listener_fresh(self) -> Callable[[], None]:
        return self._keeper.lists.invalidate

    @property
    def on_refused(self) -> Callable[[], None]:
        return self._keeper._count_refused


class SessionKeeping:
    """The session half of `Runner` (see the module docstring)."""

    if not TYPE_CHECKING:  # `Runner` names every attribute; mypy checks them there
        __slots__ = ()

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
    _connect: Connect | None
    _opening: open_session | None
    #: An ``initialize`` of the opening is in flight: a close lets it finish, to DELETE.
    _initializing: bool
    _refreshing: anyio.CancelScope | None
    _held: Session | None
    _listen_due: bool
    _session_epoch: int
    _alarm: Alarm
    #: When a close must be over, whatever the server's own budget (set by
    #: `Connection._close_by`: the supervisor's ``close_timeout``).
    _close_deadline: float

    if TYPE_CHECKING:

        def post(self, fact: Fact, epoch: int | None = None) -> None: ...

        def fail_epoch(
            self, exc: BaseException, epoch: int, during: Literal["connect", "listen", "ping"]
        ) -> None: ...

        async def _next_listen(self) -> None: ...

        async def _sleep(self) -> None: ...

        def _running(self) -> bool: ...

        def _report_crash(self, *, raised: bool = False) -> None: ...

        def _ended(self) -> None: ...

        def _on_notification(self, message: dict[str, Any]) -> None: ...

        async def _on_server_request(self, incoming: Incoming) -> dict[str, Any]: ...

        def _on_reinitialized(self) -> None: ...

        def _count_refused(self) -> None: ...

        def _who(self) -> str: ...

        @property
        def _log(self) -> logging.LoggerAdapter[logging.Logger]: ...

    @property
    def session(self) -> Session | None:
        """The open session (None while there is none)."""
        return self._held

    async def run(
        self, *, task_status: anyio.abc.TaskStatus[None] = anyio.TASK_STATUS_IGNORED
    ) -> None:
        """The connection's own task. Never raises for the server's sake.

        Each `Connect` order is carried out right here, not in a method of its own: the
        session is held on this frame (a held listener's stack is one coroutine, ~340
        bytes, shallower). ``continue`` ends a hold early (its ``finally`` runs)."""
        try:
            task_status.started()
            self.post(Fact(Input.STARTED))
            while self._running():
                connect, self._connect = self._connect, None
                if connect is None:
                    await self._sleep()
                    continue
                epoch = self.epoch
                refresh, retry_on_401 = connect.refresh_token, connect.retry_on_401
                del connect  # this frame lasts as long as the session: it keeps no order
                handlers = _Callbacks(
                    self,
                    declared_capabilities(self._request_handlers, self.server.client_capabilities),
                )
                held: Session | None = None
                opening: open_session | None = None
                self._session_epoch = epoch
                self._initializing = False
                try:
                    if self._auth is not None:
                        self._auth.retry_on_401 = retry_on_401
                        if refresh:
                            with self._refreshing_scope() as scope:
                                await self._force_refresh()
                            if scope.cancel_called:
                                continue  # closed while refreshing
                    sweep_in(self._ctx.client, self._ctx.task_group)  # its listener reads' timer
                    opening = self._opening = open_session(
                        self._ctx.client,
                        self.server,
                        auth=self._auth,
                        handlers=handlers,
                        era_cache=self._ctx.era_cache,
                        principal=self.principal,
                        task_group=self._ctx.task_group,  # the session's tasks: no group of its own
                    )
                    session = await opening.__aenter__()
                    # try/except/finally, not ``async with``: that would keep the bound
                    # ``__aexit__`` on this frame for the session's life (64 bytes)
                    left = False
                    try:
                        self._opening = None
                        if epoch != self.epoch:
                            continue
                        if self._auth is not None:
                            self._auth.retry_on_401 = True  # the server took our token: as usual
                        held = self._held = session
                        self._initializing, handlers.on_initialize = False, None  # opened
                        self._listen_due = False
                        self._share_hello(session)
                        self.lists.invalidate()
                        self.negotiated = Negotiated.of(session)
                        self.post(Fact(Input.OPENED, reason=_opened_reason(session.era)), epoch)
                        # Each ordered listen runs right here, not in a method of its own: a
                        # held listen's stack is one frame shallower per level (~250 bytes).
                        pinging = (
                            anyio.create_task_group() if self.server.ping_interval else _NO_PINGER
                        )
                        async with pinging as tg:
                            if tg is not None:
                                tg.start_soon(self._pinger, session, epoch)
                            while True:
                                await self._next_listen()
                                try:
                                    await session.listen()
                                except MCPConnError as exc:
                                    self.fail_epoch(exc, epoch, "listen")
                                except Exception as exc:
                                    self._log.exception(
                                        "%s: unexpected error in the listener", self._who()
                                    )
                                    self.fail_epoch(exc, epoch, "listen")
                                else:
                                    self.post(
                                        Fact(Input.STREAM_ENDED, reason="listener returned"), epoch
                                    )
                    except BaseException as exc:
                        left = True
                        if not await opening.__aexit__(type(exc), exc, exc.__traceback__):
                            raise
                    finally:
                        if not left:
                            await opening.__aexit__(None, None, None)
                except MCPConnError as exc:
                    self.fail_epoch(exc, epoch, "connect")
                except Exception as exc:  # a bug of ours or an unmapped library error
                    self._log.exception("%s: unexpected error while connecting", self._who())
                    self.fail_epoch(exc, epoch, "connect")
                finally:
                    self._opening, self._initializing = None, False
                    if held is not None and self._held is held:
                        self._held = None
                    # nothing of the ended session stays on this frame until the next one
                    held = opening = handlers = session = None  # type: ignore[assignment]
                    pinging = tg = scope = None  # type: ignore[assignment]
            self._report_crash()
        except Exception:
            self._report_crash(raised=True)
        finally:
            self._ended()

    def _on_initialize(self) -> None:
        """An ``initialize`` of the session being opened is about to be sent."""
        if self._session_epoch == self.epoch:
            self._initializing = True

    def _share_hello(self, session: Session) -> None:
        """Thousands of connections to one server are told the same: keep one copy of
        it (~600 bytes each). A handshake replaces these dicts and nothing edits them."""
        hellos, name = self._ctx.hellos, self.server.name
        known = hellos.get(name)
        if known is not None and known == (session.server_info, session.capabilities):
            session.server_info, session.capabilities = known
        else:
            hellos[name] = (session.server_info, session.capabilities)

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
        session = self._held
        if session is not None:
            session.expect_listener()  # calls from now on wait for its stream
            self._listen_due = True
            self._alarm.ring()

    def _drop_session(self, *, polite: bool) -> None:
        self.epoch += 1  # whatever the old session still reports is now stale
        session = self._held
        # a close is over by `_close_deadline` (the supervisor's close_timeout), however
        # long the server's own budget
        by = self._close_deadline
        if session is not None:
            if not polite:
                session.discard()
            session.drop(by)
        elif self._opening is not None:
            if polite and self._initializing:
                # The server may have opened a session that only the answer names: let
                # the opening finish (its epoch is stale now, so it closes at once, with
                # DELETE), within timeouts.close.
                self._opening.drop_at(min(anyio.current_time() + self.server.timeouts.close, by))
            else:
                self._opening.drop(by)  # still opening: stop it (it closes what it opened)
        elif self._refreshing is not None:
            self._refreshing.cancel()

    @contextmanager
    def _refreshing_scope(self) -> Iterator[anyio.CancelScope]:
        """A forced refresh before a connect, stopped by a drop (made only for one)."""
        scope = self._refreshing = anyio.CancelScope()
        try:
            with scope:
                yield scope
        finally:
            self._refreshing = None

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
