"""Streamable HTTP with sessions (2025-03-26 .. 2025-11-25) against the official SDK server."""

from __future__ import annotations

import anyio
import httpx
import pytest
from sdkpeer import Inbox, SDKServers, StaticBearer, list_all_tools, mint

from mcpconn import JSONRPCError, ServerConfig, Timeouts, Unauthorized
from mcpconn._session import EraCache, SessionHandlers, open_session

pytestmark = pytest.mark.interop


SESSION_VERSIONS = ["2025-11-25", "2025-06-18", "2025-03-26"]


def config(url: str, version: str | None = "2025-11-25", **kw: object) -> ServerConfig:
    timeouts = Timeouts(connect=5.0, request=10.0, read=10.0, close=2.0)
    return ServerConfig(
        name="sdk",
        url=url,
        protocol_version=version,
        timeouts=timeouts,
        **kw,  # type: ignore[arg-type]
    )


@pytest.mark.parametrize("version", SESSION_VERSIONS)
async def test_stateful_session_tools_progress_and_logs(
    sdk: SDKServers, client: httpx.AsyncClient, bearer: StaticBearer, inbox: Inbox, version: str
) -> None:
    server = sdk("stateful")
    progress: list[dict[str, object]] = []
    with anyio.fail_after(20):
        async with open_session(
            client, config(server.url, version), auth=bearer, handlers=SessionHandlers(inbox)
        ) as session:
            assert session.era == "streamable-http"
            assert session.protocol_version == version
            assert session.server_info["name"] == "sdk-peer"
            assert session.instructions == "A test peer."
            assert "tools" in session.capabilities
            assert session.session_id

            names = {tool["name"] for tool in await list_all_tools(session)}
            assert {"echo", "work", "extra_0", "extra_2"} <= names

            echoed = await session.request(
                "tools/call", {"name": "echo", "arguments": {"text": "hi"}}
            )
            assert echoed["content"][0]["text"] == "hi"

            result = await session.request(
                "tools/call",
                {"name": "work", "arguments": {"steps": 3}},
                on_progress=progress.append,
            )
            assert result["content"][0]["text"] == "did 3 steps"
            assert [p["progress"] for p in progress] == [1, 2, 3]
            assert progress[-1]["message"] == "step 3"
            assert "notifications/message" in inbox.methods()
            assert inbox.methods().count("notifications/progress") == 3
            await session.request("ping")
    # Every request carried the token, the DELETE included.
    assert bearer.methods["DELETE"] == 1
    assert bearer.methods["POST"] >= 5


async def test_unknown_tool_and_method_are_jsonrpc_errors(
    sdk: SDKServers, client: httpx.AsyncClient, bearer: StaticBearer, inbox: Inbox
) -> None:
    server = sdk("stateful")
    with anyio.fail_after(20):
        async with open_session(
            client, config(server.url), auth=bearer, handlers=SessionHandlers(inbox)
        ) as session:
            with pytest.raises(JSONRPCError) as info:
                await session.request("no/such/method")
            assert info.value.code == -32601
            result = await session.request("tools/call", {"name": "nope", "arguments": {}})
            assert result.get("isError") is True


async def test_json_response_mode(
    sdk: SDKServers, client: httpx.AsyncClient, bearer: StaticBearer, inbox: Inbox
) -> None:
    server = sdk("json")
    progress: list[dict[str, object]] = []
    with anyio.fail_after(20):
        async with open_session(
            client, config(server.url), auth=bearer, handlers=SessionHandlers(inbox)
        ) as session:
            assert {t["name"] for t in await list_all_tools(session)} >= {"echo", "work"}
            result = await session.request(
                "tools/call",
                {"name": "work", "arguments": {"steps": 2}},
                on_progress=progress.append,
            )
            assert result["content"][0]["text"] == "did 2 steps"
            # JSON replies carry only the response; progress may come on the listener.


async def test_stateless_http_mode(
    sdk: SDKServers, client: httpx.AsyncClient, bearer: StaticBearer, inbox: Inbox
) -> None:
    server = sdk("stateless")
    progress: list[dict[str, object]] = []
    with anyio.fail_after(20):
        async with open_session(
            client, config(server.url), auth=bearer, handlers=SessionHandlers(inbox)
        ) as session:
            assert session.era == "streamable-http"
            assert session.session_id is None
            result = await session.request(
                "tools/call",
                {"name": "work", "arguments": {"steps": 2}},
                on_progress=progress.append,
            )
            assert result["content"][0]["text"] == "did 2 steps"
            assert [p["progress"] for p in progress] == [1, 2]
    assert bearer.methods["DELETE"] == 0


async def test_listener_receives_server_notifications(
    sdk: SDKServers, client: httpx.AsyncClient, bearer: StaticBearer, inbox: Inbox
) -> None:
    server = sdk("stateful")
    changed = "notifications/tools/list_changed"
    announce = {"name": "announce", "arguments": {}}
    with anyio.fail_after(20):
        async with (
            open_session(
                client, config(server.url), auth=bearer, handlers=SessionHandlers(inbox)
            ) as session,
            anyio.create_task_group() as tg,
        ):
            tg.start_soon(session.listen)
            # The server drops it until our GET is registered there; we cannot see
            # that moment, so announce until it arrives (each try is a round trip).
            while changed not in inbox.methods():
                await session.request("tools/call", announce)
            tg.cancel_scope.cancel()
    assert bearer.methods["GET"] == 1


async def test_expired_token_is_unauthorized(
    sdk: SDKServers, client: httpx.AsyncClient, inbox: Inbox
) -> None:
    server = sdk("stateful")
    expired = StaticBearer(mint(ttl=-60))
    with anyio.fail_after(20), pytest.raises(Unauthorized) as info:
        async with open_session(
            client, config(server.url), auth=expired, handlers=SessionHandlers(inbox)
        ):
            pass
    assert info.value.challenge is not None
    assert info.value.challenge.error == "invalid_token"
    assert expired.token not in str(info.value)


async def test_auto_detects_modern_era_on_a_dual_era_server_and_caches_it(
    sdk: SDKServers, client: httpx.AsyncClient, bearer: StaticBearer, inbox: Inbox
) -> None:
    server = sdk("stateful")
    cache = EraCache()
    for _ in range(2):
        with anyio.fail_after(20):
            async with open_session(
                client,
                config(server.url, None),
                auth=bearer,
                handlers=SessionHandlers(inbox),
                era_cache=cache,
            ) as session:
                assert session.era == "stateless"
                assert session.protocol_version == "2026-07-28"
    assert cache.get(server.url) == "stateless"
