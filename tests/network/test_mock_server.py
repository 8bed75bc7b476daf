"""The mock MCP server, exercised with plain httpx and hand-parsed SSE on real loopback."""

from __future__ import annotations

import argparse
import json
from collections.abc import AsyncIterator
from typing import Any

import anyio
import httpx
import pytest

import mcpconn
import mcpconn.testing
from helpers.sse_lines import field
from mcpconn._cli.mock_server import add_mock_server_parser, serve_mock_server
from mcpconn._http import make_client
from mcpconn.testing import Fault, JWTIssuer, JWTProvider, MockServer, TokenRejected, Tool

LATEST = "2025-11-25"
MODERN = "2026-07-28"
ACCEPT = "application/json, text/event-stream"


# -- helpers ---------------------------------------------------------------------------------
def hdrs(token: str | None, **extra: str) -> dict[str, str]:
    out = {"accept": ACCEPT, "content-type": "application/json"}
    if token is not None:
        out["authorization"] = f"Bearer {token}"
    out.update({k.replace("_", "-"): v for k, v in extra.items()})
    return out


def rpc(rid: int, method: str, params: dict[str, Any] | None = None) -> dict[str, Any]:
    msg: dict[str, Any] = {"jsonrpc": "2.0", "id": rid, "method": method}
    if params is not None:
        msg["params"] = params
    return msg


def init_params(version: str = LATEST) -> dict[str, Any]:
    return {
        "protocolVersion": version,
        "capabilities": {},
        "clientInfo": {"name": "test", "version": "1"},
    }


def as_event(block: list[str]) -> dict[str, str] | None:
    """One block of lines as {id, event, data, retry} (those present); None if empty."""
    event: dict[str, str] = {}
    data: list[str] = []
    for name, value in filter(None, map(field, block)):
        if name == "data":
            data.append(value)
        else:
            event[name] = value
    return {**event, "data": "\n".join(data)} if data or event else None


class SSE:
    """Hand-parsed SSE over ``response.aiter_lines()``: events are {id, event, data, retry}."""

    def __init__(self, response: httpx.Response) -> None:
        self._lines = response.aiter_lines()

    async def event(self) -> dict[str, str] | None:
        """The next event, or None at the end of the body."""
        block: list[str] = []
        async for line in self._lines:
            if line:
                block.append(line)
                continue
            event, block = as_event(block), []
            if event is not None:
                return event
        return None  # an unterminated block is no event

    async def message(self) -> dict[str, Any] | None:
        """The next JSON-RPC message (priming events skipped), or None at the end."""
        while (event := await self.event()) is not None:
            if event["data"]:
                msg: dict[str, Any] = json.loads(event["data"])
                return msg
        return None

    async def events(self) -> list[dict[str, str]]:
        out = []
        while (event := await self.event()) is not None:
            out.append(event)
        return out

    async def messages(self) -> list[dict[str, Any]]:
        out = []
        while (msg := await self.message()) is not None:
            out.append(msg)
        return out


async def reply(response: httpx.Response) -> dict[str, Any]:
    """The JSON-RPC response of a POST, whether JSON or SSE."""
    if response.headers["content-type"].startswith("application/json"):
        result: dict[str, Any] = json.loads(await response.aread())
        return result
    for msg in await SSE(response).messages():  # read to the end: no half-read generators
        if "id" in msg and ("result" in msg or "error" in msg):
            return msg
    raise AssertionError("no response on the stream")


async def post(
    client: httpx.AsyncClient, url: str, body: Any, headers: dict[str, str]
) -> tuple[httpx.Response, dict[str, Any] | None]:
    async with client.stream("POST", url, json=body, headers=headers) as response:
        await response.aread() if response.status_code != 200 else None
        if response.status_code != 200:
            return response, None
        return response, await reply(response)


async def initialize(
    client: httpx.AsyncClient, server: MockServer, token: str, version: str = LATEST
) -> dict[str, str]:
    """Initialize a session; returns the headers for its later requests."""
    response, msg = await post(
        client, server.url, rpc(0, "initialize", init_params(version)), hdrs(token)
    )
    assert response.status_code == 200
    assert msg is not None and msg["result"]["protocolVersion"] == version
    sid = response.headers["mcp-session-id"]
    await client.post(
        server.url,
        json={"jsonrpc": "2.0", "method": "notifications/initialized"},
        headers=hdrs(token, mcp_session_id=sid, mcp_protocol_version=version),
    )
    return hdrs(token, mcp_session_id=sid, mcp_protocol_version=version)


def modern(token: str, method: str, name: str | None = None) -> dict[str, str]:
    extra = {"mcp_protocol_version": MODERN, "mcp_method": method}
    if name is not None:
        extra["mcp_name"] = name
    return hdrs(token, **extra)


def meta(params: dict[str, Any] | None = None) -> dict[str, Any]:
    out = dict(params or {})
    out["_meta"] = {
        "io.modelcontextprotocol/protocolVersion": MODERN,
        "io.modelcontextprotocol/clientCapabilities": {},
        **out.get("_meta", {}),
    }
    return out


@pytest.fixture
async def server(request: pytest.FixtureRequest) -> AsyncIterator[MockServer]:
    async with MockServer(lean=getattr(request, "param", False)) as srv:
        yield srv


#: The test holds for the ordinary server and its lean mode (same protocol, less work).
both_modes = pytest.mark.parametrize("server", [False, True], ids=["plain", "lean"], indirect=True)


@pytest.fixture
async def client() -> AsyncIterator[httpx.AsyncClient]:
    async with make_client(timeout=5.0, verify=False, trust_env=False) as c:
        yield c


# -- streamable HTTP with sessions -----------------------------------------------------------
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


# -- auth ------------------------------------------------------------------------------------
@both_modes
async def test_auth_rejections(server: MockServer, client: httpx.AsyncClient) -> None:
    ping = rpc(1, "initialize", init_params())
    expired = server.issuer.mint("alice", lifetime=10, now=server.now() - 60)
    forged = JWTIssuer("another-secret-that-is-long-enough-for-hs256").mint("alice")
    cases = [
        (None, "no bearer token"),
        (expired, "token expired"),
        (forged, "token signature is invalid"),
        ("not.a.jwt", "token is malformed"),
    ]
    for token, description in cases:
        response = await client.post(server.url, json=ping, headers=hdrs(token))
        assert response.status_code == 401
        challenge = response.headers["www-authenticate"]
        assert challenge.startswith('Bearer error="invalid_token"')
        assert f'error_description="{description}"' in challenge
        assert f'resource_metadata="{server.resource_metadata_url}"' in challenge
    stats = server.stats()
    assert stats.expired_tokens_seen == 1 and stats.unauthorized_total == 4
    assert [r.token_expired for r in server.records] == [False, True, False, False]
    assert [r.token_present for r in server.records] == [False, True, True, True]
    assert all(expired not in repr(r) and forged not in repr(r) for r in server.records)
    metadata = await client.get(server.resource_metadata_url)
    assert metadata.json()["resource"] == server.url


@both_modes
async def test_revoke_restore_and_clock_offset(
    server: MockServer, client: httpx.AsyncClient
) -> None:
    token = server.mint("alice", lifetime=60)
    body = rpc(1, "initialize", init_params())
    assert (await client.post(server.url, json=body, headers=hdrs(token))).status_code == 200
    server.revoke("alice")
    revoked = await client.post(server.url, json=body, headers=hdrs(token))
    assert revoked.status_code == 401 and "principal revoked" in revoked.headers["www-authenticate"]
    assert (await client.post(server.url, json=body, headers=hdrs(server.mint("bob")))).is_success
    server.restore("alice")
    assert (await client.post(server.url, json=body, headers=hdrs(token))).status_code == 200
    server.clock_offset = 120.0
    skewed = await client.post(server.url, json=body, headers=hdrs(token))
    assert skewed.status_code == 401 and server.stats().expired_tokens_seen == 1
    server.clock_offset = 0.0
    assert (await client.post(server.url, json=body, headers=hdrs(token))).status_code == 200


# -- faults ----------------------------------------------------------------------------------
@both_modes
async def test_status_faults(server: MockServer, client: httpx.AsyncClient) -> None:
    token = server.mint("alice")
    body = rpc(1, "initialize", init_params())
    rule = server.faults.add(Fault.status(503, retry_after=2), times=2, path="/mcp")
    statuses = [(await client.post(server.url, json=body, headers=hdrs(token))) for _ in range(3)]
    assert [r.status_code for r in statuses] == [503, 503, 200]
    assert statuses[0].headers["retry-after"] == "2" and rule.hits == 2 and len(server.faults) == 0
    with server.faults.injected(Fault.insufficient_scope("tools:write"), principal="bob"):
        assert (await client.post(server.url, json=body, headers=hdrs(token))).status_code == 200
        bob = await client.post(server.url, json=body, headers=hdrs(server.mint("bob")))
    assert bob.status_code == 403
    assert 'error="insufficient_scope"' in bob.headers["www-authenticate"]
    assert 'scope="tools:write"' in bob.headers["www-authenticate"]
    server.faults.add(Fault.status(401), times=1)
    unauthorized = await client.post(server.url, json=body, headers=hdrs(token))
    assert 'error="invalid_token"' in unauthorized.headers["www-authenticate"]
    server.faults.add(Fault.rate_limited(retry_after=3), times=1)
    limited = await client.post(server.url, json=body, headers=hdrs(token))
    assert (limited.status_code, limited.headers["retry-after"]) == (429, "3")


async def test_405_on_get_and_session_expiry_faults(
    server: MockServer, client: httpx.AsyncClient
) -> None:
    session = await initialize(client, server, server.mint("alice"))
    server.faults.add(Fault.method_not_allowed(), method="GET", times=1)
    assert (await client.get(server.url, headers=session)).status_code == 405
    server.faults.add(Fault.session_expired(), rpc_method="tools/list", times=1)
    expired = await client.post(server.url, json=rpc(1, "tools/list"), headers=session)
    assert expired.status_code == 404
    assert (await client.post(server.url, json=rpc(2, "ping"), headers=session)).status_code == 404


async def test_stream_cut_cleanly_and_mid_event(
    server: MockServer, client: httpx.AsyncClient
) -> None:
    session = await initialize(client, server, server.mint("alice"))
    server.faults.add(Fault.cut(after_events=2), method="GET", times=1)
    async with client.stream("GET", server.url, headers=session) as response:
        await server.wait_for_streams(1)
        for n in range(3):
            server.emit("notifications/message", {"n": n})
        got = await SSE(response).messages()
    assert [m["params"]["n"] for m in got] == [0, 1]
    server.faults.add(Fault.cut_mid_event(after_events=1), method="GET", times=1)
    raw = bytearray()

    async def read_cut_stream() -> None:
        async with client.stream("GET", server.url, headers=session) as response:
            await server.wait_for_streams(1)
            server.emit("notifications/message", {"n": "first"})
            server.emit("notifications/message", {"n": "second"})
            async for chunk in response.aiter_raw():
                raw.extend(chunk)

    with pytest.raises(httpx.RemoteProtocolError):  # no terminating chunk
        await read_cut_stream()
    priming, first, partial = bytes(raw).split(b"\n\n")
    assert priming.endswith(b"data: ") and b'"first"' in first  # one whole event ...
    assert partial.startswith(b"id: L-") and b'"second"}' not in partial  # ... then half of one


async def test_stalls(server: MockServer, client: httpx.AsyncClient) -> None:
    token = server.mint("alice")
    body = rpc(1, "initialize", init_params())
    server.faults.add(Fault.stall(), times=1)
    with pytest.raises(httpx.ReadTimeout):
        await client.post(server.url, json=body, headers=hdrs(token), timeout=0.2)
    server.faults.add(Fault.stall(after_headers=True), times=1)
    async with client.stream(
        "POST", server.url, json=body, headers=hdrs(token), timeout=0.2
    ) as response:
        assert response.status_code == 200
        with pytest.raises(httpx.ReadTimeout):
            await response.aread()
    assert (await client.post(server.url, json=body, headers=hdrs(token))).status_code == 200


@pytest.mark.parametrize(
    ("fault", "check"),
    [
        (Fault.garbage(), lambda raw: b"\xff\xfe\x00" in raw),
        (Fault.oversized(200_000), lambda raw: max(len(x) for x in raw.split(b"\n")) >= 200_000),
        (Fault.non_json(), lambda raw: b"data: this is not json{" in raw),
        (
            Fault.not_jsonrpc(),
            lambda raw: json.loads(raw.split(b"data: ")[1]) == {"hello": "world"},
        ),
    ],
)
async def test_bad_byte_faults(
    server: MockServer, client: httpx.AsyncClient, fault: Fault, check: Any
) -> None:
    server.faults.add(fault, times=1)
    body = rpc(1, "initialize", init_params())
    async with client.stream(
        "POST", server.url, json=body, headers=hdrs(server.mint("alice"))
    ) as response:
        raw = await response.aread()
    assert response.status_code == 200
    assert response.headers["content-type"] == "text/event-stream"
    assert check(raw)


async def test_wrong_content_type_delay_and_disconnect(
    server: MockServer, client: httpx.AsyncClient
) -> None:
    token = server.mint("alice")
    body = rpc(1, "initialize", init_params())
    server.faults.add(Fault.wrong_content_type(), times=1)
    html = await client.post(server.url, json=body, headers=hdrs(token))
    assert (html.status_code, html.headers["content-type"]) == (200, "text/html")
    slow = server.faults.add(Fault.delay(0.01), times=1)
    assert (await client.post(server.url, json=body, headers=hdrs(token))).status_code == 200
    assert slow.hits == 1
    server.faults.add(Fault.disconnect(), times=1)
    with pytest.raises(httpx.TransportError):
        await client.post(server.url, json=body, headers=hdrs(token))
    assert server.records[-1].status == 0


# -- counters, concurrency, shutdown --------------------------------------------------------
async def test_counters_and_waiting(server: MockServer, client: httpx.AsyncClient) -> None:
    session = await initialize(client, server, server.mint("alice"))
    before = server.stats().requests_total
    t0 = server.records[-1].at

    async def bob_calls() -> None:
        bob = await initialize(client, server, server.mint("bob"))
        await client.post(server.url, json=rpc(1, "ping"), headers=bob)

    async with anyio.create_task_group() as tg:
        tg.start_soon(bob_calls)
        with anyio.fail_after(5):
            await server.wait_for_requests(3, principal="bob")
    await client.post(server.url, json=rpc(2, "tools/list"), headers=session)
    stats = server.stats()
    assert stats.requests_total == before + 4
    assert stats.by_principal == {"alice": 3, "bob": 3}
    assert stats.by_rpc_method["initialize"] == 2 and stats.by_rpc_method["tools/list"] == 1
    assert stats.by_status == {200: 4, 202: 2}
    assert all(r.at >= t0 for r in server.requests_since(t0))
    assert stats.to_json()["by_principal"] == {"alice": 3, "bob": 3}


async def test_concurrent_clients(server: MockServer, client: httpx.AsyncClient) -> None:
    async def one(i: int) -> None:
        session = await initialize(client, server, server.mint(f"user{i % 4}"))
        body = rpc(1, "tools/call", {"name": "add", "arguments": {"a": i, "b": 1}})
        _, msg = await post(client, server.url, body, session)
        assert msg is not None and msg["result"]["structuredContent"]["result"] == i + 1

    with anyio.fail_after(10):
        async with anyio.create_task_group() as tg:
            for i in range(20):
                tg.start_soon(one, i)
    stats = server.stats()
    assert stats.by_principal == {f"user{i}": 15 for i in range(4)}
    assert stats.sessions == 20 and stats.open_connections > 1


async def test_shutdown_closes_streams_promptly(client: httpx.AsyncClient) -> None:
    ended: list[str] = []

    async def listen(url: str, headers: dict[str, str], name: str) -> None:
        try:
            async with client.stream("GET", url, headers=headers) as response:
                async for _ in response.aiter_raw():
                    pass
        except httpx.TransportError:
            pass
        ended.append(name)

    with anyio.fail_after(5):
        async with anyio.create_task_group() as tg:
            async with MockServer() as server:
                token = server.mint("alice")
                session = await initialize(client, server, token)
                tg.start_soon(listen, server.url, session, "get")
                tg.start_soon(listen, server.sse_url, hdrs(token), "legacy")
                await server.wait_for_streams(2)
                server.faults.add(Fault.stall())
                tg.start_soon(listen, server.url, session, "stalled")
                await server.wait_for_requests(server.stats().requests_total + 1)
            # leaving the block closed every connection: the listeners all end
    assert sorted(ended) == ["get", "legacy", "stalled"]
    assert server.stats().open_streams == 0


# -- control endpoints, issuer, provider, CLI, exports ---------------------------------------
async def test_control_endpoints(client: httpx.AsyncClient) -> None:
    async with MockServer(control=True) as server:
        ctl = server.control_url
        token = (await client.post(ctl + "mint", json={"principal": "alice"})).json()["token"]
        session = await initialize(client, server, token)
        await client.post(ctl + "revoke", json={"principal": "alice"})
        assert (
            await client.post(server.url, json=rpc(1, "ping"), headers=session)
        ).status_code == 401
        await client.post(ctl + "restore", json={"principal": "alice"})
        many = await client.post(ctl + "revoke", json={"principals": ["bob", "carol"]})
        assert many.json() == {"revoked": ["bob", "carol"]} and server.revoked == {"bob", "carol"}
        await client.post(ctl + "restore", json={"principals": ["bob", "carol"]})
        assert server.revoked == set()
        await client.post(ctl + "faults", json={"kind": "status", "status": 502, "times": 1})
        assert (
            await client.post(server.url, json=rpc(1, "ping"), headers=session)
        ).status_code == 502
        assert (await client.post(ctl + "faults", json={"kind": "nope"})).status_code == 400
        assert (await client.post(ctl + "emit", json={"count": 2})).json() == {"delivered": 0}
        clock = await client.post(ctl + "clock", json={"offset": 3600})
        assert clock.json() == {"clock_offset": 3600.0} and server.clock_offset == 3600
        assert (
            await client.post(server.url, json=rpc(1, "ping"), headers=session)
        ).status_code == 401
        await client.post(ctl + "clock", json={"offset": 0})
        assert (await client.post(ctl + "expire-sessions", json={})).json() == {"expired": 1}
        records = (await client.get(ctl + "records", params={"since": 0})).json()
        stats = (await client.get(ctl + "stats")).json()
    assert stats["by_status"] == {"200": 1, "202": 1, "401": 2, "502": 1}
    assert stats["requests_total"] == 5 == len(records)  # control requests are not counted
    assert records[-1]["token_expired"] is True and "token" not in records[-1]


def test_jwt_issuer() -> None:
    now = [1000.0]
    issuer = JWTIssuer("a-test-secret-that-is-long-enough-for-hs256", clock=lambda: now[0])
    a, b = issuer.mint("alice", lifetime=10), issuer.mint("alice", lifetime=10)
    ca, cb = issuer.verify(a), issuer.verify(b)
    assert ca["sub"] == cb["sub"] == "alice" and ca["jti"] != cb["jti"]
    assert ca["exp"] == 1010 and issuer.minted["alice"] == 2
    now[0] = 1010.0
    with pytest.raises(TokenRejected) as expired:
        issuer.verify(a)
    assert expired.value.reason == "expired" and expired.value.claims is not None
    with pytest.raises(TokenRejected, match="signature") as forged:
        JWTIssuer("some-other-secret-long-enough-for-hs256").verify(b, now=1000.0)
    assert forged.value.reason == "bad_signature"
    short = JWTIssuer("s3cret")  # a short test secret is fine (no pyjwt warning -> error)
    assert short.verify(short.mint("bob"))["sub"] == "bob"
    assert "secret" not in repr(issuer)


class _Req:
    def __init__(self, principal: str, force: bool = False) -> None:
        self.principal, self.audience, self.force, self.reason = principal, None, force, "test"


async def test_jwt_provider() -> None:
    issuer = JWTIssuer()
    provider = JWTProvider(issuer, lifetime=5)
    token = await provider(_Req("alice"))
    assert issuer.verify(token)["sub"] == "alice"
    await provider(_Req("alice", force=True))
    assert provider.calls["alice"] == 2 and provider.forced_calls["alice"] == 1
    provider.revoke("alice")
    with pytest.raises(mcpconn.ReauthRequired):
        await provider(_Req("alice"))
    provider.restore("alice")
    provider.fail_with(RuntimeError("idp down"))
    with pytest.raises(RuntimeError):
        await provider(_Req("bob"))
    provider.fail_with(None)
    provider.hang()
    got: list[str] = []

    async def call() -> None:
        got.append(await provider(_Req("carol")))

    with anyio.fail_after(5):
        async with anyio.create_task_group() as tg:
            tg.start_soon(call)
            await provider.wait_for_call()
            assert got == []
            provider.resume()
    assert issuer.verify(got[0])["sub"] == "carol" and provider.total_calls == 5


async def test_cli_bad_arguments(capsys: pytest.CaptureFixture[str]) -> None:
    parser = argparse.ArgumentParser(prog="mcpconn")
    add_mock_server_parser(parser.add_subparsers())
    for argv in (["--port", "x"], ["--token-lifetime", "-1"], ["--eras", "grpc"]):
        args = parser.parse_args(["mock-server", *argv])
        assert await serve_mock_server(args) == 2
        err = capsys.readouterr().err
        assert err.count("\n") == 1 and err.startswith("mcpconn mock-server: error: --")


def test_exports() -> None:
    names = mcpconn.testing.__all__
    assert names == sorted(names)
    assert all(hasattr(mcpconn.testing, n) for n in names)
