"""mcpconn: keeps an MCP aggregator's downstream connections alive and authenticated."""

from ._config import Limits, ServerConfig, Timeouts
from ._core.backoff import Backoff
from ._core.challenge import Challenge
from ._core.machine import State
from ._core.policy import ReconnectPolicy, StormControl
from ._core.token import Token
from ._exceptions import (
    ConnectError,
    ConnectionClosed,
    Forbidden,
    HTTPStatusError,
    InputRequired,
    InsecureTransportError,
    InvalidMessage,
    JSONRPCError,
    MalformedTokenError,
    MCPConnError,
    MethodNotAllowed,
    NetworkError,
    OAuthError,
    ProtocolError,
    RateLimited,
    ReadTimeout,
    ReauthRequired,
    RequestTimeout,
    ServerError,
    SessionExpired,
    SessionLost,
    SessionReinitialized,
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
from ._supervision.server_requests import ServerRequest
from ._supervision.stats import (
    ConnectionHealth,
    ServerStatistics,
    StateChange,
    SupervisorStatistics,
)
from ._supervision.supervisor import Supervisor
from ._tokens.auth import BearerAuth, Rejection
from ._tokens.source import TokenRequest, TokenSource, TokenSourceStatistics
from ._tokens.store import MemoryTokenStore, StoredToken, TokenStore

__all__ = [
    "Backoff",
    "BearerAuth",
    "Challenge",
    "ConnectError",
    "Connection",
    "ConnectionClosed",
    "ConnectionHealth",
    "Forbidden",
    "HTTPStatusError",
    "InputRequired",
    "InsecureTransportError",
    "InvalidMessage",
    "JSONRPCError",
    "Limits",
    "MCPConnError",
    "MalformedTokenError",
    "MemoryTokenStore",
    "MethodNotAllowed",
    "NetworkError",
    "OAuthError",
    "ProtocolError",
    "RateLimited",
    "ReadTimeout",
    "ReauthRequired",
    "ReconnectPolicy",
    "Rejection",
    "RequestTimeout",
    "SSELimitExceeded",
    "ServerConfig",
    "ServerError",
    "ServerRequest",
    "ServerStatistics",
    "SessionExpired",
    "SessionLost",
    "SessionReinitialized",
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
