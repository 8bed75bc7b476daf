"""What a token provider's answer costs in log lines: a login request is no failure."""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable
from typing import Any

import anyio
import pytest

import mcpconn
from mcpconn import (
    Connection,
    ReauthRequired,
    ServerConfig,
    State,
    Supervisor,
    TokenRequest,
    TokenSource,
)
from mcpconn.testing import MockServer

from ._raw import FAST


def wants_a_login(request: TokenRequest) -> Awaitable[Any]:
    raise ReauthRequired("alice must log in again")


def broken(request: TokenRequest) -> Awaitable[Any]:
    raise RuntimeError("the identity provider is down")


async def log_until(
    caplog: pytest.LogCaptureFixture,
    provider: Callable[[TokenRequest], Awaitable[Any]],
    reached: Callable[[Connection], bool],
) -> tuple[list[logging.LogRecord], int]:
    """mcpconn's log records (every level) until alice's connection has ``reached``;
    and the requests the server saw."""
    caplog.set_level(logging.DEBUG, logger="mcpconn")
    async with (
        MockServer() as server,
        TokenSource(provider, failure_cooldown=0) as tokens,
        Supervisor(tokens, backoff=FAST) as sup,
    ):
        config = ServerConfig(
            "mock", server.url, transport="streamable-http", protocol_version="2025-11-25",
            listen=False,
        )  # fmt: skip
        changes = sup.state_changes()
        conn = await sup.connect(config, "alice")
        with anyio.fail_after(10):
            async for _ in changes:
                if reached(conn):
                    break
        await changes.aclose()
        records = [r for r in caplog.records if r.name.startswith("mcpconn")]
        return records, server.stats().requests_total


async def test_a_provider_asking_for_a_login_parks_with_one_line_and_no_failure(
    caplog: pytest.LogCaptureFixture,
) -> None:
    records, sent = await log_until(caplog, wants_a_login, lambda c: c.state is State.NEEDS_REAUTH)
    assert not [r for r in records if "failed" in r.getMessage()], records
    warnings = [r for r in records if r.levelno >= logging.WARNING]
    assert len(warnings) == 1, [r.getMessage() for r in warnings]
    assert "parked in NEEDS_REAUTH" in warnings[0].getMessage()
    assert sent == 0


async def test_a_provider_that_raises_is_still_a_warned_failure(
    caplog: pytest.LogCaptureFixture,
) -> None:
    def backing_off(conn: Connection) -> bool:
        error = conn.last_error
        return isinstance(error, mcpconn.TokenProviderError) and conn.state is State.BACKOFF

    records, sent = await log_until(caplog, broken, backing_off)
    failed = [r for r in records if "token provider failed" in r.getMessage()]
    assert failed and all(r.levelno == logging.WARNING for r in failed)
    assert "RuntimeError" in failed[0].getMessage()
    assert not [r for r in records if "NEEDS_REAUTH" in r.getMessage()]
    assert sent == 0
