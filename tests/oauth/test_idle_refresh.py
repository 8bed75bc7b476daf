"""The seed story end to end with OAuth: a downstream MCP server behind its own
authorization server, a short access token, an idle gap, a refresh-token grant,
zero expired tokens sent. Loopback sockets only; asyncio and trio.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any

import anyio
import httpx
import pytest
from authorization_server import running_authorization_server

import mcpconn
from mcpconn import ReauthRequired, ServerConfig, State, Supervisor, TokenSource
from mcpconn.oauth import AuthorizationPrompt, OAuthProvider
from mcpconn.testing import MockServer

REDIRECT = "http://127.0.0.1:9/oauth/callback"  # never served: the user agent stops there
LIFETIME = 2.0


async def follow(prompt: AuthorizationPrompt) -> str:
    """A browser whose user approves at once: the redirect's target is the answer."""
    async with httpx.AsyncClient() as http:
        response = await http.get(prompt.url)
    assert response.status_code == 302
    return response.headers["location"]


def config(mcp: MockServer) -> ServerConfig:
    return ServerConfig("downstream", mcp.url, audience=mcp.url)


async def test_idle_gap_is_bridged_by_the_refresh_grant(leak_guard: object) -> None:
    prompts: list[AuthorizationPrompt] = []

    async def user_agent(prompt: AuthorizationPrompt) -> str:
        prompts.append(prompt)
        return await follow(prompt)

    register = leak_guard.register  # type: ignore[attr-defined]
    async with (
        MockServer() as mcp,
        running_authorization_server(mcp, access_lifetime=LIFETIME, on_issue=register) as auth,
    ):
        oauth = OAuthProvider(user_agent=user_agent, redirect_uri=REDIRECT)
        async with TokenSource(oauth) as tokens, Supervisor(tokens) as sup:
            conn = await sup.connect(config(mcp), "alice")
            with anyio.fail_after(10):
                await conn.wait_for(State.READY)
            assert "one" in str(await conn.call_tool("echo", {"text": "one"}))
            await anyio.sleep(LIFETIME + 0.5)  # the idle gap: the access token expires
            assert "two" in str(await conn.call_tool("echo", {"text": "two"}))
        stats = mcp.stats()
        assert stats.expired_tokens_seen == 0
        assert auth.authorizations == 1 and len(prompts) == 1  # one login, ever
        assert auth.grants["authorization_code"] == 1
        assert auth.grants["refresh_token"] >= 1
        assert auth.registrations == 1
        assert set(auth.resources) == {mcp.url}  # RFC 8707 on every grant
        assert prompts[0].resource == mcp.url and prompts[0].principal == "alice"
        assert "code_challenge=" in prompts[0].url and "url" not in repr(prompts[0])


async def test_revoked_refresh_token_parks_and_a_finished_login_resumes(leak_guard: Any) -> None:
    approved = anyio.Event()
    logins = 0

    async def user_agent(prompt: AuthorizationPrompt) -> str:
        nonlocal logins
        logins += 1
        if logins > 1:
            await approved.wait()  # a human, some time later
        return await follow(prompt)

    told: list[ReauthRequired] = []
    parked = anyio.Event()

    async def on_reauth(err: ReauthRequired) -> None:
        told.append(err)
        parked.set()

    async with (
        MockServer() as mcp,
        running_authorization_server(
            mcp, access_lifetime=LIFETIME, on_issue=leak_guard.register
        ) as auth,
        OAuthProvider(user_agent=user_agent, redirect_uri=REDIRECT, login_wait=1.0) as oauth,
        TokenSource(oauth) as tokens,
        Supervisor(tokens, on_reauth_required=on_reauth) as sup,
    ):
        conn = await sup.connect(config(mcp), "alice")
        with anyio.fail_after(10):
            await conn.wait_for(State.READY)
        await conn.call_tool("echo", {"text": "one"})
        auth.revoke_refresh_tokens()
        await anyio.sleep(LIFETIME + 0.5)  # idle past expiry; the refresh token is dead
        with pytest.raises(ReauthRequired):
            await conn.call_tool("echo", {"text": "two"})
        with anyio.fail_after(5):
            await conn.wait_for(State.NEEDS_REAUTH)
            await parked.wait()
        assert auth.refresh_attempts == 1  # tried once, forgotten, never looped
        assert logins == 2 and told and told[0].principal == "alice"
        approved.set()  # the user finishes the login: no other wiring needed
        with anyio.fail_after(10):
            await conn.wait_for(State.READY)
        assert "three" in str(await conn.call_tool("echo", {"text": "three"}))
        assert auth.refresh_attempts == 1 and auth.authorizations == 2
        assert mcp.stats().expired_tokens_seen == 0


async def test_without_a_user_agent_a_missing_login_is_reauth_required() -> None:
    async with MockServer() as mcp, running_authorization_server(mcp) as auth:
        calls: list[mcpconn.TokenRequest] = []
        oauth = OAuthProvider(redirect_uri=REDIRECT)

        async def provider(request: mcpconn.TokenRequest) -> mcpconn.Token:
            calls.append(request)
            return await oauth(request)

        provider_fn: Callable[[mcpconn.TokenRequest], Awaitable[mcpconn.Token]] = provider
        async with TokenSource(provider_fn) as tokens, Supervisor(tokens) as sup:
            conn = await sup.connect(config(mcp), "bob")
            with anyio.fail_after(10):
                await conn.wait_for(State.NEEDS_REAUTH)
        assert calls and calls[0].resource == mcp.url and calls[0].audience == mcp.url
        assert auth.authorizations == 0 and not auth.grants


async def test_a_refused_login_parks_and_on_reauth_required_starts_the_next_one() -> None:
    answers = ["access_denied", None]  # the user first clicks "deny", then "allow"

    async def user_agent(prompt: AuthorizationPrompt) -> str:
        location = await follow(prompt)
        if answers.pop(0) is None:
            return location
        state = location.split("state=")[1].split("&")[0]
        return f"{REDIRECT}?error=access_denied&state={state}"

    async with (
        MockServer() as mcp,
        running_authorization_server(mcp) as auth,
        OAuthProvider(user_agent=user_agent, redirect_uri=REDIRECT) as oauth,
        TokenSource(oauth) as tokens,
    ):

        def on_reauth(err: ReauthRequired) -> None:
            assert err.principal is not None
            oauth.start_login(err.principal, mcp.url, audience=mcp.url)

        async with Supervisor(tokens, on_reauth_required=on_reauth) as sup:
            conn = await sup.connect(config(mcp), "alice")
            with anyio.fail_after(10):
                await conn.wait_for(State.NEEDS_REAUTH)
                await conn.wait_for(State.READY)
            assert "ok" in str(await conn.call_tool("echo", {"text": "ok"}))
        assert answers == [] and auth.authorizations == 2
        assert auth.grants["authorization_code"] == 1  # the refused login never reached /token
