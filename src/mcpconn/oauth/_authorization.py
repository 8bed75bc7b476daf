"""The authorization-code request and its answer: PKCE, state, scope, RFC 9207 ``iss``.

Sans-IO: random values (the PKCE verifier, ``state``) are parameters; the
shell draws them from `secrets`. `parse_redirect` is where a login is
accepted or refused: the redirect must come back to our redirect URI, carry
our ``state``, and, when it names an issuer (``iss``), name exactly the one we
asked (a mix-up attack otherwise); a server that promised ``iss`` must send it.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import re
from collections.abc import Iterable
from urllib.parse import parse_qs, urlencode, urlsplit, urlunsplit

from .._exceptions import Challenge, OAuthError
from ._discovery import AuthorizationServer

__all__ = [
    "MAX_SCOPES",
    "authorization_url",
    "code_challenge",
    "parse_redirect",
    "select_scope",
    "verifier_from",
]

#: Scopes kept in one request (a hostile challenge cannot grow it without bound).
MAX_SCOPES = 64
_SCOPE_TOKEN = re.compile(r"[\x21\x23-\x5b\x5d-\x7e]{1,256}")  # RFC 6749 scope-token
_VERIFIER = re.compile(r"[A-Za-z0-9\-._~]{43,128}")


def verifier_from(random_bytes: bytes) -> str:
    """A PKCE code verifier (RFC 7636) from 32+ random bytes."""
    if len(random_bytes) < 32:
        raise ValueError("a PKCE verifier needs at least 32 random bytes")
    return base64.urlsafe_b64encode(random_bytes[:96]).rstrip(b"=").decode()


def code_challenge(verifier: str) -> str:
    """S256: BASE64URL(SHA256(verifier)), no padding."""
    if not _VERIFIER.fullmatch(verifier):
        raise ValueError("not a PKCE code verifier")
    digest = hashlib.sha256(verifier.encode("ascii")).digest()
    return base64.urlsafe_b64encode(digest).rstrip(b"=").decode()


def _scopes(value: str | Iterable[str] | None) -> list[str]:
    items = value.split() if isinstance(value, str) else list(value or ())
    return [s for s in items if _SCOPE_TOKEN.fullmatch(s)]


def select_scope(
    *,
    challenge: Challenge | None,
    scopes_supported: Iterable[str] | None,
    previous: Iterable[str] = (),
    offline_access: bool = False,
) -> str | None:
    """The ``scope`` of an authorization request (MCP scope selection strategy).

    The challenge's ``scope`` if it has one, else every scope of the resource's
    ``scopes_supported``, else none (the parameter is omitted). On a
    re-authorization (step-up) the scopes asked for before are kept (the union).
    ``offline_access`` (the authorization server lists it and we want a refresh
    token) is added to a non-empty request.
    """
    chosen = _scopes(challenge.scope if challenge is not None else None)
    if not chosen:
        chosen = _scopes(scopes_supported)
    merged: list[str] = []
    for scope in [*_scopes(previous), *chosen]:
        if scope not in merged and len(merged) < MAX_SCOPES:
            merged.append(scope)
    if offline_access and "offline_access" not in merged and len(merged) < MAX_SCOPES:
        merged.append("offline_access")
    return " ".join(merged) if merged else None


def authorization_url(
    server: AuthorizationServer,
    *,
    client_id: str,
    redirect_uri: str,
    state: str,
    verifier: str,
    scope: str | None,
    resource: str,
) -> str:
    """The URL the user agent opens: code flow, PKCE S256, ``state``, RFC 8707 ``resource``."""
    params = {
        "response_type": "code",
        "client_id": client_id,
        "redirect_uri": redirect_uri,
        "state": state,
        "code_challenge": code_challenge(verifier),
        "code_challenge_method": "S256",
        "resource": resource,
    }
    if scope:
        params["scope"] = scope
    parts = urlsplit(server.authorization_endpoint)
    query = f"{parts.query}&{urlencode(params)}" if parts.query else urlencode(params)
    return urlunsplit((parts.scheme, parts.netloc, parts.path, query, ""))


def _same_endpoint(a: str, b: str) -> bool:
    x, y = urlsplit(a), urlsplit(b)
    return (x.scheme.lower(), x.netloc.lower(), x.path or "/") == (
        y.scheme.lower(),
        y.netloc.lower(),
        y.path or "/",
    )


def parse_redirect(
    redirect_url: str,
    *,
    redirect_uri: str,
    state: str,
    issuer: str,
    iss_supported: bool,
) -> str:
    """The authorization code from the URL the user agent ended at, or `OAuthError`.

    Checks, in order: our redirect URI; a single ``state`` equal to ours; ``iss``
    (RFC 9207) compared as a plain string to the recorded issuer when present,
    and required when the server advertised it; then an ``error`` or the code.
    """
    if not isinstance(redirect_url, str) or len(redirect_url) > 16384:
        raise OAuthError("the user agent returned no usable redirect URL")
    try:
        parts = urlsplit(redirect_url)
        query = parse_qs(parts.query, keep_blank_values=True, max_num_fields=64)
    except ValueError:
        raise OAuthError("the redirect URL cannot be parsed") from None
    if not _same_endpoint(redirect_url, redirect_uri):
        raise OAuthError("the login ended somewhere other than our redirect URI")

    def single(name: str) -> str | None:
        values = query.get(name)
        if values is None:
            return None
        if len(values) != 1:
            raise OAuthError(f"the redirect repeats {name!r}")
        return values[0]

    got_state = single("state")
    if got_state is None or not hmac.compare_digest(got_state.encode(), state.encode()):
        raise OAuthError("the redirect carries the wrong state")
    iss = single("iss")
    if iss is not None and iss != issuer:
        raise OAuthError("the redirect names a different issuer (RFC 9207)")
    if iss is None and iss_supported:
        raise OAuthError("the redirect lacks the iss its server promised (RFC 9207)")
    error = single("error")
    if error is not None:
        raise OAuthError("the authorization server refused the login", error=error)
    code = single("code")
    if not code or len(code) > 4096:
        raise OAuthError("the redirect carries no authorization code")
    return code
