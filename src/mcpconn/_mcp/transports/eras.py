"""Which protocol era to try first, and what counts as "not this era".

The spec's backwards-compatibility sections (2026-07-28 basic/transports/
streamable-http and basic/versioning): send a modern request
(``server/discover``) first; a 400/404/405 without a recognised modern error,
any JSON-RPC error other than an ``UnsupportedProtocolVersion`` (-32022) that
names only modern versions we lack, or a discover answer naming no modern
version falls back to ``initialize``; a 400/404/405 on that POST falls back to
the deprecated HTTP+SSE transport (GET, ``endpoint`` event). Like the official
SDK's probe this is a denylist: only positive modern evidence keeps us modern.
401/403/429/5xx and network errors are not era verdicts: they propagate. The
verdict is cached per URL in `EraCache`; when the cached era later fails with
a fallback signal it is forgotten and detection runs again.

An ``UnsupportedProtocolVersion`` whose newest common version (`negotiate`) is
modern is retried once in the stateless era by the session; one whose common
versions are all session versions falls back to ``initialize``; none in common
surfaces the error.

A pinned ``protocol_version`` or ``transport`` narrows the plan: 2026-07-28
means stateless only (a server that speaks only session versions is then an
error, not a fallback: the pin is what the embedder asked for); a session
version means ``initialize`` (then legacy SSE under "auto");
``transport="sse"`` means legacy only; ``"streamable-http"`` never tries
legacy SSE.
"""

from __future__ import annotations

from ..._config import STATELESS_VERSION, SUPPORTED_PROTOCOL_VERSIONS, ServerConfig
from ..._exceptions import (
    HTTPStatusError,
    JSONRPCError,
    MCPConnError,
    ProtocolError,
    SessionExpired,
)
from .base import Era

__all__ = [
    "SESSION_VERSIONS",
    "UNSUPPORTED_PROTOCOL_VERSION",
    "EraCache",
    "NotModern",
    "is_fallback",
    "negotiate",
    "plan",
]

#: JSON-RPC code for UnsupportedProtocolVersionError (2026-07-28).
UNSUPPORTED_PROTOCOL_VERSION = -32022
FALLBACK_STATUSES = (400, 404, 405)
SESSION_VERSIONS = tuple(v for v in SUPPORTED_PROTOCOL_VERSIONS if v != STATELESS_VERSION)


class EraCache:
    """The era detected per server URL, so reconnects skip the probing."""

    def __init__(self) -> None:
        self._eras: dict[str, Era] = {}

    def get(self, url: str) -> Era | None:
        return self._eras.get(url)

    def set(self, url: str, era: Era) -> None:
        self._eras[url] = era

    def forget(self, url: str) -> None:
        self._eras.pop(url, None)

    def __len__(self) -> int:
        return len(self._eras)

    def __repr__(self) -> str:
        return f"EraCache({len(self._eras)} servers)"


def plan(config: ServerConfig, cached: Era | None) -> list[Era]:
    """The eras to try, in order."""
    pinned = config.protocol_version
    if config.transport == "sse":
        if pinned == STATELESS_VERSION:
            raise ProtocolError("protocol 2026-07-28 does not run over the legacy SSE transport")
        return ["sse"]
    if pinned == STATELESS_VERSION:
        return ["stateless"]
    eras: list[Era] = ["stateless"] if pinned is None else []
    eras.append("streamable-http")
    if config.transport == "auto":
        eras.append("sse")
    if cached in eras:
        eras.remove(cached)
        eras.insert(0, cached)
    return eras


class NotModern(ProtocolError):
    """A ``server/discover`` answer that names no modern version: a legacy server."""


def negotiate(exc: JSONRPCError) -> str | None:
    """The newest version we speak among an ``UnsupportedProtocolVersion`` error's ``supported``.

    SEP-2575: the client retries with a mutually supported version, or surfaces
    the error when there is none (``None`` here).
    """
    if exc.code != UNSUPPORTED_PROTOCOL_VERSION or not isinstance(exc.data, dict):
        return None
    supported = exc.data.get("supported")
    if not isinstance(supported, list):
        return None
    return next((v for v in SUPPORTED_PROTOCOL_VERSIONS if v in supported), None)


def is_fallback(exc: MCPConnError, era: Era) -> bool:
    """Whether ``exc`` from ``era``'s first request says "not this era"."""
    if isinstance(exc, NotModern):
        return True
    if isinstance(exc, HTTPStatusError) and not isinstance(exc, SessionExpired):
        return exc.status_code in FALLBACK_STATUSES
    if era == "stateless" and isinstance(exc, JSONRPCError):
        if exc.code != UNSUPPORTED_PROTOCOL_VERSION:
            return True
        supported = exc.data.get("supported") if isinstance(exc.data, dict) else None
        return not isinstance(supported, list) or any(v in SESSION_VERSIONS for v in supported)
    return False
