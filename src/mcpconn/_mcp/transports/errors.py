"""The one boundary where httpx's errors become ours (the shape of httpx's own
``map_httpcore_exceptions``): every request error typed, its cause kept, the message
only the error's type name (never a server's text), anything else passed on.
"""

from __future__ import annotations

from typing import Literal

import httpx

from ..._exceptions import (
    ConnectError,
    MCPConnError,
    NetworkError,
    ProtocolError,
    ReadTimeout,
    TransportError,
)

__all__ = ["map_httpx_errors"]


class map_httpx_errors:
    """Translate httpx's exceptions into ours, once, at the boundary.

    A class, not a generator: a listener holds one for hours, and a
    ``@contextmanager`` costs a generator and its frame per use; its ``__exit__``
    static, so that a ``with`` keeps no bound method on the frame meanwhile.
    """

    __slots__ = ()

    def __enter__(self) -> None:
        return None

    @staticmethod
    def __exit__(
        kind: type[BaseException] | None, exc: BaseException | None, tb: object
    ) -> Literal[False]:
        if kind is None or not issubclass(kind, httpx.RequestError):
            return False  # ours, the caller's, or no error: passed on as it is
        raise _translated(exc) from exc


def _translated(exc: BaseException | None) -> MCPConnError:
    name = type(exc).__name__
    if isinstance(exc, httpx.ReadTimeout):
        return ReadTimeout(f"no data within the read timeout ({name})")
    if isinstance(exc, httpx.ConnectTimeout):
        return ConnectError(f"timed out connecting or sending ({name})")
    if isinstance(exc, httpx.TimeoutException):  # write and pool timeouts
        return NetworkError(f"timed out connecting or sending ({name})")
    if isinstance(exc, httpx.ConnectError):
        return ConnectError(f"network error ({name})")
    if isinstance(exc, (httpx.ReadError, httpx.WriteError, httpx.CloseError)):
        return NetworkError(f"network error ({name})")
    if isinstance(exc, httpx.RemoteProtocolError):
        return NetworkError(f"connection broken ({name})")
    if isinstance(exc, httpx.ProxyError):
        return NetworkError(f"proxy error ({name})")
    if isinstance(exc, httpx.UnsupportedProtocol):
        return ProtocolError(f"unsupported URL scheme ({name})")
    if isinstance(exc, httpx.TransportError):
        return NetworkError(f"transport error ({name})")
    if isinstance(exc, httpx.DecodingError):  # an embedder's transport that decodes for us
        return ProtocolError(f"the body does not decode ({name})")
    return TransportError(f"request failed ({name})")  # anything else httpx says about a request
