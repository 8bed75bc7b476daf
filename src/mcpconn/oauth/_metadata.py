"""Discovery, carried out: fetch the documents `_discovery` lists, in its order.

A document that is there but names someone else (another resource, another
issuer) stops discovery with an `OAuthError`: it is not skipped for the next
candidate, since that is exactly what a poisoned document hopes for.
"""

from __future__ import annotations

from dataclasses import dataclass

import httpx

from .._exceptions import Challenge, OAuthError
from . import _discovery
from ._discovery import AuthorizationServer, ProtectedResource
from ._http import get_json, probe_challenge

__all__ = ["Discovered", "discover", "discover_authorization_server"]


@dataclass(frozen=True)
class Discovered:
    """Where to log in for one MCP server: its resource identifier and authorization server."""

    resource: str
    server: AuthorizationServer
    protected_resource: ProtectedResource | None = None
    #: The challenge discovery used (the 401's, or one probed for).
    challenge: Challenge | None = None


async def discover_authorization_server(
    http: httpx.AsyncClient, issuer: str
) -> AuthorizationServer | None:
    """RFC 8414 / OIDC metadata of ``issuer``; None when none of its documents exists."""
    for url in _discovery.authorization_server_urls(issuer):
        data = await get_json(http, url)
        if data is not None:
            return _discovery.parse_authorization_server(data, expected_issuer=issuer)
    return None


async def discover(
    http: httpx.AsyncClient, server_url: str, challenge: Challenge | None
) -> Discovered:
    """PRM, then its first authorization server; 2025-03-26 fallbacks without PRM."""
    if challenge is None:
        challenge = await probe_challenge(http, server_url)
    prm: ProtectedResource | None = None
    for url in _discovery.protected_resource_urls(server_url, challenge):
        data = await get_json(http, url)
        if data is not None:
            prm = _discovery.parse_protected_resource(data, server_url=server_url)
            break
    if prm is not None:
        issuer = prm.authorization_servers[0]
        server = await discover_authorization_server(http, issuer)
        if server is None:
            raise OAuthError("the authorization server publishes no metadata")
        return Discovered(prm.resource, server, prm, challenge)
    # 2025-03-26: no protected-resource metadata; the server's origin authorizes.
    legacy: AuthorizationServer | None = None
    origin = _discovery.legacy_authorization_server(server_url).issuer
    for url in _discovery.legacy_metadata_urls(server_url):
        data = await get_json(http, url)
        if data is not None:
            legacy = _discovery.parse_authorization_server(data, expected_issuer=origin)
            break
    if legacy is None:
        legacy = _discovery.legacy_authorization_server(server_url)
    return Discovered(_discovery.canonical_resource(server_url), legacy, None, challenge)
