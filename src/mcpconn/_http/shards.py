"""The HTTP clients the supervisor's connections share.

httpcore's pool looks at every connection it holds on every request, so one
client carrying a thousand open SSE listeners makes each request cost O(N) and
start-up O(N^2) (measured: 62 s of client CPU to connect 1,000 listeners).
`H11Transport` does O(1) work per request, so when it carries the client
(`uses_h11`: no proxy in the environment) every connection shares one client.
Otherwise the client is httpx's own, in shards of ``shard_size`` connections
to keep that scan short while still sharing keep-alive connections and one
TLS context among neighbours.
"""

from __future__ import annotations

import ssl
from dataclasses import dataclass

import anyio
import httpx

from .._core.settings import whole_number
from .client import make_client, uses_h11

_H11_IDLE = 1024


@dataclass
class _Shard:
    client: httpx.AsyncClient
    users: int = 0


class ClientShards:
    """Hands out `httpx.AsyncClient` shards; each carries at most ``shard_size`` connections.

    On `H11Transport` there is one shard, whatever its number of users.
    """

    def __init__(
        self, shard_size: int = 32, *, h11: bool | None = None, max_per_origin: int | None = None
    ) -> None:
        whole_number(shard_size, "shard_size")
        self._h11 = uses_h11() if h11 is None else h11
        self._shard_size = shard_size
        # On H11Transport a cap per origin; on httpx's transport, per shard's client.
        self._max_connections = max_per_origin
        self._shards: list[_Shard] = []
        self._ssl: ssl.SSLContext | None = None

    @property
    def h11(self) -> bool:
        """True when the clients run on `H11Transport`."""
        return self._h11

    def acquire(self) -> httpx.AsyncClient:
        if self._h11:
            shard = self._shards[0] if self._shards else None
        else:
            shard = next((s for s in self._shards if s.users < self._shard_size), None)
        if shard is None:
            if self._ssl is None:
                self._ssl = ssl.create_default_context()  # ~65 ms: once, shared by all
                self._ssl.set_alpn_protocols(["http/1.1"])
            # On H11Transport, idle sockets per origin: a burst of reconnects (one publish
            # waking 1,000 parked listeners) gives its discovers' sockets back faster than
            # the listens take them; at 64 almost half were closed and connected again.
            keepalive = _H11_IDLE if self._h11 else 2 * self._shard_size
            limits = httpx.Limits(
                max_connections=self._max_connections, max_keepalive_connections=keepalive
            )
            if self._h11:
                client = make_client(verify=self._ssl, limits=limits, follow_redirects=False)
            else:
                client = httpx.AsyncClient(verify=self._ssl, limits=limits, follow_redirects=False)
            shard = _Shard(client)
            self._shards.append(shard)
        shard.users += 1
        return shard.client

    def release(self, client: httpx.AsyncClient) -> None:
        for shard in self._shards:
            if shard.client is client:
                shard.users -= 1
                return

    async def aclose(self) -> None:
        shards, self._shards = self._shards, []
        with anyio.CancelScope(shield=True):
            for shard in shards:
                await shard.client.aclose()
