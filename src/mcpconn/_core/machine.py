"""The connection state machine: facts in, actions out.

Theory of operation
-------------------
A downstream connection (one server x one principal) is in exactly one
`Phase`; the public `State` is a projection of it. The shell observes facts
(`Input`: something that *happened*, named in the past tense) and feeds them
to `Machine.feed()`, which returns actions (imperative nouns, `actions.py`)
for the shell to carry out. The machine never awaits, never reads a clock and
never draws a random number: the caller passes ``now`` and an ``rng``.

`TRANSITIONS` maps every legal (phase, input) to ``(effect, destinations)``,
the shape of h2's ``_transitions``: the effect computes the actions and picks
one of the listed destinations (the policy decides which: back off or give
up, retry or park), and picking any other is refused. A pair that is absent
cannot happen and raises `InvalidTransition` instead of being ignored; pairs
that are legal but mean nothing (a token published while READY) stay put with
no effect. The README's state diagram is rendered from this table
(`diagram.render`).

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
  says stop. Every wait before a transient reconnect or a listener retry is
  charged to the server's retry budget (``Sleep.budgeted``); auth attempts are
  bounded by count instead, and parking must not queue behind the budget.
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

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from .actions import Action as Action
from .actions import Connect as Connect
from .actions import DropSession as DropSession
from .actions import Fail as Fail
from .actions import Listen as Listen
from .actions import Park as Park
from .actions import Shutdown as Shutdown
from .actions import Sleep as Sleep
from .backoff import Backoff, Retries
from .states import WITH_SESSION
from .states import Input as Input
from .states import Phase as Phase
from .states import State as State

if TYPE_CHECKING:
    import random

    from .._exceptions import Challenge
    from .token import Token


@dataclass(frozen=True)
class Fact:
    """An input with the data the machine needs to decide."""

    input: Input
    #: The server's SSE ``retry:`` in seconds (STREAM_ENDED): a hint, see `Backoff.hint`.
    retry: float | None = None
    #: The server's ``Retry-After`` in seconds (TRANSIENT_FAILURE): a hint, capped.
    retry_after: float | None = None
    reason: str = ""
    #: The parsed ``WWW-Authenticate`` (UNAUTHORIZED, SCOPE_DENIED, REAUTH_REQUIRED).
    challenge: Challenge | None = None
    #: The token the server refused (UNAUTHORIZED): what a forced refresh replaces.
    rejected: Token | None = None


class InvalidTransition(RuntimeError):
    """The shell fed an input the current phase cannot receive: a bug, not a condition."""


Outcome = tuple[list[Action], Phase]


@dataclass
class Machine:
    """One connection's decisions. Mutable, owned by exactly one task.

    The phase is the state; the counters (attempts, since-when) are data the
    decisions read, never a hidden sub-state.
    """

    backoff: Backoff = field(default_factory=Backoff)
    #: Jitter (seconds, uniform) spreading connects after a published token.
    wake_jitter: float = 0.25
    #: Wait before the very first connect (the supervisor staggers start-ups).
    start_delay: float = 0.0
    #: Seconds a session or listener stream must last to reset the backoff curve.
    productive_after: float = 60.0
    #: Whether the embedder wants a listener at all.
    listen: bool = True
    phase: Phase = Phase.IDLE
    retries: Retries = field(default_factory=Retries)
    auth_attempt: int = 0
    park_count: int = 0
    last_reason: str = ""
    _session_since: float | None = None
    _listen_since: float | None = None

    @property
    def state(self) -> State:
        return self.phase.state

    @property
    def transient_attempt(self) -> int:
        return self.retries.attempt

    @property
    def has_session(self) -> bool:
        return self.phase in WITH_SESSION

    @property
    def listening(self) -> bool:
        """Whether a listener runs (or will resume) on the current session."""
        return self.phase is not Phase.READY_QUIET and self.has_session

    def feed(self, fact: Fact | Input, *, now: float, rng: random.Random) -> list[Action]:
        """Apply one fact; return what the shell must do, in order."""
        if isinstance(fact, Input):
            fact = Fact(fact)
        rule = TRANSITIONS.get((self.phase, fact.input))
        if rule is None:
            raise InvalidTransition(f"{fact.input.name} cannot happen in {self.phase.name}")
        if fact.reason:
            self.last_reason = fact.reason
        effect, destinations = rule
        actions: list[Action] = []
        phase = destinations[0]
        if effect is not None:
            actions, phase = effect(self, fact, now, rng)
        if phase not in destinations:  # the table is the contract; an effect cannot stray
            raise InvalidTransition(f"{fact.input.name} in {self.phase.name} led to {phase.name}")
        self.phase = phase
        return actions

    # ---- effects: (machine, fact, now, rng) -> (actions, one of the rule's destinations)

    def _start(self, fact: Fact, now: float, rng: random.Random) -> Outcome:
        if self.start_delay > 0:
            return [Sleep(self.start_delay)], Phase.WAITING
        return [self._connect()], Phase.CONNECTING

    def _dial(self, fact: Fact, now: float, rng: random.Random) -> Outcome:
        return [self._connect()], Phase.CONNECTING

    def _dial_refreshed(self, fact: Fact, now: float, rng: random.Random) -> Outcome:
        return [self._connect(refresh_token=True)], Phase.CONNECTING

    def _opened(self, fact: Fact, now: float, rng: random.Random) -> Outcome:
        self.auth_attempt = 0
        self._session_since = now
        if not self.listen:
            return [], Phase.READY_QUIET
        self._listen_since = now  # a new session may offer what the old one did not
        return [Listen()], Phase.READY_LISTENING

    def _no_listener(self, fact: Fact, now: float, rng: random.Random) -> Outcome:
        self._listen_since = None
        return [], Phase.READY_QUIET

    def _relisten(self, fact: Fact, now: float, rng: random.Random) -> Outcome:
        self._listen_since = now
        return [Listen()], Phase.READY_LISTENING

    def _productive(self, fact: Fact, now: float, rng: random.Random) -> Outcome:
        """An explicit "this connection works" (the embedder's): reset the curve."""
        self.retries.reset()
        return [], self.phase

    def _stream_ended(self, fact: Fact, now: float, rng: random.Random) -> Outcome:
        """The listener closed cleanly; the session lives on. Resume it, not a new session."""
        delay = self._listener_delay(fact.retry, now, rng)
        if delay is None:
            return self._permanent(fact, now, rng)  # FAILED holds no session (and no pinger)
        return [Sleep(delay, budgeted=True)], Phase.READY_RELISTEN_WAIT

    def _listener_failed(self, fact: Fact, now: float, rng: random.Random) -> Outcome:
        """The listener failed but the session may be fine: keep it, back off, listen again.

        Requests in flight are not torn down (the SDKs treat a listener failure as
        non-fatal too); calls wait in BACKOFF. A session that is really gone shows
        up as SESSION_LOST on the next attempt.
        """
        delay = self._listener_delay(fact.retry_after, now, rng)
        if delay is None:
            return self._permanent(fact, now, rng)
        return [self._backoff_sleep(delay)], Phase.BACKOFF_LISTENER

    def _transient(self, fact: Fact, now: float, rng: random.Random) -> Outcome:
        productive = self.has_session and self._lasted(self._session_since, now)
        delay = self.retries.next_delay(
            self.backoff, fact.retry_after, now, rng, productive=productive
        )
        actions: list[Action] = [DropSession(polite=False)] if self.has_session else []
        if delay is None:
            return [*actions, Fail(self.last_reason)], Phase.FAILED
        return [*actions, self._backoff_sleep(delay)], Phase.BACKOFF_TRANSIENT

    def _session_lost(self, fact: Fact, now: float, rng: random.Random) -> Outcome:
        """The server forgot our session: reconnect at once the first time, then back off.

        "At once" still draws from the retry budget, like every reconnect.
        """
        if self.has_session and self._lasted(self._session_since, now):
            self.retries.reset()
        if self.retries.attempt > 0:
            return self._transient(fact, now, rng)
        self.retries.attempt, self.retries.failing_since = 1, now
        actions: list[Action] = [DropSession(polite=False)] if self.has_session else []
        return [*actions, Sleep(0.0, budgeted=True)], Phase.WAITING

    def _unauthorized(self, fact: Fact, now: float, rng: random.Random) -> Outcome:
        actions: list[Action] = [DropSession(polite=False)] if self.has_session else []
        self.auth_attempt += 1
        if self.auth_attempt > self.backoff.auth_attempts:
            return [*actions, self._park()], Phase.NEEDS_REAUTH
        delay = self.backoff.delay(self.auth_attempt, rng, previous=self.retries.last_delay)
        self.retries.last_delay = delay
        # Not budgeted: auth attempts are bounded by count (then the connection parks),
        # and a revoked principal's connections must park promptly, not queue for the
        # budget behind each other.
        return [*actions, Sleep(delay)], Phase.BACKOFF_AUTH

    def _park_now(self, fact: Fact, now: float, rng: random.Random) -> Outcome:
        actions: list[Action] = [DropSession(polite=False)] if self.has_session else []
        return [*actions, self._park()], Phase.NEEDS_REAUTH

    def _permanent(self, fact: Fact, now: float, rng: random.Random) -> Outcome:
        actions: list[Action] = [DropSession(polite=True)] if self.has_session else []
        return [*actions, Fail(self.last_reason)], Phase.FAILED

    def _wake(self, fact: Fact, now: float, rng: random.Random) -> Outcome:
        """A token was published: reconnect soon (spread), with a fresh auth count."""
        self.auth_attempt = 0
        return [self._jitter(rng)], Phase.WAITING

    def _probe(self, fact: Fact, now: float, rng: random.Random) -> Outcome:
        """A slow re-check while parked: one more 401 parks again at once.

        Spread like a wake-up: the supervisor probes every parked connection together.
        """
        self.auth_attempt = self.backoff.auth_attempts
        return [self._jitter(rng)], Phase.PROBE_WAIT

    def _close(self, fact: Fact, now: float, rng: random.Random) -> Outcome:
        return [Shutdown()], Phase.CLOSED

    # ---- helpers ----------------------------------------------------------------

    def _connect(self, *, refresh_token: bool = False) -> Connect:
        # While the machine counts 401s itself, every attempt costs exactly one request.
        return Connect(refresh_token=refresh_token, retry_on_401=self.auth_attempt == 0)

    def _jitter(self, rng: random.Random) -> Sleep:
        return Sleep(rng.uniform(0.0, self.wake_jitter) if self.wake_jitter > 0 else 0.0)

    def _backoff_sleep(self, delay: float) -> Sleep:
        attempt = self.retries.attempt
        log = worth_logging(attempt)
        return Sleep(delay, budgeted=True, log=log, attempt=attempt, reason=self.last_reason)

    def _park(self) -> Park:
        self.park_count += 1
        count = self.park_count
        return Park(log=worth_logging(count), count=count, reason=self.last_reason)

    def _lasted(self, since: float | None, now: float) -> bool:
        return since is not None and now - since >= self.productive_after

    def _listener_delay(self, hint: float | None, now: float, rng: random.Random) -> float | None:
        productive = self._lasted(self._listen_since, now)
        self._listen_since = None
        return self.retries.next_delay(self.backoff, hint, now, rng, productive=productive)


# ---- the table ----------------------------------------------------------------------

Effect = Callable[[Machine, Fact, float, "random.Random"], Outcome]
#: (phase, input) -> (effect or None for "nothing to do", the destinations it may pick;
#: the first is the usual one). A pair that is absent cannot happen: feeding it is a bug.
Rule = tuple[Effect | None, tuple[Phase, ...]]
P, In, M = Phase, Input, Machine


def _stay(phase: Phase, *inputs: Input) -> dict[tuple[Phase, Input], Rule]:
    return {(phase, i): (None, (phase,)) for i in inputs}


def _to(effect: Effect, *destinations: Phase) -> Rule:
    return (effect, destinations)


_TRANSIENT = _to(M._transient, P.BACKOFF_TRANSIENT, P.FAILED)
_SESSION_LOST = _to(M._session_lost, P.WAITING, P.BACKOFF_TRANSIENT, P.FAILED)
_UNAUTHORIZED = _to(M._unauthorized, P.BACKOFF_AUTH, P.NEEDS_REAUTH)
_PARK_NOW = _to(M._park_now, P.NEEDS_REAUTH)
_PERMANENT = _to(M._permanent, P.FAILED)
_CLOSE = _to(M._close, P.CLOSED)
_CONNECTING_QUIET = (In.PROBE_DUE, In.PRODUCTIVE, In.LISTENER_FAILED)
_WAITING_QUIET = (In.PROBE_DUE, In.PRODUCTIVE, In.LISTENER_FAILED, In.NO_LISTENER)


def _connect_outcomes(phase: Phase) -> dict[tuple[Phase, Input], Rule]:
    """What a connect in flight can report."""
    return {
        (phase, In.OPENED): _to(M._opened, P.READY_LISTENING, P.READY_QUIET),
        (phase, In.TRANSIENT_FAILURE): _TRANSIENT,
        (phase, In.STREAM_ENDED): _TRANSIENT,
        (phase, In.SESSION_LOST): _SESSION_LOST,
        (phase, In.SCOPE_DENIED): _PARK_NOW,
        (phase, In.REAUTH_REQUIRED): _PARK_NOW,
        (phase, In.PERMANENT_FAILURE): _PERMANENT,
        (phase, In.CLOSE_REQUESTED): _CLOSE,
        **_stay(phase, *_CONNECTING_QUIET),
    }


def _session_outcomes(phase: Phase) -> dict[tuple[Phase, Input], Rule]:
    """What an open session (its calls and pinger) can report, whatever its listener does."""
    return {
        (phase, In.TRANSIENT_FAILURE): _TRANSIENT,
        (phase, In.SESSION_LOST): _SESSION_LOST,
        (phase, In.UNAUTHORIZED): _UNAUTHORIZED,
        (phase, In.SCOPE_DENIED): _PARK_NOW,
        (phase, In.REAUTH_REQUIRED): _PARK_NOW,
        (phase, In.PERMANENT_FAILURE): _PERMANENT,
        (phase, In.PRODUCTIVE): _to(M._productive, phase),
        (phase, In.CLOSE_REQUESTED): _CLOSE,
        **_stay(phase, In.TOKEN_PUBLISHED, In.PROBE_DUE),
    }


TRANSITIONS: dict[tuple[Phase, Input], Rule] = {
    # Before the first connect. A publish now is taken by that connect anyway.
    (P.IDLE, In.STARTED): _to(M._start, P.CONNECTING, P.WAITING),
    (P.IDLE, In.CLOSE_REQUESTED): _CLOSE,
    **_stay(P.IDLE, In.TOKEN_PUBLISHED, In.PROBE_DUE),
    # Sleeping before a connect (no session).
    (P.WAITING, In.TIMER_FIRED): _to(M._dial, P.CONNECTING),
    (P.WAITING, In.CLOSE_REQUESTED): _CLOSE,
    **_stay(P.WAITING, In.TOKEN_PUBLISHED, *_WAITING_QUIET),  # the coming connect takes it
    (P.PROBE_WAIT, In.TIMER_FIRED): _to(M._dial_refreshed, P.CONNECTING),
    (P.PROBE_WAIT, In.TOKEN_PUBLISHED): _to(M._wake, P.WAITING),
    (P.PROBE_WAIT, In.CLOSE_REQUESTED): _CLOSE,
    **_stay(P.PROBE_WAIT, *_WAITING_QUIET),
    # A connect in flight.
    **_connect_outcomes(P.CONNECTING),
    (P.CONNECTING, In.UNAUTHORIZED): _UNAUTHORIZED,
    (P.CONNECTING, In.TOKEN_PUBLISHED): (None, (P.CONNECTING_SUPERSEDED,)),
    **_connect_outcomes(P.CONNECTING_SUPERSEDED),
    # The attempt carried the old token; the user has logged in since: try the new one.
    (P.CONNECTING_SUPERSEDED, In.UNAUTHORIZED): _to(M._wake, P.WAITING),
    **_stay(P.CONNECTING_SUPERSEDED, In.TOKEN_PUBLISHED),
    # Open, listener running.
    **_session_outcomes(P.READY_LISTENING),
    (P.READY_LISTENING, In.STREAM_ENDED): _to(M._stream_ended, P.READY_RELISTEN_WAIT, P.FAILED),
    (P.READY_LISTENING, In.LISTENER_FAILED): _to(M._listener_failed, P.BACKOFF_LISTENER, P.FAILED),
    (P.READY_LISTENING, In.NO_LISTENER): _to(M._no_listener, P.READY_QUIET),
    # Open, no listener on this session.
    **_session_outcomes(P.READY_QUIET),
    # Open, the listener sleeping before it resumes.
    **_session_outcomes(P.READY_RELISTEN_WAIT),
    (P.READY_RELISTEN_WAIT, In.TIMER_FIRED): _to(M._relisten, P.READY_LISTENING),
    # No session, waiting to reconnect.
    (P.BACKOFF_TRANSIENT, In.TIMER_FIRED): _to(M._dial, P.CONNECTING),
    (P.BACKOFF_TRANSIENT, In.CLOSE_REQUESTED): _CLOSE,
    # a publish does not cut a transient wait: the server, not the token, is the problem
    **_stay(P.BACKOFF_TRANSIENT, In.TOKEN_PUBLISHED, *_WAITING_QUIET),
    (P.BACKOFF_AUTH, In.TIMER_FIRED): _to(M._dial_refreshed, P.CONNECTING),
    (P.BACKOFF_AUTH, In.TOKEN_PUBLISHED): _to(M._wake, P.WAITING),
    (P.BACKOFF_AUTH, In.CLOSE_REQUESTED): _CLOSE,
    **_stay(P.BACKOFF_AUTH, *_WAITING_QUIET),
    # The session kept while its listener backs off: its calls and pinger may still report.
    **_session_outcomes(P.BACKOFF_LISTENER),
    (P.BACKOFF_LISTENER, In.TIMER_FIRED): _to(M._relisten, P.READY_LISTENING),
    (P.BACKOFF_LISTENER, In.SESSION_LOST): _TRANSIENT,  # its listener already backs off
    **_stay(P.BACKOFF_LISTENER, In.LISTENER_FAILED, In.NO_LISTENER),
    # Parked: silent until a token is published (or an opt-in probe).
    (P.NEEDS_REAUTH, In.TOKEN_PUBLISHED): _to(M._wake, P.WAITING),
    (P.NEEDS_REAUTH, In.PROBE_DUE): _to(M._probe, P.PROBE_WAIT),
    (P.NEEDS_REAUTH, In.CLOSE_REQUESTED): _CLOSE,
    **_stay(P.NEEDS_REAUTH, In.PRODUCTIVE, In.LISTENER_FAILED),
    # FAILED: only closing leaves it.
    (P.FAILED, In.CLOSE_REQUESTED): _CLOSE,
    **_stay(P.FAILED, In.TOKEN_PUBLISHED, In.PROBE_DUE, In.PRODUCTIVE, In.LISTENER_FAILED),
    # CLOSED is absorbing: late facts from a task that is winding down mean nothing.
    **_stay(P.CLOSED, *Input),
}


def worth_logging(count: int) -> bool:
    """The 1st, 2nd, 4th, 8th... occurrence: a connection failing for hours logs a
    handful of lines, not one per attempt (the seed's flood)."""
    return count > 0 and count & (count - 1) == 0
