"""Which transport a client gets: H11Transport where it can serve, httpx's own otherwise.

Also what the choice means for a supervisor: one shared client, and a cap per origin that
leaves descriptors for the other origins.
"""

from __future__ import annotations

import anyio
import anyio.abc
import httpx
import pytest
from raw_http import Raw, client, keepalive, raw_server

from mcpconn import ServerConfig, State, Supervisor, TokenSource
from mcpconn._http import H11Transport, make_client, uses_h11
from mcpconn._http.shards import ClientShards
from mcpconn.testing import JWTProvider, MockServer


async def test_unsupported_settings_fall_back_to_httpx(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in ("HTTP_PROXY", "HTTPS_PROXY", "ALL_PROXY", "http_proxy", "https_proxy"):
        monkeypatch.delenv(name, raising=False)
    async with make_client() as c:
        assert isinstance(c._transport, H11Transport)
    assert not uses_h11(http2=True)  # HTTP/2 is httpx's (with the h2 extra)
    assert not uses_h11(proxy="http://127.0.0.1:9")
    mine = httpx.MockTransport(lambda request: httpx.Response(204))
    async with make_client(transport=mine) as c:
        assert c._transport is mine
        assert (await c.get("http://127.0.0.1:9/")).status_code == 204
    monkeypatch.setenv("HTTPS_PROXY", "http://127.0.0.1:9")
    assert not uses_h11()
    async with make_client() as c:
        assert not isinstance(c._transport, H11Transport)
        assert c._mounts  # httpx read the proxy from the environment, as it always does
    assert uses_h11(trust_env=False)
    assert not ClientShards().h11


async def test_unsupported_scheme_is_httpx_unsupported_protocol() -> None:
    async with client() as (c, _transport):
        with pytest.raises(httpx.UnsupportedProtocol):
            await c.get("ftp://127.0.0.1/")


async def test_supervisor_connections_share_one_client_on_h11() -> None:
    async with (
        MockServer() as mock,
        TokenSource(JWTProvider(mock.issuer)) as tokens,
        Supervisor(tokens) as sup,
    ):
        config = ServerConfig("mock", mock.url, transport="streamable-http")
        conns = [await sup.connect(config, f"p{i}") for i in range(3)]
        with anyio.fail_after(10):
            for conn in conns:
                await conn.wait_for(State.READY)
        clients = {id(conn.client) for conn in conns}
        assert len(clients) == 1
        transport = conns[0].client._transport
        assert isinstance(transport, H11Transport)
        assert (await conns[0].call_tool("echo", {"text": "hi"}))["content"][0]["text"] == "hi"
        assert transport.sockets >= 3  # a listener stream each, plus reused POST sockets


async def test_the_default_cap_leaves_descriptors_for_other_origins() -> None:
    import resource

    ref: list[Raw] = []
    async with raw_server(keepalive(ref)) as raw, client() as (c, transport):
        ref.append(raw)
        await c.get(raw.url)
        pool = transport.origin(httpx.URL(raw.url))
        assert pool is not None and pool.max_connections is not None
        soft, _ = resource.getrlimit(resource.RLIMIT_NOFILE)
        assert 256 <= pool.max_connections <= max(256, soft - soft // 4)
