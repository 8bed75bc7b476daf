"""The connection's waiting primitives: a FIFO inbox with a deadline, a one-shot flag."""

from __future__ import annotations

import anyio

from mcpconn._supervision.inbox import Flag, Inbox


async def test_items_come_out_in_order() -> None:
    inbox: Inbox[int] = Inbox()
    for i in range(5):
        inbox.put(i)
    assert [await inbox.get() for _ in range(5)] == [0, 1, 2, 3, 4]


async def test_a_waiting_reader_wakes_on_put_from_another_task() -> None:
    inbox: Inbox[str] = Inbox()
    got: list[str | None] = []

    async def reader() -> None:
        got.append(await inbox.get())

    with anyio.fail_after(5):
        async with anyio.create_task_group() as tg:
            tg.start_soon(reader)
            await anyio.wait_all_tasks_blocked()
            inbox.put("fact")
    assert got == ["fact"]


async def test_the_deadline_returns_none_and_wins_over_queued_items_once_passed() -> None:
    inbox: Inbox[int] = Inbox()
    with anyio.fail_after(5):
        assert await inbox.get(anyio.current_time() + 0.02) is None  # nothing came in time
        inbox.put(1)
        assert await inbox.get(anyio.current_time() - 1.0) is None  # the timer first
        assert await inbox.get(anyio.current_time() + 10.0) == 1


async def test_a_closed_inbox_takes_nothing() -> None:
    inbox: Inbox[int] = Inbox()
    inbox.put(1)
    inbox.close()
    inbox.put(2)
    with anyio.fail_after(5):
        assert await inbox.get(anyio.current_time() + 0.01) is None


async def test_no_waiter_is_kept_once_the_reader_is_woken_or_cancelled() -> None:
    inbox: Inbox[int] = Inbox()
    with anyio.move_on_after(0.01):
        await inbox.get()
    assert inbox._waiter is None  # cancelled: nothing left behind
    inbox.put(1)
    assert await inbox.get() == 1
    assert inbox._waiter is None


async def test_a_put_between_the_readers_cancel_and_its_unwinding_is_kept() -> None:
    # The reader's wait is cancelled at once (on asyncio its future too) but the reader
    # has not run yet: a put then must neither raise nor be lost.
    inbox: Inbox[int] = Inbox()
    with anyio.fail_after(5):
        async with anyio.create_task_group() as tg:
            tg.start_soon(inbox.get)
            await anyio.wait_all_tasks_blocked()
            assert inbox._waiter is not None
            tg.cancel_scope.cancel()
            inbox.put(1)
        assert inbox._waiter is None
        assert await inbox.get() == 1


async def test_a_flag_wakes_every_waiter_and_stays_set() -> None:
    flag = Flag()
    woken: list[int] = []

    async def waiter(i: int) -> None:
        await flag.wait()
        woken.append(i)

    with anyio.fail_after(5):
        async with anyio.create_task_group() as tg:
            for i in range(3):
                tg.start_soon(waiter, i)
            await anyio.wait_all_tasks_blocked()
            assert not flag.is_set() and not woken
            flag.set()
        assert sorted(woken) == [0, 1, 2]
        await flag.wait()  # already set: returns at once
    assert flag.is_set() and flag._event is None
