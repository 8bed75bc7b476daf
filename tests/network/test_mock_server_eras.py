"""The mock MCP server's other eras, legacy HTTP+SSE and stateless 2026-07-28, exercised
with plain httpx and hand-parsed SSE on real loopback."""

from __future__ import annotations

import json
from typing import Any

import anyio
import httpx
from mock_client import MODERN, SSE, both_modes, hdrs, init_params, meta, modern, post, rpc

from mcpconn.testing import MockServer, Tool


# -- legacy HTTP+SSE -------------------------------------------------------------------------
async def test_legacy_sse_endpoint(server: MockServer, client: httpx.AsyncClient) -> None:
    token = server.mint("alice")
    async with client.stream("GET", server.sse_url, headers=hdrs(token)) as response:
        ev = SSE(response)
        endpoint = await ev.event()
        assert endpoint is not None
        assert endpoint["event"] == "endpoint" and endpoint["data"].startswith("/messages?")
        post_url = str(httpx.URL(server.sse_url).join(endpoint["data"]))
        accepted = await client.post(
            post_url, json=rpc(1, "initialize", init_params("2024-11-05")), headers=hdrs(token)
        )
        assert accepted.status_code == 202
        init = await ev.message()
        assert init is not None
        assert init["result"]["protocolVersion"] == "2024-11-05"
        await client.post(
            post_url,
            json=rpc(2, "tools/call", {"name": "echo", "arguments": {"text": "x"}}),
            headers=hdrs(token),
        )
        call = await ev.event()
        assert call is not None
        assert call["event"] == "message" and json.loads(call["data"])["id"] == 2
        assert server.emit("notifications/message", {"n": 1}) == 1
        pushed = await ev.message()
        assert pushed is not None and pushed["params"] == {"n": 1}
        server.close_streams()
        assert await ev.events() == []
    with anyio.fail_after(5):
        await server.wait_until(lambda s: s.sessions == 0)  # the stream was the session
    assert (
        await client.post(post_url, json=rpc(3, "ping"), headers=hdrs(token))
    ).status_code == 404


# -- stateless 2026-07-28 --------------------------------------------------------------------
@both_modes
async def test_stateless_discover_and_call(server: MockServer, client: httpx.AsyncClient) -> None:
    token = server.mint("alice")
    _, msg = await post(
        client, server.url, rpc(1, "server/discover", meta()), modern(token, "server/discover")
    )
    assert msg is not None and msg["result"]["supportedVersions"] == [MODERN]
    body = rpc(2, "tools/call", meta({"name": "echo", "arguments": {"text": "yo"}}))
    response, msg = await post(client, server.url, body, modern(token, "tools/call", "echo"))
    assert "mcp-session-id" not in response.headers
    assert msg is not None and msg["result"]["content"][0]["text"] == "yo"
    assert msg["result"]["resultType"] == "complete"
    # The validation ladder, each with its status and JSON-RPC code.
    cases = [
        (
            rpc(3, "tools/call", meta({"name": "echo"})),
            modern(token, "tools/call", "add"),
            400,
            -32020,
        ),
        (rpc(4, "tools/list", {}), modern(token, "tools/list"), 400, -32602),
        (rpc(5, "nope/nope", meta()), modern(token, "nope/nope"), 404, -32601),
    ]
    for body, headers, status, code in cases:
        response = await client.post(server.url, json=body, headers=headers)
        assert (response.status_code, response.json()["error"]["code"]) == (status, code)
    future = {**modern(token, "ping"), "mcp-protocol-version": "2099-01-01"}
    body = rpc(6, "ping", meta())
    body["params"]["_meta"]["io.modelcontextprotocol/protocolVersion"] = "2099-01-01"
    response = await client.post(server.url, json=body, headers=future)
    assert response.status_code == 400
    assert response.json()["error"]["data"] == {"supported": [MODERN], "requested": "2099-01-01"}
    get = await client.get(server.url, headers=modern(token, "ping"))
    assert get.status_code == 405


async def test_stateless_only_server_rejects_initialize(client: httpx.AsyncClient) -> None:
    async with MockServer(eras=["stateless"]) as server:
        response = await client.post(
            server.url, json=rpc(1, "initialize", init_params()), headers=hdrs(server.mint("a"))
        )
    assert response.status_code == 400 and response.json()["error"]["code"] == -32602


async def test_session_only_server_gives_non_modern_400(client: httpx.AsyncClient) -> None:
    async with MockServer(eras=["streamable-http"]) as server:
        token = server.mint("a")
        response = await client.post(
            server.url,
            json=rpc(1, "server/discover", meta()),
            headers=modern(token, "server/discover"),
        )
    assert response.status_code == 400
    assert response.json()["error"]["code"] == -32600  # not a modern error: fall back


@both_modes
async def test_subscriptions_listen(server: MockServer, client: httpx.AsyncClient) -> None:
    token = server.mint("alice")
    body = rpc(
        9,
        "subscriptions/listen",
        meta({"notifications": {"toolsListChanged": True, "bogus": True}}),
    )
    async with client.stream(
        "POST", server.url, json=body, headers=modern(token, "subscriptions/listen")
    ) as response:
        msgs = SSE(response)
        ack = await msgs.message()
        assert ack is not None
        assert ack["method"] == "notifications/subscriptions/acknowledged"
        assert ack["params"]["notifications"] == {"toolsListChanged": True}
        await server.wait_for_streams(1)
        assert server.emit("notifications/prompts/list_changed") == 0  # not subscribed
        assert server.add_tool(Tool("extra", _extra_tool)) == 1
        changed = await msgs.message()
        assert changed is not None
        assert changed["method"] == "notifications/tools/list_changed"
        assert changed["params"]["_meta"]["io.modelcontextprotocol/subscriptionId"] == 9
        server.close_streams()
        rest = await msgs.messages()
    assert rest == [
        {
            "jsonrpc": "2.0",
            "id": 9,
            "result": {
                "_meta": {"io.modelcontextprotocol/subscriptionId": 9},
                "resultType": "complete",
            },
        }
    ]


async def _extra_tool(arguments: dict[str, Any], ctx: Any) -> dict[str, Any]:
    return {"content": [], "isError": False}
