"""The machine has no reachable hole: a real `Connection` under a random sequence of faults.

Hypothesis picks a backoff policy (finite or not) and a sequence of faults that
the mock server applies while a real connection (via `Supervisor`) runs against
it over loopback: failing pings, re-initializes into a protocol version we do
not speak, revocations and publishes, 401s, 429s saying "retry at once",
listener stream ends and failures, expired sessions, probes, calls. After every step:

* no ``InvalidTransition`` and no "crashed" / "unexpected error" log record;
* ``last_error`` is an `MCPConnError` (or nothing);
* no traffic while NEEDS_REAUTH;
* FAILED and CLOSED hold no session, no open stream and no task.

CI runs a few examples with millisecond policies. The long run::

    FUZZ_EXAMPLES=500 .venv/bin/python -m pytest tests/reliability/test_connection_fuzz.py -q
"""

from __future__ import annotations

import contextlib
import logging
import os
from collections.abc import Iterator
from contextlib import contextmanager

import anyio
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import mcpconn
from mcpconn import Backoff, Connection, ServerConfig, State, Supervisor, Timeouts, TokenSource
from mcpconn._core.machine import Fact, Input
from mcpconn.testing import Fault, JWTProvider, MockServer

from ._raw import no_leaks

PRINCIPAL = "fuzz"
EXAMPLES = int(os.environ.get("FUZZ_EXAMPLES", "4"))
#: How long the connection may react to one step before the invariants are checked.
WINDOW = 0.03

POLICIES = [
    Backoff(initial=0.002, max_delay=0.01, auth_attempts=1),
    Backoff(initial=0.002, max_delay=0.01, auth_attempts=2, max_attempts=2),
    Backoff(initial=0.002, max_delay=0.01, auth_attempts=0, max_elapsed=0.05),
]
STEPS = [
    "ping_fails",
    "reinit_unsupported",
    "revoke",
    "publish",
    "unauthorized_once",
    "retry_after_zero",
    "stream_ends",
    "listener_fails",
    "sessions_expire",
    "probe",
    "call",
]


class Alarms(logging.Handler):
    """Log records that mean a bug: a crashed connection, an unexpected error."""

    def __init__(self) -> None:
        super().__init__(level=logging.WARNING)
        self.found: list[str] = []

    def emit(self, record: logging.LogRecord) -> None:
        text = record.getMessage()
        if "crashed" in text or "unexpected error" in text:
            self.found.append(text)


@contextmanager
def alarms() -> Iterator[Alarms]:
    handler = Alarms()
    log = logging.getLogger("mcpconn")
    log.addHandler(handler)
    try:
        yield handler
    finally:
        log.removeHandler(handler)


def connection_tasks() -> list[str]:
    """The tasks a connection's runner spawns (session, listener, pinger, callbacks)."""
    return [
        t.name
        for t in anyio.get_running_tasks()
        if t.name and "_supervision.runner.Runner." in t.name
    ]


async def apply(step: str, server: MockServer, tokens: TokenSource, conn: Connection) -> None:
    faults = server.faults
    if step == "ping_fails":
        faults.add(Fault.status(500), times=1, rpc_method="ping")
    elif step == "reinit_unsupported":
        server.answer_version = "1999-01-01"
        server.expire_sessions(PRINCIPAL)  # the next ping or GET re-initializes
    elif step == "revoke":
        server.revoke(PRINCIPAL)
        server.expire_sessions(PRINCIPAL)
    elif step == "publish":
        server.restore(PRINCIPAL)
        server.answer_version = None
        tokens.publish(PRINCIPAL, server.mint(PRINCIPAL))
    elif step == "unauthorized_once":
        faults.add(Fault.unauthorized(), times=1)
        server.expire_sessions(PRINCIPAL)
    elif step == "retry_after_zero":
        faults.add(Fault.rate_limited(retry_after=0), times=2)
        server.close_streams(PRINCIPAL)
    elif step == "stream_ends":
        server.close_streams(PRINCIPAL)
    elif step == "listener_fails":
        faults.add(Fault.status(500), times=2, method="GET")
        server.close_streams(PRINCIPAL)
    elif step == "sessions_expire":
        server.expire_sessions(PRINCIPAL)
    elif step == "probe":  # what the supervisor's slow probe posts (it only reaches parked ones)
        conn.post(Fact(Input.PROBE_DUE, reason="probe"))
    elif step == "call":
        # anything of ours is fine; anything else fails the test
        with contextlib.suppress(mcpconn.MCPConnError):
            await conn.call_tool("echo", {"text": "x"}, timeout=WINDOW)


async def holds_nothing(server: MockServer, conn: Connection) -> None:
    """FAILED/CLOSED: the session winds down (bounded) and leaves nothing behind."""

    def holding() -> bool:
        streams = server.stats().open_streams_by_principal.get(PRINCIPAL, 0)
        return conn._runner.session is not None or bool(connection_tasks()) or streams > 0

    with anyio.fail_after(5):
        while holding():  # noqa: ASYNC110 (nothing signals "wound down": poll, bounded)
            await anyio.sleep(0.005)


@settings(
    max_examples=EXAMPLES,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(
    policy=st.sampled_from(POLICIES),
    steps=st.lists(st.sampled_from(STEPS), min_size=1, max_size=10),
    listen=st.booleans(),
)
async def test_no_fault_sequence_reaches_a_hole(
    policy: Backoff, steps: list[str], listen: bool
) -> None:
    with alarms() as alarm:
        async with no_leaks(), MockServer(sse_retry=0.001) as server:
            provider = JWTProvider(server.issuer)
            async with TokenSource(provider) as tokens, Supervisor(tokens, backoff=policy) as sup:
                config = ServerConfig(
                    "fuzzed",
                    server.url,
                    transport="streamable-http",
                    protocol_version="2025-11-25",
                    listen=listen,
                    ping_interval=0.01,
                    timeouts=Timeouts(connect=1, request=0.5, read=1, close=0.5),
                )
                conn = await sup.connect(config, PRINCIPAL)
                with anyio.fail_after(5):
                    await conn.wait_for(State.READY)
                for step in steps:
                    parked = conn.state is State.NEEDS_REAUTH
                    before = server.stats().by_principal.get(PRINCIPAL, 0)
                    await apply(step, server, tokens, conn)
                    await anyio.sleep(WINDOW)  # the observation window for this step
                    assert alarm.found == [], alarm.found
                    assert conn.last_error is None or isinstance(
                        conn.last_error, mcpconn.MCPConnError
                    ), repr(conn.last_error)
                    state = conn.state
                    # A publish and a probe are the two things that may make a parked
                    # connection knock (a probe's jittered attempt can end, parked again,
                    # within the window: test_supervisor_lifecycle counts its requests).
                    quiet = step not in ("publish", "probe")
                    if parked and quiet and state is State.NEEDS_REAUTH:
                        assert server.stats().by_principal.get(PRINCIPAL, 0) == before
                    if state is State.FAILED:
                        await holds_nothing(server, conn)
                    assert state is not State.CLOSED, "only aclose() closes a connection"
            assert conn.state is State.CLOSED
            await holds_nothing(server, conn)
        assert alarm.found == [], alarm.found
