"""Scenario 4, recovery: N parked listeners, then one token is published.

One principal's N listeners (one per downstream server) park in NEEDS_REAUTH
against a server that revoked the principal. The server restores it and the
embedder publishes a fresh token (the user logged in again). Target: all READY
within 1 s at p99, with the reconnects spread out rather than a
single-millisecond spike (the supervisor's wake jitter, 0.25 s by default).
The server's own request records give the connects per 10 ms.
"""

from __future__ import annotations

import argparse
import time
from collections import Counter

import anyio
import httpx
from _baselines import bare_reconnect
from _harness import (
    LogCounter,
    MockProcess,
    Result,
    connect_all,
    percentile,
    progress,
    run_scenario,
)

from mcpconn import Backoff, ServerConfig, State, Supervisor, TokenSource
from mcpconn.testing import JWTIssuer, JWTProvider

PRINCIPAL = "returning-user"


async def scenario(args: argparse.Namespace) -> Result:
    n = 100 if args.quick else 1000
    bound = 30.0 if args.quick else 90.0
    backoff = Backoff(initial=0.05, max_delay=0.2, auth_attempts=2)
    result = Result("recovery", {"listeners": n, "wake_jitter_s": 0.25})
    with LogCounter() as logs:  # 1,000 park lines: count them, do not print them
        async with MockProcess() as mock:
            issuer = JWTIssuer(mock.secret)
            provider = JWTProvider(issuer, lifetime=600)
            await mock.post("revoke", principal=PRINCIPAL)
            async with (
                TokenSource(provider) as tokens,
                Supervisor(tokens, backoff=backoff) as sup,
            ):
                configs = [
                    ServerConfig(f"srv{i:04d}", mock.url, transport="streamable-http")
                    for i in range(n)
                ]
                progress(f"connecting {n} listeners of a revoked principal")
                conns = await connect_all(sup, configs, PRINCIPAL, State.NEEDS_REAUTH)
                progress("all parked; the user logs in again")
                await mock.post("restore", principal=PRINCIPAL)
                ready_after: list[float] = []

                async def watch(conn: object, started: float) -> None:
                    await conn.wait_for(State.READY)  # type: ignore[attr-defined]
                    ready_after.append(anyio.current_time() - started)

                wall_start = time.time()
                token = issuer.mint(PRINCIPAL, lifetime=600)
                with anyio.move_on_after(bound):  # a bounded scenario: report what made it
                    async with anyio.create_task_group() as tg:
                        started = anyio.current_time()
                        for conn in conns:
                            tg.start_soon(watch, conn, started)
                        tokens.publish(PRINCIPAL, token)
            assert mock.control is not None
            response = await mock.control.get(
                mock.control_url + "records", params={"since": str(wall_start)}
            )
            records = response.json()
            progress(f"the floor: {n} bare httpx reconnects at once (discover + listen)")
            floor = await bare_floor(mock.url, issuer.mint(PRINCIPAL, lifetime=600), n, bound)
    handshakes = ("initialize", "server/discover")  # session era, 2026-07-28 era
    connects = sorted(r["at"] for r in records if r.get("rpc_method") in handshakes)
    bins = Counter(int((t - wall_start) * 100) for t in connects)  # 10 ms bins
    worst_bin = max(bins.values()) if bins else 0
    p50, p99 = percentile(ready_after, 50), percentile(ready_after, 99)
    span = (connects[-1] - connects[0]) if len(connects) > 1 else 0.0
    result.row("parked listeners", n)
    result.row("WARNING+ log lines (one per park expected)", logs.count)
    result.row(f"READY within {bound:g} s of publish", len(ready_after))
    if len(ready_after) < n:  # the ones still connecting count as the bound
        ready_after += [bound] * (n - len(ready_after))
    result.row("READY after publish: p50 (s)", p50)
    result.row("READY after publish: p99 (s)", p99)
    result.row("READY after publish: max (s)", max(ready_after, default=float("nan")))
    result.row("handshakes seen by the server", len(connects))
    result.row("connects spread over (s)", span)
    result.row("max connects in one 10 ms bin", worst_bin)
    result.row("mean connects per non-empty 10 ms bin", len(connects) / max(1, len(bins)))
    floor_p99 = percentile(floor, 99) if len(floor) == n else float("nan")
    result.row("the floor, bare httpx: discover answered p99 (s)", floor_p99)
    result.row("p99 to READY / the floor's p99", p99 / floor_p99 if floor_p99 else float("nan"))
    result.target("p99 time to READY", "<= 1 s", p99, p99 <= 1.0)
    result.target("connects spread", f"max per 10 ms << {n}", worst_bin, worst_bin <= n / 10)
    histogram = [bins.get(i, 0) for i in range(max(bins, default=0) + 1)]
    result.figures.update(ready_after_s=sorted(ready_after), connects_per_10ms=histogram)
    return result


async def bare_floor(url: str, token: str, n: int, bound: float) -> list[float]:
    """N plain-httpx reconnects started at once on fresh connections (clients of ~32
    connections, as the supervisor used): what the same requests cost without mcpconn.
    Each reconnect keeps to one client, so its two requests share one pool."""
    answered: list[float] = []
    limits = httpx.Limits(max_connections=None, max_keepalive_connections=64)
    clients = [
        httpx.AsyncClient(timeout=bound, limits=limits, verify=False)
        for _ in range(max(1, n // 32))
    ]
    try:
        with anyio.move_on_after(bound):
            async with anyio.create_task_group() as tg:
                started = anyio.current_time()
                for i in range(n):
                    client = clients[i % len(clients)]
                    tg.start_soon(bare_reconnect, client, url, token, started, answered)
    finally:
        for client in clients:
            await client.aclose()
    return answered


if __name__ == "__main__":
    run_scenario("recovery", scenario)
