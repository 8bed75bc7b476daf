"""Provider records in Redis: sealed like tokens, named by a hash, kept locally too.

``mcpconn.oauth`` keeps refresh tokens and client registrations as records.
Every replica must see the same ones (a rotated refresh token is useless to a
replica still holding the old one), so they live in Redis, AES-GCM sealed and
bound to their key name; the name is a hash of the record's name, which
carries principals. While Redis is unreachable a replica uses its local copy.
"""

from __future__ import annotations

import hashlib
import logging
from typing import Any

from .health import Health, Unavailable
from .sealed import Sealer, SealError

__all__ = ["SealedRecords"]

logger = logging.getLogger("mcpconn.redis_store")


class SealedRecords:
    """``load``/``save`` of sealed text records under ``{namespace}:record:{hash}``."""

    def __init__(self, redis: Any, health: Health, sealer: Sealer, namespace: str) -> None:
        self._redis = redis
        self._health = health
        self._sealer = sealer
        self._ns = namespace
        self._local: dict[str, str] = {}

    def __repr__(self) -> str:
        return f"<SealedRecords namespace={self._ns!r} local={len(self._local)}>"

    def _key(self, name: str) -> str:
        return f"{self._ns}:record:{hashlib.sha256(name.encode()).hexdigest()[:32]}"

    async def load(self, name: str) -> str | None:
        key = self._key(name)
        try:
            blob = await self._health.call(lambda: self._redis.get(key))
        except Unavailable:
            return self._local.get(name)
        if blob is None:
            self._local.pop(name, None)
            return None
        try:
            text = self._sealer.open_text(bytes(blob), bound_to=key.encode())
        except SealError as exc:
            logger.warning("ignoring the shared record at %s: %s", key, exc)
            return None
        self._local[name] = text
        return text

    async def save(self, name: str, value: str | None) -> None:
        key = self._key(name)
        if value is None:
            self._local.pop(name, None)
        else:
            self._local[name] = value
        try:
            if value is None:
                await self._health.call(lambda: self._redis.delete(key))
            else:
                blob = self._sealer.seal_text(value, bound_to=key.encode())
                await self._health.call(lambda: self._redis.set(key, blob))
        except Unavailable:
            logger.warning("Redis unavailable: record %s kept on this replica only", key)
