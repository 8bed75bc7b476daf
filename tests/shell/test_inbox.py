"""The connection's waiting primitives: an alarm with a deadline, a one-shot flag."""

from __future__ import annotations

import anyio
import sniffio

from mcpconn._supervision.inbox import Alarm, Changes, Flag


async def test_a_sleeper_wakes_on_a_ring_from_another_task() -> None:
    alarm = Alarm()
    woke: list[bool] = []

    async def sleeper() -> None:
        await alarm.sleep()
        woke.append(True)

    with anyio.fail_after(5):
        async with anyio.create_task_group() as tg:
            tg.start_soon(sleeper)
            await anyio.wait_all_tasks_blocked()
            assert woke == []
            alarm.ring()
    assert woke == [True]


async def test_the_deadline_ends_the_sleep_and_a_passed_one_returns_at_once() -> None:
    alarm = Alarm()
    with anyio.fail_after(5):
        start = anyio.current_time()
        await alarm.sleep(start + 0.02)  # nobody rings
        assert anyio.current_time() >= start + 0.02
        await alarm.sleep(anyio.current_time() - 1.0)
    assert alarm._waiter is None


async def test_a_ring_before_a_far_deadline_wakes_and_an_outer_cancel_ends_the_sleep() -> None:
    """With a deadline the sleep is still woken by a ring (its deadline's own wake then
    does nothing) and still ends when an enclosing scope is cancelled."""
    alarm = Alarm()
    woke: list[float] = []

    async def sleeper() -> None:
        await alarm.sleep(anyio.current_time() + 60)
        woke.append(anyio.current_time())

    with anyio.fail_after(5):
        async with anyio.create_task_group() as tg:
            tg.start_soon(sleeper)
            await anyio.wait_all_tasks_blocked()
            alarm.ring()
        assert len(woke) == 1 and alarm._waiter is None
        alarm.ring()  # nobody asleep: nothing to do
        with anyio.CancelScope() as outer:
            outer.deadline = anyio.current_time() + 0.02
            await alarm.sleep(anyio.current_time() + 60)
        assert outer.cancelled_caught and alarm._waiter is None


async def test_ring_at_ends_an_endless_sleep_by_its_deadline_not_before_on_asyncio() -> None:
    """`Alarm.ring_at`: a sooner end for the sleep. On asyncio the sleeper is not woken
    before it (a loop timer resolves its future); elsewhere it is woken now (a ring)."""
    alarm = Alarm()
    woke: list[float] = []

    async def sleeper() -> None:
        await alarm.sleep()
        woke.append(anyio.current_time())

    with anyio.fail_after(5):
        async with anyio.create_task_group() as tg:
            tg.start_soon(sleeper)
            await anyio.wait_all_tasks_blocked()
            due = anyio.current_time() + 0.05
            alarm.ring_at(due)
            if sniffio.current_async_library() == "asyncio":
                await anyio.wait_all_tasks_blocked()
                assert woke == []  # still asleep: nothing woke it to re-arm its sleep
        assert len(woke) == 1 and alarm._waiter is None
        if sniffio.current_async_library() == "asyncio":
            assert woke[0] >= due
        alarm.ring_at(anyio.current_time())  # nobody asleep: nothing to do


async def test_a_ring_with_nobody_asleep_is_not_kept() -> None:
    alarm = Alarm()
    alarm.ring()
    with anyio.fail_after(5):
        start = anyio.current_time()
        await alarm.sleep(start + 0.02)
        assert anyio.current_time() >= start + 0.02


async def test_no_waiter_is_kept_once_the_sleeper_is_woken_or_cancelled() -> None:
    alarm = Alarm()
    with anyio.move_on_after(0.01):
        await alarm.sleep()
    assert alarm._waiter is None  # cancelled: nothing left behind
    alarm.ring()  # nobody asleep: nothing to do


async def test_a_ring_between_the_sleepers_cancel_and_its_unwinding_does_not_raise() -> None:
    # The sleeper's wait is cancelled at once (on asyncio its future too) but the sleeper
    # has not run yet: a ring then must not raise.
    alarm = Alarm()
    with anyio.fail_after(5):
        async with anyio.create_task_group() as tg:
            tg.start_soon(alarm.sleep)
            await anyio.wait_all_tasks_blocked()
            assert alarm._waiter is not None
            tg.cancel_scope.cancel()
            alarm.ring()
        assert alarm._waiter is None


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


async def test_changes_wakes_a_waiter_for_one_value_only_at_that_value_or_the_final() -> None:
    """`Changes`: a waiter for "ready" sleeps through "connecting"; any-change waiters
    wake at every change; the final value wakes everyone; then nobody is left."""
    changes = Changes("closed")
    woke: list[str] = []

    async def waiter(until: str | None, name: str) -> None:
        await changes.wait(until)
        woke.append(name)

    with anyio.fail_after(5):
        async with anyio.create_task_group() as tg:
            tg.start_soon(waiter, "ready", "ready")
            tg.start_soon(waiter, None, "any")
            tg.start_soon(waiter, "failed", "failed")
            await anyio.wait_all_tasks_blocked()
            assert not changes.changed("connecting")
            await anyio.wait_all_tasks_blocked()
            assert woke == ["any"]  # the READY watcher slept through CONNECTING
            assert not changes.changed("ready")
            await anyio.wait_all_tasks_blocked()
            assert woke == ["any", "ready"]
            assert changes.changed("closed")  # the final value wakes the rest: none left
    assert woke == ["any", "ready", "failed"]


async def test_changes_a_cancelled_waiter_leaves_and_the_others_still_wake() -> None:
    """Each wait has its own waiter: cancelling one (its scope) neither wakes nor breaks
    the others, and takes it out, so `changed` can say nobody is left."""
    changes = Changes("closed")
    woke: list[str] = []
    doomed = anyio.CancelScope()

    async def waiter(until: str, name: str) -> None:
        await changes.wait(until)
        woke.append(name)

    async def cancelled(until: str) -> None:
        with doomed:
            await changes.wait(until)
            woke.append("never")

    with anyio.fail_after(5):
        async with anyio.create_task_group() as tg:
            tg.start_soon(waiter, "ready", "first")
            await anyio.wait_all_tasks_blocked()
            tg.start_soon(cancelled, "ready")
            await anyio.wait_all_tasks_blocked()
            tg.start_soon(waiter, "ready", "second")
            tg.start_soon(waiter, "failed", "failed")
            await anyio.wait_all_tasks_blocked()
            doomed.cancel()
            await anyio.wait_all_tasks_blocked()
            assert len(changes._to["ready"]) == 2  # the cancelled wait left the list
            assert not changes.changed("ready")  # the two READY waiters; "failed" waits on
            await anyio.wait_all_tasks_blocked()
            assert sorted(woke) == ["first", "second"]  # (trio runs woken tasks in any order)
            tg.cancel_scope.cancel()  # the "failed" waiter: cancelled, it leaves too
        assert changes._to == {}
    assert sorted(woke) == ["first", "second"]
