"""mcpconn: keeps an MCP aggregator's downstream connections alive and authenticated."""

from ._auth import BearerAuth
from ._backoff import Backoff
from ._config import Limits, ServerConfig, Timeouts
from ._connection import Connection
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
from ._machine import State
from ._notifications import Subscription
from ._stats import ServerStatistics, StateChange, SupervisorStatistics
from ._store import MemoryTokenStore, StoredToken, TokenStore
from ._supervisor import StormControl, Supervisor
from ._token import Token
from ._tokens import TokenRequest, TokenSource, TokenSourceStatistics

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
