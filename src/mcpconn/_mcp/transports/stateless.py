"""Streamable HTTP, stateless era (protocol 2026-07-28).

No ``initialize`` and no session: every request is a self-contained POST whose
``params._meta`` carries the protocol version, client info and capabilities,
mirrored into ``MCP-Protocol-Version``, ``Mcp-Method`` and ``Mcp-Name``
headers (spec: basic/transports/streamable-http, "Request Metadata").
There is no GET stream and no resumption: a response stream that breaks
after the request left loses it (`StreamLost`; the session re-issues it once
with a new id); a `ConnectError` never sent it and is raised as is. A 404 or
400 with a JSON-RPC error body is that error (404 is "method not found",
never session expiry). The listener is the long-lived POST
``subscriptions/listen`` stream (a server without it answers -32601, raised as
the `JSONRPCError` it is; every notification on it is handed on, the
``notifications/subscriptions/acknowledged`` included: it tells the embedder
the listener is live). Cancellation is closing the stream: no
``notifications/cancelled`` goes out in this era.
"""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING, Any

import httpx

from ..._config import STATELESS_VERSION
from ..._core import jsonrpc as _jsonrpc
from ..._core.eras import STATELESS
from ..._exceptions import ConnectError, NetworkError, StreamEnded
from .base import ACCEPT_BOTH, JSON, SSE, Dispatch, Era, HTTPChannel, StreamLost, StreamState
from .errors import map_httpx_errors
from .params import encode_header_value, param_header_map, param_headers
from .reader import MessageReader
from .streamable_http import check_rpc_status, pump

if TYPE_CHECKING:
    from .base import OnOpen
    from .reader import Watched

__all__ = [
    "CLIENT_CAPABILITIES_KEY",
    "CLIENT_INFO_KEY",
    "LISTEN_FILTER",
    "PROTOCOL_VERSION_KEY",
    "StatelessTransport",
    "encode_header_value",
]

logger = logging.getLogger("mcpconn.transport")

PROTOCOL_VERSION_KEY = "io.modelcontextprotocol/protocolVersion"
CLIENT_INFO_KEY = "io.modelcontextprotocol/clientInfo"
CLIENT_CAPABILITIES_KEY = "io.modelcontextprotocol/clientCapabilities"
#: Everything a listener can opt in to without naming resources.
LISTEN_FILTER: dict[str, Any] = {
    "toolsListChanged": True,
    "promptsListChanged": True,
    "resourcesListChanged": True,
}
_NAME_PARAM = {"tools/call": "name", "prompts/get": "name", "resources/read": "uri"}


class StatelessTransport:
    """The 2026-07-28 wire: one POST per request, per-request metadata."""

    era: Era = STATELESS.name
    __slots__ = (
        "_skipped",
        "capabilities",
        "channel",
        "client_info",
        "protocol_version",
        "session_id",
        "tool_headers",
        "url",
    )

    def __init__(
        self,
        channel: HTTPChannel,
        url: str,
        *,
        client_info: dict[str, Any],
        capabilities: dict[str, Any] | None = None,
        protocol_version: str = STATELESS_VERSION,
    ) -> None:
        self.channel = channel
        self.url = url
        self.client_info = client_info
        self.capabilities = capabilities or {}
        self.protocol_version: str | None = protocol_version
        self.session_id: str | None = None
        self._skipped = [0]
        #: Tool name -> its ``x-mcp-header`` map, learned from ``tools/list`` results
        #: (made at the first tool that has one: most sessions of an idle fleet list none).
        self.tool_headers: dict[str, dict[tuple[str, ...], str]] | None = None

    def learn_tools(self, result: dict[str, Any]) -> dict[str, Any]:
        """Learn each tool's ``x-mcp-header`` map; drop tools with invalid annotations."""
        tools = result.get("tools")
        if not isinstance(tools, list):
            return result
        kept = []
        for tool in tools:
            name = tool.get("name") if isinstance(tool, dict) else None
            if not isinstance(name, str):
                kept.append(tool)
                continue
            try:
                header_map = param_header_map(tool.get("inputSchema"))
                if header_map:
                    if self.tool_headers is None:
                        self.tool_headers = {}
                    self.tool_headers[name] = header_map
                elif self.tool_headers:
                    self.tool_headers.pop(name, None)  # listed again without headers
            except ValueError as exc:
                clean = self.channel.clean
                logger.warning("left out tool %r from tools/list: %s", clean(name), clean(exc))
                continue
            kept.append(tool)
        return {**result, "tools": kept}

    @property
    def skipped(self) -> int:
        return self._skipped[0]

    async def start(self, dispatch: Dispatch) -> None:
        """Nothing to open: every request stands alone."""

    def stamp(self, request: _jsonrpc.Request) -> tuple[_jsonrpc.Request, dict[str, str]]:
        """Add the per-request ``_meta`` envelope and the mirrored headers."""
        version = self.protocol_version or STATELESS_VERSION
        params = dict(request.params or {})
        meta = dict(params.get("_meta") or {})
        meta[PROTOCOL_VERSION_KEY] = version
        meta[CLIENT_INFO_KEY] = self.client_info
        meta[CLIENT_CAPABILITIES_KEY] = self.capabilities
        params["_meta"] = meta
        headers = {
            "Accept": ACCEPT_BOTH,
            "Content-Type": JSON,
            "MCP-Protocol-Version": version,
            "Mcp-Method": request.method,
        }
        key = _NAME_PARAM.get(request.method)
        name = params.get(key) if key else None
        if isinstance(name, str):
            headers["Mcp-Name"] = encode_header_value(name)
            tool_headers = self.tool_headers
            if request.method == "tools/call" and tool_headers and name in tool_headers:
                headers.update(param_headers(tool_headers[name], params.get("arguments")))
        return _jsonrpc.Request(request.id, request.method, params), headers

    async def send_request(
        self, request: _jsonrpc.Request, *, done: Any, dispatch: Dispatch
    ) -> None:
        """POST ``request``; a stream that ends or breaks first raises `StreamLost`.

        Nothing of the request stays on this frame while its answer is awaited (the
        stamped copy, its params and headers: objects a burst's young collections
        would promote); `Opened` lets go of the rest once sent."""
        stamped, headers = self.stamp(request)
        opened = self.channel.open(
            "POST", self.url, headers=headers, content=_jsonrpc.encode(stamped)
        )
        del request, stamped, headers
        try:
            async with opened as response:
                await self._check(response)
                kind = self.channel.content_type(response, (JSON, SSE))
                if kind == JSON:
                    message = await self.channel.read_message(response)
                    if isinstance(message, _jsonrpc.ErrorResponse) and message.id is None:
                        raise message.error
                    dispatch(message)
                    if not done():
                        raise StreamLost("the JSON reply was not the response to the request")
                    return
                if await pump(
                    self.channel, response, StreamState(), dispatch, strict=True, done=done
                ):
                    return
        except ConnectError:
            raise  # never sent: nothing to re-issue
        except NetworkError as exc:
            raise StreamLost("the response stream broke before the response") from exc
        raise StreamLost("the response stream ended before the response")

    async def _check(self, response: httpx.Response) -> None:
        await check_rpc_status(self.channel, response, had_session=False, era=self.era)

    async def send_message(self, message: _jsonrpc.Message) -> None:
        """POST a notification (acknowledged with 202); rarely useful in this era."""
        headers = {
            "Accept": ACCEPT_BOTH,
            "Content-Type": JSON,
            "MCP-Protocol-Version": self.protocol_version or STATELESS_VERSION,
        }
        if isinstance(message, _jsonrpc.Notification):
            headers["Mcp-Method"] = message.method
        async with self.channel.open(
            "POST", self.url, headers=headers, content=_jsonrpc.encode(message)
        ) as response:
            await self._check(response)

    async def listen(
        self,
        dispatch: Dispatch,
        request: _jsonrpc.Request | None = None,
        *,
        on_open: OnOpen = None,
        restart_on: Watched | None = None,
    ) -> None:
        """Run one ``subscriptions/listen`` stream; see `Session.listen`.

        ``on_open`` is called once the server accepted the stream (2xx, SSE). An edit
        of ``restart_on`` ends it early: then, and only then, it returns.
        """
        if request is None:
            raise ValueError("the stateless listener needs its subscriptions/listen request")
        listen_id = request.id
        stamped, headers = self.stamp(request)
        body = _jsonrpc.encode(stamped)
        del request, stamped  # nothing of the request stays on this frame for the stream's life
        reader = MessageReader(
            self.channel,
            StreamState(),
            dispatch,
            strict=False,
            counter=self._skipped,
            reply_to=listen_id,
        )
        if restart_on is not None:
            restart_on.watch(reader)  # an edit of the subscriptions restarts the listen
        try:
            opened = self.channel.open("POST", self.url, headers=headers, content=body)
            response = await opened.__aenter__()
            # try/finally, not ``async with``: that would keep the bound ``__aexit__`` for
            # the stream's life (`Opened.__aexit__` reads no exception)
            try:
                del headers, body
                await self._check(response)
                self.channel.accept_stream(response, on_open)
                del response  # the reader lets go of it (`MessageReader.read_opened`)
                with map_httpx_errors():
                    await reader.read_opened(opened)
            finally:
                await opened.__aexit__(None, None, None)
        finally:
            if restart_on is not None:
                restart_on.unwatch(reader)
        if isinstance(reader.reply, _jsonrpc.ErrorResponse):
            raise reader.reply.error  # -32601 is "no listener here": the classifier's call
        if reader.stopped:
            return  # restarted: the caller listens again, with the new filter
        raise StreamEnded("the subscription stream ended", retry=None)

    async def aclose(self, close_by: float | None = None) -> None:
        """Nothing to close: no session, no DELETE."""
