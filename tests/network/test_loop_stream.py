"""The stream `dial` makes for plain TCP to an IP literal: a `LoopStream` on asyncio (reading
left on between receives), anyio's stream on trio, and the same behaviour on both: what
came is read before the end, a queue past `HIGH_WATER` pauses the socket's reading and
loses nothing, a reset is `anyio.BrokenResourceError`, a close from another task stops
its reader, and a closed stream refuses to send. Against real loopback sockets."""

from __future__ import annotations

import asyncio
import socket
import struct
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager

import anyio
import anyio.abc
import pytest

from mcpconn._http.dial import dial
from mcpconn._http.loopstream import HIGH_WATER, LoopStream

Serve = Callable[[anyio.abc.SocketStream], Awaitable[None]]


@asynccontextmanager
async def _dialled(serve: Serve) -> AsyncIterator[anyio.abc.ByteStream]:
    listener = await anyio.create_tcp_listener(local_host="127.0.0.1")
    port = listener.extra(anyio.abc.SocketAttribute.local_port)

    async def handle(peer: anyio.abc.SocketStream) -> None:
        async with peer:  # closed however the test ends
            await serve(peer)

    async with listener, anyio.create_task_group() as tg:
        tg.start_soon(listener.serve, handle)
        stream, fd = await dial("127.0.0.1", port, None)
        assert fd >= 0
        try:
            yield stream
        finally:
            await anyio.aclose_forcefully(stream)
            tg.cancel_scope.cancel()


async def test_on_asyncio_plain_tcp_is_a_loop_stream(anyio_backend: str) -> None:
    async def serve(peer: anyio.abc.SocketStream) -> None:
        await anyio.sleep_forever()

    async with _dialled(serve) as stream:
        assert isinstance(stream, LoopStream) is (anyio_backend == "asyncio")


async def test_what_came_is_read_before_the_end() -> None:
    async def serve(peer: anyio.abc.SocketStream) -> None:
        await peer.send(b"hello, ")
        await peer.send(b"world")
        await peer.aclose()

    async with _dialled(serve) as stream:
        got = b""
        with anyio.fail_after(5):
            while True:
                try:
                    got += await stream.receive(4)  # max_bytes splits what was queued
                except anyio.EndOfStream:
                    break
        assert got == b"hello, world"
        with pytest.raises(anyio.EndOfStream):
            await stream.receive()


async def test_more_than_the_high_water_pauses_reading_and_loses_nothing() -> None:
    data = bytes(range(256)) * (4 * HIGH_WATER // 256)
    sent = anyio.Event()

    async def serve(peer: anyio.abc.SocketStream) -> None:
        await peer.send(data)  # completes once the kernel took it all: we read meanwhile
        sent.set()
        await anyio.sleep_forever()

    async with _dialled(serve) as stream:
        got = bytearray()
        with anyio.fail_after(10):
            while len(got) < len(data):
                chunk = await stream.receive()
                assert len(chunk) <= 65536
                got += chunk
                if isinstance(stream, LoopStream):
                    assert stream._size < HIGH_WATER + 65536 * 4  # bounded, not the stream
            await sent.wait()
        assert bytes(got) == data


async def test_a_reset_is_a_broken_resource() -> None:
    async def serve(peer: anyio.abc.SocketStream) -> None:
        await peer.send(b"x")
        sock = peer.extra(anyio.abc.SocketAttribute.raw_socket)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
        await peer.aclose()  # linger 0: an RST, not a FIN

    async with _dialled(serve) as stream:
        with anyio.fail_after(5):
            assert await stream.receive() == b"x"
            with pytest.raises(anyio.BrokenResourceError):
                await _read_to_the_end(stream)


async def _read_to_the_end(stream: anyio.abc.ByteStream) -> None:
    while True:
        await stream.receive()


async def test_a_close_from_another_task_stops_its_reader_and_sending() -> None:
    async def serve(peer: anyio.abc.SocketStream) -> None:
        await anyio.sleep_forever()

    async with _dialled(serve) as stream:
        caught: list[type[BaseException]] = []

        async def reader() -> None:
            try:
                await stream.receive()
            except anyio.ClosedResourceError as exc:
                caught.append(type(exc))

        with anyio.fail_after(5):
            async with anyio.create_task_group() as tg:
                tg.start_soon(reader)
                await anyio.wait_all_tasks_blocked()
                await anyio.aclose_forcefully(stream)
        assert caught == [anyio.ClosedResourceError]
        with pytest.raises(anyio.ClosedResourceError):
            await stream.send(b"late")


@pytest.mark.parametrize("anyio_backend", ["asyncio"])
@pytest.mark.parametrize("direct", [True, False], ids=["made-directly", "create_connection"])
async def test_both_ways_of_making_the_transport_carry_the_same_bytes(
    anyio_backend: str, direct: bool, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The default (selector) loop makes the transport directly; any other loop goes
    through ``create_connection``: both carry a request and its answer, then the end."""
    from mcpconn._http import loopstream

    assert loopstream._transport_maker(asyncio.get_running_loop()) is not None
    if not direct:
        monkeypatch.setattr(loopstream, "_transport_maker", lambda loop: None)

    async def serve(peer: anyio.abc.SocketStream) -> None:
        assert await peer.receive() == b"ping"
        await peer.send(b"pong")
        await peer.aclose()

    async with _dialled(serve) as stream:
        assert isinstance(stream, LoopStream)
        with anyio.fail_after(5):
            await stream.send(b"ping")  # at once: before the loop's own connection_made
            assert await stream.receive() == b"pong"
            with pytest.raises(anyio.EndOfStream):
                await _read_to_the_end(stream)


class _Transport(asyncio.Transport):
    """Just what `LoopStream` calls on its transport while data is queued."""

    def __init__(self) -> None:
        super().__init__()
        self.paused = False

    def set_write_buffer_limits(self, high: int) -> None:
        pass

    def pause_reading(self) -> None:
        self.paused = True

    def resume_reading(self) -> None:
        self.paused = False


@pytest.mark.parametrize("anyio_backend", ["asyncio"])
async def test_many_small_chunks_come_out_in_order_and_the_queue_stays_bounded(
    anyio_backend: str,
) -> None:
    """The received chunks are a list taken from a head index: a reader that lags
    behind a stream of tiny segments gets every byte in order, split where it asks for
    less, and the list is compacted as it is read, never longer than what is unread."""
    stream, transport = LoopStream(), _Transport()
    stream.connection_made(transport)
    sent, got = bytearray(), bytearray()
    for i in range(5000):
        for _ in range(1 + i % 2):  # the server stays ahead: the list is never emptied
            piece = bytes([i % 251]) * (1 + i % 7)
            sent += piece
            stream.data_received(piece)
        got += await stream.receive(3 if i % 5 == 0 else 65536)
        unread = len(stream._queued) - stream._head
        assert len(stream._queued) <= 2 * unread + 33
    assert stream.has_input
    while stream.has_input:
        got += await stream.receive()
    assert bytes(got) == bytes(sent)
    assert stream._queued == [] and stream._size == 0 and not transport.paused
