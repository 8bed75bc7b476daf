"""Scenario ``aggregator``: N upstream users x M downstream servers through examples/aggregator.py.

Every user calls tools round robin over the M mock servers *through the aggregator* with
short-lived tokens that it replaces shortly before they expire (as a real client does),
then makes the same calls *directly* to the mock servers. Reported: upstream call latency
p50/p99 both ways, the aggregator's CPU per forwarded call, its memory per (server,
principal) connection, and what the downstream servers saw (expired tokens, 401s), which
must be zero. Users speak the 2026-07-28 wire with plain httpx, so the load generator
costs little next to what it measures.
"""

from __future__ import annotations

import argparse
import contextlib
import itertools
import json
import secrets
import subprocess
import sys
import time
from collections import Counter
from pathlib import Path
from typing import Any

import anyio
import httpx
import jwt

sys.path.insert(0, str(Path(__file__).resolve().parent))

from _harness import (
    ROOT,
    MockProcess,
    Result,
    cpu_seconds,
    percentile,
    progress,
    rss_bytes,
    run_scenario,
)

AGGREGATOR = ROOT / "examples" / "aggregator.py"
VERSION = "2026-07-28"
META = {
    "io.modelcontextprotocol/protocolVersion": VERSION,
    "io.modelcontextprotocol/clientInfo": {"name": "bench", "version": "0"},
    "io.modelcontextprotocol/clientCapabilities": {},
}


class User:
    """One upstream user: a principal whose token is replaced before it expires."""

    def __init__(self, name: str, secret: str, lifetime: float) -> None:
        self.name = name
        self.secret = secret
        self.lifetime = lifetime
        self.renewals = 0
        self._token, self._expires = "", 0.0

    def renew(self) -> None:
        """Log in again at once (after a 401: the token aged while the call was queued)."""
        self._expires = 0.0

    def token(self) -> str:
        now = time.time()
        if now > self._expires - self.lifetime / 2:  # renewed halfway through its life
            issued = int(now)
            self._expires = issued + self.lifetime
            claims = {"sub": self.name, "iat": issued, "exp": int(self._expires)}
            self._token = jwt.encode(claims, self.secret, algorithm="HS256")
            self.renewals += 1
        return self._token


class Refused(RuntimeError):
    """A 401: the token expired (or came too close to it) before the call was served."""


def result_of(response: httpx.Response) -> dict[str, Any]:
    """The JSON-RPC message of a reply, JSON or one SSE event."""
    if response.headers.get("content-type", "").startswith("text/event-stream"):
        data = [line[5:] for line in response.text.splitlines() if line.startswith("data:")]
        message: dict[str, Any] = json.loads(data[-1])
    else:
        message = response.json()
    return message


async def call(client: httpx.AsyncClient, url: str, user: User, tool: str, rid: int) -> float:
    """One tools/call on the 2026-07-28 wire; its latency in seconds (raises on failure)."""
    body = {
        "jsonrpc": "2.0",
        "id": rid,
        "method": "tools/call",
        "params": {"name": tool, "arguments": {"text": "x"}, "_meta": META},
    }
    headers = {
        "Authorization": f"Bearer {user.token()}",
        "MCP-Protocol-Version": VERSION,
        "Mcp-Method": "tools/call",
        "Mcp-Name": tool,
        "Accept": "application/json, text/event-stream",
    }
    started = time.perf_counter()
    response = await client.post(url, json=body, headers=headers)
    elapsed = time.perf_counter() - started
    if response.status_code == 401:
        raise Refused(f"call failed: 401 {response.text[:200]}")
    message = result_of(response)
    if response.status_code != 200 or "error" in message or message["result"].get("isError"):
        raise RuntimeError(f"call failed: {response.status_code} {str(message)[:200]}")
    return elapsed


async def load(
    client: httpx.AsyncClient,
    users: list[User],
    targets: list[tuple[str, str]],
    seconds: float,
) -> tuple[list[float], Counter[str], int]:
    """Every user calls the targets round robin for ``seconds``: latencies, the failures
    counted by what they were (the error's type and the first of its text), and how
    many calls were refused with a 401 and retried once with a new login, as a real
    client does when its token aged in a queue (a second 401 is a failure)."""
    latencies: list[float] = []
    failures: Counter[str] = Counter()
    retried = 0
    ids = itertools.count(1)
    deadline = time.perf_counter() + seconds

    async def one(user: User, offset: int) -> None:
        nonlocal retried
        for i in itertools.count(offset):
            if time.perf_counter() >= deadline:
                return
            url, tool = targets[i % len(targets)]
            try:
                try:
                    latencies.append(await call(client, url, user, tool, next(ids)))
                except Refused:
                    retried += 1
                    user.renew()
                    latencies.append(await call(client, url, user, tool, next(ids)))
            except (httpx.HTTPError, RuntimeError, ValueError, KeyError) as exc:
                failures[f"{type(exc).__name__}: {str(exc)[:80]}"] += 1

    async with anyio.create_task_group() as tg:
        for offset, user in enumerate(users):
            tg.start_soon(one, user, offset)
    return latencies, failures, retried


class AggregatorProcess:
    def __init__(self, secret: str, servers: list[tuple[str, str]]) -> None:
        command = [sys.executable, str(AGGREGATOR), "--port", "0", "--jwt-secret", secret]
        for name, url in servers:
            command += ["--server", f"{name}={url}"]
        self.proc = subprocess.Popen(command, stdout=subprocess.PIPE)
        assert self.proc.stdout is not None
        line = self.proc.stdout.readline().decode()
        if not line.startswith("PORT "):
            self.proc.kill()
            raise RuntimeError(f"the aggregator did not start: {line!r}")
        self.url = f"http://127.0.0.1:{int(line.split()[1])}/mcp"

    def stop(self) -> int:
        self.proc.terminate()
        return self.proc.wait(timeout=15)


async def scenario(args: argparse.Namespace) -> Result:
    n_users, n_servers = (10, 2) if args.quick else (100, 5)
    seconds, lifetime = (6.0, 3.0) if args.quick else (30.0, 8.0)
    secret = secrets.token_urlsafe(32)
    result = Result(
        "aggregator",
        {"users": n_users, "servers": n_servers, "seconds": seconds, "token_lifetime": lifetime},
    )
    mocks = [MockProcess() for _ in range(n_servers)]
    names = [f"s{i}" for i in range(n_servers)]
    limits = httpx.Limits(max_connections=n_users * 2)
    async with contextlib.AsyncExitStack() as processes:
        for mock in mocks:
            mock.secret = secret  # the users' tokens are what goes downstream
            await processes.enter_async_context(mock)
        servers = [(n, m.url) for n, m in zip(names, mocks, strict=True)]
        agg = await anyio.to_thread.run_sync(AggregatorProcess, secret, servers)
        processes.callback(agg.proc.kill)  # if the run fails half-way (no-op once stopped)
        users = [User(f"user-{i}", secret, lifetime) for i in range(n_users)]
        warmup_errors: list[str] = []
        async with httpx.AsyncClient(timeout=30, limits=limits) as client:
            progress(f"warm-up: {n_users} users x {n_servers} servers connect")
            via = [(agg.url, f"{n}_echo") for n in names]
            for i, user in enumerate(users):
                if i == 1:  # the first user paid the one-time costs (imports, caches)
                    rss_idle = rss_bytes(agg.proc.pid)
                for url, tool in via:
                    try:
                        await call(client, url, user, tool, 0)
                    except (httpx.HTTPError, RuntimeError, ValueError, KeyError) as exc:
                        warmup_errors.append(f"{type(exc).__name__}: {str(exc)[:200]}")
            rss_connected = rss_bytes(agg.proc.pid)
            progress(f"through the aggregator for {seconds:g} s")
            cpu0 = cpu_seconds(agg.proc.pid)
            through, failed_through, retried_through = await load(client, users, via, seconds)
            cpu_per_call = (cpu_seconds(agg.proc.pid) - cpu0) / max(1, len(through))
            seen_through = [await m.stats() for m in mocks]
            progress(f"directly for {seconds:g} s")
            direct_targets = [(m.url, "echo") for m in mocks]
            direct, failed_direct, retried_direct = await load(
                client, users, direct_targets, seconds
            )
        stats = [await m.stats() for m in mocks]
        status = await anyio.to_thread.run_sync(agg.stop)
    per_connection = (rss_connected - rss_idle) / ((n_users - 1) * n_servers)
    expired = sum(s["expired_tokens_seen"] for s in seen_through)
    unauthorized = sum(s["unauthorized_total"] for s in seen_through)
    expired_direct = sum(s["expired_tokens_seen"] for s in stats) - expired
    unauthorized_direct = sum(s["unauthorized_total"] for s in stats) - unauthorized
    renewals = sum(u.renewals for u in users)
    result.row("calls (through / direct)", len(through), len(direct))
    result.row("failed calls", failed_through.total(), failed_direct.total())
    retried = (retried_through, retried_direct)
    result.row("calls retried after a 401 (token aged in the queue)", *retried)
    for label, failures in (("through", failed_through), ("direct", failed_direct)):
        result.notes.extend(f"failed {label}: {n} x {why}" for why, n in failures.most_common(3))
    result.row("failed warm-up calls (first connect)", len(warmup_errors))
    result.notes.extend(f"warm-up failure: {e}" for e in warmup_errors[:3])
    for q in (50, 99):
        ms = (percentile(through, q) * 1e3, percentile(direct, q) * 1e3)
        result.row(f"upstream latency p{q} (ms)", *ms)
    result.row("aggregator CPU per forwarded call (ms)", cpu_per_call * 1e3)
    result.row("aggregator memory per (server, principal) (KiB)", per_connection / 1024)
    result.row("token renewals by users", renewals)
    result.row("expired tokens seen downstream", expired, expired_direct)
    result.row("401s downstream", unauthorized, unauthorized_direct)
    result.row("aggregator exit status after SIGTERM", status)
    result.target("expired tokens downstream", "0", expired, expired == 0)
    result.target("401s downstream", "0", unauthorized, unauthorized == 0)
    failed = failed_through.total() + len(warmup_errors)
    result.target("failed calls through the aggregator", "0", failed, failed == 0)
    step = len(through) // 200
    result.figures = {
        "latency_through_ms": [round(x * 1e3, 3) for x in sorted(through)[:: max(1, step)]],
        "rss_idle": rss_idle,
        "rss_connected": rss_connected,
        "cpu_per_call_s": cpu_per_call,
    }
    result.notes.append(
        "direct calls go to the mock servers with the same users and tokens; the aggregator "
        "adds one SDK server hop, one mcpconn hop and a second HTTP request per call"
    )
    return result


if __name__ == "__main__":
    run_scenario("aggregator", scenario)
