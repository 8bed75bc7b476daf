"""Dynamic client registration happens once per issuer, even when first logins race."""

from __future__ import annotations

from typing import Any

import anyio
import httpx
from authorization_server import running_authorization_server

from mcpconn import Backoff, ServerConfig, State, Supervisor, TokenSource
from mcpconn.oauth import AuthorizationPrompt, OAuthProvider
from mcpconn.testing import MockServer

REDIRECT = "http://127.0.0.1:9/oauth/callback"  # never served: the user agent stops there


async def first_logins_at_once(leak_guard: Any, *, failures: int) -> tuple[Any, set[str]]:
    """Alice and Bob log in at once behind a slow registration; (the server, client ids)."""
    prompts: list[AuthorizationPrompt] = []

    async def user_agent(prompt: AuthorizationPrompt) -> str:
        prompts.append(prompt)
        async with httpx.AsyncClient() as http:
            response = await http.get(prompt.url)
        return response.headers["location"]

    async with (
        MockServer() as mcp,
        running_authorization_server(mcp, on_issue=leak_guard.register) as auth,
        OAuthProvider(user_agent=user_agent, redirect_uri=REDIRECT) as oauth,
        TokenSource(oauth, failure_cooldown=0) as tokens,
        Supervisor(tokens, backoff=Backoff(initial=0.05, max_delay=0.1)) as sup,
    ):
        # a slow registration: both logins reach it before the first answer is stored
        auth.registration_delay = 0.3
        auth.registration_failures = failures
        config = ServerConfig("downstream", mcp.url, audience=mcp.url)
        with anyio.fail_after(15):
            async with anyio.create_task_group() as tg:
                for principal in ("alice", "bob"):
                    tg.start_soon(sup.connect, config, principal)
            for conn in sup.connections():
                await conn.wait_for(State.READY)
        assert len(sup.connections()) == 2
    assert {p.principal for p in prompts} == {"alice", "bob"}
    assert auth.grants["authorization_code"] == 2
    return auth, {p.url.split("client_id=")[1].split("&")[0] for p in prompts}


async def test_two_users_logging_in_at_once_send_one_registration(leak_guard: Any) -> None:
    auth, client_ids = await first_logins_at_once(leak_guard, failures=0)
    assert auth.registration_requests == 1 and auth.registrations == 1
    assert auth.registration_peak == 1
    assert len(client_ids) == 1  # two logins, one client


async def test_a_failed_registration_is_retried_by_one_waiting_login(leak_guard: Any) -> None:
    auth, client_ids = await first_logins_at_once(leak_guard, failures=1)
    # the first answer was a 503: the login that waited for it registered, once;
    # the failed one, retrying later, found that registration stored
    assert auth.registration_requests == 2 and auth.registrations == 1
    assert auth.registration_peak == 1  # one after the other, never both at once
    assert len(client_ids) == 1
