"""``mcpconn demo --aggregator``: the reference aggregator's story holds, on both backends."""

from __future__ import annotations

from pathlib import Path

import pytest

from mcpconn._cli import aggregator_demo
from mcpconn._cli import main as cli
from mcpconn._cli.aggregator_demo import run_aggregator_demo

SCRIPT = Path(__file__).resolve().parents[2] / "examples" / "aggregator.py"


async def test_the_aggregator_demo_tells_its_story_and_every_claim_holds(
    capsys: pytest.CaptureFixture[str],
) -> None:
    status = await run_aggregator_demo(SCRIPT, speed=3.0)  # --quick: 2 s tokens, a 3 s gap
    out = capsys.readouterr().out
    assert status == 0, out[-3000:]
    assert "alpha_echo" in out and "beta_echo" in out
    assert "idle gap past the tokens' expiry (2 s)" in out
    assert "expired tokens seen downstream: 0; 401s downstream: 0" in out
    assert out.count("[ok]") == 6 and "FAILED" not in out
    assert "exit status 0" in out
    assert "demo complete: every claim held" in out
    assert "eyJ" not in out  # no token printed


def test_the_cli_finds_the_example_from_anywhere_and_says_when_it_cannot(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.chdir(tmp_path)  # not a checkout: the package's own checkout is found
    assert cli.find_in_checkout("examples/aggregator.py") == SCRIPT
    assert cli.find_benchmarks() == SCRIPT.parents[1] / "benchmarks"
    monkeypatch.setattr(cli, "find_in_checkout", lambda relative: None)
    with pytest.raises(SystemExit) as info:
        cli.main(["demo", "--aggregator"])
    assert info.value.code == 2
    assert "no examples/aggregator.py here" in capsys.readouterr().err


def test_quick_and_speed_reach_the_aggregator_demo(monkeypatch: pytest.MonkeyPatch) -> None:
    speeds: list[float] = []

    async def recorded(script: Path, speed: float = 1.0) -> int:
        speeds.append(speed)
        return 0

    monkeypatch.setattr(aggregator_demo, "run_aggregator_demo", recorded)
    for argv in (["--quick"], ["--speed", "2"], []):
        assert cli.main(["demo", "--aggregator", *argv]) == 0
    assert speeds == [3.0, 2.0, 1.0]


async def test_an_aggregator_that_dies_before_its_port_is_shown_retried_once_then_an_error(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    starts = tmp_path / "starts"
    script = tmp_path / "dies.py"
    script.write_text(
        "import pathlib, sys\n"
        f"p = pathlib.Path({str(starts)!r})\n"
        "p.write_text(p.read_text() + 'x' if p.exists() else 'x')\n"
        "sys.stderr.write('no port for you'); sys.exit(3)\n"
    )
    with pytest.raises(RuntimeError, match=r"exited \(3\) before its port:\nno port for you"):
        await run_aggregator_demo(script)
    assert starts.read_text() == "xx"  # started twice, not more
    assert "starting it again" in capsys.readouterr().out
