"""A small OAuth 2.1 authorization server for loopback tests (h11 on anyio: asyncio and trio).

It auto-approves every authorization request (the test's user agent only follows
the redirect), checks PKCE, ``state`` round trip, ``resource`` and client
authentication, issues short JWT access tokens the `MockServer` accepts (its
issuer signs them) and rotating refresh tokens, and counts every grant so a test
can assert which ones were used.
"""

from __future__ import annotations

import base64
import hashlib
import json
import secrets
from collections import Counter
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from urllib.parse import parse_qsl, urlencode

import anyio

from mcpconn.testing import MockServer
from mcpconn.testing._http import Exchange, HTTPServer, Request


@dataclass
class _Code:
    principal: str
    client_id: str
    challenge: str
    redirect_uri: str
    resource: str | None


@dataclass
class AuthorizationServer:
    """Mints tokens for ``mcp`` (a `MockServer`) with ``access_lifetime`` seconds of life."""

    mcp: MockServer
    access_lifetime: float = 2.0
    user: str = "alice"
    base_url: str = ""
    grants: Counter[str] = field(default_factory=Counter)
    authorizations: int = 0
    registrations: int = 0
    #: refresh token -> (principal, client_id); a used one is rotated out.
    refresh_tokens: dict[str, tuple[str, str]] = field(default_factory=dict)
    issued: list[str] = field(default_factory=list)
    resources: list[str | None] = field(default_factory=list)
    #: refresh_token grants asked for, successful or not.
    refresh_attempts: int = 0
    #: Called with every credential issued (a test's leak guard registers them).
    on_issue: Callable[[str], None] | None = None
    #: Seconds a registration takes (a slow server widens the window for a race).
    registration_delay: float = 0.0
    #: Registrations still to refuse with a 503 (then they succeed).
    registration_failures: int = 0
    #: Registration requests received, refused or not; the most in progress at once.
    registration_requests: int = 0
    registration_peak: int = 0
    _registering: int = 0
    _codes: dict[str, _Code] = field(default_factory=dict)
    _clients: dict[str, str] = field(default_factory=dict)

    @property
    def issuer(self) -> str:
        return self.base_url

    def revoke_refresh_tokens(self) -> None:
        self.refresh_tokens.clear()

    async def _json(self, exchange: Exchange, status: int, body: object) -> None:
        data = json.dumps(body).encode()
        await exchange.respond(status, [("content-type", "application/json")], data)

    async def handle(self, request: Request, exchange: Exchange) -> None:
        path = request.path
        if request.method == "GET" and path == "/.well-known/oauth-authorization-server":
            await self._json(
                exchange,
                200,
                {
                    "issuer": self.issuer,
                    "authorization_endpoint": f"{self.base_url}/authorize",
                    "token_endpoint": f"{self.base_url}/token",
                    "registration_endpoint": f"{self.base_url}/register",
                    "response_types_supported": ["code"],
                    "grant_types_supported": ["authorization_code", "refresh_token"],
                    "code_challenge_methods_supported": ["S256"],
                    "token_endpoint_auth_methods_supported": ["client_secret_basic"],
                    "scopes_supported": ["mcp", "offline_access"],
                    "authorization_response_iss_parameter_supported": True,
                },
            )
        elif request.method == "POST" and path == "/register":
            self.registration_requests += 1
            self._registering += 1
            self.registration_peak = max(self.registration_peak, self._registering)
            try:
                await anyio.sleep(self.registration_delay)
            finally:
                self._registering -= 1
            if self.registration_failures > 0:
                self.registration_failures -= 1
                await self._json(exchange, 503, {"error": "temporarily_unavailable"})
                return
            body = json.loads(request.body)
            client_id, secret = f"client-{secrets.token_hex(4)}", secrets.token_urlsafe(16)
            self._clients[client_id] = secret
            if self.on_issue is not None:
                self.on_issue(secret)
            self.registrations += 1
            await self._json(
                exchange,
                201,
                {"client_id": client_id, "client_secret": secret, **body},
            )
        elif request.method == "GET" and path == "/authorize":
            await self._authorize(request, exchange)
        elif request.method == "POST" and path == "/token":
            await self._token(request, exchange)
        else:
            await exchange.respond(404, [], b"not found")

    async def _authorize(self, request: Request, exchange: Exchange) -> None:
        q = request.query
        if q.get("code_challenge_method") != "S256" or q.get("client_id") not in self._clients:
            await exchange.respond(400, [], b"bad authorization request")
            return
        self.authorizations += 1
        code = secrets.token_urlsafe(16)
        self._codes[code] = _Code(
            self.user, q["client_id"], q["code_challenge"], q["redirect_uri"], q.get("resource")
        )
        params = {"code": code, "state": q["state"], "iss": self.issuer}
        location = f"{q['redirect_uri']}?{urlencode(params)}"
        await exchange.respond(302, [("location", location)])

    def _client(self, request: Request) -> str | None:
        header = request.header("authorization") or ""
        if not header.startswith("Basic "):
            return None
        client_id, _, secret = base64.b64decode(header[6:]).decode().partition(":")
        return client_id if self._clients.get(client_id) == secret else None

    async def _token(self, request: Request, exchange: Exchange) -> None:
        form = dict(parse_qsl(request.body.decode()))
        client_id = self._client(request)
        if client_id is None:
            await self._json(exchange, 401, {"error": "invalid_client"})
            return
        grant = form.get("grant_type", "")
        self.resources.append(form.get("resource"))
        if grant == "authorization_code":
            code = self._codes.pop(form.get("code", ""), None)
            verifier = form.get("code_verifier", "")
            digest = base64.urlsafe_b64encode(hashlib.sha256(verifier.encode()).digest())
            if (
                code is None
                or code.client_id != client_id
                or digest.rstrip(b"=").decode() != code.challenge
                or form.get("redirect_uri") != code.redirect_uri
            ):
                await self._json(exchange, 400, {"error": "invalid_grant"})
                return
            principal = code.principal
        elif grant == "refresh_token":
            self.refresh_attempts += 1
            held = self.refresh_tokens.pop(form.get("refresh_token", ""), None)
            if held is None or held[1] != client_id:
                await self._json(exchange, 400, {"error": "invalid_grant"})
                return
            principal = held[0]
        else:
            await self._json(exchange, 400, {"error": "unsupported_grant_type"})
            return
        self.grants[grant] += 1
        access = self.mcp.issuer.mint(principal, lifetime=self.access_lifetime)
        refresh = secrets.token_urlsafe(24)
        self.refresh_tokens[refresh] = (principal, client_id)
        self.issued += [access, refresh]
        if self.on_issue is not None:
            self.on_issue(access)
            self.on_issue(refresh)
        await self._json(
            exchange,
            200,
            {
                "access_token": access,
                "token_type": "Bearer",
                "expires_in": self.access_lifetime,
                "refresh_token": refresh,
            },
        )


@asynccontextmanager
async def running_authorization_server(
    mcp: MockServer,
    *,
    access_lifetime: float = 2.0,
    on_issue: Callable[[str], None] | None = None,
) -> AsyncIterator[AuthorizationServer]:
    """Serve an `AuthorizationServer` on a loopback port and point ``mcp``'s PRM at it."""
    server = AuthorizationServer(mcp, access_lifetime=access_lifetime, on_issue=on_issue)
    http = HTTPServer(server.handle)
    async with anyio.create_task_group() as tg:
        port = await tg.start(http.serve, "127.0.0.1", 0)
        server.base_url = f"http://127.0.0.1:{port}"
        mcp.authorization_server = server.issuer
        try:
            yield server
        finally:
            tg.cancel_scope.cancel()
