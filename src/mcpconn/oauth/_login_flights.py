"""Logins in flight: one per (principal, server), waited for briefly, published when late.

A provider call that needs a login starts one, or joins the one already running
for its key. Not entered, the login runs inside the call. Entered, it runs in the
provider's task group: the call waits at most ``login_wait`` and otherwise raises
`ReauthRequired` (the connection parks); a login that finishes after its callers
gave up is published, which wakes the parked connections.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass

import anyio
import anyio.abc

from .._core.token import Token
from .._exceptions import MCPConnError, ReauthRequired

__all__ = ["KeyState", "LoginFlight", "join_login"]

#: Runs the login itself (the code flow) and returns its token.
Authorize = Callable[[], Awaitable[Token]]
#: ``publish(principal, token, audience)``: hand a late login's token to the token sources.
Publish = Callable[[str, Token, "str | None"], None]


class LoginFlight:
    """One login in flight for a key, and whoever waits for it."""

    def __init__(self, audience: str | None) -> None:
        self.audience = audience
        self.done = anyio.Event()
        self.token: Token | None = None
        self.error: MCPConnError | None = None
        self.abandoned = False  # the provider call gave up waiting: publish the result

    def outcome(self) -> Token:
        if self.token is not None:
            return self.token
        raise self.error or ReauthRequired("the login did not finish")


@dataclass
class KeyState:
    """What the provider remembers per (principal, server) between calls."""

    scope: str | None = None  # asked for at the last login
    step_ups: int = 0
    login: LoginFlight | None = None


async def join_login(
    state: KeyState,
    principal: str,
    audience: str | None,
    authorize: Authorize,
    *,
    tg: anyio.abc.TaskGroup | None,
    login_wait: float,
    publish: Publish,
) -> Token:
    """The token of the key's login: started now (``authorize``) or already under way."""
    login = state.login
    if login is None:
        login = state.login = LoginFlight(audience)
        if tg is None:
            await _fly(state, login, principal, authorize, publish)
            return login.outcome()
        tg.start_soon(_fly, state, login, principal, authorize, publish)
    try:
        with anyio.move_on_after(login_wait):
            await login.done.wait()
    finally:
        # Gave up waiting (or was cancelled, e.g. by provider_timeout): publish instead.
        if not login.done.is_set():
            login.abandoned = True
    if login.done.is_set():
        return login.outcome()
    raise ReauthRequired("waiting for the user to log in", principal=principal)


async def _fly(
    state: KeyState, login: LoginFlight, principal: str, authorize: Authorize, publish: Publish
) -> None:
    try:
        login.token = await authorize()
    except MCPConnError as exc:
        login.error = exc
    except Exception as exc:  # the embedder's user agent raised
        login.error = ReauthRequired("the user agent failed", principal=principal)
        login.error.__cause__ = exc
    finally:
        if state.login is login:
            state.login = None
        login.done.set()
    if login.abandoned and login.token is not None:
        publish(principal, login.token, login.audience)
