"""Where a connection is: the public `State`, the machine's own `Phase`, and the `Input`s.

`Phase` names what used to hide in flags of the machine; `State` is what the
outside sees of a phase (``Phase.state``), with the promised member names.
"""

from __future__ import annotations

import enum

__all__ = ["WITH_SESSION", "Input", "Phase", "State"]


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


class Phase(enum.Enum):
    """The machine's real states. `State` is what the outside sees of them (`Phase.state`).

    What used to hide in flags is named here: which wait a BACKOFF is, whether
    READY has its listener running, resting or sleeping before a retry, and
    whether the connect in flight carries a token that has been replaced since.
    """

    IDLE = ("idle", State.CONNECTING)
    #: Sleeping before a connect: the start-up stagger, a wake-up's jitter, or the
    #: budgeted "at once" after a lost session.
    WAITING = ("waiting", State.CONNECTING)
    #: Sleeping before one probe connect while parked (a 401 parks again at once).
    PROBE_WAIT = ("probe_wait", State.CONNECTING)
    CONNECTING = ("connecting", State.CONNECTING)
    #: A connect in flight with a token older than one published meanwhile.
    CONNECTING_SUPERSEDED = ("connecting_superseded", State.CONNECTING)
    READY_LISTENING = ("ready_listening", State.READY)
    #: Open without a listener (not wanted, or this session has none).
    READY_QUIET = ("ready_quiet", State.READY)
    #: Open; the listener stream ended and sleeps before resuming.
    READY_RELISTEN_WAIT = ("ready_relisten_wait", State.READY)
    #: No session; sleeping before a reconnect.
    BACKOFF_TRANSIENT = ("backoff_transient", State.BACKOFF)
    #: No session; sleeping before a reconnect with a forced token refresh.
    BACKOFF_AUTH = ("backoff_auth", State.BACKOFF)
    #: The session is kept; its listener failed and backs off (calls still use the session).
    BACKOFF_LISTENER = ("backoff_listener", State.BACKOFF)
    NEEDS_REAUTH = ("needs_reauth", State.NEEDS_REAUTH)
    FAILED = ("failed", State.FAILED)
    CLOSED = ("closed", State.CLOSED)

    def __init__(self, label: str, state: State) -> None:
        self.label = label
        self.state = state


WITH_SESSION = frozenset(
    {Phase.READY_LISTENING, Phase.READY_QUIET, Phase.READY_RELISTEN_WAIT, Phase.BACKOFF_LISTENER}
)
