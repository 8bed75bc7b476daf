"""Read a JWT's ``exp`` and ``iat`` without verifying its signature.

We only schedule refreshes from these claims; the server that receives the
token verifies it. Sans-IO: no clock, no key, no network.

What counts as a JWT (the decision every other rule hangs on):

* A string **without a dot** is opaque, always. A random opaque token can
  therefore never be mistaken for a broken JWT.
* A string with dots is *JWT-shaped* when its first segment is base64url text
  that decodes to something starting with ``{`` (a JOSE header; in practice the
  segment starts with ``eyJ``). Anything else with dots (``ya29.a0Af...``) is
  opaque: it has no expiry we can know.
* A JWT-shaped string with **3 segments** is a JWS: its header and payload must
  be JSON objects, else `MalformedTokenError`.
* A JWT-shaped string with **5 segments** is a JWE: its claims are encrypted,
  so, like an opaque token, it has no known expiry (its header must still be a
  JSON object).
* A JWT-shaped string with **any other number of segments** (2: a truncated
  JWS, 4, 6+) is `MalformedTokenError`.

Claims: ``exp`` and ``iat`` are NumericDates: an int or float (never a bool),
finite, between 0 and 253402300799 (9999-12-31). A bad ``exp`` is
`MalformedTokenError` (never "valid forever"); no ``exp`` means no known expiry.
A bad ``iat`` is ignored (``issued_at=None``): it only tunes the refresh-ahead
window, and rejecting an otherwise usable token over it would help nobody.
"""

from __future__ import annotations

import base64
import binascii
import json
import math
import re
from dataclasses import dataclass
from typing import Any, Literal

import jwt

from .._exceptions import MalformedTokenError

__all__ = ["MAX_NUMERIC_DATE", "Claims", "numeric_date", "read_claims"]

#: 9999-12-31T23:59:59Z: anything later is not a date, it is garbage.
MAX_NUMERIC_DATE = 253402300799.0

_SEGMENT = re.compile(r"[A-Za-z0-9_-]*={0,2}")
_JWS = jwt.PyJWS()

TokenKind = Literal["opaque", "jws", "jwe"]


@dataclass(frozen=True)
class Claims:
    """What we know about a token's lifetime. Holds no part of the token."""

    kind: TokenKind
    expires_at: float | None = None
    issued_at: float | None = None


def _b64url_decode(segment: str) -> bytes | None:
    if not segment or _SEGMENT.fullmatch(segment) is None:
        return None
    padded = segment.rstrip("=")
    padded += "=" * (-len(padded) % 4)
    try:
        return base64.urlsafe_b64decode(padded)
    except (binascii.Error, ValueError):
        return None


def _looks_like_jose_header(segment: str) -> bool:
    decoded = _b64url_decode(segment)
    return decoded is not None and decoded.lstrip(b" \t\r\n").startswith(b"{")


def _json_object(data: bytes, what: str) -> dict[str, Any]:
    try:
        value = json.loads(data)
    except (ValueError, RecursionError) as exc:  # UnicodeDecodeError is a ValueError
        raise MalformedTokenError(f"JWT {what} is not valid JSON") from exc
    if not isinstance(value, dict):
        raise MalformedTokenError(f"JWT {what} is not a JSON object")
    return value


def numeric_date(value: object) -> float | None:
    """``value`` as epoch seconds if it is a sane NumericDate, else ``None``."""
    if isinstance(value, bool) or not isinstance(value, int | float):
        return None
    try:
        as_float = float(value)
    except OverflowError:  # an int too large for a float
        return None
    if not math.isfinite(as_float) or not 0.0 <= as_float <= MAX_NUMERIC_DATE:
        return None
    return as_float


def read_claims(raw: str) -> Claims:
    """Classify ``raw`` and read its ``exp``/``iat``; see the module docstring for the rules.

    Raises `MalformedTokenError` for a JWT-shaped string we cannot read. The
    message describes the shape only; it never quotes the token.
    """
    if not isinstance(raw, str):
        raise MalformedTokenError(f"a token must be a str, not {type(raw).__name__}")
    segments = raw.split(".")
    if len(segments) == 1 or not _looks_like_jose_header(segments[0]):
        return Claims(kind="opaque")
    if len(segments) == 5:
        header = _b64url_decode(segments[0])
        assert header is not None  # _looks_like_jose_header checked it
        _json_object(header, "header")
        return Claims(kind="jwe")
    if len(segments) != 3:
        raise MalformedTokenError(
            f"token looks like a JWT but has {len(segments)} segments (a JWS has 3)"
        )
    if any(_SEGMENT.fullmatch(s) is None for s in segments):
        raise MalformedTokenError("JWT segments are not base64url")
    header = _b64url_decode(segments[0])
    assert header is not None
    _json_object(header, "header")
    try:
        decoded = _JWS.decode_complete(raw, options={"verify_signature": False})
    except jwt.PyJWTError as exc:
        raise MalformedTokenError(f"JWT cannot be decoded ({type(exc).__name__})") from exc
    payload = decoded["payload"]
    if not isinstance(payload, bytes):  # pragma: no cover - pyjwt always gives bytes
        raise MalformedTokenError("JWT payload cannot be decoded")
    claims = _json_object(payload, "payload")

    expires_at: float | None = None
    if "exp" in claims:
        expires_at = numeric_date(claims["exp"])
        if expires_at is None:
            raise MalformedTokenError(
                f"JWT 'exp' claim is not a valid NumericDate ({type(claims['exp']).__name__})"
            )
    issued_at = numeric_date(claims.get("iat"))
    return Claims(kind="jws", expires_at=expires_at, issued_at=issued_at)
