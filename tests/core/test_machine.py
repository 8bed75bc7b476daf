"""The connection state machine: every (state, input) pair, and what no sequence may break."""

from __future__ import annotations

import random

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from machine_drive import ACTIONS, NOW, feed, machine_in

from mcpconn import Backoff
from mcpconn._core.machine import (
    TRANSITIONS,
    DropSession,
    Fact,
    Fail,
    Input,
    InvalidTransition,
    Machine,
    Phase,
    Shutdown,
    Sleep,
    State,
)
from mcpconn._core.states import WITH_SESSION

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


def test_close_from_anywhere_and_closed_is_absorbing() -> None:
    for state in State:
        m = machine_in(state)
        actions = feed(m, Input.CLOSE_REQUESTED)
        assert m.state is State.CLOSED
        assert actions == ([] if state is State.CLOSED else [Shutdown()])
        for inp in Input:
            assert feed(m, inp) == []


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
