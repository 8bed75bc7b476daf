"""Shared plumbing for the load benchmarks: the mock server in its own process, results.

Every scenario script runs the client in *this* process and ``mcpconn
mock-server`` in a child process, drives the server through its ``/_mock/``
control endpoints, prints a table and writes ``<out>/<scenario>.json`` with the
machine it ran on. Benchmarks report numbers; they never assert timings.
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import platform
import re
import secrets
import subprocess
import sys
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import anyio
import httpx

from mcpconn._cli.main import raise_fd_limit

ROOT = Path(__file__).resolve().parent.parent
DEFAULT_OUT = ROOT / "benchmarks" / "results"
DOCS = ROOT / "docs"


def machine() -> dict[str, Any]:
    """What the numbers were measured on (the machine is part of every result)."""
    import httpx_sse

    import mcpconn

    info: dict[str, Any] = {
        "cpu_count": os.cpu_count(),
        "python": platform.python_version(),
        "implementation": platform.python_implementation(),
        "platform": platform.platform(),
        "machine": platform.machine(),
        "mcpconn": getattr(mcpconn, "__version__", "0.1.0"),
        "httpx": httpx.__version__,
        "httpx_sse": getattr(httpx_sse, "__version__", "?"),
        "anyio_backend": "asyncio",
    }
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("model name"):
                    info["cpu_model"] = line.split(":", 1)[1].strip()
                    break
    except OSError:
        pass
    return info


def machine_line(info: dict[str, Any]) -> str:
    return (
        f"{info.get('cpu_model', info['machine'])}, {info['cpu_count']} CPUs, "
        f"{info['implementation']} {info['python']}, {info['platform']}"
    )


# ---- the mock server process --------------------------------------------------------


class MockProcess:
    """``mcpconn mock-server`` as a child process, with its control endpoint.

    ``async with MockProcess() as mock:`` starts it on 127.0.0.1 port 0, reads
    its URLs from its stdout, and stops it (SIGTERM, then SIGKILL) on exit.
    """

    def __init__(self, *args: str) -> None:
        self.secret = secrets.token_urlsafe(32)
        self.args = list(args)
        self.url = ""
        self.control_url = ""
        self.sse_url = ""
        self.proc: subprocess.Popen[bytes] | None = None
        self.control: httpx.AsyncClient | None = None

    async def __aenter__(self) -> MockProcess:
        command = [
            sys.executable,
            "-m",
            "mcpconn",
            "mock-server",
            "--port",
            "0",
            f"--secret={self.secret}",  # "=": a secret may start with "-"
            *self.args,
        ]
        self.proc = subprocess.Popen(  # noqa: ASYNC220 - a long-lived child, read in a thread
            command, stdout=subprocess.PIPE, stderr=subprocess.PIPE
        )
        with anyio.fail_after(30):
            await anyio.to_thread.run_sync(self._read_urls)
        self.control = httpx.AsyncClient(timeout=60)
        return self

    def _read_urls(self) -> None:
        assert self.proc is not None and self.proc.stdout is not None
        while not (self.url and self.control_url):
            line = self.proc.stdout.readline().decode()
            if not line:
                err = self.proc.stderr.read().decode() if self.proc.stderr else ""
                raise RuntimeError(f"mock server exited: {err.strip()[-500:]}")
            match = re.search(r"(http://\S+)", line)
            if match is None:
                continue
            if "MCP endpoint" in line:
                self.url = match.group(1)
            elif "legacy" in line:
                self.sse_url = match.group(1)
            elif "control" in line:
                self.control_url = match.group(1)

    async def __aexit__(self, *exc_info: object) -> None:
        if self.control is not None:
            await self.control.aclose()
        if self.proc is not None:
            self.proc.terminate()
            try:
                await anyio.to_thread.run_sync(self.proc.wait, 10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()

    @property
    def pid(self) -> int:
        assert self.proc is not None
        return self.proc.pid

    async def post(self, route: str, **body: Any) -> Any:
        assert self.control is not None
        response = await self.control.post(self.control_url + route, json=body)
        response.raise_for_status()
        return response.json()

    async def stats(self) -> dict[str, Any]:
        assert self.control is not None
        response = await self.control.get(self.control_url + "stats")
        response.raise_for_status()
        result: dict[str, Any] = response.json()
        return result

    async def poll_until(
        self, predicate: Callable[[dict[str, Any]], bool], *, interval: float = 0.1
    ) -> dict[str, Any]:
        """Poll the server's stats until ``predicate`` holds (it is in another process)."""
        while True:
            stats = await self.stats()
            if predicate(stats):
                return stats
            await anyio.sleep(interval)

    async def clear_faults(self) -> None:
        assert self.control is not None
        (await self.control.delete(self.control_url + "faults")).raise_for_status()


_T0 = time.perf_counter()


def progress(message: str) -> None:
    """A timestamped progress line on stderr (long scenarios should not look hung)."""
    print(f"  [{time.perf_counter() - _T0:6.1f} s] {message}", file=sys.stderr, flush=True)


class ShardedTransport(httpx.AsyncBaseTransport):
    """Spread requests over several connection pools (round robin).

    httpcore's pool scans every connection it holds on every request, so with N
    long-lived SSE streams in one pool each request costs O(N): N listeners cost
    O(N^2) to connect. Shards of ~``per_shard`` connections keep that linear.
    The baselines use it so that *they* are not slowed down by httpx (the seed's
    Go client would not be). Round robin per request: only for exchanges of one
    request each; a reconnect's two requests keep to one client (`bench_recovery`).
    """

    def __init__(self, shards: int) -> None:
        self._pools = [
            httpx.AsyncHTTPTransport(
                verify=False,  # loopback http only: skip loading CA certificates per shard
                limits=httpx.Limits(max_connections=None, max_keepalive_connections=1000),
            )
            for _ in range(max(1, shards))
        ]
        self._next = 0

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        self._next = (self._next + 1) % len(self._pools)
        return await self._pools[self._next].handle_async_request(request)

    async def aclose(self) -> None:
        for pool in self._pools:
            await pool.aclose()


# ---- process figures ----------------------------------------------------------------


def rss_bytes(pid: int | None = None) -> int:
    """Resident set size from /proc (no psutil needed)."""
    path = f"/proc/{pid or 'self'}/status"
    with open(path) as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) * 1024
    return 0


async def connect_all(sup: Any, configs: list[Any], principal: str, state: Any) -> list[Any]:
    """``sup.connect`` every config for ``principal``; wait (120 s at most) until each
    connection is in ``state``."""
    conns = [await sup.connect(cfg, principal) for cfg in configs]
    with anyio.fail_after(120):
        for conn in conns:
            await conn.wait_for(state)
    return conns


def cpu_seconds(pid: int | None = None) -> float:
    """User + system CPU seconds of a process (this one by default: ``time.process_time()``,
    not ``os.times()``'s 10 ms ticks; another process's CPU is only known in /proc's ticks)."""
    if pid is None:
        return time.process_time()
    with open(f"/proc/{pid}/stat") as f:
        fields = f.read().rsplit(")", 1)[1].split()
    ticks = os.sysconf("SC_CLK_TCK")
    return (int(fields[11]) + int(fields[12])) / ticks


def open_fds(pid: int | None = None) -> int:
    return len(os.listdir(f"/proc/{pid or 'self'}/fd"))


def open_sockets(pid: int | None = None) -> int:
    base = f"/proc/{pid or 'self'}/fd"
    count = 0
    for name in os.listdir(base):
        try:
            if os.readlink(f"{base}/{name}").startswith("socket:"):
                count += 1
        except OSError:
            pass
    return count


def percentile(values: list[float], q: float) -> float:
    if not values:
        return float("nan")
    ordered = sorted(values)
    index = min(len(ordered) - 1, max(0, round(q / 100 * (len(ordered) - 1))))
    return ordered[index]


class LogCounter(logging.Handler):
    """Counts the log records a production config (WARNING) would print."""

    def __init__(self, level: int = logging.WARNING) -> None:
        super().__init__(level)
        self.count = 0
        self.by_level: dict[str, int] = {}
        self.samples: list[str] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.count += 1
        if len(self.samples) < 50:
            self.samples.append(record.getMessage()[:300])
        self.by_level[record.levelname] = self.by_level.get(record.levelname, 0) + 1

    def __enter__(self) -> LogCounter:
        logger = logging.getLogger("mcpconn")
        logger.addHandler(self)
        logger.setLevel(logging.DEBUG if self.level < logging.WARNING else logging.WARNING)
        logger.propagate = False
        return self

    def __exit__(self, *exc: object) -> None:
        logging.getLogger("mcpconn").removeHandler(self)


# ---- results ------------------------------------------------------------------------


@dataclass
class Result:
    """What a scenario measured: rows for the table, targets, raw figures for the JSON."""

    scenario: str
    params: dict[str, Any] = field(default_factory=dict)
    rows: list[tuple[str, str, str]] = field(default_factory=list)  # metric, mcpconn, baseline
    targets: list[dict[str, Any]] = field(default_factory=list)
    figures: dict[str, Any] = field(default_factory=dict)
    notes: list[str] = field(default_factory=list)

    def row(self, metric: str, ours: Any, baseline: Any = "") -> None:
        self.rows.append((metric, _fmt(ours), _fmt(baseline)))

    def target(self, name: str, wanted: str, value: Any, met: bool) -> None:
        self.targets.append({"target": name, "wanted": wanted, "value": value, "met": bool(met)})


def _fmt(value: Any) -> str:
    if isinstance(value, float):
        if value != value:
            return "n/a"
        return f"{value:,.3g}" if abs(value) < 100 else f"{value:,.0f}"
    if isinstance(value, int):
        return f"{value:,}"
    return str(value)


def print_result(result: Result, elapsed: float) -> None:
    print(f"\n### {result.scenario}  ({elapsed:.1f} s; {result.params})")
    rows = [("metric", "mcpconn", "baseline"), *result.rows]
    widths = [max(len(r[i]) for r in rows) for i in range(3)]
    for i, r in enumerate(rows):
        print("  " + "  ".join(c.ljust(w) for c, w in zip(r, widths, strict=True)))
        if i == 0:
            print("  " + "  ".join("-" * w for w in widths))
    for t in result.targets:
        mark = "met" if t["met"] else "MISSED"
        print(f"  target {t['target']}: {t['wanted']} -> {_fmt(t['value'])} ({mark})")
    for note in result.notes:
        print(f"  note: {note}")


Scenario = Callable[[argparse.Namespace], Awaitable[Result]]


def run_scenario(name: str, scenario: Scenario) -> None:
    """The ``main()`` of every scenario script: parse, run, print, write JSON."""
    parser = argparse.ArgumentParser(prog=f"bench {name}")
    parser.add_argument("--quick", action="store_true")
    parser.add_argument("--out", default=str(DEFAULT_OUT))
    parser.add_argument("--no-plot", action="store_true")
    args = parser.parse_args()
    raise_fd_limit()
    started = time.perf_counter()
    result = anyio.run(scenario, args)
    elapsed = time.perf_counter() - started
    print_result(result, elapsed)
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    document = {
        "scenario": name,
        "quick": bool(args.quick),
        "elapsed_s": round(elapsed, 2),
        "finished_at": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
        "machine": machine(),
        "params": result.params,
        "rows": [list(r) for r in result.rows],
        "targets": result.targets,
        "figures": result.figures,
        "notes": result.notes,
    }
    (out / f"{name}.json").write_text(json.dumps(document, indent=2, default=str) + "\n")
