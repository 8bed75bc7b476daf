"""Opening an MCP session: which era to speak, and that era's handshake.

Era detection (``transport="auto"``, no pinned version) is planned and judged
in the core (`mcpconn._core.eras`): ``server/discover`` first, then
``initialize``, then the legacy SSE GET, remembered per URL in an `EraCache`.
These are plain functions so the session stays the only owner of its state: it
hands in its round-trip and adopts the `ServerHello` they return.
"""

from __future__ import annotations

import functools
import logging
import re
from collections.abc import Awaitable, Callable, Iterable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from .._config import LATEST_SESSION_VERSION, STATELESS_VERSION, ServerConfig
from .._core.discovery import SERVER_INFO_KEY
from .._core.eras import (
    HEADER_MISMATCH,
    LEGACY_SSE,
    SESSION_VERSIONS,
    STATELESS,
    STREAMABLE_HTTP,
    EraRules,
    NotModern,
    is_fallback,
    negotiate,
    plan,
    rules_of,
)
from .._exceptions import JSONRPCError, MCPConnError, UnsupportedProtocolVersion
from .parts import Roundtrip, ToolLearner
from .transports import (
    HTTPChannel,
    LegacySSETransport,
    StatelessTransport,
    StreamableHTTPTransport,
    Transport,
)
from .transports.eras import EraCache

if TYPE_CHECKING:
    from .tasks import Spawner

__all__ = [
    "Roundtrip",
    "ServerHello",
    "ToolLearner",
    "client_capabilities",
    "discover",
    "hello_of",
    "initialize",
    "make_transport",
    "open_first_era",
]

# The session's logger: the handshake is part of what a session logs.
logger = logging.getLogger("mcpconn.session")

_VERSION = re.compile(r"[0-9]{4}-[0-9]{2}-[0-9]{2}")
#: Server-to-client request method -> the client capability that announces it.
_CAPABILITY_FOR = {
    "elicitation/create": "elicitation",
    "sampling/createMessage": "sampling",
    "roots/list": "roots",
}


def client_capabilities(methods: Iterable[str]) -> dict[str, Any]:
    """The client capabilities to declare for the server requests the embedder answers.

    A server only sends ``elicitation/create``, ``sampling/createMessage`` or
    ``roots/list`` to a client that declared the matching capability, so we
    declare exactly those we can answer (an empty object: no sub-features).
    """
    return {_CAPABILITY_FOR[m]: {} for m in sorted(set(methods)) if m in _CAPABILITY_FOR}


@dataclass(frozen=True)
class ServerHello:
    """What a handshake learned about the server, for the session to adopt."""

    protocol_version: str
    server_info: dict[str, Any]
    capabilities: dict[str, Any]
    instructions: str | None


def _hello(version: str, result: dict[str, Any], server_info: Any) -> ServerHello:
    """Keep only well-typed fields: a malformed answer degrades to empty, not a crash."""
    capabilities = result.get("capabilities")
    instructions = result.get("instructions")
    return ServerHello(
        protocol_version=version,
        server_info=server_info if isinstance(server_info, dict) else {},
        capabilities=capabilities if isinstance(capabilities, dict) else {},
        instructions=instructions if isinstance(instructions, str) else None,
    )


def _client_info(config: ServerConfig) -> dict[str, Any]:
    """One dict per name and version, shared by every session (read, never changed)."""
    return _client_info_of(config.client_name, config.client_version)


@functools.lru_cache(maxsize=64)
def _client_info_of(name: str, version: str) -> dict[str, Any]:
    return {"name": name, "version": version}


async def open_first_era(
    config: ServerConfig,
    era_cache: EraCache | None,
    open_era: Callable[[EraRules], Awaitable[None]],
) -> None:
    """Try the planned eras in order until ``open_era`` succeeds; keep the cache honest.

    A cached era that fails is forgotten; an era found by probing is remembered.
    """
    url = config.url
    cached = era_cache.get(url) if era_cache is not None else None
    eras = plan(config, cached)
    for index, era in enumerate(eras):
        rules = rules_of(era)
        try:
            await open_era(rules)
        except MCPConnError as exc:
            if index + 1 == len(eras) or not is_fallback(exc, rules):
                if era == cached and era_cache is not None:
                    era_cache.forget(url)
                raise
            logger.debug("%s: not %s (%s); trying the next era", url, era, type(exc).__name__)
            if era == cached and era_cache is not None:
                era_cache.forget(url)
            continue
        if era_cache is not None and len(eras) > 1:
            era_cache.set(url, era)
        return


def make_transport(
    rules: EraRules,
    channel: HTTPChannel,
    config: ServerConfig,
    *,
    task_group: Spawner,
    on_lost: Callable[[MCPConnError], None],
    capabilities: dict[str, Any],
) -> Transport:
    """The transport, not yet started, for the era ``rules`` describe (no table of
    closures: one per reconnect). A 2026-07-28 one also learns the tools' ``x-mcp-header``
    maps from a ``tools/list`` result (its ``learn_tools``)."""
    era = rules.name
    if era == STATELESS.name:
        return StatelessTransport(
            channel, config.url, client_info=_client_info(config), capabilities=capabilities
        )
    if era == STREAMABLE_HTTP.name:
        return StreamableHTTPTransport(channel, config.url)
    if era == LEGACY_SSE.name:
        return LegacySSETransport(channel, config.url, task_group, on_lost)
    raise KeyError(era)  # as the table it replaces did: every era has a wire


async def discover(
    transport: Transport, roundtrip: Roundtrip, config: ServerConfig
) -> tuple[str, dict[str, Any]]:
    """The 2026-07-28 handshake: ``server/discover``, with SEP-2575 version negotiation.

    Returns the version spoken and the answer (`hello_of` reads it; the session
    may keep it, `mcpconn._core.discovery`).
    """
    try:
        try:
            result = await roundtrip("server/discover", {})
        except JSONRPCError as exc:
            if exc.code != HEADER_MISMATCH:
                raise
            # a modern server: correct and retry (once), never fall back
            logger.debug("server/discover: HeaderMismatch; retrying once")
            result = await roundtrip("server/discover", {})
    except JSONRPCError as exc:
        # SEP-2575: retry once with the newest version both sides speak when
        # that is a modern one; otherwise `is_fallback` decides (initialize).
        version = negotiate(exc)
        if version is None or version in SESSION_VERSIONS:
            if version is not None and config.protocol_version == STATELESS_VERSION:
                logger.warning(
                    "%s speaks only session protocol versions (newest we share: %s), "
                    "but protocol_version is pinned to %s",
                    config.name,
                    version,
                    STATELESS_VERSION,
                )
            raise
        logger.debug("server/discover refused our version; retrying with %s", version)
        transport.protocol_version = version
        result = await roundtrip("server/discover", {})
    versions = result.get("supportedVersions")
    version = transport.protocol_version or STATELESS_VERSION
    if not isinstance(versions, list) or version not in versions:
        # A discover answer without a modern version is a legacy advertisement.
        raise NotModern("server/discover advertised no modern protocol version")
    return version, result


def hello_of(version: str, result: dict[str, Any]) -> ServerHello:
    """What a ``server/discover`` answer (or a kept `Discovery` of it) says about the server."""
    meta = result.get("_meta")
    info = meta.get(SERVER_INFO_KEY) if isinstance(meta, dict) else None
    return _hello(version, result, info)


async def initialize(
    transport: Transport,
    roundtrip: Roundtrip,
    config: ServerConfig,
    capabilities: dict[str, Any],
) -> ServerHello:
    """The session-era ``initialize`` request; sets the transport's version.

    The caller adopts the result, then sends ``notifications/initialized``.
    """
    offered = config.protocol_version or LATEST_SESSION_VERSION
    params = {
        "protocolVersion": offered,
        "capabilities": capabilities,
        "clientInfo": _client_info(config),
    }
    result = await roundtrip("initialize", params)
    version = result.get("protocolVersion")
    if version not in SESSION_VERSIONS:
        # Quoted only when it looks like a version: it is the server's text.
        shown = repr(version) if isinstance(version, str) and _VERSION.fullmatch(version) else "?"
        raise UnsupportedProtocolVersion(
            f"the server chose protocol version {shown}, which we do not speak "
            f"(we offered {offered})"
        )
    transport.protocol_version = str(version)
    return _hello(str(version), result, result.get("serverInfo"))
