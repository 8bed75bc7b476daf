"""This process's view of every key's token: what is cached, and which generation it is.

`KeyState` is one key's bookkeeping (its flight, its last failure, its
generation, its refresh-ahead timer); `TokenView` keeps the states beside the
`TokenStore` that holds the tokens, and is the one place a new token enters
the view (`put`) or leaves it (`forget`). It decides nothing and calls no one:
`put` says whether the token is new, and the caller does what follows (timers,
listeners).
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

import anyio

from .._core.token import Token
from .._exceptions import MCPConnError
from .store import Key, StoredToken, TokenStore

if TYPE_CHECKING:
    from .flights import Flight

__all__ = ["KeyState", "TokenView"]


@dataclass(slots=True)
class KeyState:
    """A key's bookkeeping around provider calls: the flight, the cooldown, refresh-ahead.

    ``generation`` counts new tokens (a flight that sees it move lost to a
    publish); ``changed`` wakes `wait_for_new_token` callers. Slotted: one per
    principal, thousands at once.
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


class TokenView:
    """The tokens (in ``store``) and every key's `KeyState`."""

    def __init__(self, store: TokenStore) -> None:
        self.store = store
        self.states: dict[Key, KeyState] = {}

    def get(self, key: Key) -> StoredToken | None:
        return self.store.get(key)

    def state(self, key: Key) -> KeyState:
        state = self.states.get(key)
        if state is None:
            state = self.states[key] = KeyState()
        return state

    def put(self, key: Key, token: Token, now: float) -> tuple[StoredToken, bool]:
        """Cache ``token`` for ``key``; True when it is a new credential.

        A new one bumps the generation and wakes `wait_for_new_token` callers;
        the same credential again (maybe with new metadata) is not a new token.
        """
        state = self.state(key)
        state.failure = None
        old = self.store.get(key)
        if old is not None and old.token.same_credential(token):
            entry = StoredToken(token, old.obtained_at)
            self.store.set(key, entry)
            return entry, False
        entry = StoredToken(token, now)
        self.store.set(key, entry)
        state.generation += 1
        state.ahead_for = None
        if state.changed is not None:
            state.changed.set()
            state.changed = None
        return entry, True

    def forget(self, key: Key) -> None:
        """Drop the key's token and any remembered failure or refresh-ahead."""
        self.store.discard(key)
        state = self.states.get(key)
        if state is not None:
            state.failure = None
            state.ahead_for = None
            state.cancel_timer()

    def wake_all(self) -> None:
        """Wake every `wait_for_new_token` caller (the source is closing)."""
        for state in self.states.values():
            if state.changed is not None:
                state.changed.set()
