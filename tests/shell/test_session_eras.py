"""The stateless 2026-07-28 era and era detection (MockTransport); legacy SSE: its own module."""

from __future__ import annotations

import base64
from collections.abc import AsyncIterator
from typing import Any

import anyio
import httpx
import pytest
from fake_mcp import (
    URL,
    Fake,
    Inbox,
    an_empty_stream,
    json_reply,
    msg,
    opened,
    result,
    sse,
    sse_reply,
)

from mcpconn import (
    ConnectError,
    JSONRPCError,
    ProtocolError,
    RequestTimeout,
    StreamEnded,
    Unauthorized,
)
from mcpconn._core.classify import classify
from mcpconn._core.machine import Input
from mcpconn._mcp.session import EraCache, SessionHandlers
from mcpconn._mcp.transports.params import encode_header_value

META_VERSION = "io.modelcontextprotocol/protocolVersion"


class Modern(Fake):
    """A 2026-07-28 server: discover answers; initialize is unknown."""

    def __init__(self, supported: list[str] | None = None) -> None:
        super().__init__()
        self.supported = supported or ["2026-07-28"]

        async def discover(request: httpx.Request, body: dict[str, Any]) -> httpx.Response:
            res = {
                "supportedVersions": self.supported,
                "capabilities": {"tools": {}},
                "instructions": "modern",
                "_meta": {"io.modelcontextprotocol/serverInfo": {"name": "m", "version": "2"}},
            }
            return json_reply(result(body["id"], res))

        async def unknown(request: httpx.Request, body: dict[str, Any]) -> httpx.Response:
            err = {"jsonrpc": "2.0", "id": body["id"], "error": {"code": -32601, "message": "nf"}}
            return httpx.Response(404, json=err)

        self.routes["server/discover"] = discover
        self.routes["initialize"] = unknown
        self.routes["no/such"] = unknown


# ---- stateless -----------------------------------------------------------------------------


async def test_stateless_discover_meta_and_mirrored_headers() -> None:
    fake = Modern()
    async with opened(fake, protocol_version="2026-07-28") as session:
        assert session.era == "stateless"
        assert session.protocol_version == "2026-07-28"
        assert session.server_info == {"name": "m", "version": "2"}
        assert session.instructions == "modern"
        await session.request("tools/call", {"name": "wörk", "arguments": {}})
        await session.request("resources/read", {"uri": "file:///a"})
    discover, call, read = fake.requests
    for request, body in zip(fake.requests, fake.bodies, strict=True):
        meta = body["params"]["_meta"]
        assert meta[META_VERSION] == "2026-07-28"
        assert meta["io.modelcontextprotocol/clientInfo"]["name"] == "mcpconn"
        assert meta["io.modelcontextprotocol/clientCapabilities"] == {}
        assert request.headers["mcp-protocol-version"] == "2026-07-28"
        assert request.headers["mcp-method"] == body["method"]
        assert "mcp-session-id" not in request.headers
    assert call.headers["mcp-name"] == encode_header_value("wörk")
    assert read.headers["mcp-name"] == "file:///a"
    assert "mcp-name" not in discover.headers


@pytest.mark.parametrize(
    ("value", "encoded"),
    [
        ("us-west1", "us-west1"),
        (" padded ", "=?base64?IHBhZGRlZCA=?="),
        ("Hello, 世界", "=?base64?SGVsbG8sIOS4lueVjA==?="),
        ("=?base64?literal?=", "=?base64?PT9iYXNlNjQ/bGl0ZXJhbD89?="),
    ],
)
def test_header_value_encoding_matches_the_spec_examples(value: str, encoded: str) -> None:
    assert encode_header_value(value) == encoded
    if encoded.startswith("=?base64?"):
        assert base64.b64decode(encoded[9:-2]).decode() == value


async def test_stateless_404_is_method_not_found_not_session_expiry() -> None:
    fake = Modern()
    async with opened(fake, protocol_version="2026-07-28") as session:
        with pytest.raises(JSONRPCError) as info:
            await session.request("no/such")
    assert info.value.code == -32601
    assert not fake.posted("initialize")


async def test_stateless_lost_stream_is_reissued_once_with_a_new_id() -> None:
    fake = Modern()
    attempts: list[Any] = []

    async def flaky(request: httpx.Request, body: dict[str, Any]) -> httpx.Response:
        attempts.append(body["id"])
        if len(attempts) == 1:

            async def broken() -> AsyncIterator[bytes]:
                yield sse(msg({"method": "notifications/message", "params": {"data": 1}}))
                raise httpx.RemoteProtocolError("gone")

            return sse_reply(broken())
        return json_reply(result(body["id"], {"ok": True}))

    fake.routes["tools/call"] = flaky
    async with opened(fake, protocol_version="2026-07-28") as session:
        assert await session.request("tools/call", {"name": "x"}) == {"ok": True}
        assert session.statistics().reissued == 1
    assert len(attempts) == 2
    assert attempts[0] != attempts[1]


@pytest.mark.parametrize("refused", [httpx.ConnectError("refused"), httpx.ConnectTimeout("slow")])
async def test_stateless_request_that_never_left_is_not_reissued(refused: Exception) -> None:
    fake = Modern()
    attempts: list[Any] = []

    async def unreachable(request: httpx.Request, body: dict[str, Any]) -> httpx.Response:
        attempts.append(body["id"])
        raise refused

    fake.routes["tools/call"] = unreachable
    async with opened(fake, protocol_version="2026-07-28") as session:
        with pytest.raises(ConnectError) as info:
            await session.request("tools/call", {"name": "x"})
        assert session.statistics().reissued == 0
    assert info.value.__cause__ is refused
    assert len(attempts) == 1


async def test_stateless_lost_twice_fails() -> None:
    from mcpconn import TransportError

    fake = Modern()
    fake.routes["tools/call"] = an_empty_stream
    async with opened(fake, protocol_version="2026-07-28") as session:
        with pytest.raises(TransportError):
            await session.request("tools/call", {"name": "x"})
    assert len(fake.posted("tools/call")) == 2


async def test_stateless_timeout_sends_no_cancelled_and_ping_is_discover() -> None:
    fake = Modern()

    async def hang(request: httpx.Request, body: dict[str, Any]) -> httpx.Response:
        await anyio.sleep_forever()
        raise AssertionError  # pragma: no cover

    fake.routes["tools/call"] = hang
    async with opened(fake, protocol_version="2026-07-28") as session:
        with pytest.raises(RequestTimeout):
            await session.request("tools/call", timeout=0.05)
        assert await session.request("ping") == {}
    assert not fake.posted("notifications/cancelled")
    assert not fake.posted("ping")
    assert len(fake.posted("server/discover")) == 2
    assert all(r.method == "POST" for r in fake.requests)  # no GET, no DELETE


async def test_subscriptions_listen_stream() -> None:
    fake, inbox = Modern(), Inbox()

    async def listen(request: httpx.Request, body: dict[str, Any]) -> httpx.Response:
        sid = {"io.modelcontextprotocol/subscriptionId": body["id"]}
        ack = {"_meta": sid, "notifications": body["params"]["notifications"]}
        return sse_reply(
            sse(
                msg({"method": "notifications/subscriptions/acknowledged", "params": ack}),
                msg({"method": "notifications/tools/list_changed", "params": {"_meta": sid}}),
                "data: garbage",
                msg({"id": body["id"], "result": {"_meta": sid}}),
            )
        )

    fake.routes["subscriptions/listen"] = listen
    handlers = SessionHandlers(inbox)
    async with opened(fake, protocol_version="2026-07-28", handlers=handlers) as session:
        with pytest.raises(StreamEnded) as info:
            await session.listen()
        assert info.value.retry is None
        assert session.statistics().skipped_messages == 1
    (body,) = fake.posted("subscriptions/listen")
    assert body["params"]["notifications"]["toolsListChanged"] is True
    assert inbox.methods() == [
        "notifications/subscriptions/acknowledged",
        "notifications/tools/list_changed",
    ]


async def test_subscriptions_listen_unknown_raises_the_servers_method_not_found() -> None:
    # What happened, not a fabricated 405: the classifier reads -32601 as "no listener".
    fake = Modern()
    fake.routes["subscriptions/listen"] = fake.routes["no/such"]
    async with opened(fake, protocol_version="2026-07-28") as session:
        with pytest.raises(JSONRPCError) as info:
            await session.listen()
    assert info.value.code == -32601
    assert classify(info.value, during="listen").input is Input.NO_LISTENER


# ---- era detection -------------------------------------------------------------------------


async def test_auto_prefers_the_modern_era_and_caches_it() -> None:
    cache = EraCache()
    async with opened(Modern(), protocol_version=None, era_cache=cache) as session:
        assert session.era == "stateless"
    assert cache.get(URL) == "stateless"


async def test_auto_falls_back_to_initialize_on_a_plain_404() -> None:
    fake, cache = Fake(), EraCache()
    async with opened(fake, protocol_version=None, era_cache=cache) as session:
        assert session.era == "streamable-http"
        assert session.protocol_version == "2025-11-25"
    assert cache.get(URL) == "streamable-http"
    assert [b.get("method") for b in fake.bodies[:2]] == ["server/discover", "initialize"]
    # Next time the cached era goes first: no probe.
    fake.bodies.clear()
    async with opened(fake, protocol_version=None, era_cache=cache):
        pass
    assert fake.bodies[0]["method"] == "initialize"


async def test_discover_naming_no_modern_version_is_a_legacy_server() -> None:
    fake = Modern(supported=["2025-11-25"])
    del fake.routes["initialize"]
    async with opened(fake, protocol_version=None) as session:
        assert session.era == "streamable-http"


@pytest.mark.parametrize(
    ("supported", "falls_back"), [(["2025-06-18", "2027-01-01"], True), (["2027-01-01"], False)]
)
async def test_unsupported_version_error_decides_by_its_supported_list(
    supported: list[str], falls_back: bool
) -> None:
    fake = Fake()

    async def unsupported(request: httpx.Request, body: dict[str, Any]) -> httpx.Response:
        err = {"code": -32022, "message": "unsupported", "data": {"supported": supported}}
        return httpx.Response(400, json={"jsonrpc": "2.0", "id": body["id"], "error": err})

    fake.routes["server/discover"] = unsupported
    if falls_back:
        async with opened(fake, protocol_version=None) as session:
            assert session.era == "streamable-http"
    else:
        with pytest.raises(JSONRPCError) as info:
            async with opened(fake, protocol_version=None):
                pass
        assert info.value.code == -32022
        assert not fake.posted("initialize")


async def test_auth_failure_while_probing_is_not_an_era_verdict() -> None:
    fake = Fake()

    async def denied(request: httpx.Request, body: dict[str, Any]) -> httpx.Response:
        return httpx.Response(401)

    fake.routes["server/discover"] = denied
    with pytest.raises(Unauthorized):
        async with opened(fake, protocol_version=None):
            pass
    assert not fake.posted("initialize")


async def test_cached_era_that_fails_is_forgotten_and_detection_reruns() -> None:
    cache = EraCache()
    cache.set(URL, "sse")
    fake = Fake()  # GET answers 405: not a legacy server any more
    async with opened(fake, protocol_version=None, era_cache=cache) as session:
        assert session.era == "streamable-http"
    assert cache.get(URL) == "streamable-http"


def test_plan_for_pinned_eras() -> None:
    from mcpconn._config import ServerConfig
    from mcpconn._core.eras import plan as plan_eras

    def plan(**kw: Any) -> list[str]:
        return list(plan_eras(ServerConfig(name="x", url=URL, **kw), None))

    assert plan() == ["stateless", "streamable-http", "sse"]
    assert plan(transport="streamable-http") == ["stateless", "streamable-http"]
    assert plan(transport="sse") == ["sse"]
    assert plan(protocol_version="2026-07-28") == ["stateless"]
    assert plan(protocol_version="2025-06-18") == ["streamable-http", "sse"]
    assert plan(protocol_version="2024-11-05", transport="streamable-http") == ["streamable-http"]
    with pytest.raises(ProtocolError):
        plan(protocol_version="2026-07-28", transport="sse")
