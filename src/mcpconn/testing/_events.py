"""Logical SSE streams that outlive their HTTP connections, and the pump that writes them.

An `EventStream` is a bounded log of encoded frames plus one wake-up event: a
writer sleeps until something is pushed, so an idle listener costs a parked
task and a few small objects, never a polling loop. Resumption is replaying
the log after the ``Last-Event-ID`` the client sends.
"""

from __future__ import annotations

import json
from collections import deque
from collections.abc import Callable
from typing import Any

import anyio

from ._faults import Fault
from ._http import Exchange

__all__ = ["SSE_HEADERS", "EventStream", "encode_json", "pump", "sse_frame"]

SSE_HEADERS = (
    ("content-type", "text/event-stream"),
    ("cache-control", "no-cache, no-transform"),
    ("x-accel-buffering", "no"),
)
_BATCH_BYTES = 64 << 10


def encode_json(message: Any) -> bytes:
    return json.dumps(message, separators=(",", ":")).encode()


def sse_frame(
    data: bytes,
    *,
    event_id: str | None = None,
    event: str | None = "message",
    retry_ms: int | None = None,
) -> bytes:
    parts: list[bytes] = []
    if event_id is not None:
        parts.append(b"id: " + event_id.encode() + b"\n")
    if retry_ms is not None:
        parts.append(b"retry: %d\n" % retry_ms)
    if event is not None:
        parts.append(b"event: " + event.encode() + b"\n")
    parts.append(b"data: " + data + b"\n\n")
    return b"".join(parts)


class EventStream:
    """One logical stream: the GET listener, a POST response, a legacy or listen stream.

    ``resumable`` streams put ``id:`` lines on their frames (``<key>-<seq>``).
    Only one connection writes a stream at a time; a newer one supersedes it.
    """

    __slots__ = (
        "_generation",
        "_log",
        "_next",
        "_space",
        "_wake",
        "accepts",
        "dropped",
        "finished",
        "key",
        "principal",
        "resumable",
        "subscription_id",
        "transform",
        "writers",
        "written",
    )

    def __init__(
        self,
        key: str,
        principal: str | None,
        *,
        resumable: bool,
        maxlen: int = 1024,
    ) -> None:
        self.key = key
        self.principal = principal
        self.resumable = resumable
        self._log: deque[tuple[int, bytes]] = deque(maxlen=maxlen)
        self._next = 1
        self._wake: anyio.Event | None = None
        self._generation = 0
        self._space: anyio.Event | None = None
        #: Connections writing this stream now (0 or 1, briefly 2 during a takeover).
        self.writers = 0
        #: The last seq a writer handed to the socket.
        self.written = 0
        self.finished = False
        self.dropped = 0
        #: For 2026 listen streams: the subscription id and the accepted notification methods.
        self.subscription_id: Any = None
        self.accepts: Callable[[str, dict[str, Any] | None], bool] | None = None
        self.transform: Callable[[str, dict[str, Any] | None], bytes] | None = None

    @property
    def last_seq(self) -> int:
        return self._next - 1

    def event_id(self, seq: int) -> str:
        return f"{self.key}-{seq}"

    def push(self, data: bytes, *, event: str | None = "message") -> int:
        """Append one frame (``data`` is encoded JSON) and wake the writer."""
        seq = self._next
        self._next += 1
        if len(self._log) == self._log.maxlen:
            self.dropped += 1
        event_id = self.event_id(seq) if self.resumable else None
        self._log.append((seq, sse_frame(data, event_id=event_id, event=event)))
        self._notify()
        return seq

    def finish(self) -> None:
        """No more frames: a writer ends the response after draining the log."""
        self.finished = True
        self._notify()

    def _notify(self) -> None:
        if self._wake is not None:
            self._wake.set()
            self._wake = None

    def frames_after(self, seq: int) -> list[tuple[int, bytes]]:
        log = self._log
        if not log or log[-1][0] <= seq:
            return []
        start = max(seq - log[0][0] + 1, 0)  # seqs are contiguous: index, don't scan
        return [log[i] for i in range(start, len(log))]

    def attach(self) -> int:
        """Become the one writer of this stream; returns the writer's generation."""
        self._generation += 1
        self._notify()
        return self._generation

    def mark_written(self, seq: int) -> None:
        self.written = seq
        if self._space is not None:
            self._space.set()
            self._space = None

    async def wait_for_space(self, high_water: int) -> None:
        """Backpressure for bulk emitters: wait while a writer is ``high_water`` frames behind."""
        while self.writers and not self.finished and self.last_seq - self.written > high_water:
            if self._space is None:
                self._space = anyio.Event()
            await self._space.wait()

    def superseded(self, generation: int) -> bool:
        return generation != self._generation

    async def wait(self) -> None:
        """Sleep until the next push, finish or takeover (call only after draining)."""
        if self._wake is None:
            self._wake = anyio.Event()
        await self._wake.wait()


async def pump(
    stream: EventStream,
    exchange: Exchange,
    *,
    after: int,
    fault: Fault | None = None,
    first: bytes = b"",
    on_writing: Callable[[], None] | None = None,
) -> None:
    """Write ``stream`` (frames after seq ``after``) to an open chunked response.

    Ends the response when the stream finishes or another writer takes over.
    Stream faults (`cut`, `cut_mid_event`) strike after their N events.
    ``on_writing`` is called once this writer counts in ``stream.writers``.
    """
    generation = stream.attach()
    stream.writers += 1
    if on_writing is not None:
        on_writing()
    try:
        await _write_stream(stream, exchange, generation, after, fault, first)
    finally:
        stream.writers -= 1
        stream.mark_written(stream.last_seq)  # nobody is behind any more: free bulk emitters


async def _write_stream(
    stream: EventStream,
    exchange: Exchange,
    generation: int,
    after: int,
    fault: Fault | None,
    first: bytes,
) -> None:
    pos = after
    sent = 0
    limit = fault.after_events if fault is not None else None
    if first:
        await exchange.send(first)
    while True:
        if stream.superseded(generation):
            await exchange.end_stream()
            return
        frames = stream.frames_after(pos)
        if frames:
            if limit is None:
                batch: list[bytes] = []
                size = 0
                for seq, frame in frames:
                    batch.append(frame)
                    size += len(frame)
                    pos = seq
                    if size >= _BATCH_BYTES:
                        await exchange.send(b"".join(batch))
                        stream.mark_written(pos)
                        batch, size = [], 0
                if batch:
                    await exchange.send(b"".join(batch))
                    stream.mark_written(pos)
                continue
            for seq, frame in frames:
                if sent >= limit:
                    assert fault is not None
                    if fault.kind == "cut_mid_event":
                        await exchange.send(frame[: max(1, len(frame) // 2)])
                        await exchange.abort()
                    else:
                        await exchange.end_stream()
                    return
                await exchange.send(frame)
                pos = seq
                sent += 1
                stream.mark_written(pos)
            continue
        if stream.finished:
            if limit is not None and fault is not None and fault.kind == "cut_mid_event":
                await exchange.abort()
                return
            await exchange.end_stream()
            return
        await stream.wait()
