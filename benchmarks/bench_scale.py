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
import httpx
from _baselines import open_listen_stream
from _harness import (
    MockProcess,
    Result,
    ShardedTransport,
    cpu_seconds,
    open_fds,
    progress,
    rss_bytes,
    run_scenario,
)

from mcpconn import ServerConfig, State, Supervisor, TokenSource
from mcpconn._supervision.supervisor import StormControl
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
            ready = sup.statistics().by_state[State.READY] - 1  # not the warm-up connection
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
        floor = await anyio.run_process(
            [sys.executable, str(Path(__file__)), "--floor", str(n)], check=False
        )
        if floor.returncode == 0:
            bare = json.loads(floor.stdout.decode().strip().splitlines()[-1])
            run["floor_kib_per_stream"] = bare["kib_per_stream"]
            result.row(f"{n:,}: the floor, a bare open httpx stream (KiB)", bare["kib_per_stream"])
            ratio = run["kib_per_listener"] / bare["kib_per_stream"]
            result.row(f"{n:,}: mcpconn listener / bare stream", f"{ratio:.2f}x")
        else:
            result.notes.append(f"floor {n} failed: {floor.stderr.decode()[-300:]}")
    if runs:
        worst = max(r["kib_per_listener"] for r in runs)
        result.target("client memory per listener", "<= 20 KiB", worst, worst <= 20)
    result.notes.append(
        "issue 5 measured the official SDK client at ~85 KiB per session (shared httpx "
        "client) and ~900 KiB with one client each; not re-measured in this run"
    )
    result.figures["runs"] = runs
    return result


async def measure_floor(n: int) -> dict[str, Any]:
    """N bare httpx streams held open (``subscriptions/listen``, one token each, the
    same 32-connection shards): what an idle listener costs before mcpconn adds anything.
    One stream is opened and read first (warm-up), then the N in waves of 100."""
    async with MockProcess() as mock:
        issuer = JWTIssuer(mock.secret)
        transport = ShardedTransport(max(1, n // 32))
        opened: list[int] = []

        async def hold(i: int, ready: anyio.Event) -> None:
            token = issuer.mint(f"u{i:05d}", lifetime=3600)
            async with open_listen_stream(client, mock.url, token) as response:
                if response.status_code == 200 and i >= 0:
                    opened.append(i)
                ready.set()
                async for _ in response.aiter_bytes():
                    pass

        async with (
            httpx.AsyncClient(transport=transport, timeout=None) as client,
            anyio.create_task_group() as tg,
        ):
            warm = anyio.Event()
            tg.start_soon(hold, -1, warm)
            with anyio.move_on_after(CONNECT_BOUND_S):
                await warm.wait()
            gc.collect()
            rss0 = rss_bytes()
            with anyio.move_on_after(CONNECT_BOUND_S):
                for first in range(0, n, 100):
                    wave = [anyio.Event() for _ in range(first, min(n, first + 100))]
                    for i, ready in enumerate(wave, start=first):
                        tg.start_soon(hold, i, ready)
                    for ready in wave:
                        await ready.wait()
            await anyio.sleep(1.0)
            gc.collect()
            rss1 = rss_bytes()
            tg.cancel_scope.cancel()
    return {"n": n, "listening": len(opened), "kib_per_stream": (rss1 - rss0) / n / 1024}


def main() -> None:
    if "--floor" in sys.argv:
        from mcpconn._cli.main import raise_fd_limit

        raise_fd_limit()
        n = int(sys.argv[sys.argv.index("--floor") + 1])
        print(json.dumps(anyio.run(measure_floor, n)))
        return
    if "--size" in sys.argv:
        from mcpconn._cli.main import raise_fd_limit

        raise_fd_limit()
        n = int(sys.argv[sys.argv.index("--size") + 1])
        print(json.dumps(anyio.run(measure, n)))
        return
    run_scenario("scale", scenario)


if __name__ == "__main__":
    main()
