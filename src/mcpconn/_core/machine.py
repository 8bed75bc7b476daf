"""The connection state machine: facts in, actions out.

Theory of operation
-------------------
A downstream connection (one server x one principal) is in exactly one
`State`. The shell observes facts (`Input`: something that *happened*, named
in the past tense) and feeds them to `Machine.feed()`, which returns the new
state and a list of actions (imperative nouns) for the shell to carry out. The
machine never awaits, never reads a clock and never draws a random number: the
caller passes ``now`` and an ``rng``. Every (state, input) pair is in
`_TABLE`; a pair that is not there is a bug in the shell and raises
`InvalidTransition` instead of being silently ignored. Pairs that are legal
but mean nothing (a token published while READY) are listed as ``_ignore``.

The rules that answer the seed bug:

* A 401 reaches us only after the auth layer did its one compare-and-refresh
  and one immediate retry. Each further 401 costs one *auth attempt*: back off
  (exponential, jittered), ask the token layer for a forced refresh, reconnect.
  After ``Backoff.auth_attempts`` of them the connection parks in
  ``NEEDS_REAUTH``: no traffic, one log line (repeats logged only on powers of
  two), until a token is published for the principal. 403
  ``insufficient_scope`` or the provider saying ``ReauthRequired`` parks at once.
* Transient failures (network, 5xx, 429/503, read timeouts, clean stream ends)
  are never auth failures: they back off and retry forever unless the policy
  says stop. Every wait before a reconnect (the listener's included) is
  charged to the server's retry budget (``Sleep.budgeted``).
* Server hints (``Retry-After``, SSE ``retry:``) only lengthen a wait: the
  wait is ``max(curve, min(hint, retry_after_cap))``. A hint that is not a
  finite positive number is no hint. Only the first failure after a
  *productive period* may wait less than the curve (exactly the capped hint).
* Productive means "lasted": the session (for a reconnect) or the listener
  stream (for a listener retry) stayed up ``productive_after`` seconds, judged
  from ``now`` when it fails. Events do not count, so a server that sends one
  event and closes still climbs the curve; a bare handshake never resets it.
"""

from __future__ import annotations

import enum
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from .._exceptions import (
    Forbidden,
    InsecureTransportError,
    JSONRPCError,
    MethodNotAllowed,
    RateLimited,
    ReauthRequired,
    SessionExpired,
    StreamEnded,
    Unauthorized,
    UnsupportedProtocolVersion,
)
from .backoff import Backoff

if TYPE_CHECKING:
    import random


class State(enum.Enum):
    """Where a connection is. Calls go straight through only in READY."""

    CONNECTING = "connecting"
    READY = "ready"
    BACKOFF = "backoff"
    NEEDS_REAUTH = "needs_reauth"
    #: The server can never work with this configuration (e.g. no common protocol
    #: version) or the backoff policy gave up; only closing leaves it.
    FAILED = "failed"
    CLOSED = "closed"


class Input(enum.Enum):
    """Facts the shell observed."""

    STARTED = "started"
    OPENED = "opened"
    NO_LISTENER = "no_listener"
    LISTENER_FAILED = "listener_failed"
    STREAM_ENDED = "stream_ended"
    PRODUCTIVE = "productive"
    TRANSIENT_FAILURE = "transient_failure"
    SESSION_LOST = "session_lost"
    UNAUTHORIZED = "unauthorized"
    SCOPE_DENIED = "scope_denied"
    REAUTH_REQUIRED = "reauth_required"
    PERMANENT_FAILURE = "permanent_failure"
    TIMER_FIRED = "timer_fired"
    TOKEN_PUBLISHED = "token_published"
    PROBE_DUE = "probe_due"
    CLOSE_REQUESTED = "close_requested"


@dataclass(frozen=True)
class Fact:
    """An input with the data the machine needs to decide."""

    input: Input
    #: The server's SSE ``retry:`` in seconds (STREAM_ENDED): a hint, see `Backoff.hint`.
    retry: float | None = None
    #: The server's ``Retry-After`` in seconds (TRANSIENT_FAILURE): a hint, capped.
    retry_after: float | None = None
    reason: str = ""


# ---- actions --------------------------------------------------------------------


@dataclass(frozen=True)
class Connect:
    """Open a new session (and its listener). ``refresh_token``: force a token refresh first."""

    refresh_token: bool = False


@dataclass(frozen=True)
class Listen:
    """(Re)open the listener stream on the current session, resuming where it stopped."""


@dataclass(frozen=True)
class Sleep:
    """Wait, then feed TIMER_FIRED. ``budgeted``: also wait for the server's retry budget."""

    seconds: float
    budgeted: bool = False


@dataclass(frozen=True)
class DropSession:
    """Abandon the current session. ``polite``: send DELETE (not when auth is failing)."""

    polite: bool


@dataclass(frozen=True)
class Park:
    """Enter NEEDS_REAUTH: stop all traffic, tell the embedder. ``log``: write the log line."""

    log: bool
    count: int


@dataclass(frozen=True)
class Fail:
    """Enter FAILED."""


@dataclass(frozen=True)
class Shutdown:
    """Close the session politely and stop the connection's task."""


Action = Connect | Listen | Sleep | DropSession | Park | Fail | Shutdown


class InvalidTransition(RuntimeError):
    """The shell fed an input the current state cannot receive: a bug, not a condition."""


class _Pending(enum.Enum):
    NOTHING = "nothing"
    CONNECT = "connect"
    LISTEN = "listen"


@dataclass
class Machine:
    """One connection's decisions. Mutable, owned by exactly one task."""

    backoff: Backoff = field(default_factory=Backoff)
    #: Jitter (seconds, uniform) spreading connects after a published token.
    wake_jitter: float = 0.25
    #: Wait before the very first connect (the supervisor staggers start-ups).
    start_delay: float = 0.0
    #: Seconds a session or listener stream must last to reset the backoff curve.
    productive_after: float = 60.0
    state: State = State.CONNECTING
    transient_attempt: int = 0
    auth_attempt: int = 0
    park_count: int = 0
    #: Whether the embedder wants a listener; `listening` is this session's answer.
    listen: bool = True
    listening: bool = True
    has_session: bool = False
    last_reason: str = ""
    _pending: _Pending = _Pending.NOTHING
    _pending_refresh: bool = False
    _backing_off_for_auth: bool = False
    _published_during_attempt: bool = False
    _failing_since: float | None = None
    _last_delay: float | None = None
    _session_since: float | None = None
    _listen_since: float | None = None

    def feed(self, fact: Fact | Input, *, now: float, rng: random.Random) -> list[Action]:
        """Apply one fact; return what the shell must do, in order."""
        if isinstance(fact, Input):
            fact = Fact(fact)
        handler = _TABLE.get((self.state, fact.input))
        if handler is None:
            raise InvalidTransition(f"{fact.input.name} cannot happen in {self.state.name}")
        if fact.reason:
            self.last_reason = fact.reason
        return handler(self, fact, now, rng)

    # ---- handlers ---------------------------------------------------------------

    def _ignore(self, fact: Fact, now: float, rng: random.Random) -> list[Action]:
        return []

    def _start(self, fact: Fact, now: float, rng: random.Random) -> list[Action]:
        if self.start_delay > 0:
            self._pending, self._pending_refresh = _Pending.CONNECT, False
            return [Sleep(self.start_delay)]
        return [Connect()]

    def _published_while_connecting(
        self, fact: Fact, now: float, rng: random.Random
    ) -> list[Action]:
        """Remember it: a 401 to the attempt in flight must not park the connection."""
        self._published_during_attempt = True
        return []

    def _opened(self, fact: Fact, now: float, rng: random.Random) -> list[Action]:
        self._published_during_attempt = False
        self.listening = self.listen  # a new session may offer what the old one did not
        self.state = State.READY
        self.has_session = True
        self.auth_attempt = 0
        self._backing_off_for_auth = False
        self._pending = _Pending.NOTHING
        self._session_since = now
        self._listen_since = now if self.listening else None
        return [Listen()] if self.listening else []

    def _no_listener(self, fact: Fact, now: float, rng: random.Random) -> list[Action]:
        self.listening = False
        self._listen_since = None
        return []

    def _productive(self, fact: Fact, now: float, rng: random.Random) -> list[Action]:
        """An explicit "this connection works" from the embedder: reset the curve."""
        self._reset_curve()
        return []

    def _stream_ended(self, fact: Fact, now: float, rng: random.Random) -> list[Action]:
        """The listener closed cleanly; the session lives on. Resume it, not a new session."""
        productive = self._lasted(self._listen_since, now)
        self._listen_since = None
        self._pending = _Pending.LISTEN
        delay = self._next_transient_delay(fact.retry, now, rng, productive=productive)
        if delay is None:
            return self._permanent(fact, now, rng)  # FAILED holds no session (and no pinger)
        return [Sleep(delay, budgeted=True)]

    def _listener_failed(self, fact: Fact, now: float, rng: random.Random) -> list[Action]:
        """The listener stream failed but the session may be fine: keep it, back off, listen again.

        Requests in flight are not torn down (the SDKs treat a listener failure as
        non-fatal too); calls wait in BACKOFF. A session that is really gone shows
        up as SESSION_LOST on the next attempt.
        """
        productive = self._lasted(self._listen_since, now)
        self._listen_since = None
        delay = self._next_transient_delay(fact.retry_after, now, rng, productive=productive)
        if delay is None:
            return self._permanent(fact, now, rng)
        self.state = State.BACKOFF
        self._pending = _Pending.LISTEN
        self._backing_off_for_auth = False
        return [Sleep(delay, budgeted=True)]

    def _transient(self, fact: Fact, now: float, rng: random.Random) -> list[Action]:
        productive = self.has_session and self._lasted(self._session_since, now)
        delay = self._next_transient_delay(fact.retry_after, now, rng, productive=productive)
        actions: list[Action] = []
        if self.has_session:
            actions.append(DropSession(polite=False))
            self.has_session = False
        if delay is None:
            return actions + self._fail()
        self.state = State.BACKOFF
        self._pending, self._pending_refresh = _Pending.CONNECT, False
        self._backing_off_for_auth = False
        return [*actions, Sleep(delay, budgeted=True)]

    def _session_lost(self, fact: Fact, now: float, rng: random.Random) -> list[Action]:
        """The server forgot our session: reconnect at once the first time, then back off.

        "At once" still draws from the retry budget, like every reconnect.
        """
        if self.has_session and self._lasted(self._session_since, now):
            self._reset_curve()
        if self.transient_attempt == 0:
            self.transient_attempt = 1
            self._failing_since = now
            actions: list[Action] = [DropSession(polite=False)] if self.has_session else []
            self.has_session = False
            self.state = State.CONNECTING
            self._pending, self._pending_refresh = _Pending.CONNECT, False
            return [*actions, Sleep(0.0, budgeted=True)]
        return self._transient(fact, now, rng)

    def _unauthorized(self, fact: Fact, now: float, rng: random.Random) -> list[Action]:
        actions: list[Action] = []
        if self.has_session:
            actions.append(DropSession(polite=False))
            self.has_session = False
        if self._published_during_attempt:
            # The attempt carried the old token; the user has logged in since: try the new one.
            return actions + self._wake(rng)
        self.auth_attempt += 1
        if self.auth_attempt > self.backoff.auth_attempts:
            return actions + self._park()
        delay = self.backoff.delay(self.auth_attempt, rng, previous=self._last_delay)
        self._last_delay = delay
        self.state = State.BACKOFF
        self._pending, self._pending_refresh = _Pending.CONNECT, True
        self._backing_off_for_auth = True
        return [*actions, Sleep(delay, budgeted=True)]

    def _park_now(self, fact: Fact, now: float, rng: random.Random) -> list[Action]:
        actions: list[Action] = []
        if self.has_session:
            actions.append(DropSession(polite=False))
            self.has_session = False
        return actions + self._park()

    def _permanent(self, fact: Fact, now: float, rng: random.Random) -> list[Action]:
        actions: list[Action] = []
        if self.has_session:
            actions.append(DropSession(polite=True))
            self.has_session = False
        return actions + self._fail()

    def _timer(self, fact: Fact, now: float, rng: random.Random) -> list[Action]:
        pending, self._pending = self._pending, _Pending.NOTHING
        if pending is _Pending.LISTEN and self.has_session:
            self.state = State.READY
            self._listen_since = now
            return [Listen()]
        if pending is _Pending.CONNECT:
            self.state = State.CONNECTING
            self._published_during_attempt = False  # this attempt takes the newest token
            return [Connect(refresh_token=self._pending_refresh)]
        raise InvalidTransition(f"TIMER_FIRED with nothing pending in {self.state.name}")

    def _published_while_backing_off(
        self, fact: Fact, now: float, rng: random.Random
    ) -> list[Action]:
        if not self._backing_off_for_auth:
            return []
        return self._wake(rng)

    def _published_while_parked(self, fact: Fact, now: float, rng: random.Random) -> list[Action]:
        return self._wake(rng)

    def _probe(self, fact: Fact, now: float, rng: random.Random) -> list[Action]:
        """A slow re-check while parked: one more 401 parks again at once.

        Spread like a wake-up: the supervisor probes every parked connection together.
        """
        self.auth_attempt = self.backoff.auth_attempts
        self.state = State.CONNECTING
        self._pending, self._pending_refresh = _Pending.CONNECT, True
        return [Sleep(rng.uniform(0.0, self.wake_jitter) if self.wake_jitter > 0 else 0.0)]

    def _close(self, fact: Fact, now: float, rng: random.Random) -> list[Action]:
        self.state = State.CLOSED
        self.has_session = False
        self._pending = _Pending.NOTHING
        return [Shutdown()]

    # ---- helpers ----------------------------------------------------------------

    def _wake(self, rng: random.Random) -> list[Action]:
        self._published_during_attempt = False
        self.auth_attempt = 0
        self._backing_off_for_auth = False
        self.state = State.CONNECTING
        self._pending, self._pending_refresh = _Pending.CONNECT, False
        return [Sleep(rng.uniform(0.0, self.wake_jitter) if self.wake_jitter > 0 else 0.0)]

    def _park(self) -> list[Action]:
        self.state = State.NEEDS_REAUTH
        self.park_count += 1
        self._pending = _Pending.NOTHING
        self._backing_off_for_auth = False
        return [Park(log=worth_logging(self.park_count), count=self.park_count)]

    def _fail(self) -> list[Action]:
        self.state = State.FAILED
        self._pending = _Pending.NOTHING
        return [Fail()]

    def _lasted(self, since: float | None, now: float) -> bool:
        return since is not None and now - since >= self.productive_after

    def _reset_curve(self) -> None:
        self.transient_attempt = 0
        self._failing_since = None
        self._last_delay = None

    def _next_transient_delay(
        self, hint: float | None, now: float, rng: random.Random, *, productive: bool = False
    ) -> float | None:
        """The wait before the next attempt, or None when the policy gives up.

        A hint lengthens the curve's delay, never shortens it, except right
        after a productive period (one short wait per period is the most a
        server can win).
        """
        if productive:
            self._reset_curve()
        self.transient_attempt += 1
        if self._failing_since is None:
            self._failing_since = now
        elapsed = now - self._failing_since
        if self.backoff.exhausted(self.transient_attempt, elapsed):
            return None
        delay = self.backoff.delay(
            self.transient_attempt, rng, previous=self._last_delay, elapsed=elapsed
        )
        wanted = self.backoff.hint(hint)
        if wanted is not None:
            delay = wanted if productive else max(delay, wanted)
        self._last_delay = delay
        return delay


_Handler = Callable[[Machine, Fact, float, "random.Random"], list[Action]]
S, In = State, Input

_TABLE: dict[tuple[State, Input], _Handler] = {
    # CONNECTING: a Connect (or a jittered Sleep before one) is in flight.
    (S.CONNECTING, In.STARTED): Machine._start,
    (S.CONNECTING, In.OPENED): Machine._opened,
    (S.CONNECTING, In.TRANSIENT_FAILURE): Machine._transient,
    (S.CONNECTING, In.STREAM_ENDED): Machine._transient,
    (S.CONNECTING, In.SESSION_LOST): Machine._session_lost,
    (S.CONNECTING, In.UNAUTHORIZED): Machine._unauthorized,
    (S.CONNECTING, In.SCOPE_DENIED): Machine._park_now,
    (S.CONNECTING, In.REAUTH_REQUIRED): Machine._park_now,
    (S.CONNECTING, In.PERMANENT_FAILURE): Machine._permanent,
    (S.CONNECTING, In.TIMER_FIRED): Machine._timer,
    (S.CONNECTING, In.TOKEN_PUBLISHED): Machine._published_while_connecting,
    (S.CONNECTING, In.PROBE_DUE): Machine._ignore,
    (S.CONNECTING, In.PRODUCTIVE): Machine._ignore,
    (S.CONNECTING, In.LISTENER_FAILED): Machine._ignore,
    (S.CONNECTING, In.CLOSE_REQUESTED): Machine._close,
    # READY: the session is open; the listener may be running.
    (S.READY, In.NO_LISTENER): Machine._no_listener,
    (S.READY, In.LISTENER_FAILED): Machine._listener_failed,
    (S.READY, In.STREAM_ENDED): Machine._stream_ended,
    (S.READY, In.PRODUCTIVE): Machine._productive,
    (S.READY, In.TRANSIENT_FAILURE): Machine._transient,
    (S.READY, In.SESSION_LOST): Machine._session_lost,
    (S.READY, In.UNAUTHORIZED): Machine._unauthorized,
    (S.READY, In.SCOPE_DENIED): Machine._park_now,
    (S.READY, In.REAUTH_REQUIRED): Machine._park_now,
    (S.READY, In.PERMANENT_FAILURE): Machine._permanent,
    (S.READY, In.TIMER_FIRED): Machine._timer,
    (S.READY, In.TOKEN_PUBLISHED): Machine._ignore,
    (S.READY, In.PROBE_DUE): Machine._ignore,
    (S.READY, In.CLOSE_REQUESTED): Machine._close,
    # BACKOFF: only a Sleep is in flight.
    (S.BACKOFF, In.TIMER_FIRED): Machine._timer,
    # ... with a session kept while the listener backs off, the pinger may still report:
    (S.BACKOFF, In.TRANSIENT_FAILURE): Machine._transient,
    (S.BACKOFF, In.SESSION_LOST): Machine._transient,
    (S.BACKOFF, In.UNAUTHORIZED): Machine._unauthorized,
    (S.BACKOFF, In.SCOPE_DENIED): Machine._park_now,
    (S.BACKOFF, In.REAUTH_REQUIRED): Machine._park_now,
    (S.BACKOFF, In.PERMANENT_FAILURE): Machine._permanent,  # a ping re-initialized: no version
    (S.BACKOFF, In.LISTENER_FAILED): Machine._ignore,
    (S.BACKOFF, In.NO_LISTENER): Machine._no_listener,
    (S.BACKOFF, In.TOKEN_PUBLISHED): Machine._published_while_backing_off,
    (S.BACKOFF, In.PROBE_DUE): Machine._ignore,
    (S.BACKOFF, In.PRODUCTIVE): Machine._ignore,
    (S.BACKOFF, In.CLOSE_REQUESTED): Machine._close,
    # NEEDS_REAUTH: silent until a token is published (or an opt-in probe).
    (S.NEEDS_REAUTH, In.TOKEN_PUBLISHED): Machine._published_while_parked,
    (S.NEEDS_REAUTH, In.PROBE_DUE): Machine._probe,
    (S.NEEDS_REAUTH, In.PRODUCTIVE): Machine._ignore,
    (S.NEEDS_REAUTH, In.LISTENER_FAILED): Machine._ignore,
    (S.NEEDS_REAUTH, In.CLOSE_REQUESTED): Machine._close,
    # FAILED: only closing leaves it.
    (S.FAILED, In.TOKEN_PUBLISHED): Machine._ignore,
    (S.FAILED, In.PROBE_DUE): Machine._ignore,
    (S.FAILED, In.PRODUCTIVE): Machine._ignore,
    (S.FAILED, In.LISTENER_FAILED): Machine._ignore,
    (S.FAILED, In.CLOSE_REQUESTED): Machine._close,
}
# CLOSED is absorbing: late facts from a task that is winding down mean nothing.
_TABLE.update({(S.CLOSED, i): Machine._ignore for i in Input})


def worth_logging(count: int) -> bool:
    """The 1st, 2nd, 4th, 8th... occurrence: a connection failing for hours logs a
    handful of lines, not one per attempt (the seed's flood)."""
    return count > 0 and count & (count - 1) == 0


def classify(error: BaseException, *, during: str) -> Fact:
    """Turn what went wrong into a fact. ``during`` is "connect", "listen" or "call".

    Only auth-shaped failures are auth facts; everything that a later attempt can
    fix is transient; what no retry can fix (our own configuration, a server that
    refuses every protocol version we speak) is permanent.
    """
    reason = _describe(error)
    if isinstance(error, Unauthorized):
        return Fact(Input.UNAUTHORIZED, reason=reason)
    if isinstance(error, Forbidden | ReauthRequired):
        kind = Input.SCOPE_DENIED if isinstance(error, Forbidden) else Input.REAUTH_REQUIRED
        return Fact(kind, reason=reason)
    if isinstance(error, SessionExpired):
        return Fact(Input.SESSION_LOST, reason=reason)
    if isinstance(error, StreamEnded):
        return Fact(Input.STREAM_ENDED, retry=error.retry, reason=reason)
    if isinstance(error, UnsupportedProtocolVersion):  # on a connect or a re-initialize
        return Fact(Input.PERMANENT_FAILURE, reason=reason)
    if during == "listen":
        return _classify_listener(error, reason)
    if isinstance(error, RateLimited):
        return Fact(Input.TRANSIENT_FAILURE, retry_after=error.retry_after, reason=reason)
    if isinstance(error, InsecureTransportError) or (
        isinstance(error, JSONRPCError) and during == "connect"
    ):
        return Fact(Input.PERMANENT_FAILURE, reason=reason)
    return Fact(Input.TRANSIENT_FAILURE, reason=reason)


def _classify_listener(error: BaseException, reason: str) -> Fact:
    """A listener failure that is not about auth or the session.

    Only a 405 is the spec's "no listener here": not retried on this session.
    Everything else (network, 5xx, 429/503, timeouts, garbage, another 4xx, a
    wrong content type) retries the listener on the same session with backoff,
    so one bad answer never silences a long-lived session for good, and a
    server without a GET endpoint costs at most one request per backoff cap.
    """
    if isinstance(error, MethodNotAllowed):
        return Fact(Input.NO_LISTENER, reason=reason)
    retry_after = error.retry_after if isinstance(error, RateLimited) else None
    return Fact(Input.LISTENER_FAILED, retry_after=retry_after, reason=reason)


def _describe(error: BaseException) -> str:
    text = str(error)
    name = type(error).__name__
    return f"{name}: {text}" if text else name
