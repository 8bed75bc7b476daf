"""The fakes the TokenSource tests share: a clock, a provider that can hold its calls, a crowd.

Tokens are real HS256 JWTs minted against a fake clock, so expiry is exact.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from typing import Any

import anyio
import jwt

from mcpconn._core.token import Token
from mcpconn._tokens.source import TokenRequest, TokenSource

KEY = "a-test-secret-long-enough-for-hs256!"
T0 = 1_900_000_000.0


def mint(**claims: Any) -> str:
    return jwt.encode(claims, KEY, algorithm="HS256")


def claims(token: Token) -> dict[str, Any]:
    return jwt.decode(token.raw, options={"verify_signature": False})


class FakeClock:
    def __init__(self) -> None:
        self.now = T0

    def __call__(self) -> float:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += seconds


class FakeProvider:
    """Mints a JWT per call; after ``hold()``, every call waits for ``release()``."""

    def __init__(self, clock: FakeClock, lifetime: int = 3600) -> None:
        self.clock = clock
        self.lifetime = lifetime
        self.calls: list[TokenRequest] = []
        self.started = anyio.Event()
        self.gate: anyio.Event | None = None

    async def __call__(self, request: TokenRequest) -> str | Token:
        self.calls.append(request)
        self.started.set()
        if self.gate is not None:
            await self.gate.wait()
        now = int(self.clock())
        return mint(
            sub=request.principal,
            aud=request.audience,
            n=len(self.calls),
            iat=now,
            exp=now + self.lifetime,
        )

    def hold(self) -> None:
        """Hold the calls from now on; ``started`` fires when the next one begins."""
        self.gate = anyio.Event()
        self.started = anyio.Event()

    def release(self) -> None:
        assert self.gate is not None
        self.gate.set()


@asynccontextmanager
async def open_source(mode: str, provider: Any, **kwargs: Any) -> AsyncIterator[TokenSource]:
    source = TokenSource(provider, **kwargs)
    if mode == "entered":
        async with source:
            yield source
    else:
        yield source


@asynccontextmanager
async def crowd(
    provider: FakeProvider, call: Callable[[], Awaitable[Token]], size: int = 1000
) -> AsyncIterator[list[Token]]:
    """``size`` concurrent ``call()``s on a held provider; the body runs once all of them wait.

    Leaving the block releases the provider and waits for every call: the list
    then holds their results.
    """
    provider.hold()
    results: list[Token] = []

    async def one() -> None:
        results.append(await call())

    with anyio.fail_after(10):
        async with anyio.create_task_group() as tg:
            for _ in range(size):
                tg.start_soon(one)
            await provider.started.wait()
            await anyio.wait_all_tasks_blocked()
            yield results
            provider.release()


class Boom(Exception):
    """A provider's (or a listener's) own failure."""
