"""Scenario 1, idle-expiry (the seed): ~2 s tokens, idle gaps past expiry, many cycles.

mcpconn connections and a naive client that caches its token without reading
``exp`` run side by side against the same mock server process, each with its
own principals. The server's counters say how many expired tokens reached it.
Target: 0 expired tokens from mcpconn, 100 % of its calls succeed.
"""

from __future__ import annotations

import argparse

import anyio
import httpx
from _baselines import NaiveSession
from _harness import MockProcess, Result, run_scenario

from mcpconn import Backoff, ServerConfig, State, Supervisor, TokenSource
from mcpconn.testing import JWTIssuer, JWTProvider

LIFETIME = 2.0


async def scenario(args: argparse.Namespace) -> Result:
    clients = 5 if args.quick else 20
    cycles = 2 if args.quick else 8
    gap = LIFETIME + 0.6
    result = Result("idle-expiry", {"connections": clients, "cycles": cycles, "gap_s": gap})
    async with MockProcess() as mock:
        issuer = JWTIssuer(mock.secret)
        provider = JWTProvider(issuer, lifetime=LIFETIME)
        ours_ok = ours_calls = naive_ok = naive_calls = 0
        async with (
            TokenSource(provider, margin=0.5) as tokens,
            Supervisor(tokens, backoff=Backoff(initial=0.1, max_delay=1.0)) as sup,
            httpx.AsyncClient(timeout=30) as plain,
        ):
            config = ServerConfig("mock", mock.url, transport="streamable-http")
            conns = [await sup.connect(config, f"user{i}") for i in range(clients)]
            naive = [
                NaiveSession(plain, mock.url, issuer.mint(f"naive{i}", lifetime=LIFETIME))
                for i in range(clients)
            ]
            with anyio.fail_after(30):
                for conn in conns:
                    await conn.wait_for(State.READY)
                for session in naive:
                    await session.initialize()

            async def ours(conn: object) -> None:
                nonlocal ours_ok, ours_calls
                ours_calls += 1
                try:
                    await conn.call_tool("echo", {"text": "x"}, timeout=10)  # type: ignore[attr-defined]
                    ours_ok += 1
                except Exception:  # a failed call is the figure we report
                    pass

            async def theirs(session: NaiveSession) -> None:
                nonlocal naive_ok, naive_calls
                naive_calls += 1
                if await session.call_tool("echo", {"text": "x"}) == 200:
                    naive_ok += 1

            for _ in range(cycles):
                await anyio.sleep(gap)  # idle past expiry
                async with anyio.create_task_group() as tg:
                    for conn in conns:
                        tg.start_soon(ours, conn)
                    for session in naive:
                        tg.start_soon(theirs, session)
            calls = provider.total_calls
        stats = await mock.stats()
    expired = stats["expired_by_principal"]
    ours_expired = sum(v for k, v in expired.items() if k.startswith("user"))
    naive_expired = sum(v for k, v in expired.items() if k.startswith("naive"))
    result.row("tool calls after an idle gap", ours_calls, naive_calls)
    result.row(
        "succeeded",
        f"{ours_ok} ({100 * ours_ok / max(1, ours_calls):.0f} %)",
        f"{naive_ok} ({100 * naive_ok / max(1, naive_calls):.0f} %)",
    )
    result.row("expired tokens seen by the server", ours_expired, naive_expired)
    result.row("token provider calls", calls, "0 (token cached once)")
    result.target("expired tokens at the server", "0", ours_expired, ours_expired == 0)
    result.target(
        "calls succeeding", "100 %", 100 * ours_ok / max(1, ours_calls), ours_ok == ours_calls
    )
    result.figures.update(server_stats=stats, provider_calls=calls)
    return result


if __name__ == "__main__":
    run_scenario("idle-expiry", scenario)
