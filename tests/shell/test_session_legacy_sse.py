"""The legacy HTTP+SSE era (2024-11-05): one GET stream carries every answer (MockTransport)."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from typing import Any

import anyio
import httpx
import pytest
from fake_mcp import URL, Fake, msg, opened, sse, sse_reply

from mcpconn import ProtocolError, SessionLost
from mcpconn._mcp.session import EraCache
from mcpconn._mcp.transports.legacy_sse import resolve_endpoint


@pytest.fixture
def legacies() -> Any:
    """Builds `Legacy` fakes and closes their memory streams afterwards."""
    made: list[Legacy] = []

    def make(**kw: Any) -> Legacy:
        made.append(Legacy(**kw))
        return made[-1]

    yield make
    for fake in made:
        fake.close()


class Legacy(Fake):
    """A 2024-11-05 server: GET /sse streams, POST /messages answers 202."""

    def __init__(self, endpoint: str = "/messages/?session_id=abc") -> None:
        super().__init__(version="2024-11-05")
        self.endpoint = endpoint
        self.send, self.receive = anyio.create_memory_object_stream[bytes](100)
        self.get = self._stream
        self.routes["server/discover"] = self._not_here

    def close(self) -> None:
        self.send.close()
        self.receive.close()

    async def _not_here(self, request: httpx.Request, body: dict[str, Any]) -> httpx.Response:
        return httpx.Response(405)

    async def _stream(self, request: httpx.Request) -> httpx.Response:
        async def body() -> AsyncIterator[bytes]:
            yield sse(f"event: endpoint\ndata: {self.endpoint}")
            async for chunk in self.receive:
                yield chunk

        return sse_reply(body())

    async def __call__(self, request: httpx.Request) -> httpx.Response:
        if request.method == "POST" and request.url.path == "/mcp":
            self.requests.append(request)
            self.bodies.append(json.loads(request.content))
            return httpx.Response(405)
        if request.method != "POST":
            return await super().__call__(request)
        response = await super().__call__(request)
        if response.status_code == 200:  # move the answer onto the SSE stream
            self.send.send_nowait(sse(f"data: {response.content.decode()}"))
            return httpx.Response(202)
        return response


async def test_legacy_session_posts_to_the_endpoint_and_reads_the_stream(legacies: Any) -> None:
    fake = legacies()
    async with opened(fake, transport="sse", protocol_version=None) as session:
        assert session.era == "sse"
        assert await session.request("tools/list") == {"echo": "tools/list"}
        fake.send.send_nowait(sse("data: nonsense"))
        fake.send.send_nowait(sse(msg({"method": "notifications/message", "params": {}})))
        assert await session.request("ping") == {"echo": "ping"}
        assert session.statistics().skipped_messages == 1
    posts = [r for r in fake.requests if r.method == "POST"]
    assert {str(r.url) for r in posts} == {"http://127.0.0.1:9/messages/?session_id=abc"}
    assert posts[-1].headers["mcp-protocol-version"] == "2024-11-05"


async def test_auto_detects_legacy_after_two_fallbacks(legacies: Any) -> None:
    fake, cache = legacies(), EraCache()
    async with opened(fake, protocol_version=None, era_cache=cache) as session:
        assert session.era == "sse"
    assert cache.get(URL) == "sse"


async def test_legacy_stream_end_fails_pending_requests_and_listen(legacies: Any) -> None:
    fake = legacies()
    gate = anyio.Event()

    async def swallow(request: httpx.Request, body: dict[str, Any]) -> httpx.Response:
        gate.set()
        return httpx.Response(202)  # the answer never comes

    fake.routes["tools/call"] = swallow
    async with opened(fake, transport="sse", protocol_version=None) as session:
        async with anyio.create_task_group() as tg:

            async def call() -> None:
                with pytest.raises(SessionLost):
                    await session.request("tools/call")

            tg.start_soon(call)
            await gate.wait()
            fake.send.close()
        with pytest.raises(SessionLost):
            await session.listen()
        with pytest.raises(SessionLost):
            await session.request("ping")


@pytest.mark.parametrize(
    ("endpoint", "expected"),
    [
        ("/messages/?s=1", "http://127.0.0.1:9/messages/?s=1"),
        ("messages?s=1", "http://127.0.0.1:9/messages?s=1"),
        ("http://127.0.0.1:9/m", "http://127.0.0.1:9/m"),
        ("http://127.0.0.1:80/m", None),
        ("https://127.0.0.1:9/m", None),
        ("http://evil.example/m", None),
        ("//evil.example/m", None),
    ],
)
def test_endpoint_resolution_and_origin_check(endpoint: str, expected: str | None) -> None:
    if expected is None:
        with pytest.raises(ProtocolError, match="origin"):
            resolve_endpoint("http://127.0.0.1:9/sse", endpoint)
    else:
        assert resolve_endpoint("http://127.0.0.1:9/sse", endpoint) == expected


async def test_legacy_endpoint_on_another_origin_is_refused(legacies: Any) -> None:
    fake = legacies(endpoint="http://evil.example/steal")
    with pytest.raises(ProtocolError, match="origin"):
        async with opened(fake, transport="sse", protocol_version=None):
            pass
    assert not any(r.url.host == "evil.example" for r in fake.requests)
