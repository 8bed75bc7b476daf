"""The ``mcpconn`` command: ``demo``, ``mock-server`` and ``bench``.

Bad arguments give one line on stderr and exit status 2 (argparse's usage dump
is noise in a script's log); Ctrl-C exits 130 without a traceback.
"""

from __future__ import annotations

import argparse
import importlib.util
import os
import subprocess
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any, NoReturn

import anyio

__all__ = ["main", "raise_fd_limit"]

SCENARIOS = (
    "idle-expiry",
    "revoked",
    "coalescing",
    "recovery",
    "scale",
    "throughput",
    "chaos",
    "replicas",
    "aggregator",
    "floors",
)


class _Parser(argparse.ArgumentParser):
    """An ArgumentParser whose errors are one line, not a usage dump."""

    def error(self, message: str) -> NoReturn:
        self.exit(2, f"{self.prog}: error: {message} (see --help)\n")


def raise_fd_limit() -> int:
    """Raise the soft open-files limit to the hard one; returns the new soft limit."""
    try:
        import resource
    except ImportError:  # pragma: no cover - not on POSIX
        return -1
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if hard == resource.RLIM_INFINITY or hard > soft:
        target = 1 << 20 if hard == resource.RLIM_INFINITY else hard
        try:
            resource.setrlimit(resource.RLIMIT_NOFILE, (target, hard))
            soft = target
        except (ValueError, OSError):
            pass
    return int(soft)


def _positive(value: str) -> float:
    try:
        number = float(value)
    except ValueError:
        raise argparse.ArgumentTypeError(f"must be a number, not {value!r}") from None
    if not number > 0 or number == float("inf"):
        raise argparse.ArgumentTypeError(f"must be a positive number, not {value!r}")
    return number


def build_parser() -> argparse.ArgumentParser:
    parser = _Parser(
        prog="mcpconn",
        description="Keeps an MCP aggregator's downstream connections alive and authenticated.",
    )
    sub = parser.add_subparsers(dest="command", metavar="{demo,mock-server,bench}")
    sub.required = True

    demo = sub.add_parser(
        "demo", help="watch the expired-token bug fixed live (about 30 s, embedded mock server)"
    )
    demo.add_argument(
        "--quick", action="store_true", help="shorter waits (about 10 s; for CI smoke tests)"
    )
    demo.add_argument(
        "--speed",
        type=_positive,
        default=1.0,
        help="divide the demo's pauses by this factor (tokens still live at least 2 s)",
    )
    demo.add_argument(
        "--aggregator",
        action="store_true",
        help="the reference aggregator (examples/aggregator.py) in front of two mock servers "
        "instead (about 15 s; a source checkout with the test extra)",
    )
    demo.set_defaults(handler=_run_demo)

    try:
        from .mock_server import add_mock_server_parser
    except ImportError:  # the mock server's CLI is optional in a trimmed install
        pass
    else:
        add_mock_server_parser(sub).set_defaults(handler=_run_mock_server)

    bench = sub.add_parser(
        "bench",
        help="run the load benchmarks (client and mock server in separate processes)",
        description="Scenarios: " + ", ".join(SCENARIOS) + " (default: all).",
    )
    bench.add_argument(
        "scenarios", nargs="*", metavar="scenario", help="scenarios to run (default: all)"
    )
    bench.add_argument("--quick", action="store_true", help="smoke sizes (seconds, not minutes)")
    bench.add_argument(
        "--out", default=None, help="directory for the JSON results (default benchmarks/results)"
    )
    bench.add_argument(
        "--timeout",
        type=_positive,
        default=None,
        help="hard limit in seconds per scenario (default 240, quick 60)",
    )
    bench.add_argument(
        "--no-plot", action="store_true", help="do not draw docs/revoked.png (revoked scenario)"
    )
    bench.set_defaults(handler=_run_bench)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the ``mcpconn`` script and ``python -m mcpconn``."""
    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        status: int = args.handler(parser, args)
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return 130
    return status


def _run_demo(parser: argparse.ArgumentParser, args: argparse.Namespace) -> int:
    from .._exceptions import MCPConnError
    from .demo import run_demo

    speed = 3.0 if args.quick and args.speed == 1.0 else args.speed
    if args.aggregator:
        return _run_aggregator_demo(parser, speed)
    try:
        status: int = anyio.run(run_demo, speed)
    except (MCPConnError, TimeoutError, OSError) as exc:
        print(f"mcpconn demo: error: {type(exc).__name__}: {exc}", file=sys.stderr)
        return 1
    return status


def _run_aggregator_demo(parser: argparse.ArgumentParser, speed: float) -> int:
    from .._exceptions import MCPConnError
    from .aggregator_demo import run_aggregator_demo

    script = find_in_checkout("examples/aggregator.py")
    if script is None:
        parser.exit(2, "mcpconn demo: error: no examples/aggregator.py here (a source checkout)\n")
    missing = [name for name in ("mcp", "uvicorn") if importlib.util.find_spec(name) is None]
    if missing:
        parser.exit(
            2, f"mcpconn demo: error: the aggregator needs {', '.join(missing)} (extra test)\n"
        )
    try:
        status: int = anyio.run(run_aggregator_demo, script, speed)
    except (MCPConnError, TimeoutError, OSError, RuntimeError) as exc:
        print(f"mcpconn demo: error: {type(exc).__name__}: {exc}", file=sys.stderr)
        return 1
    return status


def _run_mock_server(parser: argparse.ArgumentParser, args: argparse.Namespace) -> int:
    from .mock_server import serve_mock_server

    raise_fd_limit()  # benchmarks open thousands of streams against it

    async def serve() -> int:
        return await serve_mock_server(args)

    return anyio.run(serve)


def find_in_checkout(relative: str) -> Path | None:
    """The file ``relative`` under the current directory, else under the source checkout."""
    checkout = Path(__file__).resolve().parents[3]  # src/mcpconn/_cli/main.py
    for root in (Path.cwd(), checkout):
        if (root / relative).is_file():
            return root / relative
    return None


def find_benchmarks() -> Path | None:
    """The ``benchmarks/`` directory: the current one's, else the source checkout's."""
    run = find_in_checkout("benchmarks/run.py")
    return None if run is None else run.parent


def _run_bench(parser: argparse.ArgumentParser, args: argparse.Namespace) -> int:
    unknown = [s for s in args.scenarios if s not in SCENARIOS]
    if unknown:
        parser.exit(
            2,
            f"mcpconn bench: error: unknown scenario {unknown[0]!r} "
            f"(choose from {', '.join(SCENARIOS)})\n",
        )
    bench_dir = find_benchmarks()
    if bench_dir is None:
        parser.exit(
            2, "mcpconn bench: error: no benchmarks/ directory here (run it in a source checkout)\n"
        )
    command: list[Any] = [sys.executable, str(bench_dir / "run.py"), *args.scenarios]
    if args.quick:
        command.append("--quick")
    if args.out is not None:
        command += ["--out", args.out]
    if args.timeout is not None:
        command += ["--timeout", str(args.timeout)]
    if args.no_plot:
        command.append("--no-plot")
    env = dict(os.environ)
    return subprocess.call(command, env=env)
