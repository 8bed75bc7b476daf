"""The one place httpx's errors become ours: every request error typed, nothing else touched."""

from __future__ import annotations

import httpx
import pytest

from mcpconn import ConnectError, MCPConnError, NetworkError, ProtocolError, ReadTimeout
from mcpconn._exceptions import TransportError
from mcpconn._mcp.transports import map_httpx_errors

REQUEST = httpx.Request("GET", "http://127.0.0.1/")


@pytest.mark.parametrize(
    ("raised", "expected"),
    [
        (httpx.ReadTimeout, ReadTimeout),
        (httpx.ConnectTimeout, ConnectError),
        (httpx.WriteTimeout, NetworkError),
        (httpx.PoolTimeout, NetworkError),
        (httpx.ConnectError, ConnectError),
        (httpx.ReadError, NetworkError),
        (httpx.WriteError, NetworkError),
        (httpx.CloseError, NetworkError),
        (httpx.RemoteProtocolError, NetworkError),
        (httpx.LocalProtocolError, NetworkError),
        (httpx.ProxyError, NetworkError),
        (httpx.UnsupportedProtocol, ProtocolError),
        (httpx.DecodingError, ProtocolError),
        (httpx.TooManyRedirects, TransportError),
    ],
)
def test_every_request_error_becomes_ours_with_its_cause(
    raised: type[httpx.RequestError], expected: type[MCPConnError]
) -> None:
    error = raised("the server's text: Bearer s3cret", request=REQUEST)
    with pytest.raises(expected) as caught, map_httpx_errors():
        raise error
    assert type(caught.value) is expected
    assert caught.value.__cause__ is error
    assert "s3cret" not in str(caught.value)  # the type's name only, never the text


@pytest.mark.parametrize("error", [ValueError("x"), MCPConnError("ours"), KeyboardInterrupt()])
def test_anything_else_passes_through_untouched(error: BaseException) -> None:
    with pytest.raises(type(error)) as caught, map_httpx_errors():
        raise error
    assert caught.value is error


def test_no_error_no_effect() -> None:
    with map_httpx_errors():
        value = 1
    assert value == 1
