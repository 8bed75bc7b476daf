"""mcpconn.oauth: OAuth 2.1 for downstream MCP servers that have their own authorization server.

``TokenSource(OAuthProvider(user_agent=...))`` runs the MCP authorization spec
for every connection: discovery (RFC 9728, RFC 8414 / OIDC, the 2025-03-26
fallbacks), client identity (pre-registered, Client ID Metadata Documents,
RFC 7591), authorization code + PKCE S256 with ``state``, RFC 8707 ``resource``
and RFC 9207 ``iss`` checks, scope selection and step-up, refresh-token grants
kept in the token store, and DPoP (RFC 9449) where asked for and offered. The
grant helpers (client credentials, JWT bearer, RFC 8693 token exchange) serve
machine-to-machine providers.

Layers: ``_discovery``, ``_authorization``, ``_identity`` and ``_responses``
decide (sans-IO); ``_http``, ``_dpop``, ``_grants``, ``_metadata``,
``_clients`` and ``_login`` do the I/O; ``_login_flights`` keeps one login per key
in flight; ``_provider`` drives them.
"""

from ._authorization import code_challenge, select_scope
from ._discovery import AuthorizationServer, ProtectedResource
from ._dpop import DPoPKey, DPoPToken
from ._grants import client_credentials, jwt_bearer, token_exchange
from ._identity import ClientRegistration
from ._login import AuthorizationPrompt, UserAgent
from ._metadata import Discovered, discover, discover_authorization_server
from ._provider import OAuthProvider
from ._responses import TokenResponse

__all__ = [
    "AuthorizationPrompt",
    "AuthorizationServer",
    "ClientRegistration",
    "DPoPKey",
    "DPoPToken",
    "Discovered",
    "OAuthProvider",
    "ProtectedResource",
    "TokenResponse",
    "UserAgent",
    "client_credentials",
    "code_challenge",
    "discover",
    "discover_authorization_server",
    "jwt_bearer",
    "select_scope",
    "token_exchange",
]
