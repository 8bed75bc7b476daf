"""Streamable HTTP with sessions (2025-03-26 .. 2025-11-25) against the official SDK server."""

from __future__ import annotations

import pytest
from sdkpeer import Inbox, Peer, StaticBearer, list_all_tools, mint, work

from mcpconn import JSONRPCError, Unauthorized
from mcpconn._mcp.session import EraCache

pytestmark = pytest.mark.interop


SESSION_VERSIONS = ["2025-11-25", "2025-06-18", "2025-03-26"]
VERSION = SESSION_VERSIONS[0]


@pytest.mark.parametrize("version", SESSION_VERSIONS)
async def test_stateful_session_tools_progress_and_logs(
    peer: Peer, bearer: StaticBearer, inbox: Inbox, version: str
) -> None:
    async with peer.session("stateful", version=version) as session:
        assert session.era == "streamable-http"
        assert session.protocol_version == version
        assert session.server_info["name"] == "sdk-peer"
        assert session.instructions == "A test peer."
        assert "tools" in session.capabilities
        assert session.session_id

        names = {tool["name"] for tool in await list_all_tools(session)}
        assert {"echo", "work", "extra_0", "extra_2"} <= names

        echoed = await session.request("tools/call", {"name": "echo", "arguments": {"text": "hi"}})
        assert echoed["content"][0]["text"] == "hi"

        result, progress = await work(session, 3)
        assert result["content"][0]["text"] == "did 3 steps"
        assert [p["progress"] for p in progress] == [1, 2, 3]
        assert progress[-1]["message"] == "step 3"
        assert "notifications/message" in inbox.methods()
        assert inbox.methods().count("notifications/progress") == 3
        await session.request("ping")
    # Every request carried the token, the DELETE included.
    assert bearer.methods["DELETE"] == 1
    assert bearer.methods["POST"] >= 5


async def test_unknown_tool_and_method_are_jsonrpc_errors(peer: Peer) -> None:
    async with peer.session("stateful", version=VERSION) as session:
        with pytest.raises(JSONRPCError) as info:
            await session.request("no/such/method")
        assert info.value.code == -32601
        result = await session.request("tools/call", {"name": "nope", "arguments": {}})
        assert result.get("isError") is True


async def test_json_response_mode(peer: Peer) -> None:
    async with peer.session("json", version=VERSION) as session:
        assert {t["name"] for t in await list_all_tools(session)} >= {"echo", "work"}
        result, _ = await work(session, 2)
        assert result["content"][0]["text"] == "did 2 steps"
        # JSON replies carry only the response; progress may come on the listener.


async def test_stateless_http_mode(peer: Peer, bearer: StaticBearer) -> None:
    async with peer.session("stateless", version=VERSION) as session:
        assert session.era == "streamable-http"
        assert session.session_id is None
        result, progress = await work(session, 2)
        assert result["content"][0]["text"] == "did 2 steps"
        assert [p["progress"] for p in progress] == [1, 2]
    assert bearer.methods["DELETE"] == 0


async def test_listener_receives_server_notifications(
    peer: Peer, bearer: StaticBearer, inbox: Inbox
) -> None:
    changed = "notifications/tools/list_changed"
    announce = {"name": "announce", "arguments": {}}
    async with peer.listening("stateful", version=VERSION) as session:
        # The server drops it until our GET is registered there; we cannot see
        # that moment, so announce until it arrives (each try is a round trip).
        while changed not in inbox.methods():
            await session.request("tools/call", announce)
    assert bearer.methods["GET"] == 1


async def test_expired_token_is_unauthorized(peer: Peer) -> None:
    expired = StaticBearer(mint(ttl=-60))
    with pytest.raises(Unauthorized) as info:
        async with peer.session("stateful", version=VERSION, auth=expired):
            pass
    assert info.value.challenge is not None
    assert info.value.challenge.error == "invalid_token"
    assert expired.token not in str(info.value)


async def test_auto_detects_modern_era_on_a_dual_era_server_and_caches_it(peer: Peer) -> None:
    cache = EraCache()
    for _ in range(2):
        async with peer.session("stateful", era_cache=cache) as session:
            assert session.era == "stateless"
            assert session.protocol_version == "2026-07-28"
    assert cache.get(peer.url("stateful")) == "stateless"
