#!/bin/sh
# Set up a virtual environment (once) and run the demo: the seed bug, fixed live.
set -eu
cd "$(dirname "$0")/.."
PYTHON="${PYTHON:-python3}"
if [ ! -x .venv/bin/python ]; then
    "$PYTHON" -m venv .venv
fi
.venv/bin/python -m pip install --quiet -e .
exec .venv/bin/mcpconn demo "$@"
