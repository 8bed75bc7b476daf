"""Where a key's shared token lives in Redis, and how its blob is sealed and announced.

Key names and events carry a hash of (principal, audience), never the names; the
hash tag keeps a key's token, lock, fence and failure mark in one cluster slot. A
blob is sealed bound to its Redis key name, so a blob copied to another key does
not open, and it carries a TTL from the token's ``exp``.
"""

from __future__ import annotations

import hashlib
import json
import logging
import time
from typing import Any

from .._tokens.store import Key, StoredToken
from .pubsub import Opened, encode
from .sealed import Sealer, SealError

__all__ = ["Keyspace"]

logger = logging.getLogger("mcpconn.redis_store")


class Keyspace:
    """One namespace's key names, events and sealed blobs, for one replica."""

    def __init__(
        self, namespace: str, *, replica: str, sealer: Sealer, ttl_without_expiry: float
    ) -> None:
        self.namespace = namespace
        self.channel = f"{namespace}:events"
        self.replica = replica
        self._sealer = sealer
        self._ttl_without_expiry = ttl_without_expiry
        #: The keys this replica has used, by digest: what a resync catches up on.
        self.known: dict[str, Key] = {}

    def digest(self, key: Key) -> str:
        material = json.dumps([key[0], key[1]], separators=(",", ":")).encode()
        digest = hashlib.sha256(material).hexdigest()[:32]
        self.known[digest] = key
        return digest

    def name(self, digest: str, part: str) -> str:
        # The hash tag keeps a key's token, lock and fence in one cluster slot.
        return f"{self.namespace}:{{{digest}}}:{part}"

    def event(self, kind: str, digest: str, blob: bytes | None = None) -> str:
        return encode(self.replica, kind, digest, blob)

    def open(self, digest: str, blob: Any) -> Opened | None:
        name = self.name(digest, "token")
        try:
            key, entry, published = self._sealer.open(bytes(blob), bound_to=name.encode())
        except SealError as exc:
            logger.warning("ignoring the shared token at %s: %s", name, exc)
            return None
        return key, entry, published

    def seal(self, digest: str, entry: StoredToken, *, published: bool) -> bytes:
        key = self.known[digest]
        name = self.name(digest, "token").encode()
        return self._sealer.seal(key, entry, published=published, bound_to=name)

    def ttl_ms(self, entry: StoredToken) -> int | None:
        """Milliseconds until ``exp`` by this replica's clock; ``None``: already expired."""
        expires_at = entry.token.expires_at
        if expires_at is None:
            return int(self._ttl_without_expiry * 1000)
        ttl = int((expires_at - time.time()) * 1000)
        return ttl if ttl > 0 else None
