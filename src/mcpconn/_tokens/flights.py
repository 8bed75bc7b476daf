"""Everything that calls the provider for a key: one flight at a time, the cooldown,
and refreshing ahead of expiry.

A `Flight` is one provider call and everyone waiting for it (single flight).
`Flights` starts and runs them: a caller joins the key's flight, or gets a copy
of the last failure within the cooldown, or starts one; entered (with a task
group) a flight runs in the source's group, so cancelling a caller never
touches it; not entered, the first caller leads it, shielded. It also runs the
stale-window background refresh and the ``refresh_ahead=True`` no-traffic
timer. Results go into the `TokenView`; freshness questions go to the
`FreshnessJudge`. Nothing here calls back into the token source: it decides
*when* to ask (``source.py``); this module is *how*.
"""

from __future__ import annotations

import logging
from collections.abc import Callable

import anyio
import anyio.abc
import anyio.lowlevel

from .._core.token import Token
from .._exceptions import (
    Challenge,
    ConnectionClosed,
    MCPConnError,
    ReauthRequired,
    TokenProviderError,
)
from .judge import FreshnessJudge
from .provider import Provider, TokenRequest, call_provider, provider_failure
from .store import Key, StoredToken
from .view import KeyState, TokenView

__all__ = ["Flight", "Flights", "fresh_copy"]

logger = logging.getLogger("mcpconn.tokens")


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


class Flights:
    """Runs every provider call of one token source; see the module docstring."""

    def __init__(
        self,
        provider: Provider,
        view: TokenView,
        judge: FreshnessJudge,
        *,
        timeout: float,
        cooldown: float,
        clock: Callable[[], float],
        refresh_ahead: bool,
    ) -> None:
        self._provider = provider
        self._view = view
        self._judge = judge
        self._timeout = timeout
        self._cooldown = cooldown
        self._clock = clock
        self._refresh_ahead = refresh_ahead
        self._tg: anyio.abc.TaskGroup | None = None
        self.provider_calls = 0
        self.refreshes = 0
        self.failures = 0

    def attach(self, task_group: anyio.abc.TaskGroup | None) -> None:
        """Run flights and timers in ``task_group`` from now on (``None``: callers lead)."""
        self._tg = task_group

    def in_flight(self) -> int:
        return sum(1 for s in self._view.states.values() if s.flight is not None)

    async def obtain(
        self,
        key: Key,
        *,
        force: bool,
        reason: str,
        avoid: Token | None = None,
        challenge: Challenge | None = None,
    ) -> Token:
        """Join the key's flight, or fail fast in the cooldown, or start a flight."""
        state = self._view.state(key)
        flight = state.flight
        if flight is None:
            if (failure := state.recent_failure(self._clock, self._cooldown)) is not None:
                await anyio.lowlevel.checkpoint()
                raise fresh_copy(failure)
            flight = self._start(
                key, state, force=force, reason=reason, avoid=avoid, challenge=challenge
            )
            if self._tg is None:
                # Not entered: this caller leads, shielded (see the module docstring).
                await self._fly(key, flight, shield=True)
                await anyio.lowlevel.checkpoint_if_cancelled()
                return flight.outcome()
        return await flight.wait()

    def _start(
        self,
        key: Key,
        state: KeyState,
        *,
        force: bool,
        reason: str,
        avoid: Token | None,
        challenge: Challenge | None = None,
    ) -> Flight:
        request = TokenRequest(
            principal=key[0],
            force=force,
            reason=reason,
            audience=key[1],
            challenge=challenge,
            resource=state.resource,
        )
        flight = Flight(request, state.generation, avoid)
        state.flight = flight
        if self._tg is not None:
            self._tg.start_soon(self._fly, key, flight, False)
        return flight

    def refresh_in_background(self, key: Key, token: Token) -> None:
        """Stale window: start one refresh nobody waits for (entered mode only)."""
        if self._tg is None:
            return
        state = self._view.state(key)
        if state.flight is not None or state.ahead_for == token.raw:
            return
        if state.recent_failure(self._clock, self._cooldown) is not None:
            return
        self._start(key, state, force=False, reason="refresh ahead of expiry", avoid=token)

    async def _fly(self, key: Key, flight: Flight, shield: bool) -> None:
        """Run the provider once and settle ``flight`` whatever happens."""
        view, state = self._view, self._view.state(key)

        def usable(shared: StoredToken | None) -> bool:
            """Another replica's token will do unless it is the one we replace or expired."""
            return shared is not None and flight.replaces(shared) and self._judge.servable(shared)

        async def fetch() -> StoredToken:
            self.provider_calls += 1
            fetched = await call_provider(
                self._provider, flight.request, timeout=self._timeout, clock=self._clock
            )
            stored = StoredToken(fetched, self._clock())
            if not self._judge.servable(stored):  # never cache what we could not serve
                raise provider_failure(flight.request, "returned an expired token")
            return stored

        try:
            with anyio.CancelScope(shield=shield):
                result = await view.store.exchange(key, usable=usable, fetch=fetch)
            token = result.token
            if state.generation != flight.generation:
                # A token landed while we were asking (a publish, or another replica's
                # token arriving late over pub/sub): keep it only if it may be served and
                # is not the one we replace; an expired one never wins over ours.
                entry = view.get(key)
                if usable(entry):
                    assert entry is not None
                    flight.token = entry.token
                    return
            entry = view.get(key)
            if (
                not flight.request.force
                and entry is not None
                and entry.token.same_credential(token)
            ):
                state.ahead_for = token.raw
            self.settled(key, token, result.obtained_at)
            flight.token = token
            self.refreshes += 1
        except MCPConnError as exc:
            self.failures += 1
            if isinstance(exc, ReauthRequired):
                # the documented "log in again": no failure; the park logs its one line
                if exc.principal is None:
                    exc.principal = key[0]
            else:
                logger.warning(
                    "token provider failed for principal %r audience %r: %s",
                    key[0],
                    key[1],
                    type(exc.__cause__ or exc).__name__,
                )
            entry = view.get(key)
            if state.generation != flight.generation and usable(entry):
                assert entry is not None
                flight.token = entry.token
            else:
                # kept through the cooldown and never raised itself (`fresh_copy` is): its
                # frames go; its cause (the provider's own error) keeps its traceback
                state.failure = flight.error = exc.with_traceback(None)
                state.failed_at = self._clock()
        finally:
            if state.flight is flight:
                state.flight = None
            flight.finish()

    def settled(self, key: Key, token: Token, now: float) -> tuple[StoredToken, bool]:
        """Put ``token`` into the view; a new one gets its refresh-ahead timer."""
        entry, new = self._view.put(key, token, now)
        if new:
            self._schedule_timer(key, self._view.state(key))
        return entry, new

    # -- the no-traffic refresh-ahead timer ------------------------------------------

    def _schedule_timer(self, key: Key, state: KeyState) -> None:
        state.cancel_timer()
        if self._refresh_ahead and self._tg is not None:
            state.timer = anyio.CancelScope()
            self._tg.start_soon(self._run_timer, key, state.timer)

    async def _run_timer(self, key: Key, scope: anyio.CancelScope) -> None:
        """The ``refresh_ahead=True`` timer: ask the provider before anyone needs the token.

        Sleeps until the stale window opens, then refreshes once. After a failure
        it retries, no faster than the cooldown, while the token is still usable.
        """
        with scope:  # a new token cancels this scope (and schedules a new timer)
            while True:
                entry = self._view.get(key)
                if entry is None or self._view.state(key).ahead_for == entry.token.raw:
                    return  # nothing (more) to refresh ahead
                delay = self._judge.refresh_ahead_in(entry)
                if delay is None:
                    return
                if delay > 0:
                    await anyio.sleep(delay)
                    continue
                try:
                    reason = "refresh-ahead timer"
                    await self.obtain(key, force=False, reason=reason, avoid=entry.token)
                except MCPConnError:
                    if not self._judge.servable(entry):
                        return  # the next get() will try (and report) again
                    await anyio.sleep(max(self._cooldown, 1.0))
                else:
                    return
