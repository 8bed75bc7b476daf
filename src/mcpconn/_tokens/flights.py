"""The per-key bookkeeping around provider calls: one flight at a time, the cooldown.

A `Flight` is one provider call and everyone waiting for it (single flight);
a `KeyState` is a key's state around such calls (the flight, the last failure
and its time, the generation of tokens, the refresh-ahead timer). Plain data
with no policy: the token source (``source.py``) decides when a flight starts
and what its result means; nothing here calls back into it.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass, field

import anyio

from .._core.token import Token
from .._exceptions import ConnectionClosed, MCPConnError, ReauthRequired, TokenProviderError
from .provider import TokenRequest
from .store import StoredToken

__all__ = ["Flight", "KeyState", "fresh_copy"]


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

    def replaces(self, shared: StoredToken) -> bool:
        """Whether another replica's ``shared`` token is a replacement (not the one we avoid).

        The token source's judge says whether it is still fresh enough.
        """
        return not shared.token.same_credential(self.avoid)

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
    #: The server (canonical URI) the key's tokens were last asked for: background
    #: refreshes name it too.
    resource: str | None = None

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
