"""The 2026-07-28 request metadata headers: ``x-mcp-header`` maps, ``Mcp-Param-*`` values."""

from __future__ import annotations

from typing import Any

import httpx
import pytest
from fake_mcp import json_reply, opened, result
from test_session_eras import Modern

from mcpconn import JSONRPCError
from mcpconn._mcp.transports.params import encode_header_value, param_header_map, param_headers

SQL_TOOL = {
    "name": "execute_sql",
    "inputSchema": {
        "type": "object",
        "properties": {
            "region": {"type": "string", "x-mcp-header": "Region"},
            "limit": {"type": "integer", "x-mcp-header": "Limit"},
            "opts": {
                "type": "object",
                "properties": {"dry": {"type": "boolean", "x-mcp-header": "Dry-Run"}},
            },
            "query": {"type": "string"},
        },
    },
}


def test_header_map_follows_the_properties_chain() -> None:
    assert param_header_map(SQL_TOOL["inputSchema"]) == {
        ("region",): "Region",
        ("limit",): "Limit",
        ("opts", "dry"): "Dry-Run",
    }
    assert param_header_map(None) == {}
    assert param_header_map({"type": "object"}) == {}


@pytest.mark.parametrize(
    "schema",
    [
        {"type": "string", "x-mcp-header": "Root"},
        {"properties": {"a": {"anyOf": [{"type": "string", "x-mcp-header": "A"}]}}},
        {"properties": {"a": {"items": {"type": "string", "x-mcp-header": "A"}}}},
        {"properties": {"a": {"type": "string", "x-mcp-header": "Not A Token"}}},
        {"properties": {"a": {"type": "string", "x-mcp-header": ""}}},
        {"properties": {"a": {"type": "string", "x-mcp-header": 7}}},
        {"properties": {"a": {"type": "number", "x-mcp-header": "A"}}},
        {"properties": {"o": {"properties": {"n": {"type": "number", "x-mcp-header": "N"}}}}},
        {"properties": {"a": {"type": ["integer", "number"], "x-mcp-header": "A"}}},
        {"properties": {"a": {"type": "object", "x-mcp-header": "A"}}},
        {"properties": {"a": {"type": "array", "x-mcp-header": "A"}}},
        {"properties": {"a": {"type": "null", "x-mcp-header": "A"}}},
        {"properties": {"a": {"$ref": "#/$defs/s", "x-mcp-header": "A"}}},
        {"properties": {"a": {"type": "string", "x-mcp-header": "Region:Primary"}}},
        {"properties": {"a": {"type": "string", "x-mcp-header": "R\u00e9gion"}}},
        {"properties": {"a": {"type": "string", "x-mcp-header": "Region\t1"}}},
        {"properties": {"a": {"type": "string", "x-mcp-header": "Region\n"}}},
        {"properties": {"a": {"x-mcp-header": "A"}}},
        {
            "properties": {
                "a": {"type": "string", "x-mcp-header": "Same"},
                "b": {"type": "string", "x-mcp-header": "same"},
            }
        },
    ],
)
def test_invalid_annotations_are_refused(schema: dict[str, Any]) -> None:
    with pytest.raises(ValueError, match="x-mcp-header"):
        param_header_map(schema)


def test_param_headers_render_and_omit() -> None:
    header_map = param_header_map(SQL_TOOL["inputSchema"])
    args = {"region": "us-west1", "limit": 42, "opts": {"dry": True}, "query": "q"}
    assert param_headers(header_map, args) == {
        "Mcp-Param-Region": "us-west1",
        "Mcp-Param-Limit": "42",
        "Mcp-Param-Dry-Run": "true",
    }
    assert param_headers(header_map, {"region": None, "opts": "x"}) == {}
    assert param_headers(header_map, {"region": "日本"}) == {
        "Mcp-Param-Region": encode_header_value("日本")
    }
    assert param_headers(header_map, None) == {}


def listing(*tools: dict[str, Any]) -> Any:
    async def route(request: httpx.Request, body: dict[str, Any]) -> httpx.Response:
        return json_reply(result(body["id"], {"tools": list(tools)}))

    return route


async def test_tools_list_drops_invalid_tools_and_calls_mirror_params() -> None:
    fake = Modern()
    bad = {"name": "bad", "inputSchema": {"type": "string", "x-mcp-header": "Root"}}
    fake.routes["tools/list"] = listing(SQL_TOOL, bad, {"name": "plain"})
    async with opened(fake, protocol_version="2026-07-28") as session:
        tools = (await session.request("tools/list"))["tools"]
        assert [t["name"] for t in tools] == ["execute_sql", "plain"]
        args = {"region": "eu", "query": "select 1"}
        await session.request("tools/call", {"name": "execute_sql", "arguments": args})
    call = fake.requests[-1]
    assert call.headers["mcp-param-region"] == "eu"
    assert "mcp-param-limit" not in call.headers


async def test_header_mismatch_relists_the_tools_and_retries_once() -> None:
    fake = Modern()
    fake.routes["tools/list"] = listing(SQL_TOOL)

    async def strict(request: httpx.Request, body: dict[str, Any]) -> httpx.Response:
        if request.headers.get("mcp-param-region") == body["params"]["arguments"]["region"]:
            return json_reply(result(body["id"], {"ok": True}))
        err = {"code": -32020, "message": "header mismatch"}
        return httpx.Response(400, json={"jsonrpc": "2.0", "id": body["id"], "error": err})

    fake.routes["tools/call"] = strict
    call = {"name": "execute_sql", "arguments": {"region": "eu"}}
    async with opened(fake, protocol_version="2026-07-28") as session:
        assert await session.request("tools/call", call) == {"ok": True}
        assert len(fake.posted("tools/list")) == 1
        fake.routes["tools/list"] = listing({"name": "execute_sql"})  # annotations gone
        await session.request("tools/list")
        with pytest.raises(JSONRPCError) as info:
            await session.request("tools/call", call)
    assert info.value.code == -32020
    assert len(fake.posted("tools/list")) == 3  # one re-listing, no loop
