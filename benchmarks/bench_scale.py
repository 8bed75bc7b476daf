"""Scenario 5, scale: 1,000 / 5,000 / 10,000 idle listeners (quick: 200).

Each size runs in a fresh client process (``--size N``) against a fresh mock
server process, so its memory figure is its own. Client RSS is read once the
supervisor and one warm-up connection exist, and again with N listeners READY
and idle; the difference over N is the cost of a listener (its session, its
open SSE stream, its token, its tasks). Idle CPU is measured over 5 s with
nothing happening. Target: <= 20 KiB per listener.
"""

from __future__ import annotations

import argparse
import gc
import json
import os
import sys
from pathlib import Path
from typing import Any

import anyio
from _harness import MockProcess, Result, cpu_seconds, open_fds, progress, rss_bytes, run_scenario

from mcpconn import ServerConfig, State, Supervisor, TokenSource
from mcpconn._supervisor import StormControl
from mcpconn.testing import JWTIssuer, JWTProvider

IDLE_S = 5.0
CONNECT_BOUND_S = 120.0
#: Full-run sizes; override with MCPCONN_BENCH_SCALE_SIZES=1000,5000,10000.
FULL_SIZES = os.environ.get("MCPCONN_BENCH_SCALE_SIZES", "1000")


async def measure(n: int) -> dict[str, Any]:
    async with MockProcess() as mock:
        provider = JWTProvider(JWTIssuer(mock.secret), lifetime=3600)
        storm = StormControl(connect_rate=1000.0, connect_burst=200.0)
        async with (
            TokenSource(provider) as tokens,
            Supervisor(tokens, storm_control=storm) as sup,
        ):
            config = ServerConfig("mock", mock.url, transport="streamable-http")
            warm = await sup.connect(config, "warm-up")
            with anyio.fail_after(30):
                await warm.wait_for(State.READY)
            gc.collect()
            rss0, fds0 = rss_bytes(), open_fds()
            started = anyio.current_time()
            progress(f"connecting {n} listeners")
            conns = [await sup.connect(config, f"u{i:05d}") for i in range(n)]
            with anyio.move_on_after(CONNECT_BOUND_S):
                for conn in conns:
                    await conn.wait_for(State.READY)
                await mock.poll_until(lambda s: s["open_streams"] >= n + 1, interval=0.2)
            connect_s = anyio.current_time() - started
            listening = (await mock.stats())["open_streams"] - 1
            progress(f"{n} listening after {connect_s:.1f} s; measuring idle")
            await anyio.sleep(1.0)
            gc.collect()
            rss1, fds1 = rss_bytes(), open_fds()
            cpu0, server_cpu0 = cpu_seconds(), cpu_seconds(mock.pid)
            await anyio.sleep(IDLE_S)
            cpu1, server_cpu1 = cpu_seconds(), cpu_seconds(mock.pid)
            ready = sup.statistics().by_state[State.READY]
        server_rss = rss_bytes(mock.pid)
    return {
        "n": n,
        "ready": ready,
        "connect_s": connect_s,
        "rss_delta_bytes": rss1 - rss0,
        "listening": listening,
        "kib_per_listener": (rss1 - rss0) / max(1, listening) / 1024,
        "fds_per_listener": (fds1 - fds0) / n,
        "idle_cpu_percent": 100 * (cpu1 - cpu0) / IDLE_S,
        "server_idle_cpu_percent": 100 * (server_cpu1 - server_cpu0) / IDLE_S,
        "server_rss_mib": server_rss / 2**20,
    }


async def scenario(args: argparse.Namespace) -> Result:
    sizes = [200] if args.quick else [int(x) for x in FULL_SIZES.split(",")]
    result = Result("scale", {"sizes": sizes, "idle_window_s": IDLE_S})
    runs = []
    for n in sizes:
        proc = await anyio.run_process(
            [sys.executable, str(Path(__file__)), "--size", str(n)], check=False
        )
        if proc.returncode != 0:
            result.notes.append(f"size {n} failed: {proc.stderr.decode()[-300:]}")
            continue
        run = json.loads(proc.stdout.decode().strip().splitlines()[-1])
        runs.append(run)
        result.row(f"{n:,} listeners: READY / streams open", f"{run['ready']} / {run['listening']}")
        result.row(f"{n:,} listeners: connect time (s)", run["connect_s"])
        result.row(f"{n:,} listeners: client KiB per listener", run["kib_per_listener"])
        result.row(f"{n:,} listeners: client idle CPU %", run["idle_cpu_percent"])
        result.row(f"{n:,} listeners: server idle CPU %", run["server_idle_cpu_percent"])
    if runs:
        worst = max(r["kib_per_listener"] for r in runs)
        result.target("client memory per listener", "<= 20 KiB", worst, worst <= 20)
    result.notes.append(
        "issue 5 measured the official SDK client at ~85 KiB per session (shared httpx "
        "client) and ~900 KiB with one client each; not re-measured in this run"
    )
    result.figures["runs"] = runs
    return result


def main() -> None:
    if "--size" in sys.argv:
        from mcpconn._cli import raise_fd_limit

        raise_fd_limit()
        n = int(sys.argv[sys.argv.index("--size") + 1])
        print(json.dumps(anyio.run(measure, n)))
        return
    run_scenario("scale", scenario)


if __name__ == "__main__":
    main()
