"""The upstream MCP server: the SDK's low-level ``Server``, its handlers over the aggregator.

Every handler first asks who is asking (`Aggregator.upstream`), so listings and calls are
per principal. Names are namespaced: tools and prompts ``SERVER_NAME``, resources
``SERVER+URI``.
"""

from __future__ import annotations

from typing import Any

import mcp_types as types
from mcp.server import Server
from mcp.shared.exceptions import MCPError

import mcpconn

from .limits import REAUTH_TEXT
from .routing import Aggregator, Send
from .shaping import renamed


def build_server(agg: Aggregator) -> Server[Any]:
    """The SDK's low-level server: every handler sees who asks, so listings are per principal."""

    async def list_tools(ctx: Any, params: Any) -> types.ListToolsResult:
        listed = await agg.each_server(agg.upstream(ctx), lambda c: c.list_tools())
        tools = [renamed(types.Tool, t, f"{s}_{t['name']}") for s, ts in listed for t in ts]
        return types.ListToolsResult(tools=tools)

    async def call_tool(ctx: Any, params: types.CallToolRequestParams) -> Any:
        return await agg.call_tool(agg.upstream(ctx), params)

    async def list_prompts(ctx: Any, params: Any) -> types.ListPromptsResult:
        listed = await agg.each_server(agg.upstream(ctx), lambda c: c.list_prompts())
        prompts = [renamed(types.Prompt, p, f"{s}_{p['name']}") for s, ps in listed for p in ps]
        return types.ListPromptsResult(prompts=prompts)

    async def get_prompt(ctx: Any, params: types.GetPromptRequestParams) -> Any:
        server, _, name = params.name.partition("_")
        arguments = params.arguments or {}
        result = await routed(ctx, server, lambda c, **kw: c.get_prompt(name, arguments, **kw))
        return types.GetPromptResult.model_validate(result)

    async def list_resources(ctx: Any, params: Any) -> types.ListResourcesResult:
        listed = await agg.each_server(agg.upstream(ctx), lambda c: c.list_resources())
        resources = [
            renamed(types.Resource, r, f"{s}+{r['uri']}", key="uri") for s, rs in listed for r in rs
        ]
        return types.ListResourcesResult(resources=resources)

    async def read_resource(ctx: Any, params: types.ReadResourceRequestParams) -> Any:
        server, _, uri = str(params.uri).partition("+")
        result = await routed(ctx, server, lambda c, **kw: c.read_resource(uri, **kw))
        for content in result.get("contents", []):
            content["uri"] = f"{server}+{content.get('uri', uri)}"
        return types.ReadResourceResult.model_validate(result)

    async def routed(ctx: Any, server: str, send: Send) -> dict[str, Any]:
        """A prompt or resource request for one server; mcpconn's errors as MCP errors."""
        if server not in agg.servers:
            raise MCPError(types.INVALID_PARAMS, f"unknown server {server!r}")
        try:
            return await agg.call(agg.upstream(ctx), server, send)
        except (mcpconn.ReauthRequired, mcpconn.Unauthorized) as exc:
            raise MCPError(types.INVALID_REQUEST, f"{server}: {REAUTH_TEXT}") from exc
        except mcpconn.JSONRPCError as exc:
            raise MCPError(exc.code, exc.message) from exc
        except mcpconn.MCPConnError as exc:
            raise MCPError(types.INTERNAL_ERROR, f"{server} is unavailable") from exc

    async def set_level(ctx: Any, params: types.SetLevelRequestParams) -> types.EmptyResult:
        await agg.set_log_level(agg.upstream(ctx).principal, params.level)
        return types.EmptyResult()

    async def listen(ctx: Any, params: types.SubscriptionsListenRequestParams) -> Any:
        return await agg.list_changes.bus(agg.upstream(ctx).principal)[1](ctx, params)

    return Server(
        "mcpconn-aggregator",
        version="0.1.0",
        instructions="The tools, prompts and resources of several MCP servers, namespaced.",
        on_list_tools=list_tools,
        on_call_tool=call_tool,
        on_list_prompts=list_prompts,
        on_get_prompt=get_prompt,
        on_list_resources=list_resources,
        on_read_resource=read_resource,
        on_set_logging_level=set_level,
        on_subscriptions_listen=listen,
    )
