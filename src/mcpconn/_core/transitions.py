"""The transition table: every legal (phase, input) with its effect and destinations.

The shape of h2's ``_transitions``: ``(phase, input) -> (effect, destinations)``.
`Machine.feed` applies it; the effect (`effects.py`) computes the actions and picks
one of the destinations, and `diagram.render` draws the README's state diagram
from it. A pair that is absent cannot happen: feeding it raises `InvalidTransition`.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING

from . import effects
from .effects import Outcome
from .states import Input, Phase

if TYPE_CHECKING:
    import random

    from .machine import Fact, Machine

Effect = Callable[["Machine", "Fact", float, "random.Random"], Outcome]
#: (phase, input) -> (effect or None for "nothing to do", the destinations it may pick;
#: the first is the usual one). A pair that is absent cannot happen: feeding it is a bug.
Rule = tuple[Effect | None, tuple[Phase, ...]]
P, In, E = Phase, Input, effects


def _stay(phase: Phase, *inputs: Input) -> dict[tuple[Phase, Input], Rule]:
    return {(phase, i): (None, (phase,)) for i in inputs}


def _to(effect: Effect, *destinations: Phase) -> Rule:
    return (effect, destinations)


_TRANSIENT = _to(E.transient, P.BACKOFF_TRANSIENT, P.FAILED)
_SESSION_LOST = _to(E.session_lost, P.WAITING, P.BACKOFF_TRANSIENT, P.FAILED)
_UNAUTHORIZED = _to(E.unauthorized, P.BACKOFF_AUTH, P.NEEDS_REAUTH)
_PARK_NOW = _to(E.park_now, P.NEEDS_REAUTH)
_PERMANENT = _to(E.permanent, P.FAILED)
_CLOSE = _to(E.close, P.CLOSED)
_CONNECTING_QUIET = (In.PROBE_DUE, In.PRODUCTIVE, In.LISTENER_FAILED)
_WAITING_QUIET = (In.PROBE_DUE, In.PRODUCTIVE, In.LISTENER_FAILED, In.NO_LISTENER)


def _failures(phase: Phase) -> dict[tuple[Phase, Input], Rule]:
    """What any attempt can report, a connect in flight or an open session alike."""
    return {
        (phase, In.TRANSIENT_FAILURE): _TRANSIENT,
        (phase, In.SESSION_LOST): _SESSION_LOST,
        (phase, In.SCOPE_DENIED): _PARK_NOW,
        (phase, In.REAUTH_REQUIRED): _PARK_NOW,
        (phase, In.PERMANENT_FAILURE): _PERMANENT,
        (phase, In.CLOSE_REQUESTED): _CLOSE,
    }


def _connect_outcomes(phase: Phase) -> dict[tuple[Phase, Input], Rule]:
    """What a connect in flight can report."""
    return {
        (phase, In.OPENED): _to(E.opened, P.READY_LISTENING, P.READY_QUIET),
        (phase, In.STREAM_ENDED): _TRANSIENT,
        **_failures(phase),
        **_stay(phase, *_CONNECTING_QUIET),
    }


def _session_outcomes(phase: Phase) -> dict[tuple[Phase, Input], Rule]:
    """What an open session (its calls and pinger) can report, whatever its listener does."""
    return {
        (phase, In.UNAUTHORIZED): _UNAUTHORIZED,
        (phase, In.PRODUCTIVE): _to(E.productive, phase),
        **_failures(phase),
        **_stay(phase, In.TOKEN_PUBLISHED, In.PROBE_DUE),
    }


TRANSITIONS: dict[tuple[Phase, Input], Rule] = {
    # Before the first connect. A publish now is taken by that connect anyway.
    (P.IDLE, In.STARTED): _to(E.start, P.CONNECTING, P.WAITING),
    (P.IDLE, In.CLOSE_REQUESTED): _CLOSE,
    **_stay(P.IDLE, In.TOKEN_PUBLISHED, In.PROBE_DUE),
    # Sleeping before a connect (no session).
    (P.WAITING, In.TIMER_FIRED): _to(E.dial, P.CONNECTING),
    (P.WAITING, In.CLOSE_REQUESTED): _CLOSE,
    **_stay(P.WAITING, In.TOKEN_PUBLISHED, *_WAITING_QUIET),  # the coming connect takes it
    (P.PROBE_WAIT, In.TIMER_FIRED): _to(E.dial_refreshed, P.CONNECTING),
    (P.PROBE_WAIT, In.TOKEN_PUBLISHED): _to(E.wake, P.WAITING),
    (P.PROBE_WAIT, In.CLOSE_REQUESTED): _CLOSE,
    **_stay(P.PROBE_WAIT, *_WAITING_QUIET),
    # A connect in flight.
    **_connect_outcomes(P.CONNECTING),
    (P.CONNECTING, In.UNAUTHORIZED): _UNAUTHORIZED,
    (P.CONNECTING, In.TOKEN_PUBLISHED): (None, (P.CONNECTING_SUPERSEDED,)),
    **_connect_outcomes(P.CONNECTING_SUPERSEDED),
    # The attempt carried the old token; the user has logged in since: try the new one.
    (P.CONNECTING_SUPERSEDED, In.UNAUTHORIZED): _to(E.wake, P.WAITING),
    **_stay(P.CONNECTING_SUPERSEDED, In.TOKEN_PUBLISHED),
    # Open, listener running.
    **_session_outcomes(P.READY_LISTENING),
    (P.READY_LISTENING, In.STREAM_ENDED): _to(E.stream_ended, P.READY_RELISTEN_WAIT, P.FAILED),
    (P.READY_LISTENING, In.LISTENER_FAILED): _to(E.listener_failed, P.BACKOFF_LISTENER, P.FAILED),
    (P.READY_LISTENING, In.NO_LISTENER): _to(E.no_listener, P.READY_QUIET),
    # Open, no listener on this session.
    **_session_outcomes(P.READY_QUIET),
    # Open, the listener sleeping before it resumes.
    **_session_outcomes(P.READY_RELISTEN_WAIT),
    (P.READY_RELISTEN_WAIT, In.TIMER_FIRED): _to(E.relisten, P.READY_LISTENING),
    # No session, waiting to reconnect.
    (P.BACKOFF_TRANSIENT, In.TIMER_FIRED): _to(E.dial, P.CONNECTING),
    (P.BACKOFF_TRANSIENT, In.CLOSE_REQUESTED): _CLOSE,
    # a publish does not cut a transient wait: the server, not the token, is the problem
    **_stay(P.BACKOFF_TRANSIENT, In.TOKEN_PUBLISHED, *_WAITING_QUIET),
    (P.BACKOFF_AUTH, In.TIMER_FIRED): _to(E.dial_refreshed, P.CONNECTING),
    (P.BACKOFF_AUTH, In.TOKEN_PUBLISHED): _to(E.wake, P.WAITING),
    (P.BACKOFF_AUTH, In.CLOSE_REQUESTED): _CLOSE,
    **_stay(P.BACKOFF_AUTH, *_WAITING_QUIET),
    # The session kept while its listener backs off: its calls and pinger may still report.
    **_session_outcomes(P.BACKOFF_LISTENER),
    (P.BACKOFF_LISTENER, In.TIMER_FIRED): _to(E.relisten, P.READY_LISTENING),
    (P.BACKOFF_LISTENER, In.SESSION_LOST): _TRANSIENT,  # its listener already backs off
    **_stay(P.BACKOFF_LISTENER, In.LISTENER_FAILED, In.NO_LISTENER),
    # Parked: silent until a token is published (or an opt-in probe).
    (P.NEEDS_REAUTH, In.TOKEN_PUBLISHED): _to(E.wake, P.WAITING),
    (P.NEEDS_REAUTH, In.PROBE_DUE): _to(E.probe, P.PROBE_WAIT),
    (P.NEEDS_REAUTH, In.CLOSE_REQUESTED): _CLOSE,
    **_stay(P.NEEDS_REAUTH, In.PRODUCTIVE, In.LISTENER_FAILED),
    # FAILED: only closing leaves it.
    (P.FAILED, In.CLOSE_REQUESTED): _CLOSE,
    **_stay(P.FAILED, In.TOKEN_PUBLISHED, In.PROBE_DUE, In.PRODUCTIVE, In.LISTENER_FAILED),
    # CLOSED is absorbing: late facts from a task that is winding down mean nothing.
    **_stay(P.CLOSED, *Input),
}
