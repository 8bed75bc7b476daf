"""Run the load benchmarks: ``mcpconn bench [scenario ...] [--quick] [--out DIR]``.

Each scenario runs in a fresh client process (so memory figures are its own)
next to its own ``mcpconn mock-server`` process, under a hard time limit. At the
end a markdown summary (the README's table, with the machine line) is printed
and written to ``<out>/summary.md``. Exit status: 0 when every scenario ran to
completion (a missed target is reported, not an error), 1 otherwise.
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))

from _harness import DEFAULT_OUT, machine, machine_line  # noqa: E402

SCENARIOS = {
    "idle-expiry": "bench_idle_expiry.py",
    "revoked": "bench_revoked.py",
    "coalescing": "bench_coalescing.py",
    "recovery": "bench_recovery.py",
    "scale": "bench_scale.py",
    "throughput": "bench_throughput.py",
    "chaos": "bench_chaos.py",
    "replicas": "bench_replicas.py",
    "aggregator": "bench_aggregator.py",
    "floors": "bench_floors.py",
}


def run_one(name: str, args: argparse.Namespace, timeout: float) -> tuple[str, float]:
    command = [sys.executable, str(HERE / SCENARIOS[name]), "--out", args.out]
    if args.quick:
        command.append("--quick")
    if args.no_plot:
        command.append("--no-plot")
    print(f"--- {name} (hard limit {timeout:.0f} s)", flush=True)
    started = time.perf_counter()
    # its own process group, so a timeout also stops its mock server
    proc = subprocess.Popen(command, start_new_session=True)
    try:
        code = proc.wait(timeout)
    except subprocess.TimeoutExpired:
        os.killpg(proc.pid, signal.SIGKILL)
        proc.wait()
        return "timeout", time.perf_counter() - started
    except KeyboardInterrupt:
        os.killpg(proc.pid, signal.SIGKILL)
        raise
    return ("ok" if code == 0 else f"exit {code}"), time.perf_counter() - started


def summary(names: list[str], outcomes: dict[str, str], out: Path) -> str:
    info = machine()
    lines = [
        f"Machine: {machine_line(info)}.",
        "",
        "| scenario | metric | mcpconn | baseline |",
        "|---|---|---|---|",
    ]
    targets = ["", "| scenario | target | measured | met |", "|---|---|---|---|"]
    for name in names:
        path = out / f"{name}.json"
        if outcomes.get(name) != "ok" or not path.exists():
            lines.append(f"| {name} | (did not complete: {outcomes.get(name)}) | | |")
            continue
        doc: dict[str, Any] = json.loads(path.read_text())
        size = " (quick)" if doc.get("quick") else ""
        for metric, ours, baseline in doc["rows"]:
            lines.append(f"| {name}{size} | {metric} | {ours} | {baseline} |")
        for t in doc["targets"]:
            value = t["value"]
            shown = f"{value:.3g}" if isinstance(value, float) else str(value)
            mark = "yes" if t["met"] else "**no**"
            targets.append(f"| {name} | {t['target']}: {t['wanted']} | {shown} | {mark} |")
    return "\n".join(lines + targets) + "\n"


def main() -> int:
    parser = argparse.ArgumentParser(prog="mcpconn bench")
    parser.add_argument("scenarios", nargs="*")
    parser.add_argument("--quick", action="store_true")
    parser.add_argument("--out", default=str(DEFAULT_OUT))
    parser.add_argument("--timeout", type=float, default=None)
    parser.add_argument("--no-plot", action="store_true")
    parser.add_argument(
        "--report", action="store_true", help="only print the summary of the JSON already in --out"
    )
    args = parser.parse_args()
    names = args.scenarios or list(SCENARIOS)
    unknown = [n for n in names if n not in SCENARIOS]
    if unknown:
        print(f"mcpconn bench: error: unknown scenario {unknown[0]!r}", file=sys.stderr)
        return 2
    timeout = args.timeout or (60.0 if args.quick else 240.0)
    # floors runs ~25 client processes per round: its own, longer default limit
    long_limits = {"floors": 300.0 if args.quick else 1500.0}
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    if args.report:
        found = {n: "ok" for n in names if (out / f"{n}.json").exists()}
        print(summary(names, found, out))
        return 0
    outcomes: dict[str, str] = {}
    started = time.perf_counter()
    for name in names:
        limit = timeout if args.timeout else long_limits.get(name, timeout)
        outcome, elapsed = run_one(name, args, limit)
        outcomes[name] = outcome
        print(f"--- {name}: {outcome} in {elapsed:.1f} s", flush=True)
    text = summary(names, outcomes, out)
    (out / "summary.md").write_text(text)
    print(f"\n## Results ({time.perf_counter() - started:.0f} s in all)\n")
    print(text)
    return 0 if all(v == "ok" for v in outcomes.values()) else 1


if __name__ == "__main__":
    sys.exit(main())
