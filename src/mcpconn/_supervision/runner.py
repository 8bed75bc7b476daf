"""A connection's engine: owns the machine and its timer, and the one task that holds the session.

Every fact is fed to the sans-IO `Machine` as it is posted, in the poster's
task (the machine never awaits, and neither does carrying out its actions: a
fact posted while one is being fed waits its turn). What needs a task (sleeping
until the machine's timer, opening a session, running its listener, closing
it) is done by the connection's one task, `Runner.run`: the actions leave it
orders (a connect, a deadline, a listen) and ring its `Alarm`. So an idle
listening connection costs one task, with nothing else waiting beside its
stream. A session's outcomes come back as facts tagged with the *epoch* they
belong to; a fact from an abandoned session is dropped, so a late failure can
never knock a fresh session over. The runner decides nothing itself: logging,
the 401 policy of each attempt and every wait come from the actions.
"""

from __future__ import annotations

import logging
import math
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any, Literal

import anyio
import anyio.abc

from .._core.actions import Action, Connect, DropSession, Fail, Listen, Park, Shutdown, Sleep
from .._core.classify import classify
from .._core.http_rules import canonical_uri
from .._core.kept import without_frames
from .._core.machine import Fact, Input, Machine, State
from .._core.token import Token
from .._exceptions import Challenge, JSONRPCError, MCPConnError, ReauthRequired
from .._mcp.lists import ListCache
from .._mcp.server_requests import Incoming
from .._mcp.session import Session, open_session
from .._mcp.wanted import Wanted
from .._tokens.auth import BearerAuth
from .context import ConnectionContext, ReauthCallback
from .inbox import Alarm, Changes, Flag
from .notifications import Broadcast
from .server_requests import RequestHandler, ServerRequest, merge_handlers
from .session_task import SessionKeeping
from .stats import StateChange
from .surface import Negotiated

if TYPE_CHECKING:
    from .connection import Connection

__all__ = ["Runner"]

logger = logging.getLogger("mcpconn")

Tagged = tuple[int | None, Fact]


class Runner(SessionKeeping):
    """Runs one connection's machine; the `Connection` handle reads what it publishes."""

    # slotted: one per connection, thousands at once (a dict's values cost more)
    __slots__ = (
        "_alarm",
        "_auth",
        "_callbacks",
        "_changed",
        "_close_deadline",
        "_connect",
        "_crash",
        "_ctx",
        "_deadline",
        "_handle",
        "_held",
        "_initializing",
        "_listen_due",
        "_machine",
        "_opening",
        "_queue",
        "_refreshing",
        "_rejected",
        "_request_handlers",
        "_session_epoch",
        "challenge",
        "epoch",
        "finished",
        "last_error",
        "lists",
        "negotiated",
        "notes",
        "principal",
        "server",
        "wanted",
    )

    def __init__(
        self,
        handle: Connection,
        context: ConnectionContext,
        machine: Machine,
        request_handlers: Mapping[str, RequestHandler] | None,
    ) -> None:
        config = self.server = handle.server
        principal = self.principal = handle.principal
        self.last_error: MCPConnError | BaseException | None = None
        self.challenge: Challenge | None = None
        #: The token the last 401 refused (from its error): what a forced refresh replaces.
        self._rejected: Token | None = None
        #: What the embedder asked of every session (log level, subscriptions).
        self.wanted = Wanted(config.log_level)
        #: What the last session negotiated (None until the first READY).
        self.negotiated: Negotiated | None = None
        self._handle = handle
        self._request_handlers = merge_handlers(context.request_handlers, request_handlers)
        #: Every notification the server sends; the lists it caches.
        self.notes: Broadcast[dict[str, Any]] = Broadcast(config.limits.notification_buffer)
        self.lists = ListCache()
        #: Set once the task has ended, however it ended.
        self.finished = Flag()
        #: The current session's generation; facts tagged with another are stale.
        self.epoch = 0
        self._ctx = context
        self._machine = machine
        # Made on demand: thousands of idle connections should not carry a waiter
        # queue each for nobody.
        self._changed: Changes | None = None
        #: Facts posted while one is being fed (None: nothing is being fed).
        self._queue: list[Tagged] | None = None
        #: What the machine left the task to do: connect, wake at a deadline, listen.
        self._connect: Connect | None = None
        self._deadline: float | None = None  # the machine's timer
        self._listen_due = False
        self._alarm = Alarm()
        #: A bug met while feeding a fact (raised by the task, as a crash of its own).
        self._crash: Exception | None = None
        self._opening: open_session | None = None
        self._initializing = False
        self._refreshing: anyio.CancelScope | None = None
        self._close_deadline = math.inf
        self._held: Session | None = None
        #: The epoch of the session the task holds (or opens).
        self._session_epoch = 0
        #: The scopes of ``on_reauth_required`` callbacks running (made at the first).
        self._callbacks: set[anyio.CancelScope] | None = None
        self._auth: BearerAuth | None = None
        if config.forward_token:
            self._auth = BearerAuth(
                context.tokens,
                principal,
                config.audience,
                allow_insecure_http=config.allow_insecure_http,
                resource=canonical_uri(config.url),
            )

    @property
    def _log(self) -> logging.LoggerAdapter[logging.Logger]:
        """Every record carries the server and principal (``record.mcp_server``/
        ``.principal``); made per record: an idle connection logs nothing."""
        extra = {"mcp_server": self.server.name, "principal": self.principal}
        return logging.LoggerAdapter(logger, extra)

    # ---- what the handle reads and posts ------------------------------------------

    @property
    def state(self) -> State:
        # a connection whose task has ended is closed, however it ended
        return State.CLOSED if self.finished.is_set() else self._machine.state

    @property
    def usable(self) -> Session | None:
        """The session calls may use: open, whatever its listener is doing.

        A listener backing off (public state BACKOFF) keeps its session; a call
        on it does not wait out the listener's delay."""
        if self.finished.is_set() or not self._machine.has_session:
            return None
        return self.session

    def post(self, fact: Fact, epoch: int | None = None) -> None:
        """Feed a fact from any task; ``epoch`` None means "whatever is current"."""
        if self.finished.is_set():
            return  # after shutdown a late fact means nothing
        queue = self._queue
        if queue is not None:  # being fed (a fact posted by an action): its turn comes
            queue.append((epoch, fact))
            return
        queue = self._queue = [(epoch, fact)]
        try:
            while queue and self._crash is None:
                epoch, fact = queue.pop(0)
                if epoch is None or epoch == self.epoch:
                    self._step(fact)
        except Exception as exc:  # the machine refused a fact (a bug): the task raises it
            self._crash = exc
            self._drop_session(polite=False)
            self._alarm.ring()
        finally:
            self._queue = None

    @property
    def reason(self) -> str:
        """Why the connection is in its state (the last fact's reason; never a token)."""
        return self._machine.last_reason

    @property
    def strikes(self) -> int:
        """Transient failures in a row (0 once it is productive again)."""
        return self._machine.transient_attempt

    def set_request_handlers(self, handlers: Mapping[str, RequestHandler]) -> None:
        self._request_handlers = merge_handlers(self._ctx.request_handlers, handlers)

    def fail_epoch(
        self, exc: BaseException, epoch: int, during: Literal["connect", "listen", "ping"]
    ) -> None:
        """Report what went wrong during ``epoch`` (stale epochs only post, and are dropped).

        The session task's error ends here (nobody re-raises it): kept without its frames.
        """
        self.post_failure(without_frames(exc), classify(exc, during=during), epoch)

    def post_failure(self, exc: BaseException, fact: Fact, epoch: int) -> None:
        """Post ``fact`` (what ``exc`` means); for the current epoch, note it first."""
        if epoch == self.epoch and fact.input is not Input.NO_LISTENER:
            self.last_error = exc
            self._count_failure(exc, fact)
        self.post(fact, epoch)

    async def next_change(self, until: State | None = None) -> None:
        """Wait for the next state change, or one to ``until`` (or CLOSED, the end)."""
        if self._changed is None:
            self._changed = Changes(State.CLOSED)
        await self._changed.wait(until)

    def reauth_error(self, cause: BaseException | None = None) -> ReauthRequired:
        challenge = getattr(cause, "challenge", None) or self.challenge
        return ReauthRequired(
            "the server rejected this principal's token; a new login is required",
            server=self.server.name,
            principal=self.principal,
            challenge=challenge,
        )

    # ---- the loop -------------------------------------------------------------------

    # ---- the loop (`SessionKeeping.run`: the connection's task holds its sessions) -------

    def _running(self) -> bool:
        return self._machine.state is not State.CLOSED and self._crash is None

    def _report_crash(self, *, raised: bool = False) -> None:
        """A bug of ours (the machine refused a fact, or the loop raised): contained to
        this connection, which is closed. ``raised``: called in the ``except`` block."""
        if raised:
            logger.exception("connection %r crashed; it is closed", self._handle)
        elif self._crash is not None:
            logger.error("connection %r crashed; it is closed", self._handle, exc_info=self._crash)

    def _ended(self) -> None:
        """The connection's task ends (however it ended)."""
        self.finished.set()
        self.notes.close()
        self._signal_change()
        self._cancel_callbacks()
        if self._ctx.on_ended is not None:
            self._ctx.on_ended(self._handle)

    async def _sleep(self) -> None:
        """Until the alarm rings (an order came) or the machine's timer, which is fed."""
        await self._alarm.sleep(self._deadline)
        deadline = self._deadline  # the timer now (a `Sleep` may have moved it meanwhile)
        if deadline is not None and anyio.current_time() >= deadline:
            self._deadline = None
            self.post(Fact(Input.TIMER_FIRED), self.epoch)

    async def _next_listen(self) -> None:
        """Wait for the next `Listen` order, minding the machine's timer meanwhile."""
        while not self._listen_due:
            await self._sleep()
        self._listen_due = False

    def _step(self, fact: Fact) -> None:
        old = self._machine.state
        actions = self._machine.feed(fact, now=anyio.current_time(), rng=self._ctx.rng)
        new = self._machine.state
        if new is not old:
            self._signal_change()
            self._ctx.on_state_change(self._handle, old, new)
            changes = self._ctx.state_changes
            if changes.subscriber_count:  # no record built for nobody
                changes.publish(
                    StateChange(self.server.name, self.principal, old, new, fact.reason)
                )
        for action in actions:
            self._do(action)

    def _do(self, action: Action) -> None:
        if not isinstance(action, Sleep | Listen):
            self._deadline = None  # the machine left the phase that was waiting
        if isinstance(action, Sleep):
            if action.log:
                self._log.warning(
                    "%s: %s; backing off (attempt %d)", self._who(), action.reason, action.attempt
                )
            extra = self._ctx.retry_budget.reserve(anyio.current_time()) if action.budgeted else 0
            deadline = self._deadline = anyio.current_time() + action.seconds + extra
            self._alarm.ring_at(deadline)  # a sleeping task is woken then, not now
        elif isinstance(action, Connect):
            self.epoch += 1
            self._ctx.counters.connects += 1
            self._connect = action
            self._alarm.ring()
        elif isinstance(action, Listen):
            self._order_listen()  # run by the task holding the session
        elif isinstance(action, DropSession):
            self._drop_session(polite=action.polite)
        elif isinstance(action, Park):
            self._on_park(action)
        elif isinstance(action, Fail):
            self._log.error("%s: connection failed permanently: %s", self._who(), action.reason)
        elif isinstance(action, Shutdown):
            self._drop_session(polite=True)
            self._connect = None
            self._alarm.ring()

    def _count_failure(self, exc: BaseException, fact: Fact) -> None:
        counters = self._ctx.counters
        if fact.input in (Input.UNAUTHORIZED, Input.SCOPE_DENIED):
            counters.unauthorized += 1
            self.challenge = fact.challenge
            self._rejected = fact.rejected or self._rejected
        elif fact.input in (Input.TRANSIENT_FAILURE, Input.LISTENER_FAILED):
            counters.transient_failures += 1

    # ---- parking --------------------------------------------------------------------

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
        if callback is not None and self._ctx.task_group is not None:
            self._ctx.task_group.start_soon(
                self._call_reauth_callback, callback, self.reauth_error()
            )

    async def _call_reauth_callback(self, callback: ReauthCallback, err: ReauthRequired) -> None:
        """Run in the supervisor's task group, cancelled when this connection's task ends."""
        if self.finished.is_set():
            return
        scope = anyio.CancelScope()
        callbacks = self._callbacks
        if callbacks is None:
            callbacks = self._callbacks = set()
        callbacks.add(scope)
        try:
            with scope:
                result = callback(err)
                if result is not None:
                    await result
        except Exception:
            self._log.exception("%s: on_reauth_required callback failed", self._who())
        finally:
            callbacks.discard(scope)

    def _cancel_callbacks(self) -> None:
        for scope in self._callbacks or ():
            scope.cancel()

    # ---- server-to-client traffic ---------------------------------------------------

    def _signal_change(self) -> None:
        changes = self._changed
        if changes is not None and changes.changed(self.state):
            self._changed = None

    def _on_notification(self, message: dict[str, Any]) -> None:
        """From the session held (the one there is: the task holds one at a time)."""
        self.lists.on_notification(message.get("method"))
        if self._session_epoch == self.epoch:
            self._ctx.counters.notifications += 1
        self.notes.publish(message)

    async def _on_server_request(self, incoming: Incoming) -> dict[str, Any]:
        handler = self._request_handlers.get(incoming.method)
        if handler is None:
            raise JSONRPCError(-32601, f"Method not found: {incoming.method}")
        return await handler(ServerRequest.of(incoming, self._handle))

    def _count_refused(self) -> None:
        self._ctx.counters.server_requests_refused += 1

    def _on_reinitialized(self) -> None:
        self.lists.invalidate()
        session = self.session
        if session is not None:
            self.negotiated = Negotiated.of(session)

    def _who(self) -> str:
        return f"server={self.server.name} principal={self.principal}"
