"""`SDKBearerAuth`: mcpconn's token rules for the official MCP SDK 2.x client (httpx2).

    import httpx2
    from mcp import Client
    from mcp.client.streamable_http import streamable_http_client
    auth = SDKBearerAuth(tokens, "alice")
    async with Client(streamable_http_client(url, http_client=httpx2.AsyncClient(auth=auth))):
        ...

The SDK's client is built on httpx2, whose ``Auth`` protocol is httpx's, so
this runs `mcpconn.BearerAuth`'s own flow unchanged (no second copy of the
rules): the token read per request, one compare-and-refresh on a 401, no
bearer over plain http to a remote host, nothing held across a ``yield``.
Needs the SDK (``pip install mcp``), which brings httpx2.
"""

from __future__ import annotations

from collections.abc import AsyncGenerator, Generator
from typing import Any, TypedDict, Unpack

try:
    import httpx2
except ImportError as exc:  # pragma: no cover - depends on the environment
    raise ImportError("mcpconn.contrib.sdk_auth needs httpx2: pip install mcp") from exc

from .. import BearerAuth, TokenSource

__all__ = ["SDKBearerAuth"]


class _Options(TypedDict, total=False):
    """The `BearerAuth` keywords an `SDKBearerAuth` passes on."""

    allow_insecure_http: bool


class SDKBearerAuth(httpx2.Auth):
    """An ``httpx2.Auth`` with `BearerAuth`'s rules; ``inner`` is that `BearerAuth`."""

    requires_request_body = BearerAuth.requires_request_body  # a retry resends the body

    def __init__(
        self,
        source: TokenSource,
        principal: str,
        audience: str | None = None,
        **options: Unpack[_Options],
    ) -> None:
        self.inner = BearerAuth(source, principal, audience, **options)

    def __repr__(self) -> str:
        return f"<SDKBearerAuth {self.inner!r}>"

    def sync_auth_flow(self, request: Any) -> Generator[Any, Any, None]:
        raise RuntimeError("SDKBearerAuth is async-only: use it with httpx2.AsyncClient")

    async def async_auth_flow(self, request: Any) -> AsyncGenerator[Any, Any]:
        # httpx2's Request/Response have httpx's shape: drive BearerAuth's flow as is.
        flow = self.inner.async_auth_flow(request)
        try:
            outgoing = await flow.__anext__()
            while True:
                response = yield outgoing
                outgoing = await flow.asend(response)
        except StopAsyncIteration:
            return
        finally:
            await flow.aclose()
