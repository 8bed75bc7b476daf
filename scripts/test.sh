#!/bin/sh
# Set up a virtual environment (once) and run the whole test suite.
# Extra arguments go to pytest, e.g. `sh scripts/test.sh -k machine`.
set -eu
cd "$(dirname "$0")/.."
PYTHON="${PYTHON:-python3}"
if [ ! -x .venv/bin/python ]; then
    "$PYTHON" -m venv .venv
fi
# (re)install when pyproject.toml changed since the last install (the package is editable)
if [ ! -f .venv/.test-installed ] || [ pyproject.toml -nt .venv/.test-installed ]; then
    .venv/bin/python -m pip install --quiet -e '.[test]'
    touch .venv/.test-installed
fi
# Two workers per core, each module on one worker (its module-scoped servers are started
# once and its tests keep their order; tests/conftest.py keeps tests/interop and
# tests/redis each on one worker, for their session-scoped servers). About half of a test's time is spent waiting
# (timeouts it provokes, idle gaps past a token's expiry, subprocesses starting): a
# second worker per core fills it. MCPCONN_TEST_WORKERS=N sets the number, 0 runs in
# this process.
cores=$(.venv/bin/python -c 'import os; print(len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count() or 1)')
exec .venv/bin/python -m pytest -n "${MCPCONN_TEST_WORKERS:-$((2 * cores))}" --dist loadfile "$@"
