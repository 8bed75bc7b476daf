"""The mock server's lean mode: the same protocol, the least work per request.

A benchmark of 1,000 clients reconnecting at once measures the server unless
the server is cheaper than the clients. Two costs dominate an ordinary
request here: verifying the JWT (base64, JSON and an HMAC, twice: once to
attribute the request to its principal, once to judge it) and streaming a
short answer as SSE (a task, a stream log and a send for the head, each event
and the end). Lean mode remembers a token whose signature it has verified and
judges its expiry, audience and revocation on every request as before; it
writes a short answer's head, events and end in one send. JSON goes through
orjson when installed (the library's own decoder, which gives what ``json.loads``
gives; an encoder that leaves to the stdlib whatever orjson would write
differently but for the spelling: non-ASCII stays UTF-8, ``1e16`` is not ``1e+16``).
"""

from __future__ import annotations

import gc
from collections import OrderedDict
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

from .._core import jsonrpc
from .._core.jsonrpc import loads as decode
from ._events import SSE_HEADERS, encode_json, sse_frame
from ._http import Exchange

try:  # the optional orjson extra, as the library's codec uses it
    import orjson
except ImportError:  # pragma: no cover - the stdlib encoder otherwise
    orjson = None  # type: ignore[assignment]

__all__ = ["VerifiedTokens", "decode", "encode", "few_collections", "respond_events"]


def _refuse(message: Any) -> bytes:
    raise TypeError("orjson is not installed")


_dumps: Any = _refuse if orjson is None else orjson.dumps


def encode(message: Any) -> bytes:
    """Compact JSON, by orjson (as the library's encoder calls it); what orjson refuses
    (big integers, non-string keys...) or writes as ``null`` (NaN too) by the stdlib,
    exactly as the ordinary server writes it."""
    try:
        out: bytes | None = _dumps(message) if jsonrpc._plain(message) else None
    except (TypeError, RecursionError):
        out = None
    return encode_json(message) if out is None or b"null" in out else out


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


@contextmanager
def few_collections(threshold: int = 100_000) -> Iterator[None]:
    """Collect garbage rarely in a server process of its own (``mock-server --lean``).

    With a thousand connections alive, the collector's passes over them cost a
    third of a reconnect's server CPU. What exists at the start is frozen out of
    them and a pass waits for ``threshold`` new objects, not 700. Process-wide,
    so never for a server that shares its process with the client it measures.
    """
    before = gc.get_threshold()
    gc.freeze()
    gc.set_threshold(threshold, 50, 100)
    try:
        yield
    finally:
        gc.set_threshold(*before)
        gc.unfreeze()
