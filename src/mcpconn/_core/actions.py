"""What the machine tells the shell to do: imperative nouns, each carrying all its data.

The shell carries an action out and decides nothing: whether to log, which
401 policy the auth layer uses for this attempt, how long to wait and whether
the wait draws from the server's retry budget all come from here. Fields that
are only for telling (``log``, ``attempt``, ``reason``) do not take part in
equality, so a test can compare what is *done* with ``==``.
"""

from __future__ import annotations

from dataclasses import dataclass, field

__all__ = ["Action", "Connect", "DropSession", "Fail", "Listen", "Park", "Shutdown", "Sleep"]


@dataclass(frozen=True)
class Connect:
    """Open a new session (and its listener).

    ``refresh_token``: force a token refresh first. ``retry_on_401``: let the auth
    layer do its one compare-and-refresh retry (off while the machine counts 401s
    itself, so each auth attempt costs exactly one request).
    """

    refresh_token: bool = False
    retry_on_401: bool = True


@dataclass(frozen=True)
class Listen:
    """(Re)open the listener stream on the current session, resuming where it stopped."""


@dataclass(frozen=True)
class Sleep:
    """Wait, then feed TIMER_FIRED. ``budgeted``: also wait for the server's retry budget.

    ``log``: write one "backing off" line for failure number ``attempt`` (``reason``).
    """

    seconds: float
    budgeted: bool = False
    log: bool = field(default=False, compare=False)
    attempt: int = field(default=0, compare=False)
    reason: str = field(default="", compare=False)


@dataclass(frozen=True)
class DropSession:
    """Abandon the current session. ``polite``: send DELETE (not when auth is failing)."""

    polite: bool


@dataclass(frozen=True)
class Park:
    """Enter NEEDS_REAUTH: stop all traffic, tell the embedder. ``log``: write the log line."""

    log: bool
    count: int
    reason: str = field(default="", compare=False)


@dataclass(frozen=True)
class Fail:
    """Enter FAILED (logged once: FAILED is only left by closing)."""

    reason: str = field(default="", compare=False)


@dataclass(frozen=True)
class Shutdown:
    """Close the session politely and stop the connection's task."""


Action = Connect | Listen | Sleep | DropSession | Park | Fail | Shutdown
