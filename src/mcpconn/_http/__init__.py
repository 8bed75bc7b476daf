"""HTTP under the MCP transports: a thin h11 transport for httpx and the clients built on it."""

from .client import make_client, uses_h11
from .transport import H11Transport

__all__ = ["H11Transport", "make_client", "uses_h11"]
