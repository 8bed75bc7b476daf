"""Reading a response body: bounded pieces, decoded here, and small error bodies drained.

A body is read raw and decoded by `ContentDecoder`, so a compressed body is never
inflated past what the caller's limits allow; a small sized error body is read
before the response closes, so its connection is reused instead of a new one per 401.
"""

from __future__ import annotations

from collections.abc import AsyncIterable, Callable, Iterable
from contextlib import suppress
from dataclasses import dataclass

import anyio
import httpx

from ..._core.bounds import parse_digits
from ..._core.content_coding import ContentDecoder
from ..._exceptions import MCPConnError
from ..._http.body import ResponseBody
from .errors import map_httpx_errors

__all__ = ["drain_small", "iterate"]

#: An error body at most this big, arriving within `_DRAIN_WAIT`, is read before the
#: response closes, so its connection is reused instead of a new one per 401.
_DRAIN_MAX = 4096
_DRAIN_WAIT = 0.05


async def drain_small(response: httpx.Response) -> None:
    """Read a small, sized error body (best effort) so the connection may be reused."""
    declared = parse_digits(response.headers.get("content-length", "").strip(), high=_DRAIN_MAX)
    if declared is None or response.is_stream_consumed:
        return
    body = response.stream
    if isinstance(body, ResponseBody):  # our transport's: its end, without httpx's iterators
        response.is_stream_consumed = True
        with suppress(httpx.HTTPError):
            await body.drain()
        return
    # raw bytes, never decoded (no inflating); a failure only means the socket closes below
    with anyio.move_on_after(_DRAIN_WAIT), suppress(httpx.HTTPError, httpx.StreamError):
        async for _ in response.aiter_raw():
            pass


async def iterate(response: httpx.Response, on_chunk: Callable[[bytes], bool]) -> bool:
    """Feed the body to ``on_chunk`` until it returns True (-> True) or raises.

    The body is read raw and decoded here (`ContentDecoder`), in bounded pieces: a
    compressed body is never inflated past what ``on_chunk``'s limits allow. (A
    response that an embedder's transport already read whole is fed as it is.)

    We never leave the body's iterator early: httpx/httpcore nest async
    generators, and abandoning them suspended at a ``yield`` leaves them to the
    garbage collector (trio warns). To stop early we cancel a scope around the
    loop instead: the cancellation lands inside the innermost read and unwinds
    every generator properly. Then the caller closes the response.
    """
    if response.is_stream_consumed:  # read and decoded by httpx already
        return _feed([response.content], on_chunk)
    decoder = ContentDecoder(response.headers.get("content-encoding"))
    body = response.stream
    if isinstance(body, ResponseBody):  # our transport's: read directly, no scope to stop it
        with map_httpx_errors():
            return await body.pump(_Decoded(decoder, on_chunk))
    stopped = False
    failure: MCPConnError | None = None
    with anyio.CancelScope() as scope, map_httpx_errors():
        async for raw in _raw_body(response):
            if stopped or failure is not None:
                continue
            try:
                stopped = _feed(decoder.feed(raw), on_chunk)
            except MCPConnError as exc:
                failure = exc
            if stopped or failure is not None:
                scope.cancel()
    if failure is not None:
        raise failure
    return stopped


def _raw_body(response: httpx.Response) -> AsyncIterable[bytes]:
    """The body's own stream: ``aiter_raw`` wraps it in one more generator, a byte
    counter and error context that nothing here reads (a listener holds it for hours)."""
    stream = response.stream
    if isinstance(stream, httpx.AsyncByteStream) and not response.is_closed:
        response.is_stream_consumed = True  # as aiter_raw marks it
        return stream
    return response.aiter_raw()


@dataclass(slots=True, eq=False)
class _Decoded:
    """``raw -> _feed(decoder.feed(raw), on_chunk)``: one object where a closure is three,
    for as long as a listener is held."""

    decoder: ContentDecoder
    on_chunk: Callable[[bytes], bool]

    def __call__(self, raw: bytes) -> bool:
        return _feed(self.decoder.feed(raw), self.on_chunk)


def _feed(pieces: Iterable[bytes], on_chunk: Callable[[bytes], bool]) -> bool:
    for piece in pieces:  # noqa: SIM110 - any() would hide that on_chunk has effects
        if piece and on_chunk(piece):
            return True
    return False
