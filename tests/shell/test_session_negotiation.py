"""SEP-2575 version negotiation and the client capabilities we declare (MockTransport)."""

from __future__ import annotations

from typing import Any

import httpx
import pytest
from fake_mcp import Fake, Inbox, opened
from test_session_eras import META_VERSION, Modern

from mcpconn import JSONRPCError
from mcpconn._core.eras import negotiate
from mcpconn._mcp.session import SessionHandlers, client_capabilities

CAPS_KEY = "io.modelcontextprotocol/clientCapabilities"


def unsupported(supported: Any, *, times: int = 1) -> Any:
    """A route answering the first ``times`` requests with 400 / -32022, then passing."""
    left = [times]

    async def route(request: httpx.Request, body: dict[str, Any]) -> httpx.Response | None:
        if left[0] <= 0:
            return None
        left[0] -= 1
        data = {"supported": supported, "requested": request.headers.get("mcp-protocol-version")}
        err = {"code": -32022, "message": "Unsupported protocol version", "data": data}
        return httpx.Response(400, json={"jsonrpc": "2.0", "id": body["id"], "error": err})

    return route


def with_rejection(fake: Modern, supported: Any, *, times: int = 1) -> Modern:
    reject = unsupported(supported, times=times)
    discover = fake.routes["server/discover"]

    async def route(request: httpx.Request, body: dict[str, Any]) -> httpx.Response | None:
        return await reject(request, body) or await discover(request, body)

    fake.routes["server/discover"] = route
    return fake


@pytest.mark.parametrize(
    ("data", "expected"),
    [
        ({"supported": ["2026-07-28"]}, "2026-07-28"),
        ({"supported": ["2025-06-18", "2026-07-28", "2099-01-01"]}, "2026-07-28"),
        ({"supported": ["2024-11-05", "2025-06-18"]}, "2025-06-18"),
        ({"supported": ["2099-01-01"]}, None),
        ({"supported": "2026-07-28"}, None),
        ({}, None),
        (None, None),
    ],
)
def test_negotiate_picks_the_newest_common_version(data: Any, expected: str | None) -> None:
    assert negotiate(JSONRPCError(-32022, "unsupported", data)) == expected


def test_negotiate_ignores_other_errors() -> None:
    assert negotiate(JSONRPCError(-32601, "nf", {"supported": ["2026-07-28"]})) is None


@pytest.mark.parametrize("pinned", ["2026-07-28", None])
async def test_rejected_discover_is_retried_once_with_a_common_modern_version(
    pinned: str | None,
) -> None:
    fake = with_rejection(Modern(), ["2026-07-28", "2025-11-25"])
    async with opened(fake, protocol_version=pinned) as session:
        assert session.era == "stateless"
        assert session.protocol_version == "2026-07-28"
        await session.request("tools/list")
    first, retry, _ = fake.bodies
    assert first["method"] == retry["method"] == "server/discover"
    assert first["id"] != retry["id"]
    for request, body in zip(fake.requests, fake.bodies, strict=True):
        assert request.headers["mcp-protocol-version"] == body["params"]["_meta"][META_VERSION]
    assert not fake.posted("initialize")


async def test_a_second_rejection_is_not_retried_again() -> None:
    fake = with_rejection(Modern(), ["2026-07-28"], times=5)
    with pytest.raises(JSONRPCError) as info:
        async with opened(fake, protocol_version="2026-07-28"):
            pass
    assert info.value.code == -32022
    assert len(fake.posted("server/discover")) == 2


async def test_only_session_versions_in_common_falls_back_to_initialize() -> None:
    fake = Fake(version="2025-06-18")
    fake.routes["server/discover"] = unsupported(["2025-06-18", "2099-01-01"], times=9)
    async with opened(fake, protocol_version=None) as session:
        assert session.era == "streamable-http"
        assert session.protocol_version == "2025-06-18"
    assert len(fake.posted("server/discover")) == 1


async def test_pinned_modern_version_does_not_fall_back_to_a_session_version(
    caplog: pytest.LogCaptureFixture,
) -> None:
    fake = Fake()
    fake.routes["server/discover"] = unsupported(["2025-11-25"], times=9)
    with pytest.raises(JSONRPCError) as info:
        async with opened(fake, protocol_version="2026-07-28"):
            pass
    assert info.value.code == -32022
    assert len(fake.posted("server/discover")) == 1
    assert not fake.posted("initialize")
    assert "pinned to 2026-07-28" in caplog.text


async def test_no_common_version_surfaces_the_error() -> None:
    fake = Fake()
    fake.routes["server/discover"] = unsupported(["2099-01-01"], times=9)
    with pytest.raises(JSONRPCError):
        async with opened(fake, protocol_version=None):
            pass
    assert len(fake.posted("server/discover")) == 1
    assert not fake.posted("initialize")


# ---- client capabilities --------------------------------------------------------------------


def test_client_capabilities_follow_the_handled_methods() -> None:
    assert client_capabilities([]) == {}
    assert client_capabilities(["tools/call", "ping"]) == {}
    assert client_capabilities({"elicitation/create": 1, "roots/list": 2}) == {
        "elicitation": {},
        "roots": {},
    }
    assert client_capabilities(["sampling/createMessage"]) == {"sampling": {}}


async def test_initialize_declares_the_given_capabilities_only() -> None:
    caps = client_capabilities(["elicitation/create"])
    fake = Fake()
    async with opened(fake, handlers=SessionHandlers(Inbox(), capabilities=caps)):
        pass
    async with opened(fake):
        pass
    declared, default = (b["params"]["capabilities"] for b in fake.posted("initialize"))
    assert declared == {"elicitation": {}}
    assert default == {}


async def test_stateless_requests_declare_the_given_capabilities() -> None:
    caps = client_capabilities(["sampling/createMessage", "roots/list"])
    fake = Modern()
    handlers = SessionHandlers(Inbox(), capabilities=caps)
    async with opened(fake, protocol_version="2026-07-28", handlers=handlers) as session:
        await session.request("tools/list")
    assert [b["params"]["_meta"][CAPS_KEY] for b in fake.bodies] == [caps, caps]
