"""Who the client is at an authorization server, and how it proves it at the token endpoint.

Three ways to have a client identity, tried in this order by the provider:
a pre-registered client for the issuer, a Client ID Metadata Document (the
client_id is an https URL the server fetches, when the server supports it),
or RFC 7591 dynamic registration. A registration belongs to one issuer: a
client never presents one authorization server's credentials to another.

Token endpoint authentication: what the registration answer said, else the
best the server supports for what we hold (``client_secret_basic``, then
``client_secret_post``; a client without a secret is ``none``). Sans-IO.
"""

from __future__ import annotations

import base64
import json
from dataclasses import dataclass, field
from typing import Any, Literal
from urllib.parse import quote, urlsplit

from .._core.http_rules import is_loopback_host
from .._exceptions import OAuthError
from ._responses import parse_json_object

__all__ = [
    "AuthMethod",
    "ClientRegistration",
    "apply_client_auth",
    "parse_registration",
    "registration_request",
]

AuthMethod = Literal["client_secret_basic", "client_secret_post", "none"]
_METHODS: tuple[AuthMethod, ...] = ("client_secret_basic", "client_secret_post", "none")


@dataclass(frozen=True)
class ClientRegistration:
    """A client at one authorization server. ``client_secret`` never appears in ``repr``.

    ``issuer`` None: a pre-registered client given without one (used at any issuer
    it is configured for). ``auth_method`` None: choose from the server's list.
    """

    client_id: str
    client_secret: str | None = field(default=None, repr=False)
    auth_method: AuthMethod | None = None
    issuer: str | None = None

    def __post_init__(self) -> None:
        if not isinstance(self.client_id, str) or not self.client_id:
            raise ValueError("client_id must be a non-empty str")
        if self.auth_method is not None and self.auth_method not in _METHODS:
            raise ValueError(f"unsupported token endpoint auth method {self.auth_method!r}")

    def method_for(self, supported: tuple[str, ...] | None) -> AuthMethod:
        """The token endpoint auth method to use with a server that supports ``supported``."""
        if self.auth_method is not None:
            return self.auth_method
        if self.client_secret is None:
            return "none"
        # RFC 8414: an absent list means client_secret_basic.
        offered = supported if supported is not None else ("client_secret_basic",)
        for method in ("client_secret_basic", "client_secret_post"):
            if method in offered:
                return method
        return "none" if "none" in offered else "client_secret_basic"

    def to_json(self) -> str:
        return json.dumps(
            {
                "client_id": self.client_id,
                "client_secret": self.client_secret,
                "auth_method": self.auth_method,
                "issuer": self.issuer,
            }
        )

    @classmethod
    def from_json(cls, text: str) -> ClientRegistration | None:
        """A stored registration, or None when the record is unreadable."""
        try:
            data = json.loads(text)
            return cls(
                data["client_id"],
                data.get("client_secret"),
                data.get("auth_method"),
                data.get("issuer"),
            )
        except (ValueError, KeyError, TypeError):
            return None


def registration_request(
    *,
    client_name: str,
    redirect_uri: str,
    auth_methods_supported: tuple[str, ...] | None,
    scope: str | None = None,
) -> dict[str, Any]:
    """The RFC 7591 registration body for a code-flow client that wants refresh tokens."""
    host = urlsplit(redirect_uri).hostname or ""
    method: AuthMethod = "client_secret_basic"
    if auth_methods_supported is not None:
        method = next((m for m in _METHODS if m in auth_methods_supported), "client_secret_basic")
    body: dict[str, Any] = {
        "client_name": client_name,
        "redirect_uris": [redirect_uri],
        "grant_types": ["authorization_code", "refresh_token"],
        "response_types": ["code"],
        "token_endpoint_auth_method": method,
        # A loopback redirect is a native app's; anything else a web client's.
        "application_type": "native" if is_loopback_host(host) else "web",
    }
    if scope:
        body["scope"] = scope
    return body


def parse_registration(status: int, body: bytes, *, issuer: str) -> ClientRegistration:
    """Read an RFC 7591 answer (201, or 200 from lenient servers)."""
    data = parse_json_object(body)
    if status not in (200, 201) or data is None:
        code = data.get("error") if data is not None else None
        raise OAuthError(
            f"client registration answered {status}",
            error=code if isinstance(code, str) else None,
            status_code=status,
        )
    client_id, secret = data.get("client_id"), data.get("client_secret")
    if not isinstance(client_id, str) or not client_id or len(client_id) > 4096:
        raise OAuthError("client registration returned no client_id")
    if secret is not None and (not isinstance(secret, str) or not secret or len(secret) > 4096):
        secret = None
    method = data.get("token_endpoint_auth_method")
    return ClientRegistration(
        client_id,
        secret,
        method if method in _METHODS else None,
        issuer=issuer,
    )


def apply_client_auth(
    client: ClientRegistration, method: AuthMethod, form: dict[str, str]
) -> dict[str, str]:
    """Add client authentication to a token request ``form``; returns extra headers.

    ``client_id`` is always in the form too: some servers (the official SDK's)
    look the client up by it before reading the Authorization header.
    """
    form["client_id"] = client.client_id
    if method == "client_secret_basic" and client.client_secret is not None:
        # RFC 6749 section 2.3.1: form-urlencode both parts before Basic.
        raw = f"{quote(client.client_id, safe='')}:{quote(client.client_secret, safe='')}"
        return {"Authorization": "Basic " + base64.b64encode(raw.encode()).decode()}
    if method == "client_secret_post" and client.client_secret is not None:
        form["client_secret"] = client.client_secret
    return {}
