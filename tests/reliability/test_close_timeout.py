"""`Supervisor(close_timeout=)` caps the whole close, whatever each server's own close budget.

A connection closes politely within its server's ``timeouts.close`` (the wait for an
``initialize`` already sent, the DELETE). When that budget is longer than the
supervisor's ``close_timeout``, leaving the supervisor still ends by ``close_timeout``:
every close is given what is left of it, not its own budget afresh. Against a raw
server that never answers (an ``initialize``, a DELETE) and a provider that hangs.
"""

from __future__ import annotations

import anyio
import anyio.abc

import mcpconn
from mcpconn import State, Supervisor, TokenSource
from mcpconn.testing import JWTIssuer, JWTProvider

from ._raw import RawRequest, config, no_leaks, raw_server
from ._supervised import supervised

CLOSE_TIMEOUT = 1.0
#: Each server's own close budget: far longer than the supervisor's cap.
LONG = mcpconn.Timeouts(connect=2, request=300, read=300, close=30)
#: What a close may take past ``close_timeout`` on a loaded machine (the old: 30 s).
SLACK = 2.0


async def _never_answer(stream: anyio.abc.SocketStream, req: RawRequest) -> None:
    await anyio.sleep_forever()


async def test_a_handshake_waiting_for_initialize_is_abandoned_at_close_timeout() -> None:
    reached = anyio.Event()

    async def stall(stream: anyio.abc.SocketStream, req: RawRequest) -> None:
        reached.set()
        await anyio.sleep_forever()

    async with no_leaks(), raw_server(on_initialize=stall) as raw:
        with anyio.fail_after(20):
            async with supervised(JWTProvider(JWTIssuer()), close_timeout=CLOSE_TIMEOUT) as sup:
                conns = [
                    await sup.connect(config(raw.url, timeouts=LONG), f"u{i}") for i in range(3)
                ]
                await reached.wait()
                await raw.wait(lambda r: r.count("POST", "initialize") == 3)
                closing = anyio.current_time()
            elapsed = anyio.current_time() - closing
        assert elapsed < CLOSE_TIMEOUT + SLACK
        assert all(c.state is State.CLOSED for c in conns)


async def test_a_delete_that_never_answers_is_abandoned_at_close_timeout() -> None:
    async with no_leaks(), raw_server(on_delete=_never_answer) as raw:
        with anyio.fail_after(20):
            async with supervised(JWTProvider(JWTIssuer()), close_timeout=CLOSE_TIMEOUT) as sup:
                conn = await sup.connect(config(raw.url, timeouts=LONG, listen=False), "alice")
                await conn.wait_for(State.READY)
                closing = anyio.current_time()
            elapsed = anyio.current_time() - closing
        assert raw.count("DELETE") == 1  # it was sent: the close was polite, then cut
        assert elapsed < CLOSE_TIMEOUT + SLACK
        assert conn.state is State.CLOSED


async def test_connections_waiting_for_a_hanging_provider_close_at_close_timeout() -> None:
    async with no_leaks(), raw_server() as raw:
        provider = JWTProvider(JWTIssuer())
        provider.hang()
        with anyio.fail_after(20):
            async with (
                TokenSource(provider, provider_timeout=30) as tokens,
                Supervisor(tokens, close_timeout=CLOSE_TIMEOUT) as sup,
            ):
                default_close = mcpconn.Timeouts().close  # 5 s, longer than the cap
                assert default_close > CLOSE_TIMEOUT + SLACK
                conns = [await sup.connect(config(raw.url, timeouts=mcpconn.Timeouts()), f"u{i}")
                         for i in range(5)]  # fmt: skip
                while provider.total_calls < 5:
                    await provider.wait_for_call()
                closing = anyio.current_time()
            elapsed = anyio.current_time() - closing
        assert elapsed < CLOSE_TIMEOUT + SLACK
        assert all(c.state is State.CLOSED for c in conns)
        assert raw.requests == []  # nothing was sent without a token
