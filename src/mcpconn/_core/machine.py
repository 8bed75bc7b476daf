"""The connection state machine: facts in, actions out.

Theory of operation
-------------------
A downstream connection (one server x one principal) is in exactly one
`Phase`; the public `State` is a projection of it. The shell observes facts
(`Input`: something that *happened*, named in the past tense) and feeds them
to `Machine.feed()`, which returns actions (imperative nouns, `actions.py`)
for the shell to carry out. The machine never awaits, never reads a clock and
never draws a random number: the caller passes ``now`` and an ``rng``.

`TRANSITIONS` (`transitions.py`) maps every legal (phase, input) to
``(effect, destinations)``, the shape of h2's ``_transitions``: the effect
(`effects.py`) computes the actions and picks one of the listed destinations
(the policy decides which: back off or give up, retry or park), and picking
any other is refused. A pair that is absent cannot happen and raises
`InvalidTransition` instead of being ignored; pairs that are legal but mean
nothing (a token published while READY) stay put with no effect. The README's
state diagram is rendered from this table (`diagram.render`).

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
from .effects import worth_logging as worth_logging
from .states import WITH_SESSION
from .states import Input as Input
from .states import Phase as Phase
from .states import State as State
from .transitions import TRANSITIONS as TRANSITIONS
from .transitions import Rule as Rule

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


@dataclass(slots=True)
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
    #: When the session (``session_since``) and the listener stream (``listen_since``)
    #: came up: what "productive" is judged from.
    session_since: float | None = None
    listen_since: float | None = None

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
