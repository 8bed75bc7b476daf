"""Resumption (EventStore + close_sse_stream) and session expiry (idle timeout -> 404)."""

from __future__ import annotations

from contextlib import AbstractAsyncContextManager

import anyio
import pytest
from sdkpeer import IDLE_SECONDS, Peer, StaticBearer

from mcpconn import StreamEnded
from mcpconn._mcp.session import Session

pytestmark = pytest.mark.interop


VERSION = "2025-11-25"


@pytest.fixture
def reinitialized() -> list[None]:
    """One entry per re-initialization of an `idle_session`."""
    return []


def idle_session(peer: Peer, reinitialized: list[None]) -> AbstractAsyncContextManager[Session]:
    """A session on the mode whose server forgets sessions after `IDLE_SECONDS`."""
    return peer.session(
        "idle", version=VERSION, on_reinitialized=lambda: reinitialized.append(None)
    )


async def outlive_the_idle_timeout() -> None:
    # The scenario itself needs the server's idle timer to run out.
    await anyio.sleep(IDLE_SECONDS * 2)


async def test_post_stream_closed_mid_call_is_resumed_with_last_event_id(
    peer: Peer, bearer: StaticBearer
) -> None:
    progress: list[dict[str, object]] = []
    async with peer.session("resumable", version=VERSION) as session:
        result = await session.request(
            "tools/call", {"name": "interrupted", "arguments": {}}, on_progress=progress.append
        )
        assert result["content"][0]["text"] == "resumed"
        assert [p["message"] for p in progress] == ["before the break", "after the break"]
        stats = session.statistics()
        assert stats.resumptions == 1
        assert stats.pending == 0
    assert bearer.methods["GET"] == 1  # the resumption GET carried the token too


async def test_idle_session_expiry_reinitializes_once_and_reissues(
    peer: Peer, reinitialized: list[None]
) -> None:
    async with idle_session(peer, reinitialized) as s:
        first = s.session_id
        await outlive_the_idle_timeout()
        result = await s.request("tools/call", {"name": "echo", "arguments": {"text": "x"}})
        assert result["content"][0]["text"] == "x"
        assert reinitialized == [None]
        assert s.session_id not in (None, first)
        assert s.statistics().reinitializations == 1


async def test_listener_resumes_after_clean_end_and_survives_expiry(
    peer: Peer, reinitialized: list[None]
) -> None:
    async with idle_session(peer, reinitialized) as s:
        await outlive_the_idle_timeout()
        # The expired session's GET is a 404: re-initialize, then "listen again".
        with pytest.raises(StreamEnded) as info:
            await s.listen()
        assert info.value.retry is None
        assert reinitialized == [None]
        await s.request("ping")
