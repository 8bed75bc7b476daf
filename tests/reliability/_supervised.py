"""A supervisor under test (the FAST policy) and the record of what it did.

Most reliability tests need the same two things around the server they attack: a token
source over some provider with a supervisor on top, and the state changes it reported.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from typing import Any

import anyio

from mcpconn import (
    Connection,
    ServerConfig,
    State,
    StateChange,
    Supervisor,
    Token,
    TokenRequest,
    TokenSource,
)

from ._raw import FAST

Provider = Callable[[TokenRequest], Awaitable[str | Token]]


@asynccontextmanager
async def supervised(
    provider: Provider, *, source_options: dict[str, Any] | None = None, **options: Any
) -> AsyncIterator[Supervisor]:
    """``Supervisor(TokenSource(provider, **source_options), backoff=FAST, **options)``.

    Its token source is ``sup.tokens``.
    """
    options.setdefault("backoff", FAST)
    async with (
        TokenSource(provider, **(source_options or {})) as tokens,
        Supervisor(tokens, **options) as sup,
    ):
        yield sup


@asynccontextmanager
async def recorded_changes(sup: Supervisor) -> AsyncIterator[list[StateChange]]:
    """Every state change ``sup`` reports while the block runs, in order."""
    changes: list[StateChange] = []
    sub = sup.state_changes()

    async def record() -> None:
        async for change in sub:
            changes.append(change)

    async with anyio.create_task_group() as tg:
        tg.start_soon(record)
        yield changes
        tg.cancel_scope.cancel()


async def connected(
    sup: Supervisor, config: ServerConfig, principal: str = "alice", *, state: State = State.READY
) -> Connection:
    """``sup.connect(config, principal)``, once the connection reached ``state`` (10 s at most)."""
    conn = await sup.connect(config, principal)
    with anyio.fail_after(10):
        await conn.wait_for(state)
    return conn
