"""The three protocol eras as data, and how to pick one.

Theory of operation. MCP over HTTP has had three shapes, and everything the
session does differently in each is a field of that era's `EraRules` below; the
session, its listener and the protocol surface read those fields and never
compare era names (the name is only what `Connection.era` shows):

* ``streamable-http`` (2025-03-26 .. 2025-11-25): ``initialize``, then an
  ``Mcp-Session-Id`` the server may forget (a 404 on a request that carried it:
  re-initialize once, re-issue once), the optional GET listener resumed with
  ``Last-Event-ID``, ``logging/setLevel`` and ``resources/subscribe``.
* ``stateless`` (2026-07-28): no session; ``server/discover`` is the handshake
  and every request's ``_meta`` carries the version, client info, capabilities
  and log level; the listener is ``subscriptions/listen`` with a filter; no
  server-to-client requests, no ``ping``, no ``notifications/cancelled`` (closing
  the stream cancels), no ``roots/list_changed``; a response stream lost after
  the request left is re-issued once, and a HeaderMismatch on ``tools/call``
  re-reads the tools' ``x-mcp-header`` maps and retries once.
* ``sse`` (2024-11-05, deprecated HTTP+SSE): ``initialize`` over POSTs whose
  answers ride the one GET stream; that stream is the session (and the
  listener), so a call has no response stream of its own.

Which era to try first (`plan`) and what counts as "not this era"
(`is_fallback`) follow the spec's backwards-compatibility sections (2026-07-28
basic/transports/streamable-http and basic/versioning): ``server/discover``
first; a 400/404/405 without a recognised modern error, any JSON-RPC error other
than an ``UnsupportedProtocolVersion`` (-32022) that names only modern versions
we lack, or a discover answer naming no modern version (`NotModern`) falls back
to ``initialize``; a 400/404/405 on that POST falls back to legacy SSE. Like the
official SDK's probe this is a denylist: only positive modern evidence keeps us
modern. 401/403/429/5xx and network errors are no era verdict. A recognised
modern error (-32020 HeaderMismatch, -32021 MissingRequiredClientCapability)
proves the server modern: correct and retry, never fall back.

A pinned ``protocol_version`` or ``transport`` narrows the plan: 2026-07-28
means stateless only (a server that speaks only session versions is then an
error, not a fallback); a session version means ``initialize`` (then legacy SSE
under "auto"); ``transport="sse"`` means legacy only; ``"streamable-http"``
never tries legacy SSE.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, replace
from typing import Literal

from .._config import STATELESS_VERSION, SUPPORTED_PROTOCOL_VERSIONS, ServerConfig
from .._exceptions import (
    HTTPStatusError,
    JSONRPCError,
    MCPConnError,
    ProtocolError,
    SessionExpired,
    TransportError,
)

__all__ = [
    "ERAS",
    "HEADER_MISMATCH",
    "LEGACY_SSE",
    "MISSING_CLIENT_CAPABILITY",
    "SESSION_VERSIONS",
    "STATELESS",
    "STREAMABLE_HTTP",
    "UNSUPPORTED_PROTOCOL_VERSION",
    "Era",
    "EraRules",
    "NotModern",
    "StreamLost",
    "is_fallback",
    "negotiate",
    "plan",
    "rules_of",
]

#: The era names, as `Connection.era` shows them.
Era = Literal["streamable-http", "stateless", "sse"]

#: JSON-RPC codes only a 2026-07-28 server sends.
HEADER_MISMATCH = -32020
MISSING_CLIENT_CAPABILITY = -32021
UNSUPPORTED_PROTOCOL_VERSION = -32022
#: Errors only a modern server sends: positive evidence of the era.
MODERN_ERRORS = (HEADER_MISMATCH, MISSING_CLIENT_CAPABILITY)
FALLBACK_STATUSES = (400, 404, 405)
SESSION_VERSIONS = tuple(v for v in SUPPORTED_PROTOCOL_VERSIONS if v != STATELESS_VERSION)


@dataclass(frozen=True)
class EraRules:
    """Everything one era does differently; read by the session, never branched on by name.

    ``sessions``, ``session_id`` and ``capabilities`` describe what the era's wire
    and handshake do by themselves (a transport keeps the id; the stateless wire
    stamps every ``_meta``); the session, its listener and the surface read the rest.
    """

    name: Era
    #: ``initialize`` (+ ``notifications/initialized``) or ``server/discover``.
    handshake: Literal["initialize", "discover"]
    #: A session outlives one request (legacy SSE: the stream; streamable HTTP: the id).
    sessions: bool
    #: The session is named by ``Mcp-Session-Id``, which the server may forget.
    session_id: bool
    #: A 404 on a request that carried the session id: initialize again, re-issue once.
    reinitialize_on_expiry: bool
    #: A request's response stream lost after it left: re-issue it once with a new id.
    reissue_lost_stream: bool
    #: HeaderMismatch (-32020) on ``tools/call``: re-read ``tools/list``, retry once.
    relist_on_header_mismatch: bool
    #: The server-to-client stream: the GET listener, the legacy session stream itself,
    #: or a ``subscriptions/listen`` request carrying our filter.
    listener: Literal["get", "session-stream", "subscriptions-listen"]
    #: A restarted listener replays what it missed (``Last-Event-ID``).
    listener_replays: bool
    #: The server may send requests (sampling, elicitation, roots) to the client.
    server_requests: bool
    #: Where the client capabilities go: once in ``initialize`` or in every request's ``_meta``.
    capabilities: Literal["initialize", "request-meta"]
    #: How a log level is asked for: ``logging/setLevel`` or every request's ``_meta``.
    log_level: Literal["set-level", "request-meta"]
    #: How resources are subscribed: ``resources/subscribe`` or the listener's filter.
    subscriptions: Literal["subscribe", "listen-filter"]
    #: ``notifications/roots/list_changed`` exists.
    roots_list_changed: bool
    #: A timed-out or cancelled request is cancelled by ``notifications/cancelled``
    #: (otherwise closing its stream is the cancellation).
    cancel_notification: bool
    #: The method a keep-alive ``ping`` is sent as (2026-07-28 removed ``ping``).
    keepalive: Literal["ping", "server/discover"]
    #: Every request's answer comes on its own response stream (legacy SSE: all on
    #: the one session stream, so a call's progress is found by its token).
    call_streams: bool


STREAMABLE_HTTP = EraRules(
    name="streamable-http",
    handshake="initialize",
    sessions=True,
    session_id=True,
    reinitialize_on_expiry=True,
    reissue_lost_stream=False,
    relist_on_header_mismatch=False,
    listener="get",
    listener_replays=True,
    server_requests=True,
    capabilities="initialize",
    log_level="set-level",
    subscriptions="subscribe",
    roots_list_changed=True,
    cancel_notification=True,
    keepalive="ping",
    call_streams=True,
)
STATELESS = EraRules(
    name="stateless",
    handshake="discover",
    sessions=False,
    session_id=False,
    reinitialize_on_expiry=False,
    reissue_lost_stream=True,
    relist_on_header_mismatch=True,
    listener="subscriptions-listen",
    listener_replays=False,
    server_requests=False,
    capabilities="request-meta",
    log_level="request-meta",
    subscriptions="listen-filter",
    roots_list_changed=False,
    cancel_notification=False,
    keepalive="server/discover",
    call_streams=True,
)
#: The legacy HTTP+SSE era is streamable HTTP's protocol over one session stream: the
#: stream is the session (no id to forget) and carries the listener and every answer.
LEGACY_SSE = replace(
    STREAMABLE_HTTP,
    name="sse",
    session_id=False,
    reinitialize_on_expiry=False,
    listener="session-stream",
    listener_replays=False,
    call_streams=False,
)
#: Every era by name.
ERAS: Mapping[Era, EraRules] = {r.name: r for r in (STREAMABLE_HTTP, STATELESS, LEGACY_SSE)}


def rules_of(era: Era) -> EraRules:
    return ERAS[era]


class NotModern(ProtocolError):
    """A ``server/discover`` answer that names no modern version: a legacy server."""


class StreamLost(TransportError):
    """A request's response stream ended or broke before its response arrived.

    Raised by the transports; the era's rules say whether the session re-issues
    the request (`mcpconn._core.recovery`); otherwise it reaches the caller as
    the `TransportError` it is.
    """


def plan(config: ServerConfig, cached: Era | None) -> list[Era]:
    """The eras to try, in order (see the module docstring); a cached verdict first."""
    pinned = config.protocol_version
    if config.transport == "sse":
        if pinned == STATELESS_VERSION:
            raise ProtocolError("protocol 2026-07-28 does not run over the legacy SSE transport")
        return [LEGACY_SSE.name]
    if pinned == STATELESS_VERSION:
        return [STATELESS.name]
    eras: list[Era] = [STATELESS.name] if pinned is None else []
    eras.append(STREAMABLE_HTTP.name)
    if config.transport == "auto":
        eras.append(LEGACY_SSE.name)
    if cached in eras:
        eras.remove(cached)
        eras.insert(0, cached)
    return eras


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


def is_fallback(exc: MCPConnError, rules: EraRules) -> bool:
    """Whether ``exc`` from the first request of the era ``rules`` says "not this era"."""
    if isinstance(exc, NotModern):
        return True
    if isinstance(exc, HTTPStatusError) and not isinstance(exc, SessionExpired):
        return exc.status_code in FALLBACK_STATUSES
    if rules.handshake == "discover" and isinstance(exc, JSONRPCError):
        if exc.code in MODERN_ERRORS:
            return False
        if exc.code != UNSUPPORTED_PROTOCOL_VERSION:
            return True
        supported = exc.data.get("supported") if isinstance(exc.data, dict) else None
        return not isinstance(supported, list) or any(v in SESSION_VERSIONS for v in supported)
    return False
