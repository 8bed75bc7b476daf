"""A session's tasks run in its host's task group (the supervisor's), not a group of its
own: each under a scope of its own, cancelled when the session is dropped or closes,
waited for before it is closed, and never raising into the host's group."""

from __future__ import annotations

import logging
from typing import Any

import anyio
import pytest

from mcpconn import ServerConfig, ServerRequest, State, Supervisor, TokenSource
from mcpconn._mcp.tasks import SessionTasks
from mcpconn.testing import JWTProvider, MockServer


async def test_a_drop_cancels_the_holder_and_every_task_even_a_later_one() -> None:
    ended: list[str] = []

    async def waits(name: str) -> None:
        try:
            await anyio.sleep_forever()
        finally:
            ended.append(name)

    async with anyio.create_task_group() as host:
        tasks = SessionTasks(host)
        with tasks.cancel_scope:
            tasks.start_soon(waits, "a")
            tasks.start_soon(waits, "b")
            await anyio.wait_all_tasks_blocked()
            assert tasks.running == 2
            tasks.cancel()
            tasks.start_soon(waits, "late")  # started after the drop: cancelled at once
            await anyio.sleep_forever()  # the holder's body: cancelled too
        with anyio.fail_after(5):
            await tasks.aclose()
        assert sorted(ended) == ["a", "b", "late"] and tasks.running == 0
        assert not host.cancel_scope.cancel_called  # the host goes on


async def test_aclose_waits_for_every_task_to_end() -> None:
    cleaned = anyio.Event()

    async def slow_to_end() -> None:
        try:
            await anyio.sleep_forever()
        finally:
            with anyio.CancelScope(shield=True):
                await anyio.sleep(0.05)  # its own cleanup, after the cancel
                cleaned.set()

    async with anyio.create_task_group() as host:
        tasks = SessionTasks(host)
        tasks.start_soon(slow_to_end)
        await anyio.wait_all_tasks_blocked()
        with anyio.fail_after(5):
            await tasks.aclose()
        assert cleaned.is_set()


async def test_cancel_at_reaches_the_running_tasks() -> None:
    cancelled = anyio.Event()

    async def waits() -> None:
        try:
            await anyio.sleep_forever()
        except anyio.get_cancelled_exc_class():
            cancelled.set()
            raise

    async with anyio.create_task_group() as host:
        tasks = SessionTasks(host)
        tasks.start_soon(waits)
        await anyio.wait_all_tasks_blocked()
        tasks.cancel_at(anyio.current_time() + 0.05)
        with anyio.fail_after(5):
            await cancelled.wait()
        assert tasks.cancel_scope.deadline < float("inf")


async def test_a_task_that_raises_is_logged_not_raised_into_the_host(
    caplog: pytest.LogCaptureFixture,
) -> None:
    async def raises() -> None:
        raise RuntimeError("a bug")

    async with anyio.create_task_group() as host:
        tasks = SessionTasks(host)
        tasks.start_soon(raises)
        with anyio.fail_after(5):
            await tasks.aclose()
    assert any(r.levelno == logging.ERROR and "session task" in r.message for r in caplog.records)


async def test_closing_a_connection_cancels_its_sessions_server_request() -> None:
    started, cancelled = anyio.Event(), anyio.Event()

    async def handler(request: ServerRequest) -> dict[str, Any]:
        started.set()
        try:
            await anyio.sleep_forever()
        finally:
            cancelled.set()

    async with MockServer() as server:
        config = ServerConfig(
            "mock", server.url, transport="streamable-http", protocol_version="2025-11-25"
        )
        async with Supervisor(TokenSource(JWTProvider(server.issuer))) as sup:
            conn = await sup.connect(config, "ann", request_handlers={"roots/list": handler})
            other = await sup.connect(config, "bob")
            with anyio.fail_after(10):
                await conn.wait_for(State.READY)
                await server.wait_for_listeners(1, principal="ann")
                request = {"jsonrpc": "2.0", "id": "r1", "method": "roots/list"}
                assert server.send(request, principal="ann") == 1
                await started.wait()
                session = conn._runner.session
                assert session is not None and session._tg.running == 1
                await conn.aclose()  # the session is dropped: its task with it
                await cancelled.wait()
                assert session._tg.running == 0
                await other.wait_for(State.READY)  # the supervisor's group goes on
                assert (await other.call_tool("echo", {"text": "x"}))["content"]
