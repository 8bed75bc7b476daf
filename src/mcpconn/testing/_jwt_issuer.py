"""Short-lived HS256 JWTs for tests and benchmarks: an issuer and a token provider.

The seed bug is about tokens whose ``exp`` nobody read. The mock server checks
``exp`` against its own (skewable) clock, so a client that caches tokens
blindly fails here exactly as it fails in production.
"""

from __future__ import annotations

import secrets
import time
import uuid
import warnings
from collections import Counter
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from typing import Any, Protocol

import anyio
import jwt

from .._exceptions import ReauthRequired

__all__ = ["JWTIssuer", "JWTProvider", "TokenRejected"]


@contextmanager
def _short_secrets_allowed() -> Iterator[None]:
    """A test issuer may use a short secret (``--secret s3cret``): no pyjwt key-length warning.

    Safe without awaits inside: the warning filter is restored before any other task runs.
    """
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", jwt.warnings.InsecureKeyLengthWarning)
        yield


class TokenRejected(ValueError):
    """A token the issuer does not accept. ``reason``: malformed, bad_signature, expired."""

    def __init__(self, reason: str, description: str, claims: Mapping[str, Any] | None = None):
        super().__init__(description)
        self.reason = reason
        self.description = description
        #: The claims when they could be read (e.g. of an expired token), else None.
        self.claims = dict(claims) if claims is not None else None


class JWTIssuer:
    """Mints and verifies JWTs with one shared secret.

    ``sub`` is the principal and stays the same across mints (the official SDK
    binds sessions to it); ``jti`` is unique per token.
    """

    def __init__(
        self,
        secret: str | None = None,
        *,
        issuer: str = "mcpconn-mock",
        algorithm: str = "HS256",
        clock: Callable[[], float] = time.time,
    ) -> None:
        self._secret = secret if secret is not None else secrets.token_urlsafe(32)
        self.issuer = issuer
        self.algorithm = algorithm
        self.clock = clock
        #: How many tokens were minted, per principal.
        self.minted: Counter[str] = Counter()

    def __repr__(self) -> str:
        return f"JWTIssuer(issuer={self.issuer!r}, algorithm={self.algorithm!r})"

    @property
    def secret(self) -> str:
        """The shared secret (share it with a mock server in another process)."""
        return self._secret

    def mint(
        self,
        principal: str,
        *,
        lifetime: float = 60.0,
        audience: str | None = None,
        extra: Mapping[str, Any] | None = None,
        now: float | None = None,
    ) -> str:
        """A signed token for ``principal`` valid for ``lifetime`` seconds from now."""
        issued = self.clock() if now is None else now
        claims: dict[str, Any] = {
            "iss": self.issuer,
            "sub": principal,
            "iat": int(issued),
            "exp": int(issued + lifetime),
            "jti": uuid.uuid4().hex,
        }
        if audience is not None:
            claims["aud"] = audience
        if extra:
            claims.update(extra)
        self.minted[principal] += 1
        with _short_secrets_allowed():
            return jwt.encode(claims, self._secret, algorithm=self.algorithm)

    def verify(self, raw: str, *, now: float | None = None) -> dict[str, Any]:
        """The claims of a valid token; raises `TokenRejected` otherwise.

        ``exp`` is checked against ``now`` (default: this issuer's clock), not
        pyjwt's own clock, so tests can skew time.
        """
        try:
            with _short_secrets_allowed():
                claims: dict[str, Any] = jwt.decode(
                    raw,
                    self._secret,
                    algorithms=[self.algorithm],
                    options={"verify_exp": False, "verify_aud": False, "verify_iat": False},
                )
        except jwt.InvalidSignatureError:
            raise TokenRejected("bad_signature", "token signature is invalid") from None
        except jwt.PyJWTError:
            raise TokenRejected("malformed", "token is malformed") from None
        exp = claims.get("exp")
        if not isinstance(exp, int | float) or isinstance(exp, bool):
            raise TokenRejected("malformed", "token has no numeric exp claim", claims)
        current = self.clock() if now is None else now
        if current >= exp:
            raise TokenRejected("expired", "token expired", claims)
        if not isinstance(claims.get("sub"), str):
            raise TokenRejected("malformed", "token has no sub claim", claims)
        return claims


class _TokenRequestLike(Protocol):
    @property
    def principal(self) -> str: ...

    @property
    def audience(self) -> str | None: ...

    @property
    def force(self) -> bool: ...

    @property
    def reason(self) -> str: ...


class JWTProvider:
    """An async token provider for `mcpconn.TokenSource` that mints with a `JWTIssuer`.

    Counts its calls, and can be told to fail, hang, or refuse a principal
    (raising `mcpconn.ReauthRequired`, as a provider whose user must log in
    again would).
    """

    def __init__(self, issuer: JWTIssuer, *, lifetime: float = 60.0) -> None:
        self.issuer = issuer
        self.lifetime = lifetime
        #: Provider calls per principal.
        self.calls: Counter[str] = Counter()
        #: Calls with ``force=True`` per principal.
        self.forced_calls: Counter[str] = Counter()
        self.revoked: set[str] = set()
        self._failure: BaseException | None = None
        self._hang = False
        # Events are made lazily: the provider may be built outside an event loop.
        self._resume: anyio.Event | None = None
        self._called: anyio.Event | None = None

    def __repr__(self) -> str:
        return f"JWTProvider(lifetime={self.lifetime}, calls={sum(self.calls.values())})"

    @property
    def total_calls(self) -> int:
        return sum(self.calls.values())

    async def __call__(self, request: _TokenRequestLike) -> str:
        principal = request.principal
        self.calls[principal] += 1
        if getattr(request, "force", False):
            self.forced_calls[principal] += 1
        if self._called is not None:
            self._called.set()
            self._called = None
        while self._hang:
            if self._resume is None:
                self._resume = anyio.Event()
            await self._resume.wait()
        if self._failure is not None:
            raise self._failure
        if principal in self.revoked:
            raise ReauthRequired("the user must log in again", principal=principal)
        return self.issuer.mint(
            principal, lifetime=self.lifetime, audience=getattr(request, "audience", None)
        )

    def fail_with(self, exc: BaseException | None) -> None:
        """Raise ``exc`` from every call until ``fail_with(None)``."""
        self._failure = exc

    def hang(self) -> None:
        """Make every call wait until `resume()`."""
        self._hang = True

    def resume(self) -> None:
        self._hang = False
        if self._resume is not None:
            self._resume.set()
            self._resume = None

    def revoke(self, principal: str) -> None:
        """Calls for ``principal`` raise `mcpconn.ReauthRequired` until `restore()`."""
        self.revoked.add(principal)

    def restore(self, principal: str) -> None:
        self.revoked.discard(principal)

    async def wait_for_call(self) -> None:
        """Wait for the next call to start."""
        if self._called is None:
            self._called = anyio.Event()
        await self._called.wait()
