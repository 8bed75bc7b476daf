"""The mock MCP server's streamable HTTP with sessions, exercised with plain httpx and
hand-parsed SSE on real loopback."""

from __future__ import annotations

import json

import anyio
import httpx
from mock_client import LATEST, SSE, both_modes, hdrs, init_params, initialize, post, rpc

from mcpconn.testing import Fault, MockServer


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


@both_modes
async def test_wait_until_wakes_when_a_connection_opens_and_closes(server: MockServer) -> None:
    """``open_connections`` is in the stats, so a change of it wakes `wait_until`
    (nothing else happens on the server while a bare socket comes and goes)."""
    with anyio.fail_after(5):
        await server.wait_until(lambda s: s.open_connections == 0)
        sock = await anyio.connect_tcp("127.0.0.1", server.port)
        await server.wait_until(lambda s: s.open_connections == 1)
        await sock.aclose()
        await server.wait_until(lambda s: s.open_connections == 0)
