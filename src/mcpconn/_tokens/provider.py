"""Calling the embedder's token provider safely: bounded and checked.

The provider is code we do not control: it may hang, raise anything, or hand
back something that is not a token. `call_provider` turns each of these (an
exception, a timeout after ``provider_timeout``, an empty, malformed or
non-token result) into a `TokenProviderError` chained to the cause;
`ReauthRequired` passes through, since only a human can fix it. So the token
source has one failure type to cool down on. This module knows nothing of
caches, flights or freshness: the token source (``source.py``) decides when to
call and judges what comes back (``judge.py``); ``flights.py`` keeps the
per-key bookkeeping around the calls.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass

import anyio

from .._core.settings import number
from .._core.token import Token
from .._exceptions import Challenge, ReauthRequired, TokenProviderError

__all__ = ["Provider", "TokenRequest", "call_provider", "check_timeout", "provider_failure"]


@dataclass(frozen=True)
class TokenRequest:
    """What the provider is asked for.

    ``force`` is True when a server rejected the current token or it expired:
    the provider must not answer from its own cache. ``audience`` names the
    downstream server for a per-server token exchange (RFC 8693); ``None``
    means the principal's own token. ``challenge`` is the parsed
    ``WWW-Authenticate`` of the 401/403 that caused a forced refresh.
    ``resource`` is the server's canonical URI (RFC 8707) on every request made
    for a connection; ``None`` for a direct `TokenSource.get()`.
    """

    principal: str
    force: bool = False
    reason: str = ""
    audience: str | None = None
    challenge: Challenge | None = None
    resource: str | None = None


Provider = Callable[[TokenRequest], Awaitable["str | Token"]]


def check_timeout(timeout: object) -> float:
    """A hanging provider is cut off after ``timeout`` seconds: it must be a real bound."""
    return number(timeout, "provider_timeout", above=True)


def provider_failure(request: TokenRequest, message: str) -> TokenProviderError:
    """The one error shape for a provider that did not produce a usable token."""
    return TokenProviderError(
        f"token provider {message}", principal=request.principal, audience=request.audience
    )


async def call_provider(
    provider: Provider,
    request: TokenRequest,
    *,
    timeout: float,
    clock: Callable[[], float],
) -> Token:
    """Ask ``provider`` once, within ``timeout``; return only a well-formed token.

    Whether it is still fresh enough to serve is the caller's judge's question
    (`FreshnessJudge`), not this module's.
    """

    def failure(message: str) -> TokenProviderError:
        return provider_failure(request, message)

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
    return token
