"""Which metadata documents to ask for, in which order, and whether to believe them.

Sans-IO: the shell fetches the URLs these functions list and hands the parsed
JSON back. The orders are the MCP authorization spec's (2025-06-18 onwards):

* Protected-resource metadata (RFC 9728): the ``resource_metadata`` URL of the
  401's ``WWW-Authenticate`` first, then the path-aware well-known URL, then the
  root one.
* Authorization-server metadata (RFC 8414, OpenID Connect Discovery): for an
  issuer with a path, ``/.well-known/oauth-authorization-server{path}``, then
  ``/.well-known/openid-configuration{path}``, then
  ``{path}/.well-known/openid-configuration``; for one without, the two root
  documents.
* 2025-03-26 servers have no protected-resource metadata: the MCP server's own
  origin is the authorization server, with metadata at its root and, failing
  that, the default endpoints ``/authorize``, ``/token`` and ``/register``.

A document is believed only if it names what we asked about: a protected
resource must be the server we talk to (or a path prefix of it), an
authorization server's ``issuer`` must be exactly the issuer we built the URL
from (no normalisation: a trailing slash is a different issuer).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlsplit, urlunsplit

from .._core.http_rules import canonical_uri
from .._exceptions import Challenge, OAuthError

__all__ = [
    "AuthorizationServer",
    "ProtectedResource",
    "authorization_server_urls",
    "canonical_resource",
    "legacy_authorization_server",
    "legacy_metadata_urls",
    "parse_authorization_server",
    "parse_protected_resource",
    "protected_resource_urls",
]

MAX_URL_CHARS = 2048
MAX_LIST_ITEMS = 64


@dataclass(frozen=True)
class ProtectedResource:
    """RFC 9728 metadata: the resource identifier to send (RFC 8707) and its servers."""

    resource: str
    authorization_servers: tuple[str, ...]
    scopes_supported: tuple[str, ...] | None = None


@dataclass(frozen=True)
class AuthorizationServer:
    """The parts of RFC 8414 metadata a client uses."""

    issuer: str
    authorization_endpoint: str
    token_endpoint: str
    registration_endpoint: str | None = None
    scopes_supported: tuple[str, ...] | None = None
    token_endpoint_auth_methods_supported: tuple[str, ...] | None = None
    code_challenge_methods_supported: tuple[str, ...] | None = None
    grant_types_supported: tuple[str, ...] | None = None
    #: RFC 9207: True when the server promises ``iss`` on every authorization response.
    iss_parameter_supported: bool = False
    client_id_metadata_document_supported: bool = False
    dpop_signing_alg_values_supported: tuple[str, ...] | None = None

    @property
    def offers_dpop(self) -> bool:
        """RFC 9449 section 5.1: the server binds tokens to ES256 proofs."""
        algs = self.dpop_signing_alg_values_supported
        return algs is not None and "ES256" in algs

    @property
    def supports_s256(self) -> bool:
        """MCP: without advertised S256 PKCE a client must not start a code flow."""
        methods = self.code_challenge_methods_supported
        return methods is not None and "S256" in methods

    @property
    def offers_offline_access(self) -> bool:
        return self.scopes_supported is not None and "offline_access" in self.scopes_supported


def _http_url(value: object) -> str | None:
    """``value`` if it is an absolute http(s) URL without a fragment, else None."""
    if not isinstance(value, str) or not value or len(value) > MAX_URL_CHARS:
        return None
    try:
        parts = urlsplit(value)
    except ValueError:
        return None
    if parts.scheme not in ("http", "https") or not parts.hostname or parts.fragment:
        return None
    if any(c.isspace() or ord(c) < 0x20 for c in value):
        return None
    return value


def _origin_and_path(url: str) -> tuple[str, str]:
    parts = urlsplit(url)
    origin = urlunsplit((parts.scheme, parts.netloc, "", "", ""))
    return origin, parts.path.rstrip("/")


def canonical_resource(server_url: str) -> str:
    """The server's canonical URI (RFC 8707): see `canonical_uri`."""
    return canonical_uri(server_url)


def _unique(urls: list[str]) -> list[str]:
    seen: list[str] = []
    for url in urls:
        if url not in seen:
            seen.append(url)
    return seen


def protected_resource_urls(server_url: str, challenge: Challenge | None) -> list[str]:
    """Where to look for the server's RFC 9728 metadata, best first."""
    origin, path = _origin_and_path(server_url)
    urls = []
    hinted = _http_url(challenge.resource_metadata) if challenge is not None else None
    if hinted is not None:
        urls.append(hinted)
    if path:
        urls.append(f"{origin}/.well-known/oauth-protected-resource{path}")
    urls.append(f"{origin}/.well-known/oauth-protected-resource")
    return _unique(urls)


def authorization_server_urls(issuer: str) -> list[str]:
    """Where to look for an issuer's metadata (RFC 8414 section 3.1, then OIDC)."""
    origin, path = _origin_and_path(issuer)
    if not path:
        return [
            f"{origin}/.well-known/oauth-authorization-server",
            f"{origin}/.well-known/openid-configuration",
        ]
    return [
        f"{origin}/.well-known/oauth-authorization-server{path}",
        f"{origin}/.well-known/openid-configuration{path}",
        f"{origin}{path}/.well-known/openid-configuration",
    ]


def legacy_metadata_urls(server_url: str) -> list[str]:
    """2025-03-26: the MCP server's origin is its authorization server."""
    origin, _ = _origin_and_path(server_url)
    return [f"{origin}/.well-known/oauth-authorization-server"]


def legacy_authorization_server(server_url: str) -> AuthorizationServer:
    """2025-03-26 default endpoints, for a server that publishes no metadata at all."""
    origin, _ = _origin_and_path(server_url)
    return AuthorizationServer(
        issuer=origin,
        authorization_endpoint=f"{origin}/authorize",
        token_endpoint=f"{origin}/token",
        registration_endpoint=f"{origin}/register",
        code_challenge_methods_supported=("S256",),
    )


def _strings(value: object) -> tuple[str, ...] | None:
    if not isinstance(value, list):
        return None
    return tuple(v for v in value[:MAX_LIST_ITEMS] if isinstance(v, str) and v)


def _covers(resource: str, server_url: str) -> bool:
    """True when ``resource`` is the server or a path prefix of it (same origin)."""
    want, have = canonical_resource(server_url), canonical_resource(resource)
    if want == have:
        return True
    w, h = urlsplit(want), urlsplit(have)
    if (w.scheme, w.netloc) != (h.scheme, h.netloc) or h.query:
        return False
    prefix = h.path.rstrip("/")
    return w.path == prefix or w.path.startswith(prefix + "/")


def parse_protected_resource(data: Mapping[str, Any], *, server_url: str) -> ProtectedResource:
    """Validate RFC 9728 metadata for ``server_url``; raises `OAuthError` if it is not ours."""
    resource = _http_url(data.get("resource"))
    if resource is None:
        raise OAuthError("protected resource metadata has no valid resource")
    if not _covers(resource, server_url):
        raise OAuthError("protected resource metadata names a different resource")
    servers = tuple(
        url
        for url in (_http_url(v) for v in _strings(data.get("authorization_servers")) or ())
        if url
    )
    if not servers:
        raise OAuthError("protected resource metadata lists no authorization server")
    return ProtectedResource(resource, servers, _strings(data.get("scopes_supported")))


def parse_authorization_server(
    data: Mapping[str, Any], *, expected_issuer: str
) -> AuthorizationServer:
    """Validate RFC 8414 metadata; the issuer must be exactly ``expected_issuer``."""
    if data.get("issuer") != expected_issuer:
        raise OAuthError("authorization server metadata names a different issuer")
    authorize = _http_url(data.get("authorization_endpoint"))
    token = _http_url(data.get("token_endpoint"))
    if authorize is None or token is None:
        raise OAuthError("authorization server metadata lacks a valid endpoint")
    return AuthorizationServer(
        issuer=expected_issuer,
        authorization_endpoint=authorize,
        token_endpoint=token,
        registration_endpoint=_http_url(data.get("registration_endpoint")),
        scopes_supported=_strings(data.get("scopes_supported")),
        token_endpoint_auth_methods_supported=_strings(
            data.get("token_endpoint_auth_methods_supported")
        ),
        code_challenge_methods_supported=_strings(data.get("code_challenge_methods_supported")),
        grant_types_supported=_strings(data.get("grant_types_supported")),
        iss_parameter_supported=data.get("authorization_response_iss_parameter_supported") is True,
        client_id_metadata_document_supported=(
            data.get("client_id_metadata_document_supported") is True
        ),
        dpop_signing_alg_values_supported=_strings(data.get("dpop_signing_alg_values_supported")),
    )
