"""The stateless 2026-07-28 era against the official SDK server."""

from __future__ import annotations

import pytest
from sdkpeer import Inbox, Peer, StaticBearer, list_all_tools, work

from mcpconn import JSONRPCError

pytestmark = pytest.mark.interop


MODERN = "2026-07-28"
LOG_LEVEL = "io.modelcontextprotocol/logLevel"


@pytest.mark.parametrize("mode", ["stateful", "json"])
async def test_stateless_era_discover_tools_progress(
    peer: Peer, bearer: StaticBearer, inbox: Inbox, mode: str
) -> None:
    async with peer.session(mode, version=MODERN) as session:
        assert session.era == "stateless"
        assert session.protocol_version == "2026-07-28"
        assert session.session_id is None
        assert "tools" in session.capabilities
        assert session.instructions == "A test peer."
        # The SDK checks Mcp-Param-Region against the body. The first call has no
        # header (tools not listed yet): HeaderMismatch -> re-list -> retry.
        for text in ("first", "second"):
            call = {"name": "regional", "arguments": {"region": "eu-west", "text": text}}
            regional = await session.request("tools/call", call)
            assert regional["content"][0]["text"] == f"eu-west:{text}"
        assert {t["name"] for t in await list_all_tools(session)} >= {"echo", "work"}
        echoed = await session.request(
            "tools/call", {"name": "echo", "arguments": {"text": "héllo wörld"}}
        )
        assert echoed["content"][0]["text"] == "héllo wörld"
        result, progress = await work(session, 2, meta={LOG_LEVEL: "debug"})
        assert result["content"][0]["text"] == "did 2 steps"
        if mode == "stateful":  # SSE replies carry the request's notifications
            assert [p["progress"] for p in progress] == [1, 2]
            assert "notifications/message" in inbox.methods()
        with pytest.raises(JSONRPCError) as info:
            await session.request("no/such/method")
        assert info.value.code == -32601
    assert bearer.methods["DELETE"] == 0
    assert bearer.methods["GET"] == 0
    assert session.statistics().requests == 9  # incl. the HeaderMismatch re-list + retry


async def test_subscriptions_listen_is_the_listener(
    peer: Peer, bearer: StaticBearer, inbox: Inbox
) -> None:
    async with peer.listening("stateful", version=MODERN) as session:
        ack = await inbox.wait_for("notifications/subscriptions/acknowledged")
        assert ack["params"]["notifications"]["toolsListChanged"] is True
        assert await session.request("ping") == {}  # 2026 has no ping: discover
        await session.request("tools/call", {"name": "announce", "arguments": {}})
        changed = await inbox.wait_for("notifications/tools/list_changed")
        assert "io.modelcontextprotocol/subscriptionId" in changed["params"]["_meta"]
    assert bearer.methods["POST"] == 4  # discover, listen, the ping's discover, announce
