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
exec .venv/bin/python -m pytest "$@"
