"""DPoP (RFC 9449): sender-constrained tokens, a fresh signed proof on every request.

A `DPoPKey` is one ES256 key pair per provider; its private key never leaves
the object (no ``repr`` shows more than the public key's thumbprint). A
`DPoPToken` is a `Token` bound to that key: `BearerAuth` asks it to
``authorize`` each request (``Authorization: DPoP`` plus a ``DPoP`` proof with
``htm``, ``htu``, ``iat``, a unique ``jti`` and ``ath``), and on a 401
``use_dpop_nonce`` retries once with the server's nonce (``retry_with_nonce``).
Nonces are remembered per origin, so later proofs carry them from the start.

A DPoP token is bound to this process's key: a shared store hands other
replicas only the credential, which their servers will refuse (they refresh).
Needs the ``dpop`` extra (the ``cryptography`` package).
"""

from __future__ import annotations

import base64
import hashlib
import json
import secrets
import time
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import urlsplit, urlunsplit

import httpx
import jwt

from .._core.http_rules import parse_www_authenticate
from .._core.token import Token

__all__ = ["DPoPKey", "DPoPToken", "nonce_challenge"]

_MAX_NONCE = 512


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def _htu(url: str) -> str:
    parts = urlsplit(url)
    return urlunsplit((parts.scheme, parts.netloc, parts.path, "", ""))


def _origin(url: str) -> str:
    parts = urlsplit(url)
    return f"{parts.scheme}://{parts.netloc}".lower()


class DPoPKey:
    """An ES256 key pair that signs DPoP proofs, and the nonces servers asked for."""

    def __init__(self) -> None:
        try:
            from cryptography.hazmat.primitives.asymmetric import ec
        except ImportError as exc:  # pragma: no cover - depends on the environment
            raise ImportError("DPoP needs the 'dpop' extra: pip install 'mcpconn[dpop]'") from exc
        self._private = ec.generate_private_key(ec.SECP256R1())
        numbers = self._private.public_key().public_numbers()
        self.public_jwk: dict[str, str] = {
            "kty": "EC",
            "crv": "P-256",
            "x": _b64(numbers.x.to_bytes(32, "big")),
            "y": _b64(numbers.y.to_bytes(32, "big")),
        }
        canonical = json.dumps(self.public_jwk, sort_keys=True, separators=(",", ":"))
        #: RFC 7638 thumbprint of the public key (what a bound token's cnf.jkt names).
        self.thumbprint = _b64(hashlib.sha256(canonical.encode()).digest())
        self._nonces: dict[str, str] = {}

    def __repr__(self) -> str:
        return f"<DPoPKey ES256 jkt={self.thumbprint}>"

    def remember_nonce(self, url: str, nonce: str | None) -> bool:
        """Keep a server's ``DPoP-Nonce``; True when it is new (worth one retry)."""
        if not nonce or len(nonce) > _MAX_NONCE or not nonce.isascii():
            return False
        origin = _origin(url)
        if self._nonces.get(origin) == nonce:
            return False
        self._nonces[origin] = nonce
        return True

    def proof(self, method: str, url: str, *, access_token: str | None = None) -> str:
        """A fresh proof for one request (RFC 9449 section 4.2)."""
        claims: dict[str, Any] = {
            "jti": secrets.token_urlsafe(16),
            "htm": method.upper(),
            "htu": _htu(url),
            "iat": int(time.time()),
        }
        if access_token is not None:
            claims["ath"] = _b64(hashlib.sha256(access_token.encode("ascii")).digest())
        nonce = self._nonces.get(_origin(url))
        if nonce is not None:
            claims["nonce"] = nonce
        headers = {"typ": "dpop+jwt", "jwk": self.public_jwk}
        return jwt.encode(claims, self._private, algorithm="ES256", headers=headers)


def nonce_challenge(response: httpx.Response) -> str | None:
    """The nonce of a ``use_dpop_nonce`` answer (401 from a server, 400 from a token endpoint)."""
    nonce: str | None = response.headers.get("dpop-nonce")
    if nonce is None:
        return None
    if response.status_code == 401:
        challenge = parse_www_authenticate(response.headers.get_list("www-authenticate"))
        return nonce if challenge is not None and challenge.error == "use_dpop_nonce" else None
    return nonce


@dataclass(frozen=True, repr=False)
class DPoPToken(Token):
    """A `Token` bound to a `DPoPKey`: sent as ``Authorization: DPoP`` with a proof."""

    key: DPoPKey | None = field(default=None, compare=False)

    def authorize(self, request: httpx.Request) -> None:
        """Set the DPoP ``Authorization`` and a fresh ``DPoP`` proof on ``request``."""
        assert self.key is not None
        request.headers["Authorization"] = f"DPoP {self.raw}"
        request.headers["DPoP"] = self.key.proof(
            request.method, str(request.url), access_token=self.raw
        )

    def retry_with_nonce(self, response: httpx.Response) -> bool:
        """A 401 ``use_dpop_nonce`` with a new nonce: remember it; True means retry once."""
        nonce = nonce_challenge(response)
        return self.key is not None and self.key.remember_nonce(str(response.url), nonce)
