"""Scenario 3, coalescing: N connections of one principal whose token expires at once.

Each connection goes to its own downstream server (N `ServerConfig`s, one mock
process), all forwarding the same principal's token. At each expiry all N call
a tool in the same instant. Target: 1 provider call per expiry. Baseline: a
cache per connection (what a client without a shared, single-flight token
source does) asks the provider once per connection.
"""

from __future__ import annotations

import argparse
import time
from typing import Any

import anyio
from _harness import MockProcess, Result, connect_all, progress, run_scenario

from mcpconn import Backoff, ServerConfig, State, Supervisor, TokenSource
from mcpconn.testing import JWTIssuer, JWTProvider

PRINCIPAL = "shared"


class PerConnectionCache:
    """The baseline: each connection keeps its own token and refreshes it itself."""

    def __init__(self, provider: JWTProvider, margin: float) -> None:
        self.provider = provider
        self.margin = margin
        self.expires_at = 0.0

    async def get(self) -> None:
        if time.time() >= self.expires_at - self.margin:
            raw = await self.provider(_Request(PRINCIPAL))
            import jwt

            self.expires_at = float(jwt.decode(raw, options={"verify_signature": False})["exp"])


class _Request:
    def __init__(self, principal: str) -> None:
        self.principal = principal
        self.audience = None
        self.force = False
        self.reason = "expired"


async def scenario(args: argparse.Namespace) -> Result:
    n = 100 if args.quick else 1000
    expiries = 2
    lifetime = 3.0 if args.quick else 8.0
    margin = 1.0
    result = Result(
        "coalescing",
        {"connections": n, "expiries": expiries, "token_lifetime_s": lifetime, "margin_s": margin},
    )
    per_expiry: list[int] = []
    baseline: list[int] = []
    failures = 0
    async with MockProcess() as mock:
        issuer = JWTIssuer(mock.secret)
        provider = JWTProvider(issuer, lifetime=lifetime)
        theirs = JWTProvider(issuer, lifetime=lifetime)
        caches = [PerConnectionCache(theirs, margin) for _ in range(n)]
        async with (
            TokenSource(provider, margin=margin, stale_window=0.0) as tokens,
            Supervisor(tokens, backoff=Backoff(initial=0.2, max_delay=2.0)) as sup,
        ):
            configs = [
                ServerConfig(f"srv{i:04d}", mock.url, transport="streamable-http", listen=False)
                for i in range(n)
            ]
            progress(f"connecting {n} connections of one principal")
            conns = await connect_all(sup, configs, PRINCIPAL, State.READY)
            startup_calls = provider.total_calls
            for cache in caches:
                await cache.get()
            theirs.calls.clear()

            async def call(conn: Any) -> None:
                nonlocal failures
                try:
                    await conn.call_tool("echo", {"text": "x"}, timeout=30)
                except Exception:
                    failures += 1

            for expiry in range(expiries):
                progress(f"expiry {expiry + 1}/{expiries}")
                token = await tokens.get(PRINCIPAL)
                assert token.expires_at is not None
                # past the tokens' usable life (exp - margin) for everyone at once
                their_exp = max(cache.expires_at for cache in caches)
                deadline = max(token.expires_at, their_exp) - margin
                await anyio.sleep(max(0.0, deadline - time.time() + 0.05))
                before, before_theirs = provider.total_calls, theirs.total_calls
                async with anyio.create_task_group() as tg:
                    for conn in conns:
                        tg.start_soon(call, conn)
                    for cache in caches:
                        tg.start_soon(cache.get)
                per_expiry.append(provider.total_calls - before)
                baseline.append(theirs.total_calls - before_theirs)
        stats = await mock.stats()
    result.row("connections of one principal", n, n)
    result.row("provider calls at start-up", startup_calls, n)
    result.row(
        "provider calls per expiry", "/".join(map(str, per_expiry)), "/".join(map(str, baseline))
    )
    result.row("failed calls", failures, "")
    result.row("expired tokens seen by the server", stats["expired_tokens_seen"], "")
    worst = max(per_expiry) if per_expiry else -1
    result.target("provider calls per expiry", "1", worst, worst == 1)
    result.figures.update(per_expiry=per_expiry, baseline=baseline, server_stats=stats)
    return result


if __name__ == "__main__":
    run_scenario("coalescing", scenario)
