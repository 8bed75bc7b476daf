"""The ``mcpconn`` command: the demo tells its story, bad arguments are one line, bench writes JSON.

The demo and the benchmark run as real subprocesses (the way a user runs
them); argument errors are checked in-process, where they are cheap.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from mcpconn._cli.main import main

ROOT = Path(__file__).resolve().parents[2]


def run(*args: str, timeout: float = 60) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "mcpconn", *args],
        capture_output=True,
        text=True,
        timeout=timeout,
        cwd=ROOT,
        check=False,
    )


def test_the_demo_shows_the_seed_story_fixed_and_exits_0() -> None:
    proc = run("demo", "--quick")
    out = proc.stdout
    assert proc.returncode == 0, proc.stdout[-2000:] + proc.stderr[-2000:]
    assert "Traceback" not in out + proc.stderr
    assert "expired tokens seen by the server: 0" in out
    assert "a client caching the token without reading exp (the seed): HTTP 401" in out
    assert out.count("parked in NEEDS_REAUTH") >= 2  # one WARNING line per parked listener
    assert "standing still" in out and "MOVING" not in out
    assert "READY" in out and "ms after publish" in out
    assert "demo complete: every claim held" in out
    assert "eyJ" not in out + proc.stderr  # no JWT ever printed


def _exit_code(argv: list[str]) -> int:
    try:
        return main(argv)
    except SystemExit as exc:
        return int(exc.code or 0)


@pytest.mark.parametrize(
    ("argv", "fragment"),
    [
        ([], "required"),
        (["frobnicate"], "invalid choice"),
        (["demo", "--speed", "fast"], "--speed"),
        (["demo", "--speed", "-1"], "--speed"),
        (["bench", "warp-speed"], "unknown scenario 'warp-speed'"),
        (["bench", "--timeout", "0"], "--timeout"),
        (["mock-server", "--port", "http"], "--port"),
        (["mock-server", "--eras", "steam"], "--eras"),
    ],
)
def test_bad_arguments_are_one_line_and_a_nonzero_exit(
    argv: list[str], fragment: str, capsys: pytest.CaptureFixture[str]
) -> None:
    code = _exit_code(argv)
    err = capsys.readouterr().err
    assert code != 0
    assert err.count("\n") == 1, err
    assert fragment in err
    assert "Traceback" not in err


def test_python_dash_m_reports_a_bad_argument_in_one_line() -> None:
    proc = run("bench", "nope", timeout=30)
    assert proc.returncode == 2
    assert proc.stderr.strip().count("\n") == 0
    assert "unknown scenario 'nope'" in proc.stderr


def test_bench_quick_runs_a_scenario_and_writes_json(tmp_path: Path) -> None:
    proc = run("bench", "coalescing", "--quick", "--no-plot", "--out", str(tmp_path), timeout=90)
    assert proc.returncode == 0, proc.stdout[-2000:] + proc.stderr[-2000:]
    doc = json.loads((tmp_path / "coalescing.json").read_text())
    assert doc["scenario"] == "coalescing" and doc["quick"] is True
    assert doc["machine"]["cpu_count"] >= 1 and doc["machine"]["python"]
    assert doc["targets"] and all("met" in t for t in doc["targets"])
    # the comparison ran in the same process: one provider call per expiry vs one per connection
    assert doc["figures"]["baseline"] and all(n > 1 for n in doc["figures"]["baseline"])
    summary = (tmp_path / "summary.md").read_text()
    assert "| coalescing (quick) |" in summary and "Machine:" in summary
