"""OAuthProvider: a `TokenSource` provider that runs the MCP authorization spec.

Theory of operation
-------------------
The token source calls the provider once per key at a time (single flight),
with a `TokenRequest` that names the server (``resource``) and, after a 401 or
403, its parsed challenge. The provider answers, cheapest first:

1. a refresh-token grant, when it holds a refresh token issued by the server's
   current authorization server (a rotated refresh token replaces the old; a
   rejected one is forgotten and never retried);
2. otherwise a login: authorization code + PKCE through the embedder's user
   agent (``async (AuthorizationPrompt) -> redirect URL``).

Discovery (`_metadata`) runs before the first login and again whenever a
server's challenge arrives, so a server that moved to another authorization
server is followed (the new one gets its own client registration; nothing of
the old one's is presented to it). A 403 ``insufficient_scope`` challenge is a
step-up: a new login asking for the union of the scopes asked for before and
the challenged ones, at most ``max_step_ups`` times in a row; then
`ReauthRequired`.

Logins: not entered, the login runs inside the provider call (so it must
finish within the token source's ``provider_timeout``). Entered (``async with``),
a login runs in the provider's own task group; the provider call waits at most
``login_wait`` seconds for it and otherwise raises `ReauthRequired` (the
connection parks). When the login completes later, the token is published to
every `TokenSource` using this provider, which wakes the parked connections.

Kept in the `TokenStore` (sealed in Redis with ``RedisTokenStore``): client
registrations per issuer, refresh tokens per (principal, server). Nothing
secret is logged or shown by a ``repr``.
"""

from __future__ import annotations

import logging
import time
import weakref
from collections.abc import AsyncIterator, Callable, Iterable
from contextlib import AsyncExitStack, asynccontextmanager
from typing import TYPE_CHECKING, Self

import anyio
import anyio.abc
import httpx

from .._core.http_rules import canonical_uri
from .._core.token import Token
from .._exceptions import MCPConnError, OAuthError, ReauthRequired
from .._tokens.provider import TokenRequest
from .._tokens.store import MemoryTokenStore, TokenStore
from ._authorization import select_scope
from ._clients import Clients, RefreshTokens
from ._dpop import DPoPKey, DPoPToken
from ._grants import refresh
from ._identity import ClientRegistration
from ._login import UserAgent, run_code_flow
from ._login_flights import KeyState, join_login
from ._metadata import Discovered, discover
from ._responses import TokenResponse, token_from_response

if TYPE_CHECKING:
    from .._tokens.source import TokenSource

__all__ = ["OAuthProvider"]

logger = logging.getLogger("mcpconn.oauth")

#: Refresh-grant errors that mean the refresh token (or client) is gone for good.
_DEAD_GRANT = {"invalid_grant", "invalid_client", "unauthorized_client"}


class OAuthProvider(anyio.abc.AsyncResource):
    """``TokenSource(OAuthProvider(...))``: OAuth 2.1 for downstream MCP servers.

    ``user_agent``: ``async (AuthorizationPrompt) -> str``, the redirect URL the
    login ended at (None: no interactive login; a missing token raises
    `ReauthRequired`). ``redirect_uri``: registered with every authorization server.
    ``clients``: pre-registered `ClientRegistration` values (``issuer`` says where
    each is valid). ``client_metadata_url``: a Client ID Metadata Document URL, used
    where the server supports it, before dynamic registration. ``offline_access``:
    ask for a refresh token where offered. ``dpop``: sender-constrained tokens
    (RFC 9449) where the server offers them. ``store``: where registrations and
    refresh tokens live (default: the token source's store). ``login_wait``: how
    long an entered provider's call waits for a login before parking the connection.
    """

    #: `BearerAuth` asks again after a 403 insufficient_scope: this provider steps up.
    step_up = True

    def __init__(
        self,
        *,
        user_agent: UserAgent | None = None,
        redirect_uri: str = "http://127.0.0.1:33418/oauth/callback",
        client_name: str = "mcpconn",
        clients: Iterable[ClientRegistration] = (),
        client_metadata_url: str | None = None,
        offline_access: bool = True,
        max_step_ups: int = 2,
        dpop: bool = False,
        login_wait: float = 5.0,
        store: TokenStore | None = None,
        http: httpx.AsyncClient | None = None,
        clock: Callable[[], float] | None = None,
    ) -> None:
        if not (isinstance(login_wait, int | float) and 0 < login_wait < float("inf")):
            raise ValueError("login_wait must be a finite number of seconds > 0")
        if not isinstance(max_step_ups, int) or max_step_ups < 0:
            raise ValueError("max_step_ups must be an int >= 0")
        self._user_agent = user_agent
        self._redirect_uri = redirect_uri
        self._clients = Clients(tuple(clients), client_metadata_url, client_name, redirect_uri)
        self._offline = offline_access
        self._max_step_ups = max_step_ups
        self._dpop = dpop
        self._dpop_key: DPoPKey | None = None
        self._login_wait = login_wait
        self._store = store
        self._http = http
        self._clock = clock or time.time
        self._states: dict[tuple[str, str], KeyState] = {}
        self._discovered: dict[str, Discovered] = {}  # per server URL
        self._sources: weakref.WeakSet[TokenSource] = weakref.WeakSet()
        self._tg: anyio.abc.TaskGroup | None = None
        self._stack: AsyncExitStack | None = None

    def __repr__(self) -> str:
        mode = "entered" if self._tg is not None else "unentered"
        return f"<OAuthProvider {mode} keys={len(self._states)}>"

    # -- lifecycle --------------------------------------------------------------

    async def __aenter__(self) -> Self:
        if self._stack is not None:
            raise RuntimeError("an OAuthProvider can be entered only once")
        stack = AsyncExitStack()
        if self._http is None:
            self._http = await stack.enter_async_context(httpx.AsyncClient(timeout=10.0))
        self._tg = await stack.enter_async_context(anyio.create_task_group())
        self._stack = stack
        return self

    async def aclose(self) -> None:
        """Stop pending logins and close the HTTP client this provider opened."""
        stack, self._stack = self._stack, None
        if stack is not None and self._tg is not None:
            self._tg.cancel_scope.cancel()
            self._tg = None
            await stack.aclose()

    def _bind_token_source(self, source: TokenSource) -> None:
        """Called by `TokenSource` itself: where finished logins are published."""
        self._sources.add(source)
        if self._store is None:
            self._store = source.store

    @asynccontextmanager
    async def _client(self) -> AsyncIterator[httpx.AsyncClient]:
        if self._http is not None:
            yield self._http
        else:
            async with httpx.AsyncClient(timeout=10.0) as http:
                yield http

    def _key_for(self, found: Discovered) -> DPoPKey | None:
        """The DPoP key, when asked for (``dpop=True``) and the server binds tokens."""
        if not (self._dpop and found.server.offers_dpop):
            return None
        if self._dpop_key is None:
            self._dpop_key = DPoPKey()
        return self._dpop_key

    def _token(self, response: TokenResponse, key: DPoPKey | None) -> Token:
        token = token_from_response(response, now=self._clock(), dpop=key is not None)
        if key is not None and response.token_type.lower() == "dpop":
            return DPoPToken(token.raw, token.expires_at, token.issued_at, key=key)
        return token

    @property
    def _records(self) -> TokenStore:
        if self._store is None:
            self._store = MemoryTokenStore()
        return self._store

    # -- the provider call ----------------------------------------------------------

    async def __call__(self, request: TokenRequest) -> Token:
        server_url = request.resource
        if server_url is None and (request.audience or "").startswith(("https://", "http://")):
            server_url = canonical_uri(request.audience or "")  # a direct get(audience=URL)
        if server_url is None:
            raise OAuthError("OAuthProvider needs TokenRequest.resource (a connection's server)")
        key = (request.principal, server_url)
        state = self._states.setdefault(key, KeyState())
        challenge = request.challenge
        step_up = challenge is not None and challenge.error == "insufficient_scope"
        if step_up:
            state.step_ups += 1
            if state.step_ups > self._max_step_ups:
                raise ReauthRequired(
                    "scope step-up limit reached", principal=request.principal, challenge=challenge
                )
        elif not request.force:
            state.step_ups = 0
        async with self._client() as http:
            found = self._discovered.get(server_url)
            if found is None or (challenge is not None and not step_up):
                # Once per server, and again on every rejection: it may have moved AS.
                found = self._discovered[server_url] = await discover(http, server_url, challenge)
            if not step_up:
                token = await self._refreshed(http, key, found)
                if token is not None:
                    return token
            scope = select_scope(
                challenge=challenge or found.challenge,
                scopes_supported=(
                    found.protected_resource.scopes_supported if found.protected_resource else None
                ),
                previous=(state.scope or "").split() if step_up else (),
                offline_access=self._offline and found.server.offers_offline_access,
            )
            return await self._login(http, key, state, found, scope, request)

    def start_login(self, principal: str, resource: str, *, audience: str | None = None) -> None:
        """Start (or join) a login now, e.g. from ``on_reauth_required``; needs ``async with``.

        ``resource`` is the server's URL (`ServerConfig.url`), ``audience`` its
        `ServerConfig.audience`. The token is published to every `TokenSource`
        using this provider, which wakes that principal's parked connections.
        """
        if self._tg is None:
            raise RuntimeError("start_login() needs `async with OAuthProvider(...)`")
        request = TokenRequest(
            principal,
            force=True,
            reason="login requested",
            audience=audience,
            resource=canonical_uri(resource),
        )
        self._tg.start_soon(self._login_and_publish, request)

    async def _login_and_publish(self, request: TokenRequest) -> None:
        try:
            token = await self(request)
        except MCPConnError as exc:  # still waiting (published later) or refused
            logger.info("login for principal %r: %s", request.principal, type(exc).__name__)
            return
        self._publish(request.principal, token, request.audience)

    def _publish(self, principal: str, token: Token, audience: str | None) -> None:
        for source in list(self._sources):
            source.publish(principal, token, audience)

    # -- refresh tokens -----------------------------------------------------------------

    async def _refreshed(
        self, http: httpx.AsyncClient, key: tuple[str, str], found: Discovered
    ) -> Token | None:
        """A token from the stored refresh token, or None (none, or it is dead)."""
        refresh_tokens = RefreshTokens(self._records)
        issuer = found.server.issuer
        refresh_token = await refresh_tokens.load(key, issuer)
        if refresh_token is None:
            return None
        client = await self._clients.identity(http, found.server, self._records, register=False)
        dpop = self._key_for(found)
        try:
            response = await refresh(
                http,
                found.server,
                client,
                refresh_token=refresh_token,
                resource=found.resource,
                dpop=dpop,
            )
        except OAuthError as exc:
            if exc.error not in _DEAD_GRANT:
                raise  # transient: the token source backs off and asks again
            logger.info("refresh token for principal %r rejected (%s)", key[0], exc.error)
            await refresh_tokens.forget(key)
            return None
        await refresh_tokens.keep(key, issuer, response, previous=refresh_token)
        return self._token(response, dpop)

    # -- logins ----------------------------------------------------------------------

    async def _login(
        self,
        http: httpx.AsyncClient,
        key: tuple[str, str],
        state: KeyState,
        found: Discovered,
        scope: str | None,
        request: TokenRequest,
    ) -> Token:
        if self._user_agent is None:
            raise ReauthRequired(
                "a login is required", principal=key[0], challenge=request.challenge
            )

        async def authorize() -> Token:
            token = await self._authorize(http, key, found, scope)
            state.scope = scope
            return token

        return await join_login(
            state,
            key[0],
            request.audience,
            authorize,
            tg=self._tg,
            login_wait=self._login_wait,
            publish=self._publish,
        )

    async def _authorize(
        self, http: httpx.AsyncClient, key: tuple[str, str], found: Discovered, scope: str | None
    ) -> Token:
        assert self._user_agent is not None
        client = await self._clients.identity(http, found.server, self._records)
        assert client is not None
        dpop = self._key_for(found)
        try:
            response = await run_code_flow(
                http,
                found.server,
                client,
                user_agent=self._user_agent,
                redirect_uri=self._redirect_uri,
                principal=key[0],
                server_url=key[1],
                resource=found.resource,
                scope=scope,
                dpop=dpop,
            )
            token = self._token(response, dpop)  # e.g. an unknown token_type
        except OAuthError as exc:
            if exc.status_code is None or exc.status_code >= 500:
                raise  # transient
            # Refused: asking the user again at once would only loop. A refused
            # client is forgotten, so the next login registers anew.
            if exc.error in ("invalid_client", "unauthorized_client"):
                await self._clients.forget(self._records, found.server.issuer)
            raise ReauthRequired("the code exchange was refused", principal=key[0]) from exc
        await RefreshTokens(self._records).keep(key, found.server.issuer, response, previous=None)
        return token
