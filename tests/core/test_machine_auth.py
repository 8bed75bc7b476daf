"""The state machine on refused credentials: bounded attempts, parking, waking on a publish."""

from __future__ import annotations

import pytest
from machine_drive import feed, machine_in

from mcpconn import Backoff
from mcpconn._core.machine import (
    Connect,
    DropSession,
    Input,
    InvalidTransition,
    Machine,
    Park,
    Sleep,
    State,
    worth_logging,
)


def test_revoked_principal_costs_bounded_attempts_then_parks() -> None:
    m = Machine(backoff=Backoff(auth_attempts=3))
    connects = [a for a in feed(m, Input.STARTED) if isinstance(a, Connect)]
    for _ in range(3):
        actions = feed(m, Input.UNAUTHORIZED)
        assert m.state is State.BACKOFF
        (sleep,) = [a for a in actions if isinstance(a, Sleep)]
        assert not sleep.budgeted  # bounded by count: parking never queues for the budget
        actions = feed(m, Input.TIMER_FIRED)
        connects += [a for a in actions if isinstance(a, Connect)]
        assert connects[-1].refresh_token  # each attempt asks the token layer again
    actions = feed(m, Input.UNAUTHORIZED)
    assert m.state is State.NEEDS_REAUTH
    assert actions == [Park(log=True, count=1)]
    assert len(connects) == 1 + 3
    # parked means silent: nothing but a publish (or an opt-in probe) leads out
    for inp in (Input.PRODUCTIVE,):
        assert feed(m, inp) == []
    with pytest.raises(InvalidTransition):
        feed(m, Input.TIMER_FIRED)


def test_publish_wakes_a_parked_connection_at_once_with_small_jitter() -> None:
    m = machine_in(State.NEEDS_REAUTH)
    m.wake_jitter = 0.2
    actions = feed(m, Input.TOKEN_PUBLISHED)
    assert m.state is State.CONNECTING
    (sleep,) = actions
    assert isinstance(sleep, Sleep) and 0 <= sleep.seconds <= 0.2 and not sleep.budgeted
    assert feed(m, Input.TIMER_FIRED) == [Connect(refresh_token=False)]
    assert m.auth_attempt == 0


def test_repeated_parks_log_on_powers_of_two_only() -> None:
    m = machine_in(State.CONNECTING, Backoff(auth_attempts=0))
    logged = []
    for _ in range(9):
        (park,) = [a for a in feed(m, Input.UNAUTHORIZED) if isinstance(a, Park)]
        logged.append(park.log)
        feed(m, Input.TOKEN_PUBLISHED, Input.TIMER_FIRED)
    assert logged == [True, True, False, True, False, False, False, True, False]


def test_log_lines_thin_out_as_failures_repeat() -> None:
    logged = [n for n in range(1025) if worth_logging(n)]
    assert logged == [1, 2, 4, 8, 16, 32, 64, 128, 256, 512, 1024]


def test_scope_denied_and_provider_reauth_park_at_once() -> None:
    for inp in (Input.SCOPE_DENIED, Input.REAUTH_REQUIRED):
        m = machine_in(State.READY)
        actions = feed(m, inp)
        assert m.state is State.NEEDS_REAUTH
        assert actions[0] == DropSession(polite=False)
        assert isinstance(actions[1], Park)


def test_publish_during_transient_backoff_does_not_cut_the_wait() -> None:
    m = machine_in(State.BACKOFF)
    assert feed(m, Input.TOKEN_PUBLISHED) == []
    assert m.state is State.BACKOFF


def test_publish_during_auth_backoff_reconnects_now() -> None:
    m = machine_in(State.CONNECTING)
    feed(m, Input.UNAUTHORIZED)
    assert m.state is State.BACKOFF
    actions = feed(m, Input.TOKEN_PUBLISHED)
    assert m.state is State.CONNECTING and isinstance(actions[0], Sleep)


def test_probe_reconnects_once_and_a_401_parks_again_at_once() -> None:
    m = machine_in(State.NEEDS_REAUTH)
    (sleep,) = feed(m, Input.PROBE_DUE)
    assert isinstance(sleep, Sleep) and 0 <= sleep.seconds <= m.wake_jitter  # spread out
    # one request: no retry inside the auth layer either
    assert feed(m, Input.TIMER_FIRED) == [Connect(refresh_token=True, retry_on_401=False)]
    feed(m, Input.UNAUTHORIZED)
    assert m.state is State.NEEDS_REAUTH


def test_transient_failures_never_touch_auth_state() -> None:
    m = machine_in(State.READY)
    for _ in range(20):
        feed(m, Input.TRANSIENT_FAILURE, Input.TIMER_FIRED)
    assert m.auth_attempt == 0 and m.park_count == 0
    assert m.state is State.CONNECTING
