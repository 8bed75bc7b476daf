"""mcpconn's token rules inside the official SDK 2.x client (httpx2), against the SDK server."""

from __future__ import annotations

import time

import anyio
import httpx2
import jwt
import pytest
from mcp import Client
from mcp.client.streamable_http import streamable_http_client
from sdkpeer import SUBJECT, SDKServers, mint

from mcpconn import TokenRequest, TokenSource
from mcpconn.contrib.sdk_auth import SDKBearerAuth

pytestmark = pytest.mark.interop


async def test_the_sdk_client_refreshes_once_on_a_401_through_the_token_source(
    sdk: SDKServers,
) -> None:
    issued: list[str] = []
    raws: list[str] = []

    async def provider(request: TokenRequest) -> str:
        # first a token the server rejects (wrong key, not expired), then a good one
        claims = {"sub": SUBJECT, "exp": int(time.time()) + 600}
        token = jwt.encode(claims, "not-the-secret-0123456789abcdef0123", algorithm="HS256")
        issued.append("bad" if not issued else "good")
        raws.append(token if len(issued) == 1 else mint())
        return raws[-1]

    auth = SDKBearerAuth(TokenSource(provider), "alice")
    with anyio.fail_after(30):
        async with (
            httpx2.AsyncClient(auth=auth) as http,
            Client(streamable_http_client(sdk("stateful").url, http_client=http)) as client,
        ):
            result = await client.call_tool("echo", {"text": "via the SDK"})
            again = await client.call_tool("echo", {"text": "again"})
    assert result.content[0].text == "via the SDK"  # type: ignore[union-attr]
    assert again.content[0].text == "again"  # type: ignore[union-attr]
    assert issued == ["bad", "good"]  # one forced refresh, then the good token is reused
    assert auth.last_challenge is not None  # the 401's challenge was kept
    assert not any(raw in repr(auth) for raw in raws)
