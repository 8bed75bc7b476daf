"""mcpconn: keeps an MCP aggregator's downstream connections alive and authenticated."""

from ._config import Limits, ServerConfig, Timeouts
from ._core.backoff import Backoff
from ._core.machine import State
from ._core.policy import ReconnectPolicy, StormControl
from ._core.token import Token
from ._exceptions import (
    Challenge,
    ConnectionClosed,
    Forbidden,
    HTTPStatusError,
    InsecureTransportError,
    InvalidMessage,
    JSONRPCError,
    MalformedTokenError,
    MCPConnError,
    MethodNotAllowed,
    NetworkError,
    ProtocolError,
    RateLimited,
    ReadTimeout,
    ReauthRequired,
    RequestTimeout,
    ServerError,
    SessionExpired,
    SSELimitExceeded,
    StreamEnded,
    TokenProviderError,
    TransportError,
    Unauthorized,
    UnexpectedContentType,
    UnsupportedProtocolVersion,
)
from ._supervision.connection import Connection
from ._supervision.notifications import Subscription
from ._supervision.stats import ServerStatistics, StateChange, SupervisorStatistics
from ._supervision.supervisor import Supervisor
from ._tokens.auth import BearerAuth
from ._tokens.source import TokenRequest, TokenSource, TokenSourceStatistics
from ._tokens.store import MemoryTokenStore, StoredToken, TokenStore

__all__ = [
    "Backoff",
    "BearerAuth",
    "Challenge",
    "Connection",
    "ConnectionClosed",
    "Forbidden",
    "HTTPStatusError",
    "InsecureTransportError",
    "InvalidMessage",
    "JSONRPCError",
    "Limits",
    "MCPConnError",
    "MalformedTokenError",
    "MemoryTokenStore",
    "MethodNotAllowed",
    "NetworkError",
    "ProtocolError",
    "RateLimited",
    "ReadTimeout",
    "ReauthRequired",
    "ReconnectPolicy",
    "RequestTimeout",
    "SSELimitExceeded",
    "ServerConfig",
    "ServerError",
    "ServerStatistics",
    "SessionExpired",
    "State",
    "StateChange",
    "StoredToken",
    "StormControl",
    "StreamEnded",
    "Subscription",
    "Supervisor",
    "SupervisorStatistics",
    "Timeouts",
    "Token",
    "TokenProviderError",
    "TokenRequest",
    "TokenSource",
    "TokenSourceStatistics",
    "TokenStore",
    "TransportError",
    "Unauthorized",
    "UnexpectedContentType",
    "UnsupportedProtocolVersion",
]
