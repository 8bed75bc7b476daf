"""The official SDK client -> examples/aggregator.py -> an SDK server (alpha) and the mock (beta).

One stack for the module (see stack.py); each test speaks as a principal of its own, so
the connections it makes and the downstream requests it counts are its own.
"""

from __future__ import annotations

import subprocess
import sys
import time
from typing import Any

import anyio
import httpx
import jwt
import mcp_types as types
import pytest
from mcp import Client
from mcp.client.streamable_http import streamable_http_client
from stack import (
    AGGREGATOR,
    MARKS,
    MODES,
    SECRET,
    SESSION_ERA_LOGGING,
    Inbox,
    Stack,
    mint,
    principal,
    text_of,
)

pytestmark = MARKS

REAUTH = "re-authentication required"


async def direct_tools(url: str, token: str) -> dict[str, Any]:
    """The downstream server's own listing, with the SDK client straight to it."""
    import httpx2

    async with httpx2.AsyncClient(headers={"Authorization": f"Bearer {token}"}) as http:
        transport = streamable_http_client(url, http_client=http)
        async with Client(transport, mode="legacy", cache=None) as client:
            return {t.name: t for t in (await client.list_tools()).tools}


@pytest.mark.parametrize("mode", MODES)
async def test_tools_are_listed_namespaced_unchanged_and_called(stack: Stack, mode: str) -> None:
    who = principal()
    token = mint(who)
    async with stack.client(token, mode) as client:
        listed = {t.name: t for t in (await client.list_tools()).tools}
        assert text_of(await client.call_tool("alpha_echo", {"text": "hi"})) == "hi"
        added = await client.call_tool("beta_add", {"a": 2, "b": 3})
        assert text_of(added) == "5"
        assert not added.is_error
    for server, url in (("alpha", stack.sdk_url), ("beta", stack.mock.url)):
        own = await direct_tools(url, token)
        assert own
        for name, tool in own.items():
            ours = listed[f"{server}_{name}"]
            assert ours.description == tool.description
            assert ours.input_schema == tool.input_schema
    status = await stack.status()
    mine = [c for c in status["connections"] if c["principal"] == who]
    assert sorted(c["server"] for c in mine) == ["alpha", "beta"]
    assert {c["state"] for c in mine} == {"ready"}
    assert all(c["era"] in ("streamable-http", "stateless", "sse") for c in mine)
    assert status["statistics"]["connections"] >= 2


@pytest.mark.parametrize("mode", MODES)
async def test_prompts_and_resources_are_namespaced_and_routed(stack: Stack, mode: str) -> None:
    async with stack.client(mint(principal()), mode) as client:
        prompts = {p.name for p in (await client.list_prompts()).prompts}
        assert {"alpha_greeting", "beta_greet"} <= prompts
        got = await client.get_prompt("alpha_greeting", {"who": "Ada"})
        assert "Hello, Ada!" in got.messages[0].content.text  # type: ignore[union-attr]
        uris = {str(r.uri) for r in (await client.list_resources()).resources}
        assert {"alpha+acc://greeting", "beta+mock://readme"} <= uris
        alpha = await client.read_resource("alpha+acc://greeting")
        assert alpha.contents[0].text == "hello from the sdk"  # type: ignore[union-attr]
        beta = await client.read_resource("beta+mock://readme")
        assert beta.contents[0].text == "hello"  # type: ignore[union-attr]
        assert str(beta.contents[0].uri) == "beta+mock://readme"


async def test_no_valid_token_is_a_401_challenge_and_nothing_goes_downstream(
    stack: Stack,
) -> None:
    who = principal("anon")
    now = int(time.time())
    bad = {
        "no header": None,
        "not a jwt": "nonsense",
        "expired": mint(who, ttl=-10),
        "other secret": jwt.encode({"sub": who, "exp": now + 60}, "x" * 40, algorithm="HS256"),
        "no sub": jwt.encode({"exp": now + 60}, SECRET, algorithm="HS256"),
        "no exp": jwt.encode({"sub": who}, SECRET, algorithm="HS256"),
    }
    body = {"jsonrpc": "2.0", "id": 1, "method": "tools/list", "params": {}}
    async with httpx.AsyncClient(timeout=10) as http:
        for case, token in bad.items():
            headers = {"Accept": "application/json, text/event-stream"}
            if token is not None:
                headers["Authorization"] = f"Bearer {token}"
            response = await http.post(stack.url, json=body, headers=headers)
            assert response.status_code == 401, case
            assert response.headers["www-authenticate"].startswith("Bearer"), case
    assert await stack.mock.requests_of(who) == []
    assert not [c for c in (await stack.status())["connections"] if c["principal"] == who]


async def test_the_seed_idle_gap_then_a_fresh_token(stack: Stack) -> None:
    """A token expires while the user is idle; their next request brings a fresh one."""
    who = principal("seed")
    short = mint(who, ttl=3)  # the door wants a token to outlive its forwarding margin
    async with stack.client(short, "2026-07-28") as client:
        assert text_of(await client.call_tool("beta_echo", {"text": "before"})) == "before"
    expires = jwt.decode(short, options={"verify_signature": False})["exp"]
    await anyio.sleep(max(0.0, expires - time.time() + 0.2))  # the idle gap is the scenario
    # the downstream drops its streams: a naive client would reconnect with the dead token
    await stack.mock.ctl("POST", "close-streams", {"principal": who})
    await stack.wait_state("beta", who, "needs_reauth")
    async with stack.client(mint(who), "2026-07-28") as client:
        with anyio.fail_after(8):
            result = await client.call_tool("beta_echo", {"text": "after"})
        assert text_of(result) == "after"
        assert not result.is_error
    records = await stack.mock.requests_of(who)
    assert records
    assert [r for r in records if r["token_expired"]] == []
    assert [r for r in records if r["status"] == 401] == []


async def test_a_revoked_principal_parks_fails_fast_and_a_new_token_resumes(stack: Stack) -> None:
    who = principal("revoked")
    async with stack.client(mint(who), "legacy") as client:
        assert text_of(await client.call_tool("beta_echo", {"text": "ok"})) == "ok"
        await stack.mock.ctl("POST", "revoke", {"principal": who})
        first = await client.call_tool("beta_echo", {"text": "rejected"})
        assert first.is_error
        assert REAUTH in text_of(first)
        await stack.wait_state("beta", who, "needs_reauth")
        sent = len(await stack.mock.requests_of(who))
        with anyio.fail_after(2):
            again = await client.call_tool("beta_echo", {"text": "same token"})
        assert again.is_error
        assert REAUTH in text_of(again)
        assert len(await stack.mock.requests_of(who)) == sent  # parked: nothing sent
        assert text_of(await client.call_tool("alpha_echo", {"text": "other"})) == "other"
    await stack.mock.ctl("POST", "restore", {"principal": who})
    async with stack.client(mint(who), "2026-07-28") as client:
        with anyio.fail_after(8):
            back = await client.call_tool("beta_echo", {"text": "back"})
        assert text_of(back) == "back"
    assert await stack.state_of("beta", who) == "ready"


@SESSION_ERA_LOGGING
@pytest.mark.parametrize("mode", MODES)
async def test_progress_and_logs_reach_the_upstream_request(stack: Stack, mode: str) -> None:
    logs, progress = Inbox(), Inbox()

    async def on_log(params: types.LoggingMessageNotificationParams) -> None:
        logs.add(params.data)

    async def on_progress(value: float, total: float | None, message: str | None) -> None:
        progress.add(value)

    options: dict[str, Any] = {"logging_callback": on_log}
    if mode != "legacy":
        options["log_level"] = "info"
    async with stack.client(mint(principal()), mode, **options) as client:
        if mode == "legacy":
            await client.set_logging_level("info")
        result = await client.call_tool("alpha_work", {"steps": 3}, progress_callback=on_progress)
        assert text_of(result) == "did 3 steps"
        mock = await client.call_tool("beta_progress", {"steps": 2}, progress_callback=on_progress)
        assert text_of(mock) == "done 2 steps"
        with anyio.fail_after(5):
            await progress.wait_for(lambda items: len(items) >= 5)
            await logs.wait_for(bool)
    assert progress.items == [1, 2, 3, 1, 2]
    assert logs.items == ["working"]  # info went through, debug did not


@pytest.mark.parametrize("mode", MODES)
async def test_a_downstream_list_changed_reaches_upstream(stack: Stack, mode: str) -> None:
    who = principal("changes")
    seen = Inbox()

    async def on_message(message: Any) -> None:
        if isinstance(message, types.ToolListChangedNotification):
            seen.add("tools")

    async def listen(client: Client, *, task_status: Any) -> None:
        async with client.listen(tools_list_changed=True) as subscription:
            task_status.started()
            async for event in subscription:
                seen.add(event)

    async with (
        stack.client(mint(who), mode, message_handler=on_message) as client,
        anyio.create_task_group() as tg,
    ):
        await client.list_tools()  # connects this principal downstream
        if mode != "legacy":
            await tg.start(listen, client)
        for trigger in ("alpha", "beta"):
            seen.items.clear()
            with anyio.fail_after(15):
                while not seen.items:  # a downstream listener may still be opening: again
                    if trigger == "alpha":
                        await client.call_tool("alpha_announce", {})
                    else:
                        change = {"method": "notifications/tools/list_changed", "principal": who}
                        await stack.mock.ctl("POST", "emit", change)
                    with anyio.move_on_after(1.0):
                        await seen.wait_for(bool)
        tg.cancel_scope.cancel()


@pytest.mark.parametrize("mode", MODES)
async def test_an_elicitation_round_trips_to_the_upstream_client(stack: Stack, mode: str) -> None:
    asked: list[str] = []

    async def answer(context: Any, params: types.ElicitRequestParams) -> types.ElicitResult:
        asked.append(params.message)
        return types.ElicitResult(action="accept", content={"answer": "yes"})

    async with stack.client(mint(principal()), mode, elicitation_callback=answer) as client:
        result = await client.call_tool("alpha_confirm", {"question": "Proceed?"})
    assert text_of(result) == "accept:yes"
    assert asked == ["Proceed?"]


async def test_a_hanging_downstream_does_not_hold_up_the_others(stack: Stack) -> None:
    who = principal("hang")
    await stack.mock.ctl("POST", "faults", {"kind": "stall", "principal": who})
    try:
        async with stack.client(mint(who), "2026-07-28") as client:
            with anyio.fail_after(10):
                names = [t.name for t in (await client.list_tools()).tools]
            assert "alpha_echo" in names
            assert not [n for n in names if n.startswith("beta_")]
            with anyio.fail_after(10):
                assert text_of(await client.call_tool("alpha_echo", {"text": "fine"})) == "fine"
    finally:
        await stack.mock.ctl("DELETE", "faults")


def test_the_command_line_refuses_a_server_name_with_an_underscore() -> None:
    """NAME_TOOL must split unambiguously: NAME is [a-z0-9-]+ (checked before binding)."""
    server = "bad_name=http://127.0.0.1:1/mcp"
    done = subprocess.run(
        [sys.executable, str(AGGREGATOR), "--port", "0", "--jwt-secret", "s", "--server", server],
        capture_output=True,
        timeout=60,
        check=False,
    )
    assert done.returncode == 2
    assert b"NAME" in done.stderr
    assert done.stdout == b""
