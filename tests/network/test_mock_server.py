"""The mock MCP server, exercised with plain httpx and hand-parsed SSE on real loopback."""

from __future__ import annotations

import json
from typing import Any

import anyio
import httpx
from mock_client import (
    LATEST,
    MODERN,
    SSE,
    both_modes,
    hdrs,
    init_params,
    initialize,
    meta,
    modern,
    post,
    rpc,
)

from mcpconn.testing import Fault, MockServer, Tool


# -- streamable HTTP with sessions -----------------------------------------------------------
@both_modes
async def test_initialize_and_call_over_sse(server: MockServer, client: httpx.AsyncClient) -> None:
    token = server.mint("alice")
    async with client.stream(
        "POST", server.url, json=rpc(1, "initialize", init_params()), headers=hdrs(token)
    ) as response:
        assert response.headers["content-type"] == "text/event-stream"
        events = await SSE(response).events()
    priming, result = events
    assert priming["data"] == "" and priming["retry"] == "1000" and priming["id"]
    assert json.loads(result["data"])["result"]["serverInfo"]["name"] == "mcpconn-mock"
    session = hdrs(token, mcp_session_id=response.headers["mcp-session-id"])
    _, msg = await post(
        client,
        server.url,
        rpc(2, "tools/call", {"name": "add", "arguments": {"a": 2, "b": 3}}),
        session,
    )
    assert msg is not None and msg["result"]["structuredContent"] == {"result": 5}
    _, msg = await post(client, server.url, rpc(3, "tools/call", {"name": "nope"}), session)
    assert msg is not None and msg["error"]["code"] == -32602


async def test_json_response_mode(client: httpx.AsyncClient) -> None:
    async with MockServer(json_response=True) as server:
        session = await initialize(client, server, server.mint("alice"))
        response = await client.post(
            server.url,
            json=rpc(1, "tools/call", {"name": "echo", "arguments": {"text": "hi"}}),
            headers=session,
        )
        server.faults.add(Fault.non_json(), times=1)
        garbled = await client.post(server.url, json=rpc(2, "ping"), headers=session)
    assert response.headers["content-type"] == "application/json"
    assert response.json()["result"]["content"][0]["text"] == "hi"
    assert garbled.headers["content-type"] == "application/json"
    assert garbled.content == b"this is not json{"


async def test_version_negotiation(server: MockServer, client: httpx.AsyncClient) -> None:
    token = server.mint("alice")
    for asked, expected in [
        ("2024-11-05", "2024-11-05"),
        ("2025-03-26", "2025-03-26"),
        ("1999-01-01", LATEST),
    ]:
        _, msg = await post(
            client, server.url, rpc(1, "initialize", init_params(asked)), hdrs(token)
        )
        assert msg is not None and msg["result"]["protocolVersion"] == expected


async def test_tools_list_pagination(client: httpx.AsyncClient) -> None:
    async with MockServer(extra_tools=7, page_size=5) as server:
        session = await initialize(client, server, server.mint("alice"))
        names: list[str] = []
        cursor = None
        pages = 0
        while True:
            params = {} if cursor is None else {"cursor": cursor}
            _, msg = await post(client, server.url, rpc(1, "tools/list", params), session)
            assert msg is not None
            names += [t["name"] for t in msg["result"]["tools"]]
            pages += 1
            cursor = msg["result"].get("nextCursor")
            if cursor is None:
                break
        _, bad = await post(client, server.url, rpc(2, "tools/list", {"cursor": "zz"}), session)
    assert pages == 3 and len(names) == len(set(names)) == 12
    assert names[:5] == ["echo", "add", "slow", "progress", "notify"]
    assert bad is not None and bad["error"]["code"] == -32602


async def test_progress_and_notify_on_the_request_stream(
    server: MockServer, client: httpx.AsyncClient
) -> None:
    session = await initialize(client, server, server.mint("alice"))
    body = rpc(
        7,
        "tools/call",
        {"name": "progress", "arguments": {"steps": 3}, "_meta": {"progressToken": "tok"}},
    )
    async with client.stream("POST", server.url, json=body, headers=session) as response:
        msgs = await SSE(response).messages()
    assert [m["params"]["progress"] for m in msgs[:3]] == [1, 2, 3]
    assert all(m["params"]["progressToken"] == "tok" for m in msgs[:3])
    assert msgs[3]["id"] == 7
    body = rpc(8, "tools/call", {"name": "notify", "arguments": {"count": 2}})
    async with client.stream("POST", server.url, json=body, headers=session) as response:
        msgs = await SSE(response).messages()
    assert [m.get("method") for m in msgs] == ["notifications/message"] * 2 + [None]


async def test_slow_tool_honours_cancellation(
    server: MockServer, client: httpx.AsyncClient
) -> None:
    session = await initialize(client, server, server.mint("alice"))
    body = rpc(11, "tools/call", {"name": "slow", "arguments": {"seconds": 30}})
    async with client.stream("POST", server.url, json=body, headers=session) as response:
        reader = SSE(response)
        await reader.event()  # the priming event: the call is under way
        cancel = {
            "jsonrpc": "2.0",
            "method": "notifications/cancelled",
            "params": {"requestId": 11, "reason": "test"},
        }
        assert (await client.post(server.url, json=cancel, headers=session)).status_code == 202
        with anyio.fail_after(5):
            assert await reader.messages() == []  # a cancelled request gets no response


@both_modes
async def test_session_ids_and_delete(server: MockServer, client: httpx.AsyncClient) -> None:
    token = server.mint("alice")
    session = await initialize(client, server, token)
    missing = await client.post(server.url, json=rpc(1, "ping"), headers=hdrs(token))
    assert missing.status_code == 400
    other = await client.post(
        server.url,
        json=rpc(1, "ping"),
        headers={**session, "authorization": f"Bearer {server.mint('bob')}"},
    )
    assert other.status_code == 404  # a session belongs to its principal
    assert (await client.delete(server.url, headers=session)).status_code == 200
    gone = await client.post(server.url, json=rpc(1, "ping"), headers=session)
    assert gone.status_code == 404
    assert (await client.delete(server.url, headers=session)).status_code == 404


async def test_session_idle_expiry(client: httpx.AsyncClient) -> None:
    now = [1_000_000.0]
    async with MockServer(session_idle_timeout=10.0, clock=lambda: now[0]) as server:
        session = await initialize(client, server, server.mint("alice", lifetime=3600))
        now[0] += 5
        assert (
            await client.post(server.url, json=rpc(1, "ping"), headers=session)
        ).status_code == 200
        now[0] += 11
        assert (
            await client.post(server.url, json=rpc(1, "ping"), headers=session)
        ).status_code == 404
        assert server.stats().sessions == 0


@both_modes
async def test_get_listener_emit_and_resume(server: MockServer, client: httpx.AsyncClient) -> None:
    session = await initialize(client, server, server.mint("alice"))
    seen: list[dict[str, str]] = []
    async with client.stream("GET", server.url, headers=session) as response:
        ev = SSE(response)
        priming = await ev.event()
        assert priming is not None and priming["data"] == "" and priming["retry"] == "1000"
        await server.wait_for_streams(1, principal="alice")
        assert server.emit("notifications/tools/list_changed") == 1
        assert server.emit("notifications/message", {"n": 2}, principal="alice") == 1
        assert server.emit("notifications/message", principal="bob") == 0
        seen = [await ev.event(), await ev.event()]
        server.close_streams("alice")  # a clean end, so the reader can drain
        assert await ev.events() == []
    assert seen[0] is not None and seen[1] is not None
    assert json.loads(seen[0]["data"])["method"] == "notifications/tools/list_changed"
    with anyio.fail_after(5):
        await server.wait_until(lambda s: s.open_streams == 0)
    server.emit("notifications/message", {"n": 3})  # while nobody listens
    server.emit("notifications/message", {"n": 4})
    resume = {**session, "last-event-id": seen[1]["id"]}
    async with client.stream("GET", server.url, headers=resume) as response:
        ev = SSE(response)
        replayed = [await ev.message(), await ev.message()]
        server.close_streams()
        assert await ev.events() == []
    assert [m["params"]["n"] for m in replayed if m] == [3, 4]


async def test_post_stream_cut_then_resumed_with_last_event_id(
    server: MockServer, client: httpx.AsyncClient
) -> None:
    session = await initialize(client, server, server.mint("alice"))
    server.faults.add(Fault.cut(after_events=0), rpc_method="tools/call", times=1)
    body = rpc(5, "tools/call", {"name": "echo", "arguments": {"text": "late"}})
    async with client.stream("POST", server.url, json=body, headers=session) as response:
        events = await SSE(response).events()
    assert [e["data"] for e in events] == [""]  # only the priming event, then a clean end
    resume = {**session, "last-event-id": events[0]["id"]}
    async with client.stream("GET", server.url, headers=resume) as response:
        msgs = await SSE(response).messages()
    assert msgs == [{"jsonrpc": "2.0", "id": 5, "result": msgs[0]["result"]}]
    assert msgs[0]["result"]["content"][0]["text"] == "late"


async def test_close_streams_ends_listener_cleanly(
    server: MockServer, client: httpx.AsyncClient
) -> None:
    session = await initialize(client, server, server.mint("alice"))
    async with client.stream("GET", server.url, headers=session) as response:
        reader = SSE(response)
        await reader.event()
        await server.wait_for_streams(1)
        assert server.close_streams("alice") == 1
        assert await reader.events() == []  # the body ends, cleanly


async def test_flood_has_backpressure_and_drops_nothing(client: httpx.AsyncClient) -> None:
    async with MockServer(event_log_size=16) as server:
        session = await initialize(client, server, server.mint("alice"))
        async with client.stream("GET", server.url, headers=session) as response:
            reader = SSE(response)
            await reader.event()  # priming
            await server.wait_for_streams(1)
            seqs: list[int] = []

            async def read(n: int) -> None:
                for _ in range(n):
                    msg = await reader.message()
                    assert msg is not None
                    seqs.append(msg["params"]["seq"])

            with anyio.fail_after(10):
                async with anyio.create_task_group() as tg:
                    tg.start_soon(read, 500)
                    assert await server.flood(count=500) == 500
            server.close_streams()
            assert await reader.events() == []
    assert seqs == list(range(500))


async def test_server_to_client_request(server: MockServer, client: httpx.AsyncClient) -> None:
    session = await initialize(client, server, server.mint("alice"))
    async with client.stream("GET", server.url, headers=session) as response:
        reader = SSE(response)
        await reader.event()
        await server.wait_for_streams(1)
        assert server.send({"jsonrpc": "2.0", "id": "s1", "method": "ping"}) == 1
        ping = await reader.message()
        assert ping == {"jsonrpc": "2.0", "id": "s1", "method": "ping"}
        answer = {"jsonrpc": "2.0", "id": "s1", "result": {}}
        assert (await client.post(server.url, json=answer, headers=session)).status_code == 202
        call = rpc(3, "tools/call", {"name": "notify", "arguments": {"target": "listeners"}})
        _, result = await post(client, server.url, call, session)
        assert result is not None and result["result"]["structuredContent"] == {"delivered": 1}
        via_tool = await reader.message()
        assert via_tool is not None and via_tool["method"] == "notifications/message"
        server.close_streams()
        assert await reader.events() == []
    assert list(server.client_responses) == [answer]


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
