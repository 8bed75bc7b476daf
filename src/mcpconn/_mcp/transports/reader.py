"""The JSON-RPC messages of one SSE response, fed to the session as they come.

One object per stream does what a closure per layer did (SSE events, body
chunks, content coding): a listener holds its stream for hours, thousands at
once, and each closure with its cells cost ~200-250 bytes and each layer a
suspended frame. On our own transport the body is read straight from its
`ResponseBody`; `MessageReader.read_opened` also lets go of the
``httpx.Response`` (its headers, ~1 KiB) once its status and type are checked.
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable
from typing import Any, Protocol

import anyio
import httpx

from ..._core import jsonrpc as _jsonrpc
from ..._core.content_coding import ContentDecoder
from ..._core.sse import ServerSentEvent, SSEDecoder
from ..._exceptions import InvalidMessage
from ..._http.body import ResponseBody
from .base import Dispatch, HTTPChannel, StreamState, is_message_event
from .bodies import iterate
from .opened import Opened

__all__ = ["MessageReader", "Watched"]

logger = logging.getLogger("mcpconn.transport")

_REPLIES = (_jsonrpc.Response, _jsonrpc.ErrorResponse)


class Watched(Protocol):
    """What a listener restarts on (the subscriptions in `Wanted`): its reader is stopped
    (`MessageReader.stop`) at the next edit."""

    def watch(self, watcher: MessageReader) -> None: ...

    def unwatch(self, watcher: MessageReader) -> None: ...


class MessageReader:
    """Feeds one response's SSE messages to ``dispatch`` until ``done()`` (or the reply).

    ``strict``: a message that is not JSON-RPC raises (a request's own stream);
    otherwise it is counted in ``counter[0]`` and skipped (a listener).
    ``reply_to``: the response to this id is kept in `reply`, not dispatched, and
    ends the read (a 2026 ``subscriptions/listen`` stream ends with its reply).
    """

    __slots__ = (
        "_channel",
        "_coding",
        "_counter",
        "_decoder",
        "_dispatch",
        "_done",
        "_reply_to",
        "_state",
        "_stopped",
        "_stopper",
        "_strict",
        "reply",
    )

    def __init__(
        self,
        channel: HTTPChannel,
        state: StreamState,
        dispatch: Dispatch,
        *,
        strict: bool,
        done: Any = None,
        counter: list[int] | None = None,
        reply_to: _jsonrpc.RequestId | None = None,
    ) -> None:
        self._channel = channel
        self._state = state
        self._dispatch = dispatch
        self._strict = strict
        self._done = done
        self._counter = counter
        self._reply_to = reply_to
        self._coding: ContentDecoder | None = None
        limits = channel.config.limits
        self._decoder = SSEDecoder(
            max_line_bytes=limits.max_sse_line_bytes,
            max_event_bytes=limits.max_sse_event_bytes,
            last_event_id=state.last_event_id,
        )
        self.reply: _jsonrpc.Response | _jsonrpc.ErrorResponse | None = None
        #: What `stop` stops: our transport's body, or a scope around another's read.
        self._stopper: ResponseBody | anyio.CancelScope | None = None
        self._stopped = False

    @property
    def stopped(self) -> bool:
        """Whether `stop` was called (the read then ends before its end or reply)."""
        return self._stopped

    def stop(self) -> None:
        """End `read_opened` from any task (sync): it returns True."""
        self._stopped = True
        stopper = self._stopper
        if isinstance(stopper, anyio.CancelScope):
            stopper.cancel()
        elif stopper is not None:
            stopper.stop()

    async def read(self, response: httpx.Response) -> bool:
        """Read ``response``'s body: True if stopped (done or the reply), False at its end."""
        if await iterate(response, self._on_chunk):
            return True
        return self.end()

    def read_opened(self, opened: Opened) -> Awaitable[bool]:
        """As `read`, of the response ``opened`` holds, and `stop` ends it; on our
        transport the response itself is let go of first (`Opened.detach`): the caller
        must hold none either. httpx's errors are the caller's to map (within
        `map_httpx_errors`). A plain function handing back our body's own read: a
        held stream's stack is one frame shallower."""
        detached = opened.detach()
        if detached is None:  # another transport's body: a scope to stop it
            return self._read_stoppable(opened.response)
        body, coding = detached
        del detached
        decoder = ContentDecoder(coding)  # checked even when it is the identity
        # an identity body needs no decoder kept for the stream's life (64 bytes)
        self._coding = None if decoder.identity else decoder
        del decoder
        self._stopper = body
        if self._stopped:
            body.stop()
        # the reader itself is the body's ``on_raw`` (and its `end`): no bound method kept
        return body.pump(self, held=not self._strict)

    async def _read_stoppable(self, response: httpx.Response) -> bool:
        with anyio.CancelScope() as scope:
            self._stopper = scope
            if self._stopped:
                scope.cancel()
            stopped = await self.read(response)
        return stopped or scope.cancelled_caught

    def end(self) -> bool:
        """The body ended: the decoder's last events (True if one ended the read)."""
        return any(self._on_event(event) for event in self._decoder.close())

    def __call__(self, raw: bytes) -> bool:
        """One raw piece of our transport's body (`ResponseBody.pump`): True to stop."""
        coding = self._coding
        if coding is None:  # the identity: as sent
            return bool(raw) and self._on_chunk(raw)
        for piece in coding.feed(raw):  # noqa: SIM110 - a plain loop, no generator
            if piece and self._on_chunk(piece):
                return True
        return False

    def _on_chunk(self, chunk: bytes) -> bool:
        decoder, state = self._decoder, self._state
        events = decoder.feed(chunk)
        state.last_event_id = decoder.last_event_id
        if decoder.retry is not None:
            state.retry_ms = decoder.retry
        for event in events:  # noqa: SIM110 - a plain loop: no generator per chunk
            if self._on_event(event):
                return True
        return False

    def _on_event(self, event: ServerSentEvent) -> bool:
        if not is_message_event(event):
            return False
        channel = self._channel
        try:
            message = channel.parse(event.data)
        except InvalidMessage:
            if self._strict:
                raise
            if self._counter is not None:
                self._counter[0] += 1
            logger.debug(
                "skipped an SSE event that is not JSON-RPC (id=%r)", channel.clean(event.id)
            )
            return False
        if (
            self._reply_to is not None
            and isinstance(message, _REPLIES)
            and message.id == self._reply_to
        ):
            self.reply = message
            return True
        self._dispatch(message)
        done = self._done
        return done is not None and bool(done())
