"""The mock server's lean mode: the same protocol, the least work per request.

A benchmark of 1,000 clients reconnecting at once measures the server unless
the server is cheaper than the clients. Two costs dominate an ordinary
request here: verifying the JWT (base64, JSON and an HMAC, twice: once to
attribute the request to its principal, once to judge it) and streaming a
short answer as SSE (a task, a stream log and a send for the head, each event
and the end). Lean mode remembers a token whose signature it has verified and
judges its expiry, audience and revocation on every request as before; it
writes a short answer's head, events and end in one send.
"""

from __future__ import annotations

from collections import OrderedDict
from typing import Any

from ._events import SSE_HEADERS, sse_frame
from ._http import Exchange

__all__ = ["VerifiedTokens", "respond_events"]


class VerifiedTokens:
    """Tokens whose signature was verified: raw token -> claims (bounded, oldest out)."""

    __slots__ = ("_claims", "_size")

    def __init__(self, size: int = 100_000) -> None:
        self._claims: OrderedDict[str, dict[str, Any]] = OrderedDict()
        self._size = size

    def get(self, raw: str, now: float) -> dict[str, Any] | None:
        """The claims of a verified token not yet expired at ``now`` (None: verify it)."""
        claims = self._claims.get(raw)
        if claims is None or now >= claims["exp"]:
            return None
        return claims

    def put(self, raw: str, claims: dict[str, Any]) -> None:
        self._claims[raw] = claims
        if len(self._claims) > self._size:
            self._claims.popitem(last=False)


async def respond_events(exchange: Exchange, events: list[bytes]) -> None:
    """Answer with the SSE ``events`` (encoded JSON each) as one sized body, in one send."""
    body = b"".join(sse_frame(data) for data in events)
    await exchange.respond(200, SSE_HEADERS, body)
