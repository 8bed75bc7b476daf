"""H11Transport's short ways: a reader that stops at its answer, and POSTs without httpx.Request.

A reader that stops early (an MCP call has its response) leaves the stream's
end to read: the connection is reused when that end comes promptly, closed
when the server holds the stream open, and such an origin is not waited for
again. `send` puts JSON-RPC POSTs straight on the transport with BearerAuth's
header, and hands a 401 to BearerAuth's flow. Real loopback sockets throughout.
"""

from __future__ import annotations

import gc
from collections.abc import AsyncGenerator, AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager

import anyio
import anyio.abc
import httpx
import pytest

from mcpconn._core.token import Token
from mcpconn._http import H11Transport, make_client
from mcpconn._http.body import TAIL_GRACE, TAIL_MISSES, TAIL_PROBE, ResponseBody
from mcpconn._http.send import SENT_CREDENTIAL, send, short_path
from mcpconn._http.shards import ClientShards
from mcpconn._tokens.auth import BearerAuth
from mcpconn._tokens.source import TokenRequest, TokenSource

TIMEOUT = httpx.Timeout(5)
HEAD = b"HTTP/1.1 200 OK\r\ncontent-type: text/event-stream\r\ntransfer-encoding: chunked\r\n\r\n"
EVENT = b"c\r\ndata: reply\n\r\n"
END = b"0\r\n\r\n"


class Wire:
    """A loopback server: ``reply(stream, head)`` answers each request head it reads."""

    def __init__(self, reply: Callable[[anyio.abc.SocketStream, bytes], Awaitable[None]]) -> None:
        self.reply = reply
        self.heads: list[bytes] = []
        self.accepted = 0
        self.url = httpx.URL()

    async def _serve(self, stream: anyio.abc.SocketStream) -> None:
        self.accepted += 1
        pending = b""
        async with stream:
            try:
                while True:
                    while b"\r\n\r\n" not in pending:
                        pending += await stream.receive()
                    head, _, pending = pending.partition(b"\r\n\r\n")
                    for line in head.lower().split(b"\r\n"):
                        if line.startswith(b"content-length:"):
                            size = int(line.partition(b":")[2])
                            while len(pending) < size:
                                pending += await stream.receive()
                            pending = pending[size:]
                    self.heads.append(head.lower())
                    await self.reply(stream, head.lower())
            except (anyio.EndOfStream, anyio.BrokenResourceError, anyio.ClosedResourceError):
                pass

    @asynccontextmanager
    async def running(self) -> AsyncIterator[Wire]:
        listener = await anyio.create_tcp_listener(local_host="127.0.0.1")
        port = listener.extra(anyio.abc.SocketAttribute.local_port)
        self.url = httpx.URL(f"http://127.0.0.1:{port}/mcp")
        async with listener, anyio.create_task_group() as tg:
            tg.start_soon(listener.serve, self._serve)
            yield self
            tg.cancel_scope.cancel()


async def read_until_reply(
    client: httpx.AsyncClient, url: httpx.URL, on_answer: Callable[[], None] = lambda: None
) -> bool:
    """POST, then read the body only until its first piece (as a call stops at its answer)."""
    response = await send(
        client, "POST", url, headers={}, content=b"{}", auth=None, timeout=TIMEOUT
    )

    def on_raw(raw: bytes) -> bool:
        on_answer()
        return raw.startswith(b"data: reply")

    try:
        assert isinstance(response.stream, ResponseBody)
        return await response.stream.pump(on_raw)
    finally:
        await response.aclose()


async def test_a_stream_ending_after_its_answer_keeps_its_connection() -> None:
    answered = [anyio.Event()]

    async def reply(stream: anyio.abc.SocketStream, head: bytes) -> None:
        await stream.send(HEAD + EVENT)
        await answered[-1].wait()  # the end goes out only once the client has its answer
        await stream.send(END)

    async with Wire(reply).running() as wire, make_client() as client:
        transport: H11Transport = client._transport  # type: ignore[assignment]
        for _ in range(3):
            answered.append(anyio.Event())
            assert await read_until_reply(client, wire.url, answered[-1].set)
            assert transport.sockets == 1
    assert wire.accepted == 1  # one connection for the three streams


async def test_a_stream_held_open_after_its_answer_is_closed_then_not_waited_for() -> None:
    async def reply(stream: anyio.abc.SocketStream, head: bytes) -> None:
        await stream.send(HEAD + EVENT)
        await anyio.sleep_forever()

    async with Wire(reply).running() as wire, make_client() as client:
        transport: H11Transport = client._transport  # type: ignore[assignment]
        for _ in range(TAIL_MISSES):
            start = anyio.current_time()
            assert await read_until_reply(client, wire.url)
            assert anyio.current_time() - start >= TAIL_GRACE * 0.9  # it waited
            assert transport.sockets == 0
        pool = transport.origin(wire.url)
        assert pool is not None and pool.tail_misses == TAIL_MISSES
        with anyio.fail_after(TAIL_GRACE / 2):  # not waited for any more
            assert await read_until_reply(client, wire.url)
        assert transport.sockets == 0
    assert wire.accepted == TAIL_MISSES + 1


def held_then(later: Callable[[anyio.abc.SocketStream], Awaitable[None]], held: int) -> Wire:
    """Its first ``held`` streams stay open after their answer; ``later`` answers the rest."""

    async def reply(stream: anyio.abc.SocketStream, head: bytes) -> None:
        if len(wire.heads) <= held:
            await stream.send(HEAD + EVENT)
            await anyio.sleep_forever()
        await later(stream)

    wire = Wire(reply)
    return wire


async def test_a_waited_off_origin_still_keeps_a_connection_whose_end_came_with_its_answer() -> (
    None
):
    async def at_once(stream: anyio.abc.SocketStream) -> None:
        await stream.send(HEAD + EVENT + END)  # the end is buffered when the reader stops

    async with held_then(at_once, TAIL_MISSES).running() as wire, make_client() as client:
        transport: H11Transport = client._transport  # type: ignore[assignment]
        for _ in range(TAIL_MISSES):
            assert await read_until_reply(client, wire.url)
        pool = transport.origin(wire.url)
        assert pool is not None and pool.tail_misses == TAIL_MISSES
        for _ in range(3):
            assert await read_until_reply(client, wire.url)
            assert transport.sockets == 1
        assert pool.tail_misses == 0
    assert wire.accepted == TAIL_MISSES + 1  # the three buffered ends shared one connection


async def test_a_waited_off_origin_is_waited_for_again_every_probe_th_time() -> None:
    answered = [anyio.Event()]

    async def end_after_answer(stream: anyio.abc.SocketStream) -> None:
        await stream.send(HEAD + EVENT)
        await answered[-1].wait()
        await stream.send(END)

    skipped = TAIL_PROBE - TAIL_MISSES
    async with (
        held_then(end_after_answer, TAIL_MISSES + skipped).running() as wire,
        make_client() as client,
    ):
        transport: H11Transport = client._transport  # type: ignore[assignment]
        for _ in range(TAIL_MISSES):
            assert await read_until_reply(client, wire.url)
        with anyio.fail_after(TAIL_GRACE * skipped / 2):  # none of these is waited for
            for _ in range(skipped):
                assert await read_until_reply(client, wire.url)
                assert transport.sockets == 0
        pool = transport.origin(wire.url)
        assert pool is not None and pool.tail_misses == TAIL_PROBE
        for _ in range(2):  # the probe waits, gets its end in time: the origin is trusted again
            answered.append(anyio.Event())
            assert await read_until_reply(client, wire.url, answered[-1].set)
            assert transport.sockets == 1
        assert pool.tail_misses == 0
    assert wire.accepted == TAIL_PROBE + 1


async def test_the_shared_client_keeps_a_bursts_connections_for_the_next_burst() -> None:
    """One publish wakes many parked listeners at once: their discovers' sockets come back
    together, and the listens that follow take them instead of connecting again."""
    burst = 100  # more than httpx's usual idle limits
    arrived = anyio.Event()

    async def reply(stream: anyio.abc.SocketStream, head: bytes) -> None:
        if len(wire.heads) >= burst:
            arrived.set()
        await arrived.wait()  # every request of the first burst holds its own socket
        await stream.send(b"HTTP/1.1 200 OK\r\ncontent-length: 2\r\n\r\n{}")

    wire = Wire(reply)
    shards = ClientShards(h11=True)
    async with wire.running():
        client = shards.acquire()
        try:
            for _ in range(2):
                with anyio.fail_after(10):
                    async with anyio.create_task_group() as tg:
                        for _ in range(burst):
                            tg.start_soon(client.get, wire.url)
            assert wire.accepted == burst  # the second burst reused every socket of the first
        finally:
            await shards.aclose()


class Tokens:
    def __init__(self) -> None:
        self.issued: list[str] = []

    async def __call__(self, request: TokenRequest) -> str:
        self.issued.append(f"tok{len(self.issued) + 1}")
        return self.issued[-1]


@asynccontextmanager
async def bearer() -> AsyncIterator[tuple[BearerAuth, Tokens]]:
    tokens = Tokens()
    async with TokenSource(tokens) as source:
        yield BearerAuth(source, "alice"), tokens


def answer(status: int, body: bytes = b"") -> bytes:
    return b"HTTP/1.1 %d X\r\ncontent-length: %d\r\n\r\n%s" % (status, len(body), body)


async def test_a_post_goes_straight_to_the_transport_with_the_current_token() -> None:
    async def reply(stream: anyio.abc.SocketStream, head: bytes) -> None:
        await stream.send(answer(200, b"ok"))

    static = {"Authorization": "Bearer static"}  # replaced by the auth's, as httpx does
    async with (
        Wire(reply).running() as wire,
        make_client(headers=static) as client,
        bearer() as (auth, _),
    ):
        assert short_path(client)
        response = await send(
            client,
            "POST",
            wire.url,
            headers={"X-A": "1"},
            content=b"{}",
            auth=auth,
            timeout=TIMEOUT,
        )
        assert await response.aread() == b"ok"
        await response.aclose()
        with pytest.raises(RuntimeError):
            _ = response.request  # no httpx.Request was built
        assert response.extensions[SENT_CREDENTIAL] == "tok1"
    head = wire.heads[0]
    assert head.startswith(b"post /mcp http/1.1")
    for line in (b"authorization: bearer tok1", b"x-a: 1", b"content-length: 2", b"host: 127"):
        assert b"\r\n" + line in head
    assert b"user-agent: python-httpx" in head  # the client's headers are kept
    assert head.count(b"\r\nauthorization:") == 1


async def test_an_authorization_header_of_ours_is_replaced_by_the_auths_too() -> None:
    async def reply(stream: anyio.abc.SocketStream, head: bytes) -> None:
        await stream.send(answer(200))

    async with Wire(reply).running() as wire, make_client() as client, bearer() as (auth, _):
        response = await send(
            client,
            "POST",
            wire.url,
            headers={"AUTHORIZATION": "Bearer ours", "X-A": "1"},
            content=b"{}",
            auth=auth,
            timeout=TIMEOUT,
        )
        await response.aclose()
    head = wire.heads[0]
    assert head.count(b"\r\nauthorization:") == 1
    assert b"\r\nauthorization: bearer tok1" in head and b"\r\nx-a: 1" in head


async def test_the_header_pairs_of_a_direct_post_are_not_kept_while_it_waits() -> None:
    """A burst holds hundreds of requests waiting for their answers: the pairs their heads
    were written from are let go once written, not kept for the round trip."""
    asked, answer_now = anyio.Event(), anyio.Event()

    async def reply(stream: anyio.abc.SocketStream, head: bytes) -> None:
        asked.set()
        await answer_now.wait()
        await stream.send(answer(200))

    marker = ("X-Marker", "kept-while-waiting")

    def lists_holding_the_marker() -> int:
        gc.collect()  # only what is still reachable counts
        return sum(
            1
            for o in gc.get_objects()
            if type(o) is list and any(type(x) is tuple and x == marker for x in o)
        )

    async with Wire(reply).running() as wire, make_client() as client, bearer() as (auth, _):
        async with anyio.create_task_group() as tg:

            async def post() -> None:
                response = await send(
                    client,
                    "POST",
                    wire.url,
                    headers=dict([marker]),
                    content=b"{}",
                    auth=auth,
                    timeout=TIMEOUT,
                )
                await response.aclose()

            tg.start_soon(post)
            with anyio.fail_after(5):
                await asked.wait()
            assert lists_holding_the_marker() == 0
            answer_now.set()
    assert b"\r\nx-marker: kept-while-waiting" in wire.heads[0]


async def test_a_401_on_the_direct_path_is_the_flows_one_refresh_and_one_retry() -> None:
    async def reply(stream: anyio.abc.SocketStream, head: bytes) -> None:
        ok = b"bearer tok2" in head
        await stream.send(answer(200, b"yes") if ok else answer(401, b"no"))

    async with Wire(reply).running() as wire, make_client() as client, bearer() as (auth, tokens):
        response = await send(
            client, "POST", wire.url, headers={}, content=b"{}", auth=auth, timeout=TIMEOUT
        )
        assert response.status_code == 200
        assert await response.aread() == b"yes"
        await response.aclose()
        assert [r.status_code for r in response.history] == [401]
    assert tokens.issued == ["tok1", "tok2"]
    assert [b"bearer tok1" in h for h in wire.heads] == [True, False]
    assert b"bearer tok2" in wire.heads[1] and len(wire.heads) == 2


async def refused_without_retry(
    client: httpx.AsyncClient, url: httpx.URL, auth: BearerAuth
) -> httpx.Response:
    """A POST sent as a connection counting its own 401s sends it (retry_on_401 off)."""
    auth.retry_on_401 = False
    response = await send(
        client, "POST", url, headers={}, content=b"{}", auth=auth, timeout=TIMEOUT
    )
    await response.aclose()
    return response


def _rejected_token(response: httpx.Response) -> str | None:
    rejection = BearerAuth.rejection(response)
    return None if rejection is None else rejection.token.raw


async def test_a_401_the_flow_would_only_annotate_is_annotated_without_it() -> None:
    """retry_on_401 off (a connection counting its 401s): the 401 carries its Rejection,
    one request went out, and no httpx.Request was built for the flow."""

    async def reply(stream: anyio.abc.SocketStream, head: bytes) -> None:
        await stream.send(answer(401, b"no"))

    async with Wire(reply).running() as wire, make_client() as client, bearer() as (auth, tokens):
        response = await refused_without_retry(client, wire.url, auth)
        assert response.status_code == 401 and response.history == []
        assert _rejected_token(response) == "tok1"
        with pytest.raises(RuntimeError):
            _ = response.request
    assert tokens.issued == ["tok1"] and len(wire.heads) == 1


async def test_a_token_replaced_during_the_401_sends_the_flows_own_request() -> None:
    async def reply(stream: anyio.abc.SocketStream, head: bytes) -> None:
        if b"bearer tok1" in head:
            auth.source.publish("alice", Token("fresh"))  # a login lands meanwhile
        await stream.send(answer(401, b"no"))

    async with Wire(reply).running() as wire, make_client() as client, bearer() as (auth, _):
        response = await refused_without_retry(client, wire.url, auth)
        assert _rejected_token(response) == "fresh"
    assert [b"bearer tok1" in h for h in wire.heads] == [True, False]
    assert b"bearer fresh" in wire.heads[1]


async def test_a_subclass_with_its_own_flow_is_run_for_every_request() -> None:
    class Tagged(BearerAuth):
        async def async_auth_flow(
            self, request: httpx.Request
        ) -> AsyncGenerator[httpx.Request, httpx.Response]:
            request.headers["X-Tag"] = "mine"
            async for sent in self._plain(request):
                yield sent

        async def _plain(self, request: httpx.Request) -> AsyncIterator[httpx.Request]:
            request.headers["Authorization"] = "Bearer own"
            yield request

    async def reply(stream: anyio.abc.SocketStream, head: bytes) -> None:
        await stream.send(answer(200))

    async with Wire(reply).running() as wire, make_client() as client, bearer() as (auth, _):
        tagged = Tagged(auth.source, "alice")
        response = await send(
            client, "POST", wire.url, headers={}, content=b"{}", auth=tagged, timeout=TIMEOUT
        )
        await response.aclose()
    assert b"x-tag: mine" in wire.heads[0] and b"bearer own" in wire.heads[0]


def test_the_private_httpx_names_the_short_path_reads_exist() -> None:
    """`mcpconn._http.send` reads these; a later httpx without them must fail here, loudly."""
    client = httpx.AsyncClient()
    for name in ("_transport", "_mounts", "_build_request_auth"):
        assert hasattr(client, name), f"httpx {httpx.__version__} has no AsyncClient.{name}"
    from httpx import _utils

    assert hasattr(_utils, "get_environment_proxies"), "httpx moved get_environment_proxies"
