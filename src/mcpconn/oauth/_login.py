"""One authorization-code login: PKCE S256 and ``state``, the embedder's user agent,
the redirect's checks (`parse_redirect`), then the code exchange.

The user agent is the embedder's (``async (AuthorizationPrompt) -> redirect URL``):
a browser pop-up, a link sent to the user, or in tests an HTTP client that
follows the authorization server's redirect.
"""

from __future__ import annotations

import secrets
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field

import httpx

from .._exceptions import OAuthError, ReauthRequired
from ._authorization import authorization_url, parse_redirect, verifier_from
from ._discovery import AuthorizationServer
from ._dpop import DPoPKey
from ._grants import exchange_code
from ._identity import ClientRegistration
from ._responses import TokenResponse

__all__ = ["AuthorizationPrompt", "UserAgent", "run_code_flow"]


@dataclass(frozen=True)
class AuthorizationPrompt:
    """What the user agent is asked to do: open ``url``, return where it ended."""

    url: str = field(repr=False)
    principal: str
    resource: str
    scope: str | None


UserAgent = Callable[[AuthorizationPrompt], Awaitable[str]]


async def run_code_flow(
    http: httpx.AsyncClient,
    server: AuthorizationServer,
    client: ClientRegistration,
    *,
    user_agent: UserAgent,
    redirect_uri: str,
    principal: str,
    server_url: str,
    resource: str,
    scope: str | None,
    dpop: DPoPKey | None = None,
) -> TokenResponse:
    """The token response of one login; `ReauthRequired` when the login was refused or
    forged (only a human can start another), `OAuthError` from the code exchange."""
    if not server.supports_s256:
        raise ReauthRequired("the authorization server does not offer PKCE S256")
    verifier = verifier_from(secrets.token_bytes(32))
    state = secrets.token_urlsafe(32)
    url = authorization_url(
        server,
        client_id=client.client_id,
        redirect_uri=redirect_uri,
        state=state,
        verifier=verifier,
        scope=scope,
        resource=resource,
    )
    ended_at = await user_agent(AuthorizationPrompt(url, principal, server_url, scope))
    try:
        code = parse_redirect(
            ended_at,
            redirect_uri=redirect_uri,
            state=state,
            issuer=server.issuer,
            iss_supported=server.iss_parameter_supported,
        )
    except OAuthError as exc:
        raise ReauthRequired("the login was refused or invalid", principal=principal) from exc
    return await exchange_code(
        http,
        server,
        client,
        code=code,
        redirect_uri=redirect_uri,
        verifier=verifier,
        resource=resource,
        dpop=dpop,
    )
