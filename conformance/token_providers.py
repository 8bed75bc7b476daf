"""Token providers for the auth scenarios, the way an aggregator would obtain tokens.

Interactive scenarios (authorization code + PKCE) use mcpconn.oauth's OAuthProvider; the
suite's authorization endpoints auto-approve, so the user agent only follows the redirect.
The non-interactive grant scenarios discover (RFC 9728 / RFC 8414), then make one grant
with mcpconn.oauth's helpers.
"""

from __future__ import annotations

import secrets
import time
from typing import Any
from urllib.parse import urljoin

import anyio
import httpx
from clientlog import log

import mcpconn
import mcpconn.oauth
from mcpconn import oauth

JSON = dict[str, Any]

NON_INTERACTIVE = {
    "auth/client-credentials-basic",
    "auth/client-credentials-jwt",
    "auth/wif-jwt-bearer",
    "auth/enterprise-managed-authorization",
}
CIMD_URL = "https://conformance-test.local/client-metadata.json"


async def follow_redirect(prompt: mcpconn.oauth.AuthorizationPrompt) -> str:
    """The test user agent: the suite approves at once; return where it redirects."""
    async with httpx.AsyncClient(timeout=10) as http:
        resp = await http.get(prompt.url)
    location = resp.headers.get("location")
    if resp.status_code not in (301, 302, 303, 307, 308) or not location:
        raise RuntimeError(f"authorization endpoint answered {resp.status_code}, no redirect")
    log("user agent: approved, scope", prompt.scope)
    return urljoin(prompt.url, location)


class LoginProvider:
    """mcpconn.oauth for the interactive scenarios; a refusal ends the run at once."""

    def __init__(self, ctx: JSON) -> None:
        clients = []
        if ctx.get("client_id") and ctx.get("client_secret"):  # auth/pre-registration
            clients.append(
                mcpconn.oauth.ClientRegistration(
                    ctx["client_id"], ctx["client_secret"], issuer=ctx.get("issuer")
                )
            )
        self.oauth = mcpconn.oauth.OAuthProvider(
            user_agent=follow_redirect, clients=clients, client_metadata_url=CIMD_URL, dpop=True
        )
        self.step_up = True
        self.refused = anyio.Event()
        self.calls = 0

    def _bind_token_source(self, source: mcpconn.TokenSource) -> None:
        self.oauth._bind_token_source(source)

    async def __call__(self, req: mcpconn.TokenRequest) -> mcpconn.Token:
        self.calls += 1
        challenge = req.challenge
        log(f"provider call {self.calls}: force={req.force} error={challenge and challenge.error}")
        try:
            return await self.oauth(req)
        except (mcpconn.OAuthError, mcpconn.ReauthRequired) as exc:
            log("provider refused:", type(exc).__name__, exc)
            self.refused.set()
            raise


async def no_token(req: Any) -> str:
    raise RuntimeError("this scenario runs without a token")


class GrantProvider:
    """Token provider for one OAuth grant that needs no user, on mcpconn.oauth's helpers:
    discovery (RFC 9728 / RFC 8414), then client_credentials, jwt-bearer or RFC 8693."""

    def __init__(self, scenario: str, server_url: str, ctx: JSON) -> None:
        self.scenario, self.server_url, self.ctx = scenario, server_url, ctx
        self.calls = 0
        self.refused = anyio.Event()  # never set: these grants need no user

    async def __call__(self, req: mcpconn.TokenRequest) -> mcpconn.Token:
        self.calls += 1
        if self.calls > 3:
            raise RuntimeError("token provider called too often; giving up")
        async with httpx.AsyncClient(timeout=10) as http:
            found = await oauth.discover(http, self.server_url, req.challenge)
            response = await self._grant(http, found)
        log(f"obtained a token via {self.scenario} (call {self.calls})")
        return mcpconn.Token.from_jwt(
            response.access_token, expires_in=response.expires_in, now=time.time()
        )

    async def _grant(self, http: httpx.AsyncClient, found: oauth.Discovered) -> oauth.TokenResponse:
        ctx, server, resource = self.ctx, found.server, found.resource
        endpoint, methods = server.token_endpoint, server.token_endpoint_auth_methods_supported
        client = (
            oauth.ClientRegistration(ctx["client_id"], ctx.get("client_secret"))
            if ctx.get("client_id")
            else None
        )
        if self.scenario == "auth/client-credentials-basic":
            return await oauth.client_credentials(
                http, endpoint, client=client, resource=resource, auth_methods_supported=methods
            )
        if self.scenario == "auth/client-credentials-jwt":
            import jwt  # pyjwt; ES256 needs the cryptography package

            now = int(time.time())
            assertion = jwt.encode(
                {
                    "iss": ctx["client_id"],
                    "sub": ctx["client_id"],
                    "aud": server.issuer,
                    "iat": now,
                    "exp": now + 300,
                    "jti": secrets.token_hex(16),
                },
                ctx["private_key_pem"],
                algorithm=ctx.get("signing_algorithm") or "ES256",
            )
            return await oauth.client_credentials(
                http, endpoint, client=None, resource=resource, assertion=assertion
            )
        if self.scenario == "auth/wif-jwt-bearer":
            public = oauth.ClientRegistration(ctx["client_id"], auth_method="none")
            return await oauth.jwt_bearer(
                http, endpoint, assertion=ctx["valid_jwt"], client=public, resource=resource
            )
        # auth/enterprise-managed-authorization: RFC 8693 at the IdP (ID token -> ID-JAG),
        # then the ID-JAG as an RFC 7523 grant at the authorization server.
        idp_client = oauth.ClientRegistration(ctx["idp_client_id"], auth_method="none")
        jag = await oauth.token_exchange(
            http,
            ctx["idp_token_endpoint"],
            subject_token=ctx["idp_id_token"],
            subject_token_type="urn:ietf:params:oauth:token-type:id_token",
            requested_token_type="urn:ietf:params:oauth:token-type:id-jag",
            audience=server.issuer,
            resource=resource,
            client=idp_client,
        )
        return await oauth.jwt_bearer(
            http,
            endpoint,
            assertion=jag.access_token,
            client=client,
            auth_methods_supported=methods,
        )
