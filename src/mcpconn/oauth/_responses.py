"""Token-endpoint and registration answers: parsed, bounded, never trusted blindly.

Sans-IO: status and body bytes in, a value or an `OAuthError` out. Numbers are
bounded (``expires_in`` is capped and a nonsense value means "unknown", never
an exception), strings must be visible ASCII, and no ``repr()`` shows a
credential. An error answer keeps only a well-formed OAuth error code, never
the server's description.
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass, field
from typing import Any

from .._core.token import Token
from .._exceptions import MalformedTokenError, OAuthError

__all__ = [
    "MAX_BODY_BYTES",
    "MAX_EXPIRES_IN",
    "TokenResponse",
    "parse_json_object",
    "parse_token_response",
    "token_from_response",
]

MAX_BODY_BYTES = 64 * 1024
#: An ``expires_in`` beyond ten years is read as ten years.
MAX_EXPIRES_IN = 10 * 365 * 24 * 3600.0
_MAX_CREDENTIAL = 16 * 1024


@dataclass(frozen=True)
class TokenResponse:
    """A successful token response (RFC 6749 section 5.1). Credentials never in ``repr``."""

    access_token: str = field(repr=False)
    token_type: str
    expires_in: float | None = None
    refresh_token: str | None = field(default=None, repr=False)
    scope: str | None = None
    issued_token_type: str | None = None


def parse_json_object(body: bytes) -> dict[str, Any] | None:
    """A JSON object from at most `MAX_BODY_BYTES`, or None (too big, not JSON, not an object)."""
    if len(body) > MAX_BODY_BYTES:
        return None
    try:
        data = json.loads(body)
    except (ValueError, RecursionError):
        return None
    return data if isinstance(data, dict) else None


def _credential(value: object) -> str | None:
    if (
        isinstance(value, str)
        and 0 < len(value) <= _MAX_CREDENTIAL
        and all("\x21" <= c <= "\x7e" for c in value)
    ):
        return value
    return None


def _expires_in(value: object) -> float | None:
    if isinstance(value, bool):
        return None
    if isinstance(value, str):  # some servers send "3600"
        try:
            value = float(value)
        except ValueError:
            return None
    if not isinstance(value, int | float):
        return None
    try:
        seconds = float(value)
    except OverflowError:
        return MAX_EXPIRES_IN
    if math.isnan(seconds) or seconds <= 0:
        return None
    return min(seconds, MAX_EXPIRES_IN)


def _short(value: object, limit: int = 4096) -> str | None:
    return value if isinstance(value, str) and 0 < len(value) <= limit else None


def parse_token_response(status: int, body: bytes) -> TokenResponse:
    """Read a token endpoint's answer; an error answer raises `OAuthError` with its code."""
    data = parse_json_object(body)
    if status != 200:
        code = data.get("error") if data is not None else None
        raise OAuthError(
            f"the token endpoint answered {status}",
            error=code if isinstance(code, str) else None,
            status_code=status,
        )
    if data is None:
        raise OAuthError("the token endpoint sent no JSON object", status_code=status)
    access = _credential(data.get("access_token"))
    if access is None:
        raise OAuthError("the token endpoint sent no usable access_token", status_code=status)
    token_type = _short(data.get("token_type"), 64)
    if token_type is None:
        raise OAuthError("the token endpoint sent no token_type", status_code=status)
    return TokenResponse(
        access_token=access,
        token_type=token_type,
        expires_in=_expires_in(data.get("expires_in")),
        refresh_token=_credential(data.get("refresh_token")),
        scope=_short(data.get("scope")),
        issued_token_type=_short(data.get("issued_token_type"), 256),
    )


def token_from_response(response: TokenResponse, *, now: float, dpop: bool = False) -> Token:
    """The `Token` to hand out: a bearer token (or, when ``dpop``, a DPoP one to bind)."""
    if response.token_type.lower() not in (("bearer", "dpop") if dpop else ("bearer",)):
        raise OAuthError("the token endpoint issued a non-bearer token", status_code=200)
    try:
        token = Token.from_jwt(response.access_token, expires_in=response.expires_in, now=now)
    except MalformedTokenError:
        raise OAuthError("the token endpoint issued an unreadable JWT", status_code=200) from None
    if token.issued_at is None:  # an opaque token: it was issued just now
        token = Token(token.raw, expires_at=token.expires_at, issued_at=now)
    return token
