"""httpx's exceptions as ours: the one place they are translated (`map_httpx_errors`).

The shape of httpx's own ``map_httpcore_exceptions``; a reusable class context
manager, entered several times per request.
"""

from __future__ import annotations

from typing import Any

import httpx

from ..._exceptions import (
    ConnectError,
    NetworkError,
    ProtocolError,
    ReadTimeout,
    TransportError,
)

__all__ = ["map_httpx_errors"]


class _HttpxErrors:
    """httpx's exceptions as ours (a class, not a generator: no generator per use)."""

    __slots__ = ()

    def __enter__(self) -> None:
        return None

    def __exit__(
        self, kind: type[BaseException] | None, exc: BaseException | None, tb: Any
    ) -> None:
        if exc is None or not isinstance(exc, httpx.HTTPError):
            return
        name = type(exc).__name__
        if isinstance(exc, httpx.ReadTimeout):
            raise ReadTimeout(f"no data within the read timeout ({name})") from exc
        if isinstance(exc, httpx.ConnectTimeout):
            raise ConnectError(f"timed out connecting or sending ({name})") from exc
        if isinstance(exc, httpx.TimeoutException):  # write and pool timeouts
            raise NetworkError(f"timed out connecting or sending ({name})") from exc
        if isinstance(exc, httpx.ConnectError):
            raise ConnectError(f"network error ({name})") from exc
        if isinstance(exc, (httpx.ReadError, httpx.WriteError, httpx.CloseError)):
            raise NetworkError(f"network error ({name})") from exc
        if isinstance(exc, httpx.RemoteProtocolError):
            raise NetworkError(f"connection broken ({name})") from exc
        if isinstance(exc, httpx.ProxyError):
            raise NetworkError(f"proxy error ({name})") from exc
        if isinstance(exc, httpx.UnsupportedProtocol):
            raise ProtocolError(f"unsupported URL scheme ({name})") from exc
        if isinstance(exc, httpx.TransportError):
            raise NetworkError(f"transport error ({name})") from exc
        if isinstance(exc, httpx.DecodingError):  # an embedder's transport that decodes for us
            raise ProtocolError(f"the body does not decode ({name})") from exc
        if isinstance(exc, httpx.RequestError):  # anything else httpx says about a request
            raise TransportError(f"request failed ({name})") from exc


_HTTPX_ERRORS = _HttpxErrors()


def map_httpx_errors() -> _HttpxErrors:
    """Translate httpx's exceptions into ours, once, at the boundary."""
    return _HTTPX_ERRORS
