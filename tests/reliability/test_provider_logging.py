"""What a token provider's answer costs in log lines: a login request is no failure."""

from __future__ import annotations

import logging
from collections.abc import Awaitable
from typing import Any

import anyio
import pytest

import mcpconn
from mcpconn import ReauthRequired, ServerConfig, State, Supervisor, TokenRequest, TokenSource
from mcpconn.testing import MockServer

from ._raw import FAST


def cfg(server: MockServer) -> ServerConfig:
    return ServerConfig(
        "mock", server.url, transport="streamable-http", protocol_version="2025-11-25", listen=False
    )


def wants_a_login(request: TokenRequest) -> Awaitable[Any]:
    raise ReauthRequired("alice must log in again")


def broken(request: TokenRequest) -> Awaitable[Any]:
    raise RuntimeError("the identity provider is down")


def lines(caplog: pytest.LogCaptureFixture) -> list[logging.LogRecord]:
    return [r for r in caplog.records if r.name.startswith("mcpconn")]


async def test_a_provider_asking_for_a_login_parks_with_one_line_and_no_failure(
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.DEBUG, logger="mcpconn")
    async with MockServer() as server:
        async with (
            TokenSource(wants_a_login, failure_cooldown=0) as tokens,
            Supervisor(tokens, backoff=FAST) as sup,
        ):
            conn = await sup.connect(cfg(server), "alice")
            with anyio.fail_after(10):
                await conn.wait_for(State.NEEDS_REAUTH)
            records = lines(caplog)
    assert not [r for r in records if "failed" in r.getMessage()], records
    warnings = [r for r in records if r.levelno >= logging.WARNING]
    assert len(warnings) == 1, [r.getMessage() for r in warnings]
    assert "parked in NEEDS_REAUTH" in warnings[0].getMessage()
    assert server.stats().requests_total == 0


async def test_a_provider_that_raises_is_still_a_warned_failure(
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.DEBUG, logger="mcpconn")
    async with MockServer() as server:
        async with (
            TokenSource(broken, failure_cooldown=0) as tokens,
            Supervisor(tokens, backoff=FAST) as sup,
        ):
            conn = await sup.connect(cfg(server), "alice")
            changes = sup.state_changes()
            with anyio.fail_after(10):
                while not (
                    isinstance(conn.last_error, mcpconn.TokenProviderError)
                    and conn.state is State.BACKOFF
                ):
                    await changes.__anext__()
            await changes.aclose()
            records = lines(caplog)
    failed = [r for r in records if "token provider failed" in r.getMessage()]
    assert failed and all(r.levelno == logging.WARNING for r in failed)
    assert "RuntimeError" in failed[0].getMessage()
    assert not [r for r in records if "NEEDS_REAUTH" in r.getMessage()]
