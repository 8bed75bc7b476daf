"""Refresh coalescing across replicas: N processes x M principals expiring at once.

Each replica is a separate process (tests/redis/replica.py) with its own
`TokenSource`; they share a real ``redis-server`` through `RedisTokenStore`.
Every round, every replica asks for all M principals concurrently (round 0:
cold start; later rounds: every token has just expired on every replica). The
wait percentiles cover the expiry rounds only. The
provider takes ``--delay`` seconds (an identity provider's latency) and counts
its calls in Redis. Target: M provider calls per round, whatever N. Baseline:
the same replicas with the default per-process memory store (N x M calls:
with rotating refresh tokens each extra call can revoke the token family).

Needs a Redis-compatible server: ``redis-server`` or ``valkey-server`` on PATH,
or the one the test extra installs (``tests/redis/redis_server.find_binary``).
"""

from __future__ import annotations

import argparse
import sys
import uuid
from typing import Any

from _harness import ROOT, Result, percentile, progress, run_scenario

sys.path.insert(0, str(ROOT / "tests" / "redis"))
from redis_server import RedisServer, find_binary
from replicas import Replica, start, stop


def run_fleet(
    server: RedisServer, n: int, m: int, rounds: int, delay: float, *options: str
) -> tuple[list[int], list[float], int]:
    namespace = f"bench{uuid.uuid4().hex[:8]}"
    replicas = start(server.url, namespace, n, "--delay", str(delay), *options)
    client = server.client()
    per_round: list[int] = []
    waits: list[float] = []
    try:
        for number in range(rounds):
            progress(f"{'memory' if options else 'redis'}: round {number + 1}/{rounds}")
            if number:
                for replica in replicas:
                    replica.ask(op="advance", seconds=7200)
            before = int(client.get(f"{namespace}:test:calls") or 0)
            keys = [f"user{i}" for i in range(m)]
            answers = _get_everywhere(replicas, keys)
            per_round.append(int(client.get(f"{namespace}:test:calls") or 0) - before)
            if number:  # round 0 is the cold start (connections, imports): not counted
                for answer in answers:
                    waits.extend(answer["waits"])
        fallbacks = sum(replica.ask(op="stats")["fallbacks"] for replica in replicas)
    finally:
        stop(replicas)
        client.close()
    return per_round, waits, fallbacks


def _get_everywhere(replicas: list[Replica], keys: list[str]) -> list[dict[str, Any]]:
    for replica in replicas:
        replica.send(op="get", keys=keys)
    return [replica.read(timeout=120) for replica in replicas]


async def scenario(args: argparse.Namespace) -> Result:
    n = 3 if args.quick else 6
    m = 20 if args.quick else 100
    rounds = 3 if args.quick else 5
    delay = 0.05
    result = Result(
        "replicas",
        {"replicas": n, "principals": m, "rounds": rounds, "provider_delay_s": delay},
    )
    binary = find_binary()
    if binary is None:
        result.notes.append("no redis-server, valkey-server or packaged server: nothing measured")
        return result
    server = RedisServer(binary)
    server.start()
    try:
        ours, our_waits, fallbacks = run_fleet(server, n, m, rounds, delay)
        theirs, their_waits, _ = run_fleet(server, n, m, rounds, delay, "--memory")
    finally:
        server.kill()
    result.row("replicas x principals", f"{n} x {m}", f"{n} x {m}")
    result.row("provider calls per round", "/".join(map(str, ours)), "/".join(map(str, theirs)))
    for q in (50, 99):
        result.row(
            f"get() wait p{q} (ms)",
            percentile(our_waits, q) * 1000,
            percentile(their_waits, q) * 1000,
        )
    result.row("get() wait max (ms)", max(our_waits) * 1000, max(their_waits) * 1000)
    result.row("local fallbacks (a Redis call timed out)", fallbacks, "")
    worst = max(ours)
    result.target("provider calls per round", f"{m} (one per principal)", worst, worst == m)
    result.notes.append(
        "baseline: the same processes with the per-process memory store (no sharing)"
    )
    result.notes.append(
        "waits include the provider's latency; a fallback (Redis slower than op_timeout) "
        "may add provider calls by design"
    )
    result.figures.update(
        calls_per_round=ours,
        baseline_calls_per_round=theirs,
        fallbacks=fallbacks,
        wait_ms={q: percentile(our_waits, q) * 1000 for q in (50, 90, 99)},
        baseline_wait_ms={q: percentile(their_waits, q) * 1000 for q in (50, 90, 99)},
    )
    return result


if __name__ == "__main__":
    run_scenario("replicas", scenario)
