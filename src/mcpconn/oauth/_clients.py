"""What the provider keeps in the `TokenStore`: client identities and refresh tokens.

Client identity at an authorization server, in this order: a pre-registered
client for its issuer, a Client ID Metadata Document URL (where the server
supports it), a stored dynamic registration, a new RFC 7591 registration.
Registrations are stored per issuer and refresh tokens per (principal,
server) together with the issuer that issued them: neither is ever presented
to another authorization server. Records are JSON text; a shared store seals
them (``RedisTokenStore``).
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field

import anyio
import httpx

from .._exceptions import ReauthRequired
from .._tokens.store import TokenStore
from ._discovery import AuthorizationServer
from ._http import post
from ._identity import ClientRegistration, parse_registration, registration_request
from ._responses import TokenResponse

__all__ = ["Clients", "RefreshTokens"]

Key = tuple[str, str]  # (principal, server URL)


class _Registering:
    """One registration in flight; the first logins at an issuer wait for it."""

    def __init__(self) -> None:
        self.done = anyio.Event()
        self.result: ClientRegistration | None = None


@dataclass(frozen=True)
class Clients:
    """Who we are at each authorization server (see the module docstring).

    Concurrent first logins at one issuer send one registration: the others wait
    for it (per process; replicas sharing a store may each register once).
    """

    registered: tuple[ClientRegistration, ...]
    metadata_url: str | None
    client_name: str
    redirect_uri: str
    _registering: dict[str, _Registering] = field(
        default_factory=dict, init=False, repr=False, compare=False
    )

    @staticmethod
    def _name(issuer: str) -> str:
        return "oauth:client:" + issuer

    async def _stored(self, store: TokenStore, issuer: str) -> ClientRegistration | None:
        text = await store.load_record(self._name(issuer))
        stored = ClientRegistration.from_json(text) if text is not None else None
        return stored if stored is not None and stored.issuer == issuer else None

    async def identity(
        self,
        http: httpx.AsyncClient,
        server: AuthorizationServer,
        store: TokenStore,
        *,
        register: bool = True,
    ) -> ClientRegistration | None:
        """The client to use at ``server``; None only when ``register`` is False and none exists."""
        issuer = server.issuer
        for client in self.registered:
            if client.issuer is None or client.issuer == issuer:
                return client
        if self.metadata_url is not None and server.client_id_metadata_document_supported:
            return ClientRegistration(self.metadata_url, auth_method="none", issuer=issuer)
        stored = await self._stored(store, issuer)
        if stored is not None or not register:
            return stored
        if server.registration_endpoint is None:
            raise ReauthRequired("no client registration for this authorization server")
        while (flight := self._registering.get(issuer)) is not None:
            await flight.done.wait()
            if flight.result is not None:
                return flight.result
            # it failed or was cancelled: the next of us tries, one at a time
        flight = self._registering[issuer] = _Registering()
        try:
            # one that finished since our look-up is stored (it was saved before it ended)
            flight.result = await self._stored(store, issuer) or await self._register(
                http, server, store
            )
            return flight.result
        finally:
            del self._registering[issuer]
            flight.done.set()

    async def _register(
        self, http: httpx.AsyncClient, server: AuthorizationServer, store: TokenStore
    ) -> ClientRegistration:
        assert server.registration_endpoint is not None
        body = registration_request(
            client_name=self.client_name,
            redirect_uri=self.redirect_uri,
            auth_methods_supported=server.token_endpoint_auth_methods_supported,
        )
        status, answer, _ = await post(http, server.registration_endpoint, json_body=body)
        registered = parse_registration(status, answer, issuer=server.issuer)
        await store.save_record(self._name(server.issuer), registered.to_json())
        return registered

    async def forget(self, store: TokenStore, issuer: str) -> None:
        """Drop a registration the server refused: the next login registers anew."""
        await store.save_record(self._name(issuer), None)


class RefreshTokens:
    """Refresh tokens per (principal, server), bound to the issuer that issued them."""

    def __init__(self, store: TokenStore) -> None:
        self.store = store

    @staticmethod
    def _name(key: Key) -> str:
        return "oauth:refresh:" + json.dumps(list(key))

    async def load(self, key: Key, issuer: str) -> str | None:
        """The refresh token for ``key`` from ``issuer``; another issuer's is dropped."""
        text = await self.store.load_record(self._name(key))
        if text is None:
            return None
        try:
            saved = json.loads(text)
            token, saved_issuer = saved["refresh_token"], saved["issuer"]
        except (ValueError, KeyError, TypeError):
            saved_issuer = token = None
        if not isinstance(token, str) or saved_issuer != issuer:
            await self.forget(key)  # unreadable, or the server moved to another AS
            return None
        return token

    async def keep(
        self, key: Key, issuer: str, response: TokenResponse, *, previous: str | None
    ) -> None:
        """After a grant: a rotated refresh token replaces the old one; none keeps it."""
        kept = response.refresh_token or previous
        value = None if kept is None else json.dumps({"refresh_token": kept, "issuer": issuer})
        await self.store.save_record(self._name(key), value)

    async def forget(self, key: Key) -> None:
        await self.store.save_record(self._name(key), None)
