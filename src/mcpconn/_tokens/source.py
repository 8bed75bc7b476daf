"""TokenSource: a per-(principal, audience) token cache that never serves a stale token.

Theory of operation
-------------------
Every key ``(principal, audience)`` has its own cached token and its own state;
nothing is shared between keys, so one key's hanging provider never delays
another key, and a token never crosses keys.

A provider call is a *flight*. At most one flight per key exists at a time;
every caller that needs a new token for that key while it runs waits on the
flight's `anyio.Event` (single flight). Compare-and-refresh: a caller that saw
token T rejected calls ``refresh(replacing=T)``; if the cached token is no
longer T it gets the newer one without a provider call.

Who runs the flight (and why there are two modes):

* Entered (``async with TokenSource(...) as source``): the flight runs in a task
  of the source's own task group. Every caller only waits, so cancelling any
  caller is immediate and never touches the flight. Background refresh-ahead
  (inside the stale window) and the ``refresh_ahead=True`` no-traffic timer
  need this mode, since they are work nobody awaits.
* Not entered (the simple case: build it and call ``get()``): the first caller
  leads the flight itself inside ``CancelScope(shield=True)``, bounded by
  ``provider_timeout``. Cancelling the leader therefore cannot cancel the
  flight the others wait on; the leader's own cancellation is delivered when
  the flight ends (at most ``provider_timeout`` later). In the stale window
  ``get()`` just serves the token; it is refreshed when it reaches the margin.

Failures (``_provider.py`` says what counts as one; `ReauthRequired` gets the
principal filled in): for ``failure_cooldown`` seconds afterwards the key
answers with a copy of that error instead of calling the provider again;
``publish`` and ``invalidate`` end the cooldown. A provider that hands back the
credential we already hold has not produced a new token: the generation does
not move, listeners are not called, and no further refresh-ahead runs for it
(no hammering).

All state changes happen between awaits, so no lock is needed and none is held
while the provider runs.

Where tokens live: a `TokenStore` (``_store.py``; default `MemoryTokenStore`).
The token source does all the deciding; a shared store (``mcpconn.redis_store``,
needs ``async with``) runs each flight through ``exchange`` (one provider call
fleet-wide) and reports other replicas' changes through `_remote_change`.
"""

from __future__ import annotations

import logging
import math
import time
from collections.abc import Callable
from contextlib import AsyncExitStack
from dataclasses import dataclass
from functools import partial
from types import TracebackType
from typing import Self

import anyio
import anyio.abc
import anyio.lowlevel

from .._core.freshness import Freshness, FreshnessPolicy, freshness
from .._core.token import Token
from .._exceptions import ConnectionClosed, MCPConnError, ReauthRequired
from .provider import (
    Flight,
    KeyState,
    Provider,
    TokenRequest,
    call_provider,
    check_timeout,
    fresh_copy,
    refresh_ahead_timer,
)
from .store import Key, MemoryTokenStore, StoredToken, TokenStore

__all__ = ["Provider", "TokenListener", "TokenRequest", "TokenSource", "TokenSourceStatistics"]

logger = logging.getLogger("mcpconn.tokens")


TokenListener = Callable[[str, "str | None"], None]


@dataclass(frozen=True)
class TokenSourceStatistics:
    """A snapshot. ``refreshes`` counts provider calls that produced a token."""

    provider_calls: int
    refreshes: int
    failures: int
    keys: int
    in_flight: int


class TokenSource:
    """Hands out a fresh token per (principal, audience); see the module docstring.

    ``provider``: ``async (TokenRequest) -> str | Token``. ``margin``: seconds
    before expiry a token stops being served. ``stale_window``: refresh-ahead
    window (``None``: max(60 s, 10 % of lifetime), capped at 5 min).
    ``refresh_ahead``: also refresh on a timer with no traffic (needs
    ``async with``). ``max_age``: age limit for tokens without expiry.
    ``provider_timeout``: a hanging provider is cut off after this. After a
    failure, calls within ``failure_cooldown`` get the same error without a
    provider call. ``clock``: epoch seconds (default `time.time`). ``store``:
    where tokens live (default: a `MemoryTokenStore`, this process only); a
    shared store such as ``mcpconn.redis_store.RedisTokenStore`` needs ``async with``.
    """

    def __init__(
        self,
        provider: Provider,
        *,
        margin: float = 30.0,
        stale_window: float | None = None,
        refresh_ahead: bool = False,
        max_age: float | None = None,
        provider_timeout: float = 10.0,
        failure_cooldown: float = 1.0,
        clock: Callable[[], float] | None = None,
        store: TokenStore | None = None,
    ) -> None:
        check_timeout(provider_timeout)
        if not (math.isfinite(failure_cooldown) and failure_cooldown >= 0):
            raise ValueError("failure_cooldown must be a finite number >= 0")
        if clock is None:
            clock = time.time
        self._provider = provider
        self._policy = FreshnessPolicy(margin=margin, stale_window=stale_window, max_age=max_age)
        self._refresh_ahead = refresh_ahead
        self._provider_timeout = float(provider_timeout)
        self._failure_cooldown = float(failure_cooldown)
        self._clock = clock
        if store is not None and not isinstance(store, TokenStore):
            raise TypeError("store must be a TokenStore")
        self._cache: TokenStore = store if store is not None else MemoryTokenStore()
        self._states: dict[Key, KeyState] = {}
        self._listeners: list[TokenListener] = []
        self._tg: anyio.abc.TaskGroup | None = None
        self._stack: AsyncExitStack | None = None
        self._closed = False
        self._provider_calls = 0
        self._refreshes = 0
        self._failures = 0

    def __repr__(self) -> str:
        mode = "closed" if self._closed else "entered" if self._tg else "unentered"
        return f"<TokenSource {mode} keys={len(self._cache)}>"

    # -- lifecycle ---------------------------------------------------------------

    async def __aenter__(self) -> Self:
        if self._closed or self._stack is not None:
            raise RuntimeError("a TokenSource can be entered only once")
        stack = AsyncExitStack()
        self._tg = await stack.enter_async_context(anyio.create_task_group())
        self._stack = stack
        try:
            await self._tg.start(self._cache.run, self._remote_change)
        except BaseException:
            await self.aclose()
            raise
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> bool | None:
        await self.aclose()
        return None

    async def aclose(self) -> None:
        """Stop background refreshes and timers; later calls raise `ConnectionClosed`."""
        self._closed = True
        for state in self._states.values():
            if state.changed is not None:
                state.changed.set()  # wait_for_new_token() raises ConnectionClosed
        stack, self._stack = self._stack, None
        if stack is not None and self._tg is not None:
            self._tg.cancel_scope.cancel()
            await stack.aclose()
        self._tg = None

    # -- the public calls ----------------------------------------------------------

    async def get(self, principal: str, audience: str | None = None) -> Token:
        """A token that is not expired: the cached one, or a new one from the provider.

        While a forced refresh (after a rejection) runs, callers wait for its result
        rather than send the token a server just rejected.
        """
        key = self._key(principal, audience)
        self._require_entered()
        entry = self._cache.get(key)
        flight = self._states[key].flight if key in self._states else None
        if flight is not None and flight.request.force:
            # A server rejected the cached token: wait for its replacement.
            return await flight.wait()
        if entry is not None:
            state = freshness(
                entry.token, self._clock(), self._policy, obtained_at=entry.obtained_at
            )
            if state is Freshness.FRESH:
                return entry.token
            if state is Freshness.REFRESH_AHEAD:
                self._refresh_in_background(key, entry.token)
                return entry.token
        reason = "no cached token" if entry is None else "cached token expired"
        return await self._obtain(
            key,
            force=entry is not None,
            reason=reason,
            avoid=None if entry is None else entry.token,
        )

    async def refresh(
        self, principal: str, audience: str | None = None, *, replacing: Token | None
    ) -> Token:
        """Forced refresh after ``replacing`` was rejected (compare-and-refresh).

        If the cached token is no longer ``replacing`` (another task already
        replaced it) and is not expired, it is returned with no provider call.
        ``replacing=None`` refreshes whatever is cached. Concurrent calls share
        one provider call.
        """
        key = self._key(principal, audience)
        self._require_entered()
        state = self._state(key)
        entry = self._cache.get(key)
        if (
            state.flight is None
            and entry is not None
            and replacing is not None
            and not entry.token.same_credential(replacing)
            and freshness(entry.token, self._clock(), self._policy, obtained_at=entry.obtained_at)
            is not Freshness.EXPIRED
        ):
            return entry.token
        if replacing is None and entry is not None:
            replacing = entry.token
        return await self._obtain(key, force=True, reason="token rejected", avoid=replacing)

    def publish(self, principal: str, token: Token | str, audience: str | None = None) -> None:
        """Push a new token (e.g. the user logged in again); wakes everyone waiting on the key."""
        key = self._key(principal, audience)
        now = self._clock()
        if isinstance(token, str):
            token = Token.from_jwt(token, now=now)
        if not isinstance(token, Token):
            raise TypeError(f"publish() needs a Token or str, not {type(token).__name__}")
        self._require_store_running()
        entry = self._store(key, token, now, published=True)
        self._cache.announce(key, entry, published=True)

    def invalidate(self, principal: str, audience: str | None = None) -> None:
        """Forget the cached token and any remembered failure; the next get() asks the provider."""
        key = self._key(principal, audience)
        self._require_store_running()
        self._forget(key)
        self._cache.announce(key, None, published=False)

    def _forget(self, key: Key) -> None:
        self._cache.discard(key)
        state = self._states.get(key)
        if state is not None:
            state.failure = None
            state.ahead_for = None
            state.cancel_timer()

    def generation(self, principal: str, audience: str | None = None) -> int:
        """Increments on every new token for the key (publish or refresh)."""
        state = self._states.get((principal, audience))
        return 0 if state is None else state.generation

    async def wait_for_new_token(
        self, principal: str, audience: str | None = None, *, after: int
    ) -> int:
        """Wait until the key's generation exceeds ``after``; returns the new generation."""
        state = self._state(self._key(principal, audience))
        while state.generation <= after:
            if self._closed:
                raise ConnectionClosed("the token source is closed")
            if state.changed is None:
                state.changed = anyio.Event()
            await state.changed.wait()
        return state.generation

    def add_listener(self, callback: TokenListener) -> Callable[[], None]:
        """Call ``callback(principal, audience)`` on every `publish()`; returns a remover."""
        self._listeners.append(callback)

        def remove() -> None:
            if callback in self._listeners:
                self._listeners.remove(callback)

        return remove

    def statistics(self) -> TokenSourceStatistics:
        return TokenSourceStatistics(
            provider_calls=self._provider_calls,
            refreshes=self._refreshes,
            failures=self._failures,
            keys=len(self._cache),
            in_flight=sum(1 for s in self._states.values() if s.flight is not None),
        )

    # -- internals -------------------------------------------------------------------

    def _key(self, principal: str, audience: str | None) -> Key:
        if self._closed:
            raise ConnectionClosed("the token source is closed")
        if not isinstance(principal, str):
            raise TypeError("principal must be a str")
        if audience is not None and not isinstance(audience, str):
            raise TypeError("audience must be a str or None")
        return (principal, audience)

    def _state(self, key: Key) -> KeyState:
        state = self._states.get(key)
        if state is None:
            state = self._states[key] = KeyState()
        return state

    def _require_entered(self) -> None:
        if self._refresh_ahead and self._tg is None:
            raise RuntimeError("refresh_ahead=True needs `async with TokenSource(...) as source`")
        self._require_store_running()

    def _require_store_running(self) -> None:
        if self._cache.needs_task_group and self._tg is None:
            raise RuntimeError(
                f"{type(self._cache).__name__} needs `async with TokenSource(...) as source`"
            )

    async def _obtain(
        self, key: Key, *, force: bool, reason: str, avoid: Token | None = None
    ) -> Token:
        """Join the key's flight, or fail fast in the cooldown, or start a flight."""
        state = self._state(key)
        flight = state.flight
        if flight is None:
            if (failure := state.recent_failure(self._clock, self._failure_cooldown)) is not None:
                await anyio.lowlevel.checkpoint()
                raise fresh_copy(failure)
            flight = self._start_flight(key, state, force=force, reason=reason, avoid=avoid)
            if self._tg is None:
                # Not entered: this caller leads, shielded (see the module docstring).
                await self._fly(key, flight, shield=True)
                await anyio.lowlevel.checkpoint_if_cancelled()
                return flight.outcome()
        return await flight.wait()

    def _start_flight(
        self, key: Key, state: KeyState, *, force: bool, reason: str, avoid: Token | None
    ) -> Flight:
        request = TokenRequest(principal=key[0], force=force, reason=reason, audience=key[1])
        flight = Flight(request, state.generation, avoid)
        state.flight = flight
        if self._tg is not None:
            self._tg.start_soon(self._fly, key, flight, False)
        return flight

    def _refresh_in_background(self, key: Key, token: Token) -> None:
        """Stale window: start one refresh nobody waits for (entered mode only)."""
        if self._tg is None:
            return
        state = self._state(key)
        if state.flight is not None or state.ahead_for == token.raw:
            return
        if state.recent_failure(self._clock, self._failure_cooldown) is not None:
            return
        self._start_flight(key, state, force=False, reason="refresh ahead of expiry", avoid=token)

    async def _fly(self, key: Key, flight: Flight, shield: bool) -> None:
        """Run the provider once and settle ``flight`` whatever happens."""
        state = self._state(key)
        usable = partial(flight.usable, clock=self._clock, policy=self._policy)

        async def fetch() -> StoredToken:
            self._provider_calls += 1
            fetched = await call_provider(
                self._provider,
                flight.request,
                timeout=self._provider_timeout,
                clock=self._clock,
                policy=self._policy,
            )
            return StoredToken(fetched, self._clock())

        try:
            with anyio.CancelScope(shield=shield):
                result = await self._cache.exchange(key, usable=usable, fetch=fetch)
            token = result.token
            if state.generation != flight.generation:
                # A publish() landed while we were asking: it is newer; keep it.
                entry = self._cache.get(key)
                if entry is not None:
                    flight.token = entry.token
                    return
            entry = self._cache.get(key)
            if (
                not flight.request.force
                and entry is not None
                and entry.token.same_credential(token)
            ):
                state.ahead_for = token.raw
            self._store(key, token, result.obtained_at)
            flight.token = token
            self._refreshes += 1
        except MCPConnError as exc:
            self._failures += 1
            if isinstance(exc, ReauthRequired) and exc.principal is None:
                exc.principal = key[0]
            logger.warning(
                "token provider failed for principal %r audience %r: %s",
                key[0],
                key[1],
                type(exc.__cause__ or exc).__name__,
            )
            entry = self._cache.get(key)
            if state.generation != flight.generation and entry is not None:
                flight.token = entry.token
            else:
                state.failure = exc
                state.failed_at = self._clock()
                flight.error = exc
        finally:
            if state.flight is flight:
                state.flight = None
            flight.finish()

    def _remote_change(self, key: Key, entry: StoredToken | None, published: bool) -> None:
        """Another replica published, refreshed or invalidated ``key``."""
        if self._closed:
            return
        if entry is None:
            self._forget(key)
            return
        local = self._cache.get(key)
        if local is not None and local.token.same_credential(entry.token):
            return
        if not published and local is None and key not in self._states:
            return  # a key this replica never used: nothing to keep fresh
        self._store(key, entry.token, entry.obtained_at, published=published)

    def _store(self, key: Key, token: Token, now: float, *, published: bool = False) -> StoredToken:
        """A new token for ``key``: cache it, bump the generation, wake waiters.

        Listeners hear only of *published* tokens (a human logged in again). A
        refresh must not wake parked connections: with a provider that mints a
        new (still rejected) token each time, connections of one principal would
        wake each other forever.
        """
        state = self._state(key)
        state.failure = None
        old = self._cache.get(key)
        if old is not None and old.token.same_credential(token):
            # The same credential again (maybe with new metadata): not a new token.
            entry = StoredToken(token, old.obtained_at)
            self._cache.set(key, entry)
            return entry
        entry = StoredToken(token, now)
        self._cache.set(key, entry)
        state.generation += 1
        state.ahead_for = None
        if state.changed is not None:
            state.changed.set()
            state.changed = None
        self._schedule_timer(key, state)
        if not published:
            return entry
        for listener in list(self._listeners):
            try:
                listener(key[0], key[1])
            except Exception:
                logger.exception("token listener %r failed", listener)
        return entry

    # -- the no-traffic refresh-ahead timer ------------------------------------------

    def _schedule_timer(self, key: Key, state: KeyState) -> None:
        state.cancel_timer()
        if self._refresh_ahead and self._tg is not None:
            state.timer = anyio.CancelScope()
            self._tg.start_soon(self._run_timer, key, state.timer)

    async def _run_timer(self, key: Key, scope: anyio.CancelScope) -> None:
        def current() -> StoredToken | None:  # None once a refresh-ahead ran for it
            entry = self._cache.get(key)
            return None if entry is None or self._state(key).ahead_for == entry.token.raw else entry

        obtain = partial(self._obtain, key, force=False, reason="refresh-ahead timer")
        with scope:  # a new token cancels this scope (and schedules a new timer)
            await refresh_ahead_timer(
                current, obtain, self._policy, self._clock, self._failure_cooldown
            )
