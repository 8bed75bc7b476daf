"""The state machine's waits: the backoff curve, server hints, lost sessions and listeners."""

from __future__ import annotations

import math

import pytest
from machine_drive import NOW, feed, machine_in

from mcpconn import Backoff
from mcpconn._core.machine import (
    Connect,
    DropSession,
    Fact,
    Fail,
    Input,
    Listen,
    Machine,
    Sleep,
    State,
)


def test_retry_after_is_honoured_and_capped() -> None:
    m = machine_in(State.READY, Backoff(retry_after_cap=60))
    actions = feed(m, Fact(Input.TRANSIENT_FAILURE, retry_after=7.5))
    assert Sleep(7.5, budgeted=True) in actions
    feed(m, Input.TIMER_FIRED, Input.OPENED)
    actions = feed(m, Fact(Input.TRANSIENT_FAILURE, retry_after=365 * 86400))
    assert Sleep(60, budgeted=True) in actions


def test_server_retry_after_a_productive_stream_is_exact_and_keeps_the_session() -> None:
    m = machine_in(State.READY)
    later = NOW + m.productive_after  # the stream lasted the productive period
    actions = feed(m, Fact(Input.STREAM_ENDED, retry=0.25), now=later)
    assert actions == [Sleep(0.25, budgeted=True)]
    assert m.state is State.READY  # calls keep flowing on the live session
    assert feed(m, Input.TIMER_FIRED, now=later) == [Listen()]
    # the next end comes at once: the hint no longer shortens the curve
    (sleep,) = feed(m, Fact(Input.STREAM_ENDED, retry=0.25), now=later)
    assert isinstance(sleep, Sleep) and sleep.seconds >= 0.8 * m.backoff.base_delay(2)


def test_streams_that_end_at_once_climb_the_curve_whatever_their_retry_says() -> None:
    """Issue 10 item 1: ``retry: 0`` used to give an unbudgeted Sleep(0) forever."""
    m = machine_in(State.READY, Backoff(jitter="none"))
    delays = []
    for _ in range(8):
        (sleep,) = feed(m, Fact(Input.STREAM_ENDED, retry=0.0))
        assert isinstance(sleep, Sleep) and sleep.budgeted
        delays.append(sleep.seconds)
        assert feed(m, Input.TIMER_FIRED) == [Listen()]
    assert delays == [m.backoff.base_delay(n) for n in range(1, 9)]


@pytest.mark.parametrize(
    "hint", [0.0, -5.0, float("nan"), float("inf"), float("-inf"), 1e308, 1e-300, None]
)
@pytest.mark.parametrize(
    "inp", [Input.STREAM_ENDED, Input.LISTENER_FAILED, Input.TRANSIENT_FAILURE]
)
def test_no_hint_shortens_the_curve_and_every_wait_is_finite_and_capped(
    hint: float | None, inp: Input
) -> None:
    backoff = Backoff(jitter="none", initial=2.0, retry_after_cap=60)
    for _ in range(3):  # also after a few failures, not only the first
        m = machine_in(State.READY, backoff)
        sleeps = [
            a for a in feed(m, Fact(inp, retry=hint, retry_after=hint)) if isinstance(a, Sleep)
        ]
        (sleep,) = sleeps
        assert math.isfinite(sleep.seconds) and sleep.budgeted
        assert backoff.base_delay(1) <= sleep.seconds <= 60


def test_a_longer_hint_is_honoured_up_to_the_cap() -> None:
    m = machine_in(State.READY, Backoff(jitter="none", retry_after_cap=60))
    assert feed(m, Fact(Input.STREAM_ENDED, retry=30.0)) == [Sleep(30.0, budgeted=True)]
    feed(m, Input.TIMER_FIRED)
    assert feed(m, Fact(Input.STREAM_ENDED, retry=1e9)) == [Sleep(60.0, budgeted=True)]


def test_a_session_that_lasted_resets_the_curve_and_a_short_one_does_not() -> None:
    m = machine_in(State.READY, Backoff(jitter="none", max_delay=1000))
    now = NOW
    for n in range(1, 5):  # sessions that die at once climb
        (_, sleep) = feed(m, Input.TRANSIENT_FAILURE, now=now)
        assert sleep == Sleep(m.backoff.base_delay(n), budgeted=True)
        feed(m, Input.TIMER_FIRED, Input.OPENED, now=now)
    # one that lasted the productive period starts over
    (_, sleep) = feed(m, Input.TRANSIENT_FAILURE, now=now + m.productive_after)
    assert sleep == Sleep(m.backoff.base_delay(1), budgeted=True)


def test_handshakes_alone_never_reset_the_backoff() -> None:
    """A server that accepts and then drops us must see growing delays (the SDK's GET loop)."""
    m = machine_in(State.READY, Backoff(jitter="none"))
    delays = []
    for _ in range(5):
        (sleep,) = feed(m, Input.STREAM_ENDED)
        assert isinstance(sleep, Sleep)
        delays.append(sleep.seconds)
        feed(m, Input.TIMER_FIRED)
    assert delays == sorted(delays) and delays[-1] > delays[0]
    feed(m, Input.PRODUCTIVE)
    (sleep,) = feed(m, Input.STREAM_ENDED)
    assert isinstance(sleep, Sleep) and sleep.seconds == delays[0]


def test_policy_exhaustion_fails_the_connection() -> None:
    m = machine_in(State.READY, Backoff(max_attempts=2))
    feed(m, Input.TRANSIENT_FAILURE, Input.TIMER_FIRED, Input.TRANSIENT_FAILURE)
    assert m.state is State.BACKOFF
    feed(m, Input.TIMER_FIRED)
    assert feed(m, Input.TRANSIENT_FAILURE)[-1] == Fail()
    assert m.state is State.FAILED


def test_session_lost_reconnects_once_immediately_then_backs_off() -> None:
    m = machine_in(State.READY)
    # "at once" still draws from the retry budget
    assert feed(m, Input.SESSION_LOST) == [DropSession(polite=False), Sleep(0.0, budgeted=True)]
    assert m.state is State.CONNECTING
    assert feed(m, Input.TIMER_FIRED, Input.OPENED) == [Connect(), Listen()]
    actions = feed(m, Input.SESSION_LOST)
    assert m.state is State.BACKOFF and isinstance(actions[-1], Sleep)


def test_no_listener_is_not_retried_on_the_same_session() -> None:
    m = machine_in(State.READY)
    assert feed(m, Input.NO_LISTENER) == []
    assert feed(m, Input.PRODUCTIVE) == []  # nothing reopens it on this session
    feed(m, Input.TRANSIENT_FAILURE, Input.TIMER_FIRED)
    assert feed(m, Input.OPENED) == [Listen()]  # a new session is asked once more
    m = Machine(listen=False)
    feed(m, Input.STARTED)
    assert feed(m, Input.OPENED) == []  # the embedder asked for no listener at all


def test_a_failed_listener_keeps_the_session_and_backs_off_before_listening_again() -> None:
    m = machine_in(State.READY, Backoff(jitter="none", initial=0.5))
    actions = feed(m, Fact(Input.LISTENER_FAILED, reason="reset"))
    assert actions == [Sleep(0.5, budgeted=True)]  # no DropSession: calls in flight go on
    assert m.state is State.BACKOFF and m.has_session
    assert feed(m, Input.TIMER_FIRED) == [Listen()]
    assert m.state is State.READY
    (sleep,) = feed(m, Input.LISTENER_FAILED)
    assert isinstance(sleep, Sleep) and sleep.seconds == 0.8  # it keeps growing
    # a keep-alive failure while the listener backs off abandons the session
    actions = feed(m, Input.TRANSIENT_FAILURE)
    assert actions[0] == DropSession(polite=False) and not m.has_session
    assert feed(m, Input.TIMER_FIRED) == [Connect()]
