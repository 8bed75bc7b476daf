"""Driving the connection state machine in its tests: feed it inputs, or put it in a state."""

from __future__ import annotations

import random

from mcpconn import Backoff
from mcpconn._core import machine
from mcpconn._core.machine import Fact, Input, Machine, State

NOW = 1000.0


#: Every action the machine may emit.
ACTIONS = (
    machine.Connect,
    machine.Listen,
    machine.Sleep,
    machine.DropSession,
    machine.Park,
    machine.Fail,
    machine.Shutdown,
)


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
