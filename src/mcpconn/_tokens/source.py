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

Failures (``provider.py`` says what counts as one; `ReauthRequired` gets the
principal filled in): for ``failure_cooldown`` seconds afterwards the key
answers with a copy of that error instead of calling the provider again;
``publish`` and ``invalidate`` end the cooldown. A provider that hands back the
credential we already hold has not produced a new token: the generation does
not move, listeners are not called, and no further refresh-ahead runs for it
(no hammering).

All state changes happen between awaits, so no lock is needed and none is held
while the provider runs.

The room, by job (imports point one way, nothing calls back into the source):
this module decides *when* to ask; ``flights.py`` runs the asking (single
flight, cooldown, background refresh, the no-traffic timer); ``view.py`` holds
what is cached and its generation; ``judge.py`` is the one place freshness is
judged (the core's rules with this source's clock and policy);
``provider.py`` calls the embedder's provider safely.

Where tokens live: a `TokenStore` (``store.py``; default `MemoryTokenStore`).
The token source does all the deciding; a shared store (``mcpconn.redis_store``,
needs ``async with``) runs each flight through ``exchange`` (one provider call
fleet-wide) and reports other replicas' changes through `_remote_change`.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from contextlib import AsyncExitStack
from dataclasses import dataclass
from typing import Self

import anyio
import anyio.abc

from .._core.freshness import Freshness, FreshnessPolicy
from .._core.settings import number
from .._core.token import Token
from .._exceptions import Challenge, ConnectionClosed
from .flights import Flights
from .judge import FreshnessJudge
from .provider import Provider, TokenRequest, check_timeout
from .store import Key, MemoryTokenStore, StoredToken, TokenStore
from .view import TokenView

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


class TokenSource(anyio.abc.AsyncResource):
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
        provider_timeout = check_timeout(provider_timeout)
        failure_cooldown = number(failure_cooldown, "failure_cooldown")
        if clock is None:
            clock = time.time
        policy = FreshnessPolicy(margin=margin, stale_window=stale_window, max_age=max_age)
        #: The one place this source asks whether a token may be served.
        self._judge = FreshnessJudge(policy, clock)
        self._refresh_ahead = refresh_ahead
        if store is not None and not isinstance(store, TokenStore):
            raise TypeError("store must be a TokenStore")
        self._cache: TokenStore = store if store is not None else MemoryTokenStore()
        self._view = TokenView(self._cache)
        self._flights = Flights(
            provider,
            self._view,
            self._judge,
            timeout=float(provider_timeout),
            cooldown=float(failure_cooldown),
            clock=clock,
            refresh_ahead=refresh_ahead,
        )
        self._listeners: list[TokenListener] = []
        self._clock = clock
        self._tg: anyio.abc.TaskGroup | None = None
        self._stack: AsyncExitStack | None = None
        self._closed = False
        #: After a 403 insufficient_scope, ask the provider again (it can widen scope).
        self.step_up = getattr(provider, "step_up", False) is True
        bind = getattr(provider, "_bind_token_source", None)
        if callable(bind):  # mcpconn.oauth: finished logins are published here
            bind(self)

    @property
    def store(self) -> TokenStore:
        """Where this source keeps its tokens (and providers their records)."""
        return self._cache

    def __repr__(self) -> str:
        mode = "closed" if self._closed else "entered" if self._tg else "unentered"
        return f"<TokenSource {mode} keys={len(self._cache)}>"

    # -- lifecycle ---------------------------------------------------------------

    async def __aenter__(self) -> Self:
        if self._closed or self._stack is not None:
            raise RuntimeError("a TokenSource can be entered only once")
        stack = AsyncExitStack()
        self._tg = await stack.enter_async_context(anyio.create_task_group())
        self._flights.attach(self._tg)
        self._stack = stack
        try:
            await self._tg.start(self._cache.run, self._remote_change)
        except BaseException:
            await self.aclose()
            raise
        return self

    async def aclose(self) -> None:
        """Stop background refreshes and timers; later calls raise `ConnectionClosed`."""
        self._closed = True
        self._view.wake_all()  # wait_for_new_token() raises ConnectionClosed
        stack, self._stack = self._stack, None
        if stack is not None and self._tg is not None:
            self._tg.cancel_scope.cancel()
            await stack.aclose()
        self._tg = None
        self._flights.attach(None)

    # -- the public calls ----------------------------------------------------------

    async def get(
        self, principal: str, audience: str | None = None, *, resource: str | None = None
    ) -> Token:
        """A token that is not expired: the cached one, or a new one from the provider.

        While a forced refresh (after a rejection) runs, callers wait for its result
        rather than send the token a server just rejected. ``resource``: the server
        the token is for (`TokenRequest.resource`).
        """
        key = self._key(principal, audience)
        self._require_entered()
        self._note_resource(key, resource)
        entry = self._cache.get(key)
        states = self._view.states
        flight = states[key].flight if key in states else None
        if flight is not None and flight.request.force:
            # A server rejected the cached token: wait for its replacement.
            return await flight.wait()
        if entry is not None:
            state = self._judge(entry)
            if state is Freshness.FRESH:
                return entry.token
            if state is Freshness.REFRESH_AHEAD:
                self._flights.refresh_in_background(key, entry.token)
                return entry.token
        reason = "no cached token" if entry is None else "cached token expired"
        return await self._flights.obtain(
            key,
            force=entry is not None,
            reason=reason,
            avoid=None if entry is None else entry.token,
        )

    async def refresh(
        self,
        principal: str,
        audience: str | None = None,
        *,
        replacing: Token | None,
        challenge: Challenge | None = None,
        resource: str | None = None,
    ) -> Token:
        """Forced refresh after ``replacing`` was rejected (compare-and-refresh).

        If the cached token is no longer ``replacing`` (another task already
        replaced it) and is not expired, it is returned with no provider call.
        ``replacing=None`` refreshes whatever is cached. Concurrent calls share
        one provider call. ``challenge``: the rejection's parsed WWW-Authenticate,
        handed to the provider (`TokenRequest.challenge`).
        """
        key = self._key(principal, audience)
        self._require_entered()
        self._note_resource(key, resource)
        state = self._view.state(key)
        entry = self._cache.get(key)
        if (
            state.flight is None
            and entry is not None
            and replacing is not None
            and not entry.token.same_credential(replacing)
            and self._judge.servable(entry)
        ):
            return entry.token
        if replacing is None and entry is not None:
            replacing = entry.token
        return await self._flights.obtain(
            key, force=True, reason="token rejected", avoid=replacing, challenge=challenge
        )

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
        self._view.forget(key)
        self._cache.announce(key, None, published=False)

    def generation(self, principal: str, audience: str | None = None) -> int:
        """Increments on every new token for the key (publish or refresh)."""
        state = self._view.states.get((principal, audience))
        return 0 if state is None else state.generation

    async def wait_for_new_token(
        self, principal: str, audience: str | None = None, *, after: int
    ) -> int:
        """Wait until the key's generation exceeds ``after``; returns the new generation."""
        state = self._view.state(self._key(principal, audience))
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
            provider_calls=self._flights.provider_calls,
            refreshes=self._flights.refreshes,
            failures=self._flights.failures,
            keys=len(self._cache),
            in_flight=self._flights.in_flight(),
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

    def _note_resource(self, key: Key, resource: str | None) -> None:
        if resource is not None:
            self._view.state(key).resource = resource

    def _require_entered(self) -> None:
        if self._refresh_ahead and self._tg is None:
            raise RuntimeError("refresh_ahead=True needs `async with TokenSource(...) as source`")
        self._require_store_running()

    def _require_store_running(self) -> None:
        if self._cache.needs_task_group and self._tg is None:
            raise RuntimeError(
                f"{type(self._cache).__name__} needs `async with TokenSource(...) as source`"
            )

    def _remote_change(self, key: Key, entry: StoredToken | None, published: bool) -> None:
        """Another replica published, refreshed or invalidated ``key``."""
        if self._closed:
            return
        if entry is None:
            self._view.forget(key)
            return
        local = self._cache.get(key)
        if local is not None and local.token.same_credential(entry.token):
            return
        if not published and local is None and key not in self._view.states:
            return  # a key this replica never used: nothing to keep fresh
        self._store(key, entry.token, entry.obtained_at, published=published)

    def _store(self, key: Key, token: Token, now: float, *, published: bool = False) -> StoredToken:
        """A new token for ``key``: into the view (a new one gets its timer), wake waiters.

        Listeners hear only of *published* tokens (a human logged in again). A
        refresh must not wake parked connections: with a provider that mints a
        new (still rejected) token each time, connections of one principal would
        wake each other forever.
        """
        entry, new = self._flights.settled(key, token, now)
        if not (new and published):
            return entry
        for listener in list(self._listeners):
            try:
                listener(key[0], key[1])
            except Exception:
                logger.exception("token listener %r failed", listener)
        return entry
