"""Per-server configuration: one frozen value an aggregator builds once per downstream."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Literal

from ._core.backoff import Backoff

TransportKind = Literal["auto", "streamable-http", "sse"]

#: Protocol versions we speak, newest first.
SUPPORTED_PROTOCOL_VERSIONS: tuple[str, ...] = (
    "2026-07-28",
    "2025-11-25",
    "2025-06-18",
    "2025-03-26",
    "2024-11-05",
)
#: The newest session-based version: what ``initialize`` offers by default.
LATEST_SESSION_VERSION = "2025-11-25"
STATELESS_VERSION = "2026-07-28"


@dataclass(frozen=True)
class Limits:
    """Bounds on what a server may make us buffer. httpx-sse has none of its own."""

    max_sse_line_bytes: int = 1 << 20
    max_sse_event_bytes: int = 4 << 20
    max_json_response_bytes: int = 16 << 20
    #: Notifications buffered per ``notifications()`` subscriber before the oldest are dropped.
    notification_buffer: int = 1024


@dataclass(frozen=True)
class Timeouts:
    """Seconds. ``read`` bounds silence on a stream: a stalled listener is detected by it."""

    connect: float = 10.0
    request: float = 60.0
    read: float = 300.0
    close: float = 5.0


@dataclass(frozen=True)
class ServerConfig:
    """One downstream MCP server.

    ``audience`` names the token this server needs when the aggregator exchanges
    the principal's token per server (RFC 8693); ``None`` forwards the
    principal's own token. ``forward_token=False`` sends no token at all.
    """

    name: str
    url: str
    transport: TransportKind = "auto"
    forward_token: bool = True
    audience: str | None = None
    protocol_version: str | None = None
    headers: Mapping[str, str] = field(default_factory=dict)
    timeouts: Timeouts = field(default_factory=Timeouts)
    limits: Limits = field(default_factory=Limits)
    backoff: Backoff | None = None
    #: Open the server-to-client listener stream (GET / legacy SSE / subscriptions/listen).
    listen: bool = True
    #: Seconds between keep-alive pings while READY; ``None`` disables them.
    ping_interval: float | None = None
    #: Allow a bearer token over plain http to a non-loopback host. Off: such a send is refused.
    allow_insecure_http: bool = False
    client_name: str = "mcpconn"
    client_version: str = "0.1.0"

    def __post_init__(self) -> None:
        if not self.name:
            raise ValueError("ServerConfig.name must not be empty")
        if not self.url.startswith(("http://", "https://")):
            raise ValueError(f"ServerConfig.url must be http(s): {self.url!r}")
        if self.transport not in ("auto", "streamable-http", "sse"):
            raise ValueError(f"unknown transport {self.transport!r}")
        if (
            self.protocol_version is not None
            and self.protocol_version not in SUPPORTED_PROTOCOL_VERSIONS
        ):
            raise ValueError(f"unsupported protocol_version {self.protocol_version!r}")
