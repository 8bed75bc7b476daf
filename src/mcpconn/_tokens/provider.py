"""Calling the embedder's token provider safely: bounded, checked, once for all waiters.

The provider is code we do not control: it may hang, raise anything, or hand
back something that is not a usable token. `call_provider` turns each of these
(an exception, a timeout after ``provider_timeout``, an empty, malformed,
non-token or already expired result) into a `TokenProviderError` chained to the
cause; `ReauthRequired` passes through, since only a human can fix it. So the
token source has one failure type to cool down on and never caches a token it
cannot serve.

A `Flight` is one provider call and everyone waiting for it (single flight),
`KeyState` a key's bookkeeping around such calls, and `refresh_ahead_timer`
the ``refresh_ahead=True`` timer that asks before anyone needs a token. The
token source (``_tokens.py``) decides when to call; this module is how.
"""

from __future__ import annotations

import math
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field

import anyio

from .._core.freshness import Freshness, FreshnessPolicy, freshness, refresh_timer_at
from .._core.token import Token
from .._exceptions import ConnectionClosed, MCPConnError, ReauthRequired, TokenProviderError
from .store import StoredToken

__all__ = [
    "Flight",
    "KeyState",
    "Provider",
    "TokenRequest",
    "call_provider",
    "check_timeout",
    "fresh_copy",
    "refresh_ahead_timer",
]


@dataclass(frozen=True)
class TokenRequest:
    """What the provider is asked for.

    ``force`` is True when a server rejected the current token or it expired:
    the provider must not answer from its own cache. ``audience`` names the
    downstream server for a per-server token exchange (RFC 8693); ``None``
    means the principal's own token.
    """

    principal: str
    force: bool = False
    reason: str = ""
    audience: str | None = None


Provider = Callable[[TokenRequest], Awaitable["str | Token"]]


def check_timeout(timeout: object) -> None:
    """A hanging provider is cut off after ``timeout`` seconds: it must be a real bound."""
    if isinstance(timeout, bool) or not (
        isinstance(timeout, int | float) and math.isfinite(timeout) and timeout > 0
    ):
        raise ValueError("provider_timeout must be a finite number > 0")


async def call_provider(
    provider: Provider,
    request: TokenRequest,
    *,
    timeout: float,
    clock: Callable[[], float],
    policy: FreshnessPolicy,
) -> Token:
    """Ask ``provider`` once, within ``timeout``; return only a usable, unexpired token."""

    def failure(message: str) -> TokenProviderError:
        return TokenProviderError(
            f"token provider {message}", principal=request.principal, audience=request.audience
        )

    try:
        with anyio.move_on_after(timeout) as scope:
            result = await provider(request)
    except ReauthRequired:
        raise
    except Exception as exc:
        raise failure(f"raised {type(exc).__name__}") from exc
    if scope.cancelled_caught:
        raise failure(f"timed out after {timeout:g}s")
    now = clock()
    if isinstance(result, str):
        if not result.strip():
            raise failure("returned an empty token")
        try:
            token = Token.from_jwt(result, now=now)
        except ValueError as exc:  # MalformedTokenError is a ValueError
            raise failure("returned a malformed token") from exc
    elif isinstance(result, Token):
        token = result
    else:
        raise failure(f"returned {type(result).__name__}, not a token")
    if freshness(token, now, policy, obtained_at=now) is Freshness.EXPIRED:
        raise failure("returned an expired token")
    return token


class Flight:
    """One provider call and everyone waiting for it."""

    def __init__(self, request: TokenRequest, generation: int, avoid: Token | None) -> None:
        self.request = request
        self.generation = generation
        # The token this flight replaces: another replica's copy of it will not do.
        self.avoid = avoid
        self.done = anyio.Event()
        self.token: Token | None = None
        self.error: MCPConnError | None = None

    def usable(
        self, shared: StoredToken | None, *, clock: Callable[[], float], policy: FreshnessPolicy
    ) -> bool:
        """Another replica's token will do unless it is the one we replace or expired."""
        return (
            shared is not None
            and not shared.token.same_credential(self.avoid)
            and freshness(shared.token, clock(), policy, obtained_at=shared.obtained_at)
            is not Freshness.EXPIRED
        )

    def finish(self) -> None:
        """Wake the waiters; a flight cut short (the source closed) fails them."""
        if self.token is None and self.error is None:
            self.error = ConnectionClosed("the token source closed during a refresh")
        self.done.set()

    async def wait(self) -> Token:
        await self.done.wait()
        return self.outcome()

    def outcome(self) -> Token:
        if self.token is not None:
            return self.token
        assert self.error is not None
        raise fresh_copy(self.error)


@dataclass
class KeyState:
    """A key's bookkeeping around provider calls: the flight, the cooldown, refresh-ahead.

    ``generation`` counts new tokens (a flight that sees it move lost to a
    publish); ``changed`` wakes `wait_for_new_token` callers.
    """

    generation: int = 0
    flight: Flight | None = None
    failure: MCPConnError | None = None
    failed_at: float = -math.inf
    changed: anyio.Event | None = None
    # The credential a refresh-ahead (background or timer) already ran for: the
    # provider handed the same one back, so do not ask again before the margin.
    ahead_for: str | None = field(default=None, repr=False)  # a raw credential
    timer: anyio.CancelScope | None = None

    def recent_failure(self, clock: Callable[[], float], cooldown: float) -> MCPConnError | None:
        """The failure to answer with, within ``cooldown``, instead of calling the provider."""
        if self.failure is not None and clock() - self.failed_at < cooldown:
            return self.failure
        return None

    def cancel_timer(self) -> None:
        if self.timer is not None:
            self.timer.cancel()
            self.timer = None


def fresh_copy(error: MCPConnError) -> MCPConnError:
    """A new exception per raiser: one instance raised by many tasks grows a huge traceback."""
    copy: MCPConnError
    if isinstance(error, ReauthRequired):
        copy = ReauthRequired(
            error.args[0] if error.args else "re-authentication required",
            server=error.server,
            principal=error.principal,
            challenge=error.challenge,
        )
        copy.__cause__ = error
    elif isinstance(error, TokenProviderError):
        copy = TokenProviderError(str(error), principal=error.principal, audience=error.audience)
        copy.__cause__ = error.__cause__
    else:
        copy = type(error)(*error.args)
        copy.__cause__ = error.__cause__
    return copy


async def refresh_ahead_timer(
    current: Callable[[], StoredToken | None],
    obtain: Callable[..., Awaitable[Token]],
    policy: FreshnessPolicy,
    clock: Callable[[], float],
    cooldown: float,
) -> None:
    """The ``refresh_ahead=True`` timer: ask the provider before anyone needs the token.

    Sleeps until the stale window of ``current()`` opens, then calls
    ``obtain(avoid=token)`` once; ``current()`` is None when there is nothing
    (more) to refresh ahead. After a failure it retries, no faster than
    ``cooldown``, while the token is still usable.
    """
    while True:
        entry = current()
        if entry is None:
            return
        fire_at = refresh_timer_at(entry.token, policy, obtained_at=entry.obtained_at)
        if fire_at is None:
            return
        delay = fire_at - clock()
        if delay > 0:
            await anyio.sleep(delay)
            continue
        try:
            await obtain(avoid=entry.token)
        except MCPConnError:
            now = clock()
            if freshness(entry.token, now, policy, obtained_at=entry.obtained_at) is (
                Freshness.EXPIRED
            ):
                return  # the next get() will try (and report) again
            await anyio.sleep(max(cooldown, 1.0))
        else:
            return
