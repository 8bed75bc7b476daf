"""Fixtures for the end-to-end tests: one stack per module (see stack.py)."""

from __future__ import annotations

import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).parent))

from stack import Stack


@pytest.fixture(scope="module")
def stack() -> Iterator[Stack]:
    """The aggregator (transport auto) over an SDK server and a mock server."""
    s = Stack()
    try:
        s.start()
        yield s
    finally:
        s.close()
