"""A held listener's reads are timed out (and stopped) by the transport's one sweeper task
(`ReadDeadlines`), not by a cancel scope each: the same typed error when the deadline
passes, a deadline each read moves, a stop that ends the read at once. Against the raw
servers of raw_http.py, and end to end through a supervisor."""

from __future__ import annotations

import math
import ssl
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path

import anyio
import anyio.abc
import httpx
import pytest
from raw_http import client, raw_server, read_request
from test_h11_transport import _tls_contexts

from mcpconn import Backoff, ReadTimeout, ServerConfig, State, Supervisor, Timeouts, TokenSource
from mcpconn._http import H11Transport
from mcpconn._http.body import ResponseBody
from mcpconn._http.deadlines import ReadDeadlines, sweep_in
from mcpconn._http.send import send
from mcpconn.testing import Fault, JWTProvider, MockServer

CHUNKED = b"HTTP/1.1 200 OK\r\ntransfer-encoding: chunked\r\n\r\n"
END = b"0\r\n\r\n"


def _stalling(pieces: int = 1, every: float = 0.0, then_end: bool = False) -> object:
    async def serve(stream: anyio.abc.SocketStream) -> None:
        await read_request(stream)
        await stream.send(CHUNKED)
        for _ in range(pieces):
            await anyio.sleep(every)
            await stream.send(b"1\r\nx\r\n")
        if then_end:
            await stream.send(END)
        await anyio.sleep_forever()

    return serve


@asynccontextmanager
async def swept(
    serve: object, tls: tuple[ssl.SSLContext, ssl.SSLContext] | None = None
) -> AsyncIterator[tuple[httpx.AsyncClient, H11Transport, str]]:
    server_tls, client_tls = tls or (None, None)
    async with (
        raw_server(serve, tls=server_tls) as raw,  # type: ignore[arg-type]
        client(ssl_context=client_tls) as (c, transport),
        anyio.create_task_group() as tg,
    ):
        sweep_in(c, tg)
        yield c, transport, raw.url
        tg.cancel_scope.cancel()


async def _body(c: httpx.AsyncClient, url: str, read: float) -> ResponseBody:
    response = await send(
        c, "POST", httpx.URL(url), headers={}, content=b"{}", auth=None,
        timeout=httpx.Timeout(5, read=read),
    )  # fmt: skip
    assert isinstance(response.stream, ResponseBody)
    return response.stream


@pytest.mark.parametrize("tls", [False, True])
async def test_a_held_read_past_its_deadline_is_a_read_timeout(tls: bool, tmp_path: Path) -> None:
    contexts = _tls_contexts(tmp_path) if tls else None
    async with swept(_stalling(), contexts) as (c, transport, url):
        body = await _body(c, url, read=0.2)
        got: list[bytes] = []
        with anyio.fail_after(5), pytest.raises(httpx.ReadTimeout):
            await body.pump(lambda raw: got.append(raw) is not None, held=True)
        assert got == [b"x"]
        assert transport.sockets == 0  # closed, not reused
        assert transport.deadlines.running


async def test_a_held_read_waits_in_the_sweeper_not_in_a_scope() -> None:
    async with swept(_stalling()) as (c, transport, url):
        body = await _body(c, url, read=30)
        async with anyio.create_task_group() as tg:
            tg.start_soon(lambda: body.pump(lambda raw: False, held=True))
            with anyio.fail_after(5):
                await anyio.wait_all_tasks_blocked()  # parked in its read
            assert body.due != math.inf
            assert len(transport.deadlines) == 1  # its entry, a lower bound of its deadline
            assert body._scope is None
            conn = body._conn
            assert conn is not None
            assert conn._timer is None  # the head's reads' timer is not left in the loop
            body.stop()  # from another task: the sweeper closes the socket at once
        assert body.due == math.inf
        assert transport.sockets == 0


async def test_a_stopped_held_read_returns_true() -> None:
    async with swept(_stalling()) as (c, _, url):
        body = await _body(c, url, read=30)
        outcome: list[bool] = []

        async def pump() -> None:
            outcome.append(await body.pump(lambda raw: False, held=True))

        async with anyio.create_task_group() as tg:
            tg.start_soon(pump)
            with anyio.fail_after(5):
                await anyio.wait_all_tasks_blocked()  # parked in its read
                assert body.due != math.inf
                body.stop()
        assert outcome == [True]


async def test_each_read_moves_the_deadline() -> None:
    # 12 pieces 0.05 s apart: 0.6 s in all, longer than the 0.5 s each read may take
    async with swept(_stalling(pieces=12, every=0.05, then_end=True)) as (c, transport, url):
        body = await _body(c, url, read=0.5)
        got: list[bytes] = []
        with anyio.fail_after(10):
            ended = await body.pump(lambda raw: got.append(raw) is not None, held=True)
        assert ended is False and b"".join(got) == b"x" * 12
        assert transport.sockets == 1  # a body read to its end: the connection is kept


async def test_without_a_sweeper_a_held_read_has_its_own_scope() -> None:
    async with raw_server(_stalling()) as raw, client() as (c, transport):  # type: ignore[arg-type]
        assert not transport.deadlines.running
        body = await _body(c, raw.url, read=0.2)
        with anyio.fail_after(5), pytest.raises(httpx.ReadTimeout):
            await body.pump(lambda raw: False, held=True)
        assert len(transport.deadlines) == 0


class _Reader:
    def __init__(self, due: float) -> None:
        self.due = due
        self.sweep_at = math.inf
        self.expired = anyio.Event()

    async def expire(self) -> None:
        self.expired.set()


async def test_the_sweeper_expires_what_is_due_and_pushes_back_what_moved() -> None:
    deadlines = ReadDeadlines()
    now = anyio.current_time()
    moved, due, idle = _Reader(now + 0.05), _Reader(now + 0.1), _Reader(now + 0.05)
    async with anyio.create_task_group() as tg:
        tg.start_soon(deadlines.run)
        for reader in (moved, due, idle):
            deadlines.watch(reader)
        moved.due = now + 60  # its read went on: the entry is only a lower bound
        idle.due = math.inf  # its read ended
        with anyio.fail_after(5):
            await due.expired.wait()
        assert not moved.expired.is_set() and not idle.expired.is_set()
        assert len(deadlines) == 1 and moved.sweep_at == moved.due  # pushed again
        moved.due = -math.inf  # a stop: at once, ahead of its entry
        deadlines.watch(moved)
        with anyio.fail_after(5):
            await moved.expired.wait()
        tg.cancel_scope.cancel()
    assert not deadlines.running


class _Broken(_Reader):
    async def expire(self) -> None:
        raise OSError("closing failed")


async def test_a_reader_that_fails_to_end_does_not_stop_the_sweeper(
    caplog: pytest.LogCaptureFixture,
) -> None:
    deadlines = ReadDeadlines()
    now = anyio.current_time()
    broken, after = _Broken(now), _Reader(now + 0.05)
    async with anyio.create_task_group() as tg:
        tg.start_soon(deadlines.run)
        deadlines.watch(broken)
        deadlines.watch(after)
        with anyio.fail_after(5):
            await after.expired.wait()
        assert deadlines.running
        tg.cancel_scope.cancel()
    assert any("timed-out read" in r.message for r in caplog.records)


async def test_a_stalled_listener_is_a_typed_read_timeout_through_the_sweeper() -> None:
    async with MockServer() as server:
        server.faults.add(Fault.stall(after_headers=True), times=1, method="GET")
        config = ServerConfig(
            "mock",
            server.url,
            transport="streamable-http",
            protocol_version="2025-11-25",
            timeouts=Timeouts(read=0.3),
        )
        # a short backoff: the listener's reconnect after the timeout is not what is tested
        fast = Backoff(initial=0.01, max_delay=0.05)
        async with Supervisor(TokenSource(JWTProvider(server.issuer)), backoff=fast) as sup:
            conn = await sup.connect(config, "ann")
            with anyio.fail_after(10):
                await conn.wait_for(State.READY)
                # the stalled stream timed out and the listener came back
                await server.wait_until(lambda s: s.by_http_method.get("GET", 0) >= 2)
            assert isinstance(conn.last_error, ReadTimeout)
            transports = [s.client._transport for s in sup._shards._shards]
            assert any(isinstance(t, H11Transport) and t.deadlines.running for t in transports)
