"""Tokens encrypted at rest: AES-GCM blobs bound to the place they are stored.

Blob layout (bytes)::

    version (1) | key id (8) | nonce (12) | AES-GCM ciphertext + tag

* The nonce is random per write (96 bits: safe for far more writes than a
  token store ever sees under one key).
* The key id is derived from the key itself (a SHA-256 fingerprint), so keys
  need no names: give the new key as ``key`` and the old ones as ``old_keys``
  and blobs written under any of them stay readable while the fleet rotates.
* The associated data is the storage location (the Redis key name). A blob
  copied to another principal's key fails authentication instead of handing
  that principal someone else's token. The plaintext also names the principal
  and audience, checked again on open.
"""

from __future__ import annotations

import hashlib
import json
import os
from collections.abc import Iterable
from typing import Any

try:
    from cryptography.exceptions import InvalidTag
    from cryptography.hazmat.primitives.ciphers.aead import AESGCM
except ImportError as exc:  # pragma: no cover - depends on the environment
    raise ImportError(
        "mcpconn's shared token store needs the 'cryptography' package: "
        "pip install 'mcpconn[redis]'"
    ) from exc

from .._core.token import Token
from .._tokens.store import Key, StoredToken

__all__ = ["SealError", "Sealer", "key_id"]

VERSION = 1
_HEADER = 1 + 8 + 12


class SealError(ValueError):
    """A blob that cannot be opened: unknown key, tampered, moved, or not ours."""


def key_id(key: bytes) -> bytes:
    """8 bytes that name ``key`` without revealing it."""
    return hashlib.sha256(b"mcpconn-token-key-id\x00" + key).digest()[:8]


def _check_key(key: object) -> bytes:
    if not isinstance(key, bytes | bytearray):
        raise TypeError("an encryption key must be bytes")
    if len(key) not in (16, 24, 32):
        raise ValueError("an AES-GCM key must be 16, 24 or 32 bytes (32 recommended)")
    return bytes(key)


class Sealer:
    """Seals `StoredToken` values with ``key``; opens blobs under ``key`` or ``old_keys``."""

    def __init__(self, key: bytes, old_keys: Iterable[bytes] = ()) -> None:
        current = _check_key(key)
        self._id = key_id(current)
        self._current = AESGCM(current)
        self._keys = {self._id: self._current}
        for old in old_keys:
            checked = _check_key(old)
            self._keys.setdefault(key_id(checked), AESGCM(checked))

    def __repr__(self) -> str:
        return f"<Sealer key_id={self._id.hex()} keys={len(self._keys)}>"

    def seal(self, key: Key, entry: StoredToken, *, published: bool, bound_to: bytes) -> bytes:
        payload = {
            "p": key[0],
            "a": key[1],
            "t": entry.token.raw,
            "e": entry.token.expires_at,
            "i": entry.token.issued_at,
            "o": entry.obtained_at,
            "pub": published,
        }
        plaintext = json.dumps(payload, separators=(",", ":")).encode()
        nonce = os.urandom(12)
        sealed = self._current.encrypt(nonce, plaintext, _aad(bound_to))
        return bytes([VERSION]) + self._id + nonce + sealed

    def open(self, blob: bytes, *, bound_to: bytes) -> tuple[Key, StoredToken, bool]:
        """``(key, entry, published)``; raises `SealError` (never quoting the blob)."""
        if len(blob) <= _HEADER or blob[0] != VERSION:
            raise SealError("not a sealed token blob of a known version")
        aead = self._keys.get(blob[1:9])
        if aead is None:
            raise SealError(f"sealed under an unknown key (id {blob[1:9].hex()})")
        try:
            plaintext = aead.decrypt(blob[9:21], blob[21:], _aad(bound_to))
        except InvalidTag:
            raise SealError("authentication failed (wrong key, tampered or moved)") from None
        try:
            payload: dict[str, Any] = json.loads(plaintext)
            token = Token(payload["t"], expires_at=payload["e"], issued_at=payload["i"])
            key = (payload["p"], payload["a"])
            entry = StoredToken(token, float(payload["o"]))
            published = bool(payload["pub"])
        except (ValueError, KeyError, TypeError):
            raise SealError("sealed payload is malformed") from None
        if not isinstance(key[0], str) or not (key[1] is None or isinstance(key[1], str)):
            raise SealError("sealed payload is malformed")
        return key, entry, published


def _aad(bound_to: bytes) -> bytes:
    return b"mcpconn-token-v1\x00" + bound_to
