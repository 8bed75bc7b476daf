"""A request sent through `HTTPChannel.open`, then its response: one object per request.

An async context manager object, not a generator's: a listener held for hours
keeps no generator frame, and no request once it is sent. Our transport's
unread body can be detached from its `httpx.Response` (`Opened.detach`), so an
idle stream holds neither the response nor its headers.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import TYPE_CHECKING

import httpx

from ..._http.body import ResponseBody
from .bodies import drain_small
from .errors import map_httpx_errors

if TYPE_CHECKING:
    from .base import HTTPChannel

__all__ = ["Opened"]


class Opened:
    """`HTTPChannel.open`'s request and then its response: an async context manager
    object, not a generator's (a listener held for hours keeps no generator frame)."""

    __slots__ = ("_body", "_channel", "_request", "_response")

    def __init__(
        self,
        channel: HTTPChannel,
        method: str,
        url: str,
        headers: Mapping[str, str],
        content: bytes | None,
    ) -> None:
        self._channel = channel
        self._request: tuple[str, str, Mapping[str, str], bytes | None] | None = (
            method,
            url,
            headers,
            content,
        )
        self._response: httpx.Response | None = None
        self._body: ResponseBody | None = None

    @property
    def response(self) -> httpx.Response:
        assert self._response is not None, "not entered, or detached"
        return self._response

    def detach(self) -> tuple[ResponseBody, str | None] | None:
        """Our transport's unread body and its ``Content-Encoding``, the response let go
        of (closing closes the body): a stream held for hours needs nothing else of it
        (its headers alone are ~1 KiB). None for any other body: keep the response."""
        response = self._response
        body = response.stream if response is not None else None
        if response is None or not isinstance(body, ResponseBody) or response.is_stream_consumed:
            return None
        coding = response.headers.get("content-encoding")
        response.is_stream_consumed = True  # read from here on, by the body's own pump
        self._body, self._response = body, None
        return body, coding

    async def __aenter__(self) -> httpx.Response:
        # sent: a stream keeps none of its request, nor does this frame while it waits
        response = self._response = await self._channel._send(*self._take_request())
        return response

    def _take_request(self) -> tuple[str, str, Mapping[str, str], bytes | None]:
        request, self._request = self._request, None
        assert request is not None, "entered twice"
        return request

    async def __aexit__(self, *exc_info: object) -> None:
        response, self._response = self._response, None
        body, self._body = self._body, None
        if body is not None:
            with map_httpx_errors():
                await body.aclose()
        if response is None:
            return
        if response.status_code >= 400:
            await drain_small(response)
        with map_httpx_errors():
            await response.aclose()
