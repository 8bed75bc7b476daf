"""Token-endpoint grants: authorization code, refresh, client credentials, JWT bearer,
token exchange (RFC 8693). Each builds its form, adds client authentication and
reads the answer with `parse_token_response`; nothing here decides *when*.
"""

from __future__ import annotations

import httpx

from ._discovery import AuthorizationServer
from ._dpop import DPoPKey
from ._http import post
from ._identity import ClientRegistration, apply_client_auth
from ._responses import TokenResponse, parse_token_response

__all__ = [
    "JWT_BEARER",
    "TOKEN_EXCHANGE",
    "client_credentials",
    "exchange_code",
    "jwt_bearer",
    "refresh",
    "request_token",
    "token_exchange",
]

JWT_BEARER = "urn:ietf:params:oauth:grant-type:jwt-bearer"
TOKEN_EXCHANGE = "urn:ietf:params:oauth:grant-type:token-exchange"


async def request_token(
    http: httpx.AsyncClient,
    token_endpoint: str,
    form: dict[str, str],
    *,
    client: ClientRegistration | None = None,
    auth_methods_supported: tuple[str, ...] | None = None,
    dpop: DPoPKey | None = None,
) -> TokenResponse:
    """POST one grant to ``token_endpoint``; client authentication as the server supports.

    With ``dpop``, the request carries a proof, and a ``use_dpop_nonce`` answer is
    retried once with the server's nonce (RFC 9449 section 8).
    """
    headers: dict[str, str] = {}
    if client is not None:
        method = client.method_for(auth_methods_supported)
        headers = apply_client_auth(client, method, form)
    for attempt in range(2):
        if dpop is not None:
            headers["DPoP"] = dpop.proof("POST", token_endpoint)
        status, body, answer = await post(http, token_endpoint, form=form, headers=headers)
        nonce = answer.get("dpop-nonce") if dpop is not None and status == 400 else None
        if attempt == 0 and dpop is not None and dpop.remember_nonce(token_endpoint, nonce):
            continue
        break
    return parse_token_response(status, body)


def _with(form: dict[str, str], **optional: str | None) -> dict[str, str]:
    form.update({k: v for k, v in optional.items() if v})
    return form


async def exchange_code(
    http: httpx.AsyncClient,
    server: AuthorizationServer,
    client: ClientRegistration,
    *,
    code: str,
    redirect_uri: str,
    verifier: str,
    resource: str,
    dpop: DPoPKey | None = None,
) -> TokenResponse:
    """The authorization code (with its PKCE verifier) for a token at ``server``."""
    form = {
        "grant_type": "authorization_code",
        "code": code,
        "redirect_uri": redirect_uri,
        "code_verifier": verifier,
        "resource": resource,
    }
    return await _grant(http, server, client, form, dpop)


async def refresh(
    http: httpx.AsyncClient,
    server: AuthorizationServer,
    client: ClientRegistration | None,
    *,
    refresh_token: str,
    resource: str,
    dpop: DPoPKey | None = None,
) -> TokenResponse:
    """A refresh-token grant at ``server`` (the caller keeps any rotated refresh token)."""
    form = {"grant_type": "refresh_token", "refresh_token": refresh_token, "resource": resource}
    return await _grant(http, server, client, form, dpop)


async def _grant(
    http: httpx.AsyncClient,
    server: AuthorizationServer,
    client: ClientRegistration | None,
    form: dict[str, str],
    dpop: DPoPKey | None,
) -> TokenResponse:
    """A grant to ``server``'s token endpoint, authenticated the way ``server`` supports."""
    methods = server.token_endpoint_auth_methods_supported
    return await request_token(
        http, server.token_endpoint, form, client=client, auth_methods_supported=methods, dpop=dpop
    )


async def client_credentials(
    http: httpx.AsyncClient,
    token_endpoint: str,
    *,
    client: ClientRegistration | None,
    resource: str | None = None,
    scope: str | None = None,
    assertion: str | None = None,
    auth_methods_supported: tuple[str, ...] | None = None,
) -> TokenResponse:
    """client_credentials with a secret, or with ``assertion`` (private_key_jwt, RFC 7523)."""
    form = _with({"grant_type": "client_credentials"}, resource=resource, scope=scope)
    if assertion is not None:
        form["client_assertion_type"] = "urn:ietf:params:oauth:client-assertion-type:jwt-bearer"
        form["client_assertion"] = assertion
        client = None
    return await request_token(
        http, token_endpoint, form, client=client, auth_methods_supported=auth_methods_supported
    )


async def jwt_bearer(
    http: httpx.AsyncClient,
    token_endpoint: str,
    *,
    assertion: str,
    client: ClientRegistration | None = None,
    resource: str | None = None,
    scope: str | None = None,
    auth_methods_supported: tuple[str, ...] | None = None,
) -> TokenResponse:
    """RFC 7523 section 2.1: an assertion as the grant."""
    form = _with({"grant_type": JWT_BEARER, "assertion": assertion}, resource=resource, scope=scope)
    return await request_token(
        http, token_endpoint, form, client=client, auth_methods_supported=auth_methods_supported
    )


async def token_exchange(
    http: httpx.AsyncClient,
    token_endpoint: str,
    *,
    subject_token: str,
    subject_token_type: str,
    requested_token_type: str | None = None,
    audience: str | None = None,
    resource: str | None = None,
    scope: str | None = None,
    client: ClientRegistration | None = None,
    auth_methods_supported: tuple[str, ...] | None = None,
) -> TokenResponse:
    """RFC 8693: trade ``subject_token`` for a token for ``audience``/``resource``."""
    form = _with(
        {
            "grant_type": TOKEN_EXCHANGE,
            "subject_token": subject_token,
            "subject_token_type": subject_token_type,
        },
        requested_token_type=requested_token_type,
        audience=audience,
        resource=resource,
        scope=scope,
    )
    return await request_token(
        http, token_endpoint, form, client=client, auth_methods_supported=auth_methods_supported
    )
