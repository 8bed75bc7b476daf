"""BearerAuth: an `httpx.Auth` that asks a `TokenSource` for the token on every request.

The header is never frozen: each request (and each retry) gets the token that
is current at that moment, so a token refreshed by another task is picked up at
once. On a 401 it does exactly one compare-and-refresh and, only if that gave a
different token, one retry; a second 401 is returned to the caller, whose
signal it is. No lock is held across a ``yield``: the single-flight lives in
the `TokenSource`, between awaits. The challenge parser and the loopback rule
are `_http_rules`' (one of each in mcpconn).
"""

from __future__ import annotations

from collections.abc import AsyncGenerator, Generator

import httpx

from .._core.http_rules import is_loopback_host, parse_www_authenticate
from .._core.token import Token
from .._exceptions import Challenge, InsecureTransportError
from .source import TokenSource

__all__ = ["BearerAuth"]


class BearerAuth(httpx.Auth):
    """Sets ``Authorization: Bearer`` from ``source.get(principal, audience)``.

    ``retry_on_401`` is public: a connection that counts 401s itself switches it
    off. ``last_rejected`` is the last token answered with 401 (compare-and-refresh
    needs it), ``last_challenge`` keeps the ``WWW-Authenticate`` of the last 401
    (``None`` when it had none). Async only: use it with `httpx.AsyncClient`.
    """

    requires_request_body = True  # so a retry can resend the body

    def __init__(
        self,
        source: TokenSource,
        principal: str,
        audience: str | None = None,
        *,
        retry_on_401: bool = True,
        allow_insecure_http: bool = False,
    ) -> None:
        self.source = source
        self.principal = principal
        self.audience = audience
        self.retry_on_401 = retry_on_401
        self.allow_insecure_http = allow_insecure_http
        self.last_challenge: Challenge | None = None
        #: The last token a server answered 401 to: what a forced refresh must replace.
        self.last_rejected: Token | None = None

    def __repr__(self) -> str:
        return (
            f"<BearerAuth principal={self.principal!r} audience={self.audience!r} "
            f"retry_on_401={self.retry_on_401}>"
        )

    def _check_transport(self, url: httpx.URL) -> None:
        if url.scheme == "http" and not self.allow_insecure_http and not is_loopback_host(url.host):
            raise InsecureTransportError(
                f"refusing to send a bearer token over plain http to {url.host!r}; "
                "use https or allow_insecure_http=True"
            )

    def sync_auth_flow(self, request: httpx.Request) -> Generator[httpx.Request, httpx.Response]:
        raise RuntimeError("BearerAuth is async-only: use it with httpx.AsyncClient")

    async def async_auth_flow(
        self, request: httpx.Request
    ) -> AsyncGenerator[httpx.Request, httpx.Response]:
        self._check_transport(request.url)
        sent = await self.source.get(self.principal, self.audience)
        request.headers["Authorization"] = f"Bearer {sent.raw}"
        response = yield request
        if response.status_code != 401:
            return
        self.last_challenge = parse_www_authenticate(response.headers.get_list("www-authenticate"))
        self.last_rejected = sent
        if not self.retry_on_401:
            return
        fresh = await self.source.refresh(self.principal, self.audience, replacing=sent)
        if fresh.same_credential(sent):
            return  # the provider has nothing better: the 401 is the caller's signal
        request.headers["Authorization"] = f"Bearer {fresh.raw}"
        response = yield request
        if response.status_code == 401:
            self.last_rejected = fresh
            self.last_challenge = parse_www_authenticate(
                response.headers.get_list("www-authenticate")
            )
