#!/bin/sh
# Set up a virtual environment (once) and run the whole test suite.
# Extra arguments go to pytest, e.g. `sh scripts/test.sh -k machine`.
set -eu
cd "$(dirname "$0")/.."
PYTHON="${PYTHON:-python3}"
if [ ! -x .venv/bin/python ]; then
    "$PYTHON" -m venv .venv
fi
.venv/bin/python -m pip install --quiet -e '.[test]'
# one worker per core, each module on one worker (its module-scoped servers are started
# once and its tests keep their order); MCPCONN_TEST_WORKERS=0 runs in this process
exec .venv/bin/python -m pytest -n "${MCPCONN_TEST_WORKERS:-auto}" --dist loadfile "$@"
