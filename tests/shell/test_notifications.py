"""Fan-out to subscribers: bounded, never blocking the producer, ends cleanly."""

from __future__ import annotations

import gc
import weakref

import anyio
import pytest

from mcpconn._supervision.notifications import Broadcast


async def test_every_subscriber_sees_every_item_in_order() -> None:
    hub: Broadcast[int] = Broadcast(maxlen=100)
    a, b = hub.subscribe(), hub.subscribe()
    for i in range(10):
        hub.publish(i)
    hub.close()
    assert [x async for x in a] == list(range(10))
    assert [x async for x in b] == list(range(10))


async def test_a_slow_subscriber_loses_the_oldest_and_counts_them() -> None:
    hub: Broadcast[int] = Broadcast(maxlen=3)
    sub = hub.subscribe()
    for i in range(10):
        hub.publish(i)  # never blocks, even though nobody reads
    hub.close()
    assert [x async for x in sub] == [7, 8, 9]
    assert sub.dropped == 7


async def test_a_waiting_subscriber_wakes_on_publish() -> None:
    hub: Broadcast[str] = Broadcast()
    sub = hub.subscribe()
    got: list[str] = []

    async def consume() -> None:
        async for item in sub:
            got.append(item)
            if item == "stop":
                return

    with anyio.fail_after(5):
        async with anyio.create_task_group() as tg:
            tg.start_soon(consume)
            hub.publish("hello")
            hub.publish("stop")
    assert got == ["hello", "stop"]


async def test_aclose_unsubscribes_and_subscribing_after_close_ends_at_once() -> None:
    hub: Broadcast[int] = Broadcast()
    async with hub.subscribe() as sub:
        assert hub.subscriber_count == 1
    assert hub.subscriber_count == 0
    hub.publish(1)
    assert [x async for x in sub] == []
    hub.close()
    with anyio.fail_after(5):
        assert [x async for x in hub.subscribe()] == []


async def test_a_subscription_can_be_weakly_referenced_but_takes_no_new_attributes() -> None:
    """An embedder may track subscriptions in a WeakSet; slots keep them small (no __dict__)."""
    hub: Broadcast[int] = Broadcast()
    sub = hub.subscribe()
    tracked: weakref.WeakSet[object] = weakref.WeakSet([sub])
    ref = weakref.ref(sub)
    assert ref() is sub and len(tracked) == 1
    with pytest.raises(AttributeError):
        sub.tag = "mine"  # type: ignore[attr-defined]
    await sub.aclose()
    del sub
    gc.collect()
    assert ref() is None and len(tracked) == 0  # the weak references kept nothing alive
