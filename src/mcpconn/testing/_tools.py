"""The mock server's MCP methods and built-in tools, shared by every era.

Tools are plain async functions of (arguments, context); the context sends
request-related notifications (progress, log messages) on the request's own
stream and can emit to listener streams through the server.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol

import anyio

__all__ = [
    "BUILTIN_TOOLS",
    "CallContext",
    "Catalog",
    "RPCError",
    "Tool",
    "dispatch",
]

PARSE_ERROR = -32700
INVALID_REQUEST = -32600
METHOD_NOT_FOUND = -32601
INVALID_PARAMS = -32602
INTERNAL_ERROR = -32603
HEADER_MISMATCH = -32020
MISSING_CLIENT_CAPABILITY = -32021
UNSUPPORTED_PROTOCOL_VERSION = -32022

#: HTTP status for a JSON-RPC error code on the 2026-07-28 wire.
ERROR_HTTP_STATUS = {
    PARSE_ERROR: 400,
    INVALID_REQUEST: 400,
    INVALID_PARAMS: 400,
    HEADER_MISMATCH: 400,
    MISSING_CLIENT_CAPABILITY: 400,
    UNSUPPORTED_PROTOCOL_VERSION: 400,
    METHOD_NOT_FOUND: 404,
}


class RPCError(Exception):
    """A JSON-RPC error to send back."""

    def __init__(self, code: int, message: str, data: Any = None) -> None:
        super().__init__(message)
        self.code = code
        self.message = message
        self.data = data

    def to_error(self) -> dict[str, Any]:
        error: dict[str, Any] = {"code": self.code, "message": self.message}
        if self.data is not None:
            error["data"] = self.data
        return error


class _Emitter(Protocol):
    def emit(
        self, method: str, params: dict[str, Any] | None = None, *, principal: str | None = None
    ) -> int: ...


Sink = Callable[[str, dict[str, Any] | None], None]


@dataclass
class CallContext:
    """What a tool may use: who called, the progress token, and where to notify."""

    server: _Emitter
    principal: str | None
    protocol_version: str
    progress_token: Any = None
    sink: Sink | None = None

    async def notify(self, method: str, params: dict[str, Any] | None = None) -> None:
        """Send a notification related to this request (on its response stream)."""
        if self.sink is not None:
            self.sink(method, params)
        await anyio.lowlevel.checkpoint()

    async def progress(
        self, progress: float, total: float | None = None, message: str | None = None
    ) -> None:
        if self.progress_token is None:
            return
        params: dict[str, Any] = {"progressToken": self.progress_token, "progress": progress}
        if total is not None:
            params["total"] = total
        if message is not None:
            params["message"] = message
        await self.notify("notifications/progress", params)


ToolHandler = Callable[[dict[str, Any], CallContext], Awaitable[dict[str, Any]]]


@dataclass(frozen=True)
class Tool:
    """A tool the mock serves. ``handler`` returns a `tools/call` result dict."""

    name: str
    handler: ToolHandler
    description: str = ""
    input_schema: Mapping[str, Any] = field(default_factory=lambda: {"type": "object"})

    def describe(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "description": self.description,
            "inputSchema": dict(self.input_schema),
        }


def text_result(text: str, **extra: Any) -> dict[str, Any]:
    return {"content": [{"type": "text", "text": text}], "isError": False, **extra}


def _number(arguments: Mapping[str, Any], key: str, default: float | None = None) -> float:
    value = arguments.get(key, default)
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise RPCError(INVALID_PARAMS, f"argument {key!r} must be a number")
    return float(value)


async def _echo(arguments: dict[str, Any], ctx: CallContext) -> dict[str, Any]:
    return text_result(str(arguments.get("text", "")))


async def _add(arguments: dict[str, Any], ctx: CallContext) -> dict[str, Any]:
    a, b = _number(arguments, "a"), _number(arguments, "b")
    total: float | int = int(a + b) if (a + b).is_integer() else a + b
    return text_result(str(total), structuredContent={"result": total})


async def _slow(arguments: dict[str, Any], ctx: CallContext) -> dict[str, Any]:
    seconds = _number(arguments, "seconds", 1.0)
    await anyio.sleep(seconds)
    return text_result(f"slept {seconds:g}s")


async def _progress(arguments: dict[str, Any], ctx: CallContext) -> dict[str, Any]:
    steps = int(_number(arguments, "steps", 3))
    delay = _number(arguments, "delay", 0.0)
    for step in range(1, steps + 1):
        if delay:
            await anyio.sleep(delay)
        await ctx.progress(step, steps, f"step {step} of {steps}")
    return text_result(f"done {steps} steps")


async def _notify(arguments: dict[str, Any], ctx: CallContext) -> dict[str, Any]:
    count = int(_number(arguments, "count", 1))
    method = str(arguments.get("method", "notifications/message"))
    target = arguments.get("target", "request")
    delivered = 0
    for index in range(count):
        params = arguments.get("params")
        if params is None:
            params = {"level": "info", "logger": "mock", "data": {"index": index}}
        if target == "listeners":
            delivered += ctx.server.emit(method, params, principal=ctx.principal)
            await anyio.lowlevel.checkpoint()
        else:
            await ctx.notify(method, params)
            delivered += 1
    return text_result(f"sent {count}", structuredContent={"delivered": delivered})


_NUMBER = {"type": "number"}
BUILTIN_TOOLS: tuple[Tool, ...] = (
    Tool(
        "echo",
        _echo,
        "Returns its text argument.",
        {"type": "object", "properties": {"text": {"type": "string"}}},
    ),
    Tool(
        "add",
        _add,
        "Adds a and b.",
        {"type": "object", "properties": {"a": _NUMBER, "b": _NUMBER}, "required": ["a", "b"]},
    ),
    Tool(
        "slow",
        _slow,
        "Sleeps for `seconds` (cancellable).",
        {"type": "object", "properties": {"seconds": _NUMBER}},
    ),
    Tool(
        "progress",
        _progress,
        "Sends `steps` progress notifications to the request's progressToken.",
        {"type": "object", "properties": {"steps": _NUMBER, "delay": _NUMBER}},
    ),
    Tool(
        "notify",
        _notify,
        "Sends `count` notifications on the request stream, or to the caller's listeners.",
        {
            "type": "object",
            "properties": {
                "count": _NUMBER,
                "method": {"type": "string"},
                "params": {"type": "object"},
                "target": {"type": "string", "enum": ["request", "listeners"]},
            },
        },
    ),
)


class Catalog:
    """The tool list, paginated with opaque offset cursors."""

    def __init__(self, tools: Sequence[Tool], *, page_size: int) -> None:
        if page_size < 1:
            raise ValueError("page_size must be at least 1")
        self.page_size = page_size
        self._tools: dict[str, Tool] = {}
        for tool in tools:
            self._tools[tool.name] = tool

    def add(self, tool: Tool) -> None:
        self._tools[tool.name] = tool

    def remove(self, name: str) -> None:
        self._tools.pop(name, None)

    @property
    def names(self) -> list[str]:
        return list(self._tools)

    def page(self, cursor: Any) -> dict[str, Any]:
        start = 0
        if cursor is not None:
            if (
                not isinstance(cursor, str)
                or not cursor.startswith("c")
                or not cursor[1:].isdigit()
            ):
                raise RPCError(INVALID_PARAMS, "invalid cursor")
            start = int(cursor[1:])
        tools = list(self._tools.values())
        end = start + self.page_size
        result: dict[str, Any] = {"tools": [t.describe() for t in tools[start:end]]}
        if end < len(tools):
            result["nextCursor"] = f"c{end}"
        return result

    async def call(self, params: Mapping[str, Any], ctx: CallContext) -> dict[str, Any]:
        name = params.get("name")
        tool = self._tools.get(name) if isinstance(name, str) else None
        if tool is None:
            raise RPCError(INVALID_PARAMS, f"unknown tool {name!r}")
        arguments = params.get("arguments") or {}
        if not isinstance(arguments, dict):
            raise RPCError(INVALID_PARAMS, "arguments must be an object")
        return await tool.handler(arguments, ctx)


_RESOURCE = {"uri": "mock://readme", "name": "readme", "mimeType": "text/plain"}
_PROMPT = {"name": "greet", "description": "Says hello.", "arguments": [{"name": "who"}]}


async def dispatch(
    method: str, params: dict[str, Any], ctx: CallContext, catalog: Catalog
) -> dict[str, Any]:
    """The result of one request common to every era, or `RPCError`."""
    if method == "ping":
        return {}
    if method == "tools/list":
        return catalog.page(params.get("cursor"))
    if method == "tools/call":
        return await catalog.call(params, ctx)
    if method == "resources/list":
        return {"resources": [_RESOURCE]}
    if method == "resources/read":
        uri = params.get("uri")
        if uri != _RESOURCE["uri"]:
            raise RPCError(INVALID_PARAMS, f"unknown resource {uri!r}")
        return {"contents": [{"uri": uri, "mimeType": "text/plain", "text": "hello"}]}
    if method == "prompts/list":
        return {"prompts": [_PROMPT]}
    if method in ("logging/setLevel", "resources/subscribe", "resources/unsubscribe"):
        return {}
    raise RPCError(METHOD_NOT_FOUND, f"method not found: {method}")
