"""What each transition does: the effects the table (`transitions.py`) names.

An effect is ``(machine, fact, now, rng) -> (actions, next phase)``: it reads and
updates the machine's counters and picks one of the destinations its rule lists
(`Machine.feed` refuses any other). Like the rest of the core it never awaits,
reads a clock or draws from a random source of its own.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from .actions import Action, Connect, DropSession, Fail, Listen, Park, Shutdown, Sleep
from .states import Phase

if TYPE_CHECKING:
    import random

    from .machine import Fact, Machine

#: What an effect returns: the actions for the shell, in order, and the next phase.
Outcome = tuple[list[Action], Phase]


def start(m: Machine, fact: Fact, now: float, rng: random.Random) -> Outcome:
    if m.start_delay > 0:
        return [Sleep(m.start_delay)], Phase.WAITING
    return [_connect(m)], Phase.CONNECTING


def dial(m: Machine, fact: Fact, now: float, rng: random.Random) -> Outcome:
    return [_connect(m)], Phase.CONNECTING


def dial_refreshed(m: Machine, fact: Fact, now: float, rng: random.Random) -> Outcome:
    return [_connect(m, refresh_token=True)], Phase.CONNECTING


def opened(m: Machine, fact: Fact, now: float, rng: random.Random) -> Outcome:
    m.auth_attempt = 0
    m.session_since = now
    if not m.listen:
        return [], Phase.READY_QUIET
    m.listen_since = now  # a new session may offer what the old one did not
    return [Listen()], Phase.READY_LISTENING


def no_listener(m: Machine, fact: Fact, now: float, rng: random.Random) -> Outcome:
    m.listen_since = None
    return [], Phase.READY_QUIET


def relisten(m: Machine, fact: Fact, now: float, rng: random.Random) -> Outcome:
    m.listen_since = now
    return [Listen()], Phase.READY_LISTENING


def productive(m: Machine, fact: Fact, now: float, rng: random.Random) -> Outcome:
    """An explicit "this connection works" (the embedder's): reset the curve."""
    m.retries.reset()
    return [], m.phase


def stream_ended(m: Machine, fact: Fact, now: float, rng: random.Random) -> Outcome:
    """The listener closed cleanly; the session lives on. Resume it, not a new session."""
    delay = _listener_delay(m, fact.retry, now, rng)
    if delay is None:
        return permanent(m, fact, now, rng)  # FAILED holds no session (and no pinger)
    return [Sleep(delay, budgeted=True)], Phase.READY_RELISTEN_WAIT


def listener_failed(m: Machine, fact: Fact, now: float, rng: random.Random) -> Outcome:
    """The listener failed but the session may be fine: keep it, back off, listen again.

    Requests in flight are not torn down (the SDKs treat a listener failure as
    non-fatal too), and calls keep using the session while the public state says
    BACKOFF. A session that is really gone shows up as SESSION_LOST on the next
    attempt, the listener's or a call's.
    """
    delay = _listener_delay(m, fact.retry_after, now, rng)
    if delay is None:
        return permanent(m, fact, now, rng)
    return [_backoff_sleep(m, delay)], Phase.BACKOFF_LISTENER


def transient(m: Machine, fact: Fact, now: float, rng: random.Random) -> Outcome:
    lasted = m.has_session and _lasted(m, m.session_since, now)
    delay = m.retries.next_delay(m.backoff, fact.retry_after, now, rng, productive=lasted)
    actions: list[Action] = [DropSession(polite=False)] if m.has_session else []
    if delay is None:
        return [*actions, Fail(m.last_reason)], Phase.FAILED
    return [*actions, _backoff_sleep(m, delay)], Phase.BACKOFF_TRANSIENT


def session_lost(m: Machine, fact: Fact, now: float, rng: random.Random) -> Outcome:
    """The server forgot our session: reconnect at once the first time, then back off.

    "At once" still draws from the retry budget, like every reconnect.
    """
    if m.has_session and _lasted(m, m.session_since, now):
        m.retries.reset()
    if m.retries.attempt > 0:
        return transient(m, fact, now, rng)
    m.retries.attempt, m.retries.failing_since = 1, now
    actions: list[Action] = [DropSession(polite=False)] if m.has_session else []
    return [*actions, Sleep(0.0, budgeted=True)], Phase.WAITING


def unauthorized(m: Machine, fact: Fact, now: float, rng: random.Random) -> Outcome:
    actions: list[Action] = [DropSession(polite=False)] if m.has_session else []
    m.auth_attempt += 1
    if m.auth_attempt > m.backoff.auth_attempts:
        return [*actions, _park(m)], Phase.NEEDS_REAUTH
    delay = m.backoff.delay(m.auth_attempt, rng, previous=m.retries.last_delay)
    m.retries.last_delay = delay
    # Not budgeted: auth attempts are bounded by count (then the connection parks),
    # and a revoked principal's connections must park promptly, not queue for the
    # budget behind each other.
    return [*actions, Sleep(delay)], Phase.BACKOFF_AUTH


def park_now(m: Machine, fact: Fact, now: float, rng: random.Random) -> Outcome:
    actions: list[Action] = [DropSession(polite=False)] if m.has_session else []
    return [*actions, _park(m)], Phase.NEEDS_REAUTH


def permanent(m: Machine, fact: Fact, now: float, rng: random.Random) -> Outcome:
    actions: list[Action] = [DropSession(polite=True)] if m.has_session else []
    return [*actions, Fail(m.last_reason)], Phase.FAILED


def wake(m: Machine, fact: Fact, now: float, rng: random.Random) -> Outcome:
    """A token was published: reconnect soon (spread), with a fresh auth count."""
    m.auth_attempt = 0
    return [_jitter(m, rng)], Phase.WAITING


def probe(m: Machine, fact: Fact, now: float, rng: random.Random) -> Outcome:
    """A slow re-check while parked: one more 401 parks again at once.

    Spread like a wake-up: the supervisor probes every parked connection together.
    """
    m.auth_attempt = m.backoff.auth_attempts
    return [_jitter(m, rng)], Phase.PROBE_WAIT


def close(m: Machine, fact: Fact, now: float, rng: random.Random) -> Outcome:
    return [Shutdown()], Phase.CLOSED


# ---- helpers ----------------------------------------------------------------


def _connect(m: Machine, *, refresh_token: bool = False) -> Connect:
    # While the machine counts 401s itself, every attempt costs exactly one request.
    return Connect(refresh_token=refresh_token, retry_on_401=m.auth_attempt == 0)


def _jitter(m: Machine, rng: random.Random) -> Sleep:
    return Sleep(rng.uniform(0.0, m.wake_jitter) if m.wake_jitter > 0 else 0.0)


def _backoff_sleep(m: Machine, delay: float) -> Sleep:
    attempt = m.retries.attempt
    log = worth_logging(attempt)
    return Sleep(delay, budgeted=True, log=log, attempt=attempt, reason=m.last_reason)


def _park(m: Machine) -> Park:
    m.park_count += 1
    count = m.park_count
    return Park(log=worth_logging(count), count=count, reason=m.last_reason)


def _lasted(m: Machine, since: float | None, now: float) -> bool:
    return since is not None and now - since >= m.productive_after


def _listener_delay(m: Machine, hint: float | None, now: float, rng: random.Random) -> float | None:
    lasted = _lasted(m, m.listen_since, now)
    m.listen_since = None
    return m.retries.next_delay(m.backoff, hint, now, rng, productive=lasted)


def worth_logging(count: int) -> bool:
    """The 1st, 2nd, 4th, 8th... occurrence: a connection failing for hours logs a
    handful of lines, not one per attempt (the seed's flood)."""
    return count > 0 and count & (count - 1) == 0
