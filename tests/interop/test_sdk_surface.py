"""What an aggregator forwards, through a `Connection`, against the official SDK server.

Both the session era (2025-11-25) and 2026-07-28 on the SDK's one endpoint:
per-call notifications and meta, server requests routed with the call's
context (mid-call elicitation, or 2026 input rounds), the negotiated state,
resources, templates, prompts, completion and resource subscriptions.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Mapping
from contextlib import asynccontextmanager
from typing import Any

import anyio
import pytest
from sdkpeer import TIMEOUTS, SDKServers, mint

from mcpconn import (
    Connection,
    InputRequired,
    JSONRPCError,
    ServerConfig,
    ServerRequest,
    State,
    Supervisor,
    TokenRequest,
    TokenSource,
)
from mcpconn._supervision.server_requests import RequestHandler

pytestmark = pytest.mark.interop

SESSION, MODERN, LEGACY = "2025-11-25", "2026-07-28", "2024-11-05"
ERAS = {SESSION: "streamable-http", MODERN: "stateless", LEGACY: "sse"}


async def provider(request: TokenRequest) -> str:
    return mint()


@asynccontextmanager
async def connected(
    sdk: SDKServers,
    version: str,
    *,
    handlers: Mapping[str, RequestHandler] | None = None,
    **options: Any,
) -> AsyncIterator[Connection]:
    legacy = version == LEGACY
    config = ServerConfig(
        "sdk",
        sdk("sse" if legacy else "stateful").url,
        transport="sse" if legacy else "streamable-http",
        protocol_version=version,
        timeouts=TIMEOUTS,
        **options,
    )
    with anyio.fail_after(30):
        async with Supervisor(TokenSource(provider)) as sup:
            conn = await sup.connect(config, "alice", request_handlers=handlers)
            await conn.wait_for(State.READY)
            yield conn


@pytest.mark.parametrize("version", [SESSION, MODERN, LEGACY])
async def test_negotiated_state(sdk: SDKServers, version: str) -> None:
    async with connected(sdk, version) as conn:
        assert conn.server_info is not None and conn.server_info["name"] == "sdk-peer"
        assert conn.instructions == "A test peer."
        assert conn.protocol_version == version
        assert conn.era == ERAS[version]
        assert conn.server_capabilities is not None and "tools" in conn.server_capabilities
        if version != SESSION:
            assert conn.session_id is None
        else:
            assert isinstance(conn.session_id, str) and conn.session_id


@pytest.mark.parametrize("version", [SESSION, MODERN])
async def test_a_calls_own_logs_and_progress_reach_its_callback_in_order(
    sdk: SDKServers, version: str
) -> None:
    async with connected(sdk, version, log_level="debug") as conn:
        notes: list[dict[str, Any]] = []
        progress: list[dict[str, Any]] = []
        result = await conn.call_tool(
            "work",
            {"steps": 2},
            on_progress=progress.append,
            on_notification=notes.append,
            meta={"traceparent": "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01"},
        )
        assert result["content"][0]["text"] == "did 2 steps"
        assert [n["method"] for n in notes] == [
            "notifications/message",
            "notifications/progress",
            "notifications/progress",
        ]
        assert notes[0]["params"]["data"] == "working"
        assert [p["progress"] for p in progress] == [1, 2]
        # another call's stream carries nothing into this call's callback
        await conn.call_tool("echo", {"text": "x"})
        assert len(notes) == 3


async def test_2026_without_a_log_level_the_server_sends_no_logs(sdk: SDKServers) -> None:
    async with connected(sdk, MODERN) as conn:
        notes: list[dict[str, Any]] = []
        await conn.call_tool(
            "work", {"steps": 1}, on_progress=lambda p: None, on_notification=notes.append
        )
        assert [n["method"] for n in notes] == ["notifications/progress"]


def elicitation_recorder(seen: list[ServerRequest]) -> dict[str, RequestHandler]:
    async def on_elicit(request: ServerRequest) -> dict[str, Any]:
        seen.append(request)
        return {"action": "accept", "content": {"name": "ada"}}

    return {"elicitation/create": on_elicit}


@pytest.mark.parametrize("version", [SESSION, MODERN])
async def test_a_server_request_reaches_its_handler_with_the_calls_context(
    sdk: SDKServers, version: str
) -> None:
    seen: list[ServerRequest] = []
    handlers = elicitation_recorder(seen)
    async with connected(sdk, version, handlers=handlers, input_required="drive") as conn:
        result = await conn.call_tool("greet", {}, context={"upstream": "session-7"})
        assert result["content"][0]["text"] == "hello ada"
    [request] = seen
    assert request.method == "elicitation/create"
    assert request.context == {"upstream": "session-7"}
    assert (request.server, request.principal, request.connection) == ("sdk", "alice", conn)
    assert request.params is not None and "requestedSchema" in request.params
    assert not request.cancelled.is_set()


async def test_2026_input_required_raises_and_the_caller_can_answer(sdk: SDKServers) -> None:
    seen: list[ServerRequest] = []
    async with connected(sdk, MODERN, handlers=elicitation_recorder(seen)) as conn:
        with pytest.raises(InputRequired) as info:
            await conn.call_tool("greet", {})
        [(key, wire)] = info.value.input_requests.items()
        assert wire["method"] == "elicitation/create"
        assert seen == []  # "raise" answers nothing by itself
        result = await conn.call_tool(
            "greet",
            {},
            input_responses={key: {"action": "accept", "content": {"name": "bob"}}},
            request_state=info.value.request_state,
        )
        assert result["content"][0]["text"] == "hello bob"


async def test_2026_without_an_elicitation_handler_nothing_is_declared(sdk: SDKServers) -> None:
    async with connected(sdk, MODERN, input_required="drive") as conn:
        # the SDK refuses to elicit from a client that declared no elicitation
        with pytest.raises(JSONRPCError) as info:
            await conn.call_tool("greet", {})
        assert info.value.code == -32021  # MissingRequiredClientCapability


@pytest.mark.parametrize("version", [SESSION, MODERN])
async def test_resources_templates_prompts_and_completion(sdk: SDKServers, version: str) -> None:
    async with connected(sdk, version) as conn:
        read = await conn.read_resource("peer://readme")
        assert read["contents"][0]["text"] == "read me"
        templates = await conn.list_resource_templates()
        assert [t["uriTemplate"] for t in templates] == ["peer://items/{item}"]
        item = await conn.read_resource("peer://items/7")
        assert item["contents"][0]["text"] == "item 7"
        prompt = await conn.get_prompt("hello", {"who": "ada"})
        assert prompt["messages"][0]["content"]["text"] == "Say hello to ada"
        completion = await conn.complete(
            {"type": "ref/prompt", "name": "hello"},
            {"name": "who", "value": "a"},
            context_arguments={"lang": "en"},
        )
        assert completion["values"] == ["a-1"]


@pytest.mark.parametrize("version", [SESSION, MODERN])
async def test_a_subscribed_resource_reports_its_updates(sdk: SDKServers, version: str) -> None:
    async with connected(sdk, version) as conn:
        async with conn.notifications() as notes:
            await conn.subscribe_resource("peer://readme")
            if version == MODERN:  # the listener re-listens with the resource in its filter
                async for note in notes:
                    params = note.get("params", {})
                    acked = params.get("notifications", {}).get("resourceSubscriptions")
                    if acked == ["peer://readme"]:
                        break
            await conn.call_tool("touch", {"uri": "peer://readme"})
            async for note in notes:
                if note["method"] == "notifications/resources/updated":
                    assert note["params"]["uri"] == "peer://readme"
                    break


async def test_legacy_sse_a_call_gets_its_own_progress_only_and_no_context(
    sdk: SDKServers,
) -> None:
    seen: list[ServerRequest] = []
    handlers = elicitation_recorder(seen)
    async with connected(sdk, LEGACY, handlers=handlers, log_level="debug") as conn:
        notes: list[dict[str, Any]] = []
        async with conn.notifications() as everything:
            result = await conn.call_tool(
                "work", {"steps": 2}, on_progress=lambda p: None, on_notification=notes.append
            )
            assert result["content"][0]["text"] == "did 2 steps"
            # no per-call stream: the log goes to notifications() only
            assert [n["method"] for n in notes] == ["notifications/progress"] * 2
            async for note in everything:
                if note["method"] == "notifications/message":
                    break
        greeted = await conn.call_tool("greet", {}, context="upstream-1")
        assert greeted["content"][0]["text"] == "hello ada"
    [request] = seen
    assert request.context is None  # it came on the one SSE stream, not the call's


@pytest.mark.parametrize("version", [SESSION, MODERN])
async def test_validate_output_checks_the_sdks_structured_content(
    sdk: SDKServers, version: str
) -> None:
    async with connected(sdk, version) as conn:
        result = await conn.call_tool("echo", {"text": "hi"}, validate_output=True)
        assert result["structuredContent"] == {"result": "hi"}
        [echo] = [t for t in await conn.list_tools() if t["name"] == "echo"]
        assert "outputSchema" in echo
