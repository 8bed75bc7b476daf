"""mcpconn.oauth against the official SDK's own authorization server components.

The SDK process (sdk_auth_server.py) serves its auth routes (metadata, dynamic
registration, authorize, token) and an MCP server behind its bearer middleware;
mcpconn discovers, registers, logs in through a user agent that follows the
SDK's redirect, then bridges an idle gap with a refresh grant. The SDK counts
every expired token it is shown.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import anyio
import httpx
import pytest
from sdkpeer import SDKProcess

from mcpconn import ServerConfig, State, Supervisor, TokenSource
from mcpconn.oauth import AuthorizationPrompt, OAuthProvider

pytestmark = pytest.mark.interop

LIFETIME = 2.0  # the script's default access-token lifetime
REDIRECT = "http://127.0.0.1:9/oauth/callback"


@pytest.fixture(scope="module")
def sdk_auth() -> Iterator[str]:
    proc = SDKProcess(script=Path(__file__).with_name("sdk_auth_server.py"))
    try:
        proc.wait_ready()
        yield f"http://127.0.0.1:{proc.port}"
    finally:
        proc.kill()


async def follow(prompt: AuthorizationPrompt) -> str:
    async with httpx.AsyncClient() as http:
        response = await http.get(prompt.url)
    assert response.status_code == 302, response.status_code
    return response.headers["location"]


async def stats(base: str) -> dict[str, Any]:
    async with httpx.AsyncClient() as http:
        data: dict[str, Any] = (await http.get(f"{base}/_stats")).json()
    return data


async def test_login_refresh_and_no_expired_token_with_the_sdk_auth_server(sdk_auth: str) -> None:
    url = f"{sdk_auth}/mcp"
    before = await stats(sdk_auth)
    oauth = OAuthProvider(user_agent=follow, redirect_uri=REDIRECT)
    async with TokenSource(oauth) as tokens, Supervisor(tokens) as sup:
        conn = await sup.connect(ServerConfig("sdk", url, audience=url), "alice")
        with anyio.fail_after(15):
            await conn.wait_for(State.READY)
        assert "one" in str(await conn.call_tool("echo", {"text": "one"}))
        await anyio.sleep(LIFETIME + 0.6)  # the idle gap
        assert "two" in str(await conn.call_tool("echo", {"text": "two"}))
    after = await stats(sdk_auth)

    def delta(name: str) -> int:
        return int(after.get(name, 0)) - int(before.get(name, 0))

    assert delta("registrations") == 1
    assert delta("authorizations") == 1 and delta("authorization_code") == 1
    assert delta("refresh_token") >= 1
    assert delta("expired_tokens") == 0
    assert after["resources"] == [url]  # RFC 8707: the PRM's resource, exactly
