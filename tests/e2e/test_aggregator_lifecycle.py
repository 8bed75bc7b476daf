"""The aggregator with session-era downstream connections (servers from before 2026-07-28).

Downstream server requests travel as requests here (not 2026 MRTR rounds), the downstream
mock is restarted under the aggregator, and the module ends by stopping the aggregator
with SIGTERM: it must exit 0 and DELETE every downstream session.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import anyio
import mcp_types as types
import pytest
from stack import MARKS, MODES, SESSION_ERA_LOGGING, Inbox, Stack, mint, principal, text_of

pytestmark = MARKS


@pytest.fixture(scope="module")
def stack() -> Iterator[Stack]:
    s = Stack(transport="streamable-http", handshake_only=True)
    try:
        s.start()
        yield s
    finally:
        s.close()


@pytest.mark.parametrize("mode", MODES)
async def test_a_downstream_elicitation_request_reaches_the_upstream_client(
    stack: Stack, mode: str
) -> None:
    asked: list[str] = []

    async def answer(context: Any, params: types.ElicitRequestParams) -> types.ElicitResult:
        asked.append(params.message)
        return types.ElicitResult(action="accept", content={"answer": mode})

    async with stack.client(mint(principal()), mode, elicitation_callback=answer) as client:
        with anyio.fail_after(20):
            result = await client.call_tool("alpha_confirm", {"question": "Which mode?"})
    assert text_of(result) == f"accept:{mode}"
    assert asked == ["Which mode?"]
    eras = {c["era"] for c in (await stack.status())["connections"]}
    assert eras == {"streamable-http"}


@SESSION_ERA_LOGGING
async def test_logs_follow_the_level_the_session_era_client_set(stack: Stack) -> None:
    logs = Inbox()

    async def on_log(params: types.LoggingMessageNotificationParams) -> None:
        logs.add(params.data)

    async with stack.client(mint(principal()), "legacy", logging_callback=on_log) as client:
        await client.set_logging_level("info")
        assert text_of(await client.call_tool("alpha_work", {"steps": 1})) == "did 1 steps"
        with anyio.fail_after(5):
            await logs.wait_for(bool)
    assert logs.items == ["working"]


async def test_the_aggregator_survives_a_downstream_restart(stack: Stack) -> None:
    who = principal("restart")
    async with stack.client(mint(who), "legacy") as client:
        assert text_of(await client.call_tool("beta_echo", {"text": "before"})) == "before"
        await anyio.to_thread.run_sync(stack.mock.stop)
        await anyio.to_thread.run_sync(stack.mock.start)  # the same port, no sessions
        with anyio.fail_after(30):
            result = await client.call_tool("beta_echo", {"text": "after"})
        assert text_of(result) == "after"
    await stack.wait_state("beta", who, "ready")


async def _use_beta(stack: Stack) -> None:
    async with stack.client(mint(principal("last")), "legacy") as client:
        assert text_of(await client.call_tool("beta_echo", {"text": "x"})) == "x"
    # every connection settled first (none mid-handshake after the restart test above): a
    # session the server opens for a handshake cancelled by the shutdown has no id to delete
    settled = {"ready", "needs_reauth", "failed", "closed"}
    with anyio.fail_after(15):
        while {c["state"] for c in (await stack.status())["connections"]} - settled:  # noqa: ASYNC110
            await anyio.sleep(0.05)


def test_sigterm_closes_every_downstream_session_and_exits_0(stack: Stack) -> None:
    """Last in the module: it stops the module's aggregator."""
    anyio.run(_use_beta, stack)
    before = stack.mock.control_sync("GET", "stats")
    assert before["sessions"] >= 1
    assert stack.aggregator is not None
    assert stack.aggregator.terminate(timeout=10) == 0
    after = stack.mock.control_sync("GET", "stats")
    deleted = after["by_http_method"].get("DELETE", 0) - before["by_http_method"].get("DELETE", 0)
    assert deleted >= before["sessions"]
    assert after["sessions"] == 0
