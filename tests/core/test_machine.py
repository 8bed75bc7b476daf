"""The connection state machine: every (state, input) pair, and the seed's scenarios."""

from __future__ import annotations

import math
import random

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from mcpconn import Backoff
from mcpconn._core.machine import (
    TRANSITIONS,
    Connect,
    DropSession,
    Fact,
    Fail,
    Input,
    InvalidTransition,
    Listen,
    Machine,
    Park,
    Phase,
    Shutdown,
    Sleep,
    State,
    worth_logging,
)
from mcpconn._core.states import WITH_SESSION

NOW = 1000.0
ACTIONS = (Connect, Listen, Sleep, DropSession, Park, Fail, Shutdown)


def feed(m: Machine, *facts: Fact | Input, now: float = NOW, seed: int = 0) -> list[object]:
    out: list[object] = []
    rng = random.Random(seed)
    for fact in facts:
        out.extend(m.feed(fact, now=now, rng=rng))
    return out


def machine_in(state: State, backoff: Backoff | None = None) -> Machine:
    """Drive a fresh machine into ``state`` through legal inputs only."""
    m = Machine(backoff=backoff or Backoff(auth_attempts=2))
    feed(m, Input.STARTED)
    if state is State.CONNECTING:
        return m
    if state is State.READY:
        feed(m, Input.OPENED)
    elif state is State.BACKOFF:
        feed(m, Input.TRANSIENT_FAILURE)
    elif state is State.NEEDS_REAUTH:
        feed(m, Input.REAUTH_REQUIRED)
    elif state is State.FAILED:
        feed(m, Input.PERMANENT_FAILURE)
    elif state is State.CLOSED:
        feed(m, Input.CLOSE_REQUESTED)
    assert m.state is state
    return m


#: A path of legal inputs into every phase (the machine's own states, not only `State`).
PATHS: dict[Phase, tuple[Input, ...]] = {
    Phase.IDLE: (),
    Phase.WAITING: (Input.STARTED, Input.SESSION_LOST),
    Phase.PROBE_WAIT: (Input.STARTED, Input.REAUTH_REQUIRED, Input.PROBE_DUE),
    Phase.CONNECTING: (Input.STARTED,),
    Phase.CONNECTING_SUPERSEDED: (Input.STARTED, Input.TOKEN_PUBLISHED),
    Phase.READY_LISTENING: (Input.STARTED, Input.OPENED),
    Phase.READY_QUIET: (Input.STARTED, Input.OPENED, Input.NO_LISTENER),
    Phase.READY_RELISTEN_WAIT: (Input.STARTED, Input.OPENED, Input.STREAM_ENDED),
    Phase.BACKOFF_TRANSIENT: (Input.STARTED, Input.TRANSIENT_FAILURE),
    Phase.BACKOFF_AUTH: (Input.STARTED, Input.UNAUTHORIZED),
    Phase.BACKOFF_LISTENER: (Input.STARTED, Input.OPENED, Input.LISTENER_FAILED),
    Phase.NEEDS_REAUTH: (Input.STARTED, Input.REAUTH_REQUIRED),
    Phase.FAILED: (Input.STARTED, Input.PERMANENT_FAILURE),
    Phase.CLOSED: (Input.CLOSE_REQUESTED,),
}
#: The pairs the table leaves out, each for a reason the shell guarantees.
UNREACHABLE_BECAUSE = {
    Input.STARTED: "posted once, first, by the connection's own task",
    Input.OPENED: "only a connect in flight opens a session",
    Input.TIMER_FIRED: "a timer runs only in a phase that sleeps; a new phase bumps the epoch",
    Input.STREAM_ENDED: "only a running listener (or a connect) ends a stream",
    Input.NO_LISTENER: "only a running listener learns there is none",
    Input.LISTENER_FAILED: "only a running listener fails (else: a stale epoch, dropped)",
    Input.TRANSIENT_FAILURE: "needs a session or a connect in flight",
    Input.SESSION_LOST: "needs a session or a connect in flight",
    Input.UNAUTHORIZED: "needs a session or a connect in flight",
    Input.SCOPE_DENIED: "needs a session or a connect in flight",
    Input.REAUTH_REQUIRED: "needs a session or a connect in flight",
    Input.PERMANENT_FAILURE: "needs a session or a connect in flight",
    Input.PRODUCTIVE: "only meaningful for a live connection",
}


def machine_at(phase: Phase, backoff: Backoff | None = None) -> Machine:
    m = Machine(backoff=backoff or Backoff(auth_attempts=2))
    feed(m, *PATHS[phase])
    assert m.phase is phase
    return m


def test_every_phase_has_a_path_and_projects_onto_a_public_state() -> None:
    assert set(PATHS) == set(Phase)
    assert {p.state for p in Phase} == set(State)


@pytest.mark.parametrize("phase", list(Phase))
@pytest.mark.parametrize("inp", list(Input))
def test_every_pair_lands_in_a_listed_destination_or_fails_loudly(phase: Phase, inp: Input) -> None:
    rule = TRANSITIONS.get((phase, inp))
    m = machine_at(phase)
    if rule is None:
        assert inp in UNREACHABLE_BECAUSE, f"{phase.name} x {inp.name} has no rule and no reason"
        with pytest.raises(InvalidTransition, match=inp.name):
            m.feed(Fact(inp, retry=0.5, retry_after=2.0), now=NOW, rng=random.Random(1))
        assert m.phase is phase  # a refused input changes nothing
        return
    actions = m.feed(Fact(inp, retry=0.5, retry_after=2.0), now=NOW, rng=random.Random(1))
    assert m.phase in rule[1]
    assert all(isinstance(a, ACTIONS) for a in actions)
    if m.phase in (Phase.FAILED, Phase.NEEDS_REAUTH, Phase.CLOSED):
        assert not m.has_session  # these phases never hold one
    if phase is Phase.CLOSED:
        assert m.phase is Phase.CLOSED and actions == []


@pytest.mark.parametrize("phase", list(Phase))
def test_every_fact_a_session_can_report_is_handled_wherever_there_is_one(phase: Phase) -> None:
    """The class of issue 10 items 6/7: a session (and its pinger) reports in any phase it lives."""
    session_facts = (
        Input.TRANSIENT_FAILURE,
        Input.SESSION_LOST,
        Input.UNAUTHORIZED,
        Input.SCOPE_DENIED,
        Input.REAUTH_REQUIRED,
        Input.PERMANENT_FAILURE,
    )
    m = machine_at(phase)
    connecting = phase in (Phase.CONNECTING, Phase.CONNECTING_SUPERSEDED)
    if m.has_session or connecting:
        for inp in session_facts:
            assert (phase, inp) in TRANSITIONS, inp


@pytest.mark.parametrize("exhausting", [Backoff(max_attempts=0), Backoff(max_elapsed=0.0)])
@pytest.mark.parametrize("phase", sorted(WITH_SESSION, key=lambda p: p.name))
def test_giving_up_never_leaves_a_session_behind(exhausting: Backoff, phase: Phase) -> None:
    for inp in (Input.TRANSIENT_FAILURE, Input.STREAM_ENDED, Input.LISTENER_FAILED):
        rule = TRANSITIONS.get((phase, inp))
        if rule is None or rule[0] is None:
            continue
        m = machine_at(phase)
        m.backoff = exhausting
        actions = feed(m, inp)
        assert m.phase is Phase.FAILED and not m.has_session
        assert any(isinstance(a, DropSession) for a in actions)


@settings(max_examples=300, deadline=None)
@given(
    st.lists(
        st.tuples(
            st.sampled_from(list(Input)),
            st.one_of(st.none(), st.floats(0, 1e6, allow_nan=False)),
            st.floats(0, 10, allow_nan=False),
        ),
        max_size=60,
    )
)
def test_random_sequences_never_corrupt_the_machine(
    steps: list[tuple[Input, float | None, float]],
) -> None:
    m = Machine(backoff=Backoff(auth_attempts=3, max_delay=30))
    feed(m, Input.STARTED)
    now = NOW
    for inp, hint, dt in steps:
        now += dt
        before = m.state
        try:
            actions = m.feed(Fact(inp, retry=hint, retry_after=hint), now=now, rng=random.Random(7))
        except InvalidTransition:
            assert m.state is before
            continue
        for action in actions:
            assert isinstance(action, ACTIONS)
            if isinstance(action, Sleep):
                # honoured hints are exact or capped; backoff never exceeds cap + jitter
                assert 0 <= action.seconds <= max(hint or 0, 300 * 1.2, 30 * 1.2)
        assert m.auth_attempt <= m.backoff.auth_attempts + 1
        if m.state is State.NEEDS_REAUTH:
            assert not m.has_session


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


def test_transient_failures_never_touch_auth_state() -> None:
    m = machine_in(State.READY)
    for _ in range(20):
        feed(m, Input.TRANSIENT_FAILURE, Input.TIMER_FIRED)
    assert m.auth_attempt == 0 and m.park_count == 0
    assert m.state is State.CONNECTING


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


def test_close_from_anywhere_and_closed_is_absorbing() -> None:
    for state in State:
        m = machine_in(state)
        actions = feed(m, Input.CLOSE_REQUESTED)
        assert m.state is State.CLOSED
        assert actions == ([] if state is State.CLOSED else [Shutdown()])
        for inp in Input:
            assert feed(m, inp) == []


def test_probe_reconnects_once_and_a_401_parks_again_at_once() -> None:
    m = machine_in(State.NEEDS_REAUTH)
    (sleep,) = feed(m, Input.PROBE_DUE)
    assert isinstance(sleep, Sleep) and 0 <= sleep.seconds <= m.wake_jitter  # spread out
    # one request: no retry inside the auth layer either
    assert feed(m, Input.TIMER_FIRED) == [Connect(refresh_token=True, retry_on_401=False)]
    feed(m, Input.UNAUTHORIZED)
    assert m.state is State.NEEDS_REAUTH


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


def test_log_lines_thin_out_as_failures_repeat() -> None:
    logged = [n for n in range(1025) if worth_logging(n)]
    assert logged == [1, 2, 4, 8, 16, 32, 64, 128, 256, 512, 1024]


def test_a_listener_exhausting_a_finite_policy_fails_without_a_session() -> None:
    """Issue 10 item 6: FAILED with the session (and its pinger) still open was reachable."""
    m = machine_in(State.READY, Backoff(max_attempts=1))
    feed(m, Input.STREAM_ENDED, Input.TIMER_FIRED)
    actions = feed(m, Input.STREAM_ENDED)
    assert actions == [DropSession(polite=True), Fail()]
    assert m.state is State.FAILED and not m.has_session


def test_a_ping_reinitializing_into_no_common_version_while_the_listener_backs_off() -> None:
    """Issue 10 item 7: BACKOFF with a kept session + PERMANENT_FAILURE was missing."""
    m = machine_in(State.READY)
    feed(m, Input.LISTENER_FAILED)
    assert m.state is State.BACKOFF and m.has_session
    actions = feed(m, Input.PERMANENT_FAILURE)
    assert actions == [DropSession(polite=True), Fail()]
    assert m.state is State.FAILED and not m.has_session
