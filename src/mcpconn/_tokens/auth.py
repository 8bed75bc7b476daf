"""BearerAuth: an `httpx.Auth` that asks a `TokenSource` for the token on every request.

The header is never frozen: each request (and each retry) gets the token that
is current at that moment, so a token refreshed by another task is picked up at
once. On a 401 it does exactly one compare-and-refresh and, only if that gave a
different token, one retry; a second 401 is returned to the caller, whose
signal it is. httpx reads a retried 401's whole body, so only a 401 that
declares a small, uncompressed body is retried in place; any other goes back
to the caller unread. No lock is held across a ``yield``: the single-flight lives in
the `TokenSource`, between awaits. The challenge parser and the loopback rule
are `_http_rules`' (one of each in mcpconn).

The auth object is driven, never reached into: what a rejection said (the
token the server refused, its parsed ``WWW-Authenticate``) comes back *on the
response* it returns (`BearerAuth.rejection`), parsed once here; the transports
put it into the `Unauthorized` they raise. Nothing about a rejection is kept
in this object, so one `BearerAuth` can serve concurrent requests.
"""

from __future__ import annotations

from collections.abc import AsyncGenerator, Generator
from dataclasses import dataclass

import httpx

from .._core.bounds import parse_digits
from .._core.http_rules import is_loopback_host, parse_www_authenticate
from .._core.token import Token
from .._exceptions import Challenge, InsecureTransportError
from .source import TokenSource

__all__ = ["MAX_RETRIED_401_BODY", "BearerAuth", "Rejection"]

#: Where a rejected response carries its `Rejection` (``httpx.Response.extensions``).
_REJECTION = "mcpconn.rejection"


@dataclass(frozen=True)
class Rejection:
    """What a 401 (or a step-up 403) said: the token it refused and its challenge.

    ``token`` is what a forced refresh must replace (compare-and-refresh); its
    repr is a fingerprint, never the credential. ``challenge`` is the parsed
    ``WWW-Authenticate`` (``None`` when the server sent none).
    """

    token: Token
    challenge: Challenge | None


#: The largest 401 body retried in place: httpx reads a retried response's body whole.
MAX_RETRIED_401_BODY = 64 << 10


def _small_body(response: httpx.Response) -> bool:
    """Whether httpx may read this 401's body in full: declared small and not compressed.

    A hostile 401 with a 100 MB (or endless, or gzip-bomb) body is not retried in
    place; it goes back to the caller as the 401 it is, and its body is never read.
    """
    if response.is_stream_consumed:  # an embedder's transport read it already
        return True
    coding = response.headers.get("content-encoding", "identity").strip().lower()
    length = response.headers.get("content-length", "").strip()
    return coding == "identity" and parse_digits(length, high=MAX_RETRIED_401_BODY) is not None


class BearerAuth(httpx.Auth):
    """Sets ``Authorization: Bearer`` from ``source.get(principal, audience)``.

    ``retry_on_401`` is public: a connection that counts 401s itself switches it
    off. A 401 it returns carries its `Rejection` (see `rejection`). Async only:
    use it with `httpx.AsyncClient`.
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
        resource: str | None = None,
    ) -> None:
        self.source = source
        self.principal = principal
        self.audience = audience
        #: The server's canonical URI, for the provider (`TokenRequest.resource`).
        self.resource = resource
        self.retry_on_401 = retry_on_401
        self.allow_insecure_http = allow_insecure_http
        self._loopback: str | None = None

    @staticmethod
    def rejection(response: httpx.Response) -> Rejection | None:
        """What the server said when it refused the token of ``response``'s request.

        ``None`` unless ``response`` is a 401 (or a step-up 403) this auth returned.
        """
        found = response.extensions.get(_REJECTION)
        return found if isinstance(found, Rejection) else None

    def __repr__(self) -> str:
        return (
            f"<BearerAuth principal={self.principal!r} audience={self.audience!r} "
            f"retry_on_401={self.retry_on_401}>"
        )

    def _check_transport(self, url: httpx.URL) -> None:
        if url.scheme != "http" or self.allow_insecure_http:
            return
        host = url.host
        if host == self._loopback:  # the answer for the host of the last request
            return
        if not is_loopback_host(host):
            raise InsecureTransportError(
                f"refusing to send a bearer token over plain http to {host!r}; "
                "use https or allow_insecure_http=True"
            )
        self._loopback = host

    async def token_for(self, url: httpx.URL) -> Token:
        """The token a request to ``url`` carries now (`InsecureTransportError` if it may not).

        The first step of `async_auth_flow`; a sender that set the header itself
        hands a 401 to the flow (which reads the token again) to take it from there.
        """
        self._check_transport(url)
        return await self.source.get(self.principal, self.audience, resource=self.resource)

    def _rejected(
        self, response: httpx.Response, token: Token, earlier: Token | None = None
    ) -> Rejection | None:
        """The `Rejection` of a 401, or of a 403 insufficient_scope when the provider
        can widen scope (``step_up``); attached to ``response``. Parsed here, once."""
        status = response.status_code
        if status not in (401, 403) or (status == 403 and not self.source.step_up):
            return None
        # what we sent is secret: the parser redacts it, should the server echo it back
        secrets = (token.raw,) if earlier is None else (token.raw, earlier.raw)
        challenge = parse_www_authenticate(response.headers.get_list("www-authenticate"), secrets)
        if status == 403 and (challenge is None or challenge.error != "insufficient_scope"):
            return None
        found = Rejection(token, challenge)
        response.extensions[_REJECTION] = found
        return found

    def sync_auth_flow(self, request: httpx.Request) -> Generator[httpx.Request, httpx.Response]:
        raise RuntimeError("BearerAuth is async-only: use it with httpx.AsyncClient")

    async def async_auth_flow(
        self, request: httpx.Request
    ) -> AsyncGenerator[httpx.Request, httpx.Response]:
        sent = await self.token_for(request.url)
        _authorize(request, sent)
        response = yield request
        if response.status_code == 401 and _retry_with_nonce(sent, response):
            _authorize(request, sent)  # DPoP (RFC 9449 section 9): same token, the server's nonce
            response = yield request
        rejection = self._rejected(response, sent)
        if rejection is None or not self.retry_on_401:
            return
        if not _small_body(response):
            return  # httpx would read a huge 401 body whole to retry it
        fresh = await self.source.refresh(
            self.principal,
            self.audience,
            replacing=sent,
            challenge=rejection.challenge,
            resource=self.resource,
        )
        if fresh.same_credential(sent):
            return  # the provider has nothing better: the 401 is the caller's signal
        _authorize(request, fresh)
        response = yield request
        if response.status_code == 401:
            self._rejected(response, fresh, sent)

    #: `mcpconn._http.send` may set the first request's header from `token_for` and run
    #: this flow only on a 401 or 403 (a subclass with its own flow is always run).
    direct_flow = async_auth_flow

    def settle_direct(self, response: httpx.Response, sent: Token) -> bool:
        """A 401 or 403 to a request `mcpconn._http.send` sent with ``sent`` (still the
        token `token_for` gives) that this flow would only annotate, done here: True.

        With ``retry_on_401`` off (a connection counting its 401s) and no nonce to
        retry with, the flow's whole work is `_rejected`; a sender spares itself the
        `httpx.Request` and the generator it would build for it. False: run the flow.
        """
        if type(self).async_auth_flow is not BearerAuth.async_auth_flow:
            return False  # a subclass's own flow decides what a 401 means
        if self.retry_on_401 or _retry_with_nonce(sent, response):
            return False
        self._rejected(response, sent)
        return True


def _authorize(request: httpx.Request, token: Token) -> None:
    """``Authorization: Bearer``, unless the token binds itself (``mcpconn.oauth`` DPoP)."""
    authorize = getattr(token, "authorize", None)
    if authorize is not None:
        authorize(request)
    else:
        request.headers["Authorization"] = f"Bearer {token.raw}"


def _retry_with_nonce(token: Token, response: httpx.Response) -> bool:
    retry = getattr(token, "retry_with_nonce", None)
    return retry is not None and retry(response) is True
