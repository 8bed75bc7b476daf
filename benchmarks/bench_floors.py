"""Floors: each figure measured for mcpconn and the thinnest clients doing the same work.

Four figures, each for several clients in the same run, every (figure, client)
in a fresh client process next to the one mock server process of that figure:

* ``toolcall``: client CPU (``time.process_time``) per sequential ``tools/call``
  on one session, after a warm-up: raw asyncio streams, h11 + anyio, bare
  httpx, mcpconn, the official SDK client.
* ``idle``: client RSS per idle listener stream at N: one stream (and its
  token) is opened and read first as a warm-up, RSS is read, then N streams
  are opened in waves of `WAVE` (each wave's heads in before the next). Each
  client opens a stream as mcpconn must against this server: ``server/discover``
  (its answer says not to reuse it), then ``subscriptions/listen``.
* ``reconnect``: N reconnects started at once (``server/discover``, then
  ``subscriptions/listen`` headers in, each reconnect on its own connection);
  for mcpconn: N parked listeners READY after one publish. p50/p99 seconds,
  against the mock server as it is and in its lean mode (``--lean``).
* ``notify``: notifications/s on one listener stream at 200 B and 2 KB,
  ``json.loads`` of every message included (httpx-sse + json.loads is the
  baseline the issue names).

Beside every client figure the server's CPU seconds in the same window are
reported: a floor that is really the server's limit shows as server CPU close
to the wall time. Benchmarks report numbers; they never assert timings.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
from pathlib import Path
from typing import Any

import anyio
from _harness import MockProcess, Result, cpu_seconds, progress, run_scenario

HERE = Path(__file__).resolve()
WAVE = 100
FIGURES = {
    "toolcall": ("raw", "h11", "httpx", "mcpconn", "mcpconn-httpcore", "sdk"),
    "idle": ("raw", "h11", "httpx", "mcpconn", "mcpconn-httpcore"),
    "reconnect": ("raw", "h11", "httpx", "mcpconn", "mcpconn-httpcore"),
    "notify": ("raw", "h11", "httpx-sse", "mcpconn", "mcpconn-stdlib-json", "mcpconn-httpcore"),
}


async def scenario(args: argparse.Namespace) -> Result:
    _environment_overrides()
    quick = bool(args.quick)
    sizes = {
        "toolcall": 300 if quick else 3000,
        "idle": 200 if quick else 1000,
        "reconnect": 200 if quick else 1000,
        "notify": 3000 if quick else 30000,
    }
    rounds = int(os.environ.get("MCPCONN_BENCH_FLOORS_ROUNDS", 1 if quick else 3))
    for item in os.environ.get("MCPCONN_BENCH_FLOORS_N", "").split(","):
        if "=" in item:  # e.g. idle=1000,reconnect=1000 on a --quick run
            name, _, value = item.partition("=")
            sizes[name.strip()] = int(value)
    result = Result("floors", {"sizes": sizes, "rounds": rounds, "wave": WAVE})
    figures: dict[str, Any] = {}
    for figure, kinds in FIGURES.items():
        payloads = (200, 2000) if figure == "notify" else (0,)
        # reconnects also against the lean mock server: there the floor is the client's
        modes = ("", "lean") if figure == "reconnect" else ("",)
        for mode in modes:
            async with MockProcess(*([f"--{mode}"] if mode else [])) as mock:
                for size in payloads:
                    label = "-".join(str(p) for p in (figure, size, mode) if p)
                    for kind in kinds:
                        runs = []
                        for _ in range(rounds):
                            progress(f"{label}: {kind}")
                            runs.append(await _child(mock, figure, kind, sizes[figure], size))
                        figures.setdefault(label, {})[kind] = _median(runs)
    _table(result, figures, sizes)
    result.figures = figures
    result.notes.append(
        "client CPU is time.process_time() of the client process; server CPU is the mock "
        "server process's CPU over the same window (from /proc)"
    )
    if "reconnect" in FIGURES:
        result.notes.append(
            "reconnects run against the mock server twice: as it is (its CPU close to the "
            "wall time: that floor is the server's) and with --lean (a token's signature "
            "checked once, plain requests parsed without h11, short answers in one send), "
            "where the floor is the client's"
        )
    return result


async def _child(mock: MockProcess, figure: str, kind: str, n: int, size: int) -> dict[str, Any]:
    command = [
        sys.executable,
        str(HERE),
        "--child",
        figure,
        kind,
        mock.url,
        mock.control_url,
        mock.secret,
        str(mock.pid),
        str(n),
        str(size),
    ]
    try:
        proc = await anyio.to_thread.run_sync(
            lambda: subprocess.run(command, capture_output=True, timeout=240, check=False)
        )
    except subprocess.TimeoutExpired:
        return {"error": "timeout"}
    if proc.returncode != 0:
        return {"error": proc.stderr.decode()[-400:]}
    out: dict[str, Any] = json.loads(proc.stdout.decode().strip().splitlines()[-1])
    return out


def _environment_overrides() -> None:
    """``MCPCONN_BENCH_FLOORS=toolcall,idle`` runs only those figures,
    ``MCPCONN_BENCH_FLOORS_KINDS=h11,mcpconn`` only those clients."""
    wanted = os.environ.get("MCPCONN_BENCH_FLOORS")
    if wanted:
        for name in list(FIGURES):
            if name not in wanted.split(","):
                del FIGURES[name]
    kinds = os.environ.get("MCPCONN_BENCH_FLOORS_KINDS")  # e.g. h11,mcpconn
    if kinds:
        for name, have in list(FIGURES.items()):
            FIGURES[name] = tuple(k for k in have if k in kinds.split(","))


def _median(runs: list[dict[str, Any]]) -> dict[str, Any]:
    good = [r for r in runs if "error" not in r]
    if not good:
        return runs[0]
    keys = [k for k, v in good[0].items() if isinstance(v, (int, float))]
    return {k: statistics.median(r[k] for r in good) for k in keys} | {"rounds": len(good)}


def _table(result: Result, figures: dict[str, Any], sizes: dict[str, int]) -> None:
    def cell(figure: str, kind: str, key: str, scale: float = 1.0) -> str:
        value = figures.get(figure, {}).get(kind, {})
        if "error" in value:
            return "failed"
        number = value.get(key)
        return "" if number is None else f"{number * scale:,.3g}"

    order = (
        "raw",
        "h11",
        "httpx",
        "httpx-sse",
        "mcpconn",
        "mcpconn-stdlib-json",
        "mcpconn-httpcore",
        "sdk",
    )
    result.rows.append(("figure", "client", "value (server CPU beside it)"))
    lines = [
        ("toolcall", "cpu_us", "server_cpu_us", "tool call, client CPU us"),
        ("idle", "kib", "server_cpu_s", f"KiB per idle stream, N={sizes['idle']:,}"),
        ("reconnect", "p99_s", "server_cpu_s", f"{sizes['reconnect']} reconnects, p99 s"),
        (
            "reconnect-lean",
            "p99_s",
            "server_cpu_s",
            f"{sizes['reconnect']} reconnects, p99 s, lean server",
        ),
        ("notify-200", "us", "server_cpu_us", "us per notification, 200 B, JSON incl."),
        ("notify-2000", "us", "server_cpu_us", "us per notification, 2 KB, JSON incl."),
        ("notify-200", "rate", "server_cpu_us", "notifications/s, 200 B"),
        ("notify-2000", "rate", "server_cpu_us", "notifications/s, 2 KB"),
    ]
    for figure, key, server_key, title in lines:
        for kind in order:
            if kind not in figures.get(figure, {}):
                continue
            server = cell(figure, kind, server_key)
            result.rows.append((title, kind, f"{cell(figure, kind, key)} (server {server})"))
    for figure, key, floor in (
        ("toolcall", "cpu_us", "h11"),
        ("idle", "kib", "h11"),
        ("notify-200", "rate", "httpx-sse"),
        ("notify-2000", "rate", "httpx-sse"),
    ):
        got = figures.get(figure, {})
        ours, base = got.get("mcpconn", {}).get(key), got.get(floor, {}).get(key)
        if ours and base:
            result.row(f"{figure}: mcpconn / {floor}", f"{ours / base:.2f}x")
    for figure, size in (("notify-200", "200 B"), ("notify-2000", "2 KB")):
        # the server may bound the rate; client CPU per notification is the client's own work
        got = figures.get(figure, {})
        ours, base = got.get("mcpconn", {}).get("us"), got.get("httpx-sse", {}).get("us")
        if ours and base:
            result.row(f"{figure}: client CPU, httpx-sse / mcpconn", f"{base / ours:.2f}x")
            title = f"notifications ({size}) vs httpx-sse + json.loads, by client CPU"
            result.target(title, ">= 1.0x", base / ours, base / ours >= 1.0)
    got = figures.get("toolcall", {})
    if got.get("mcpconn", {}).get("cpu_us") and got.get("sdk", {}).get("cpu_us"):
        ratio = got["mcpconn"]["cpu_us"] / got["sdk"]["cpu_us"]
        result.row("toolcall: mcpconn / official SDK", f"{ratio:.2f}x")
        result.target("tool call CPU vs the SDK", "<= 0.30x", ratio, ratio <= 0.30)
    for label, server in (("reconnect", ""), ("reconnect-lean", ", lean server")):
        rec = figures.get(label, {})
        if rec.get("mcpconn", {}).get("p99_s") and rec.get("h11", {}).get("p99_s"):
            ratio = rec["mcpconn"]["p99_s"] / rec["h11"]["p99_s"]
            result.row(f"reconnect p99: mcpconn / h11{server}", f"{ratio:.2f}x")
            result.target(
                f"READY after publish vs h11 reconnects{server}", "<= 1.5x", ratio, ratio <= 1.5
            )
    lean = figures.get("reconnect-lean", {}).get("mcpconn", {}).get("p99_s")
    if lean:
        result.target("READY after publish, p99 s, lean server", "<= 1", lean, lean <= 1.0)
    idle = figures.get("idle", {}).get("mcpconn", {}).get("kib")
    if idle:
        result.target("client KiB per idle listener", "<= 16", idle, idle <= 16)


# ---- the child process: one figure, one client ------------------------------------------


class Child:
    def __init__(self, argv: list[str]) -> None:
        self.figure, self.kind, self.url, self.control_url, secret = argv[:5]
        self.server_pid, self.n, self.size = (int(x) for x in argv[5:8])
        from mcpconn.testing import JWTIssuer

        self.issuer = JWTIssuer(secret)
        self._control: Any = None

    def token(self, who: str) -> str:
        return self.issuer.mint(who, lifetime=3600)

    def server_cpu(self) -> float:
        return cpu_seconds(self.server_pid)

    async def control(self, route: str, **body: Any) -> Any:
        """One request to the mock's control endpoint, on one client made at the first
        (a new client per request would count its TLS setup in the measured window)."""
        import httpx

        if self._control is None:
            self._control = httpx.AsyncClient(timeout=120)
        if route == "stats":
            response = await self._control.get(self.control_url + "stats")
        else:
            response = await self._control.post(self.control_url + route, json=body)
        response.raise_for_status()
        return response.json()

    async def wait_streams(self, count: int, principal: str | None = None) -> None:
        with anyio.fail_after(120):
            while True:
                stats = await self.control("stats")
                have = (
                    stats["open_streams"]
                    if principal is None
                    else stats["open_streams_by_principal"].get(principal, 0)
                )
                if have >= count:
                    return
                await anyio.sleep(0.05)

    async def run(self) -> dict[str, Any]:
        import _floor_notify
        import _floor_work

        module = _floor_notify if self.figure == "notify" else _floor_work
        work = getattr(module, f"{self.figure}_{self.kind.replace('-', '_')}")
        try:
            result: dict[str, Any] = await work(self)
        finally:
            if self._control is not None:
                await self._control.aclose()
        return result


def child_main(argv: list[str]) -> None:
    from mcpconn._cli.main import raise_fd_limit

    raise_fd_limit()
    child = Child(argv)
    print(json.dumps(anyio.run(child.run)))


if __name__ == "__main__":
    if "--child" in sys.argv:
        child_main(sys.argv[sys.argv.index("--child") + 1 :])
    else:
        run_scenario("floors", scenario)
