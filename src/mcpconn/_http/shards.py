"""HTTP clients for many long-lived connections, in shards.

httpcore's pool looks at every connection it holds on every request, so one
client carrying a thousand open SSE listeners makes each request cost O(N) and
start-up O(N^2) (measured: 62 s of client CPU to connect 1,000 listeners). A
shard of ``shard_size`` connections keeps that scan short while still sharing
keep-alive connections and one TLS context among neighbours.
"""

from __future__ import annotations

import ssl
from dataclasses import dataclass

import anyio
import httpx


@dataclass
class _Shard:
    client: httpx.AsyncClient
    users: int = 0


class ClientShards:
    """Hands out `httpx.AsyncClient` shards; each carries at most ``shard_size`` connections."""

    def __init__(self, shard_size: int = 32) -> None:
        if shard_size < 1:
            raise ValueError("shard_size must be >= 1")
        self._shard_size = shard_size
        self._shards: list[_Shard] = []
        self._ssl: ssl.SSLContext | None = None

    def acquire(self) -> httpx.AsyncClient:
        shard = next((s for s in self._shards if s.users < self._shard_size), None)
        if shard is None:
            if self._ssl is None:
                self._ssl = ssl.create_default_context()  # ~65 ms: once, shared by all
            client = httpx.AsyncClient(
                verify=self._ssl,
                limits=httpx.Limits(
                    max_connections=None, max_keepalive_connections=2 * self._shard_size
                ),
                follow_redirects=False,
            )
            shard = _Shard(client)
            self._shards.append(shard)
        shard.users += 1
        return shard.client

    def release(self, client: httpx.AsyncClient) -> None:
        for shard in self._shards:
            if shard.client is client:
                shard.users -= 1
                return

    @property
    def shards(self) -> int:
        return len(self._shards)

    async def aclose(self) -> None:
        shards, self._shards = self._shards, []
        with anyio.CancelScope(shield=True):
            for shard in shards:
                await shard.client.aclose()
