"""The event channel between replicas: its wire format, and following it.

Every change to a shared token is announced on one channel per namespace. An
event names the key by hash only and carries the sealed blob, so a woken
replica needs no GET. `Listener` keeps the subscription for as long as the
store runs, reconnecting with backoff, and wakes the replicas waiting for a
key (`Wakeup`). Pub/sub does not buffer: after a lost subscription the store is
told to resync.
"""

from __future__ import annotations

import base64
import json
from collections.abc import Callable
from typing import Any

import anyio
import anyio.abc
import redis.asyncio as aioredis

from .._tokens.store import Key, StoredToken
from .health import ERRORS, Health

__all__ = ["Listener", "Opened", "Wakeup", "encode"]

Opened = tuple[Key, StoredToken, bool]  # what a sealed blob holds: key, token, published


def encode(replica: str, kind: str, digest: str, blob: bytes | None = None) -> str:
    """An event on the channel: the blob rides along, so nobody has to GET it."""
    event = {"r": replica, "k": kind, "h": digest}
    if blob is not None:
        event["b"] = base64.b64encode(blob).decode()
    return json.dumps(event, separators=(",", ":"))


class Wakeup:
    """A waiting replica's alarm; ``entry`` is the token the event carried, if any."""

    def __init__(self) -> None:
        self.event = anyio.Event()
        self.entry: StoredToken | None = None


class Listener:
    """Follows the channel: wakes waiters, hands other replicas' events to ``on_event``.

    ``unseal(digest, blob)`` opens a blob (``None`` if it does not open);
    ``on_event(kind, digest, opened)`` runs after the waiters are woken;
    ``on_resubscribe()`` runs when a lost subscription is back.
    """

    def __init__(
        self,
        redis: aioredis.Redis,
        health: Health,
        *,
        channel: str,
        replica: str,
        unseal: Callable[[str, bytes], Opened | None],
        on_event: Callable[[str, str, Opened | None], None],
        on_resubscribe: Callable[[], None],
    ) -> None:
        self._redis = redis
        self._health = health
        self._channel = channel
        self._replica = replica
        self._unseal = unseal
        self._on_event = on_event
        self._on_resubscribe = on_resubscribe
        self._wakeups: dict[str, Wakeup] = {}
        self.subscribed = False

    def arm(self, digest: str) -> Wakeup:
        """A fresh alarm for the next event about ``digest``."""
        wakeup = self._wakeups[digest] = Wakeup()
        return wakeup

    def disarm(self, digest: str) -> None:
        self._wakeups.pop(digest, None)

    async def run(self, *, task_status: anyio.abc.TaskStatus[None]) -> None:
        """Follow the event channel forever, reconnecting with backoff."""
        op_timeout = self._health.op_timeout
        started = False
        delay = 0.05
        resync = False
        while True:
            pubsub = self._redis.pubsub()
            try:
                with anyio.fail_after(op_timeout):
                    await pubsub.subscribe(self._channel)
                self.subscribed = True
                self._health.mark_up()
                delay = 0.05
                if resync:
                    self._on_resubscribe()
                if not started:
                    started = True
                    task_status.started()
                while True:
                    with anyio.fail_after(op_timeout + 1.0):
                        message = await pubsub.get_message(
                            ignore_subscribe_messages=True, timeout=1.0
                        )
                    if message is not None:
                        self._handle(message.get("data"))
            except ERRORS as exc:
                self._health.mark_down(exc)
                resync = True
            finally:
                self.subscribed = False
                with anyio.move_on_after(op_timeout, shield=True):
                    await pubsub.aclose()  # type: ignore[no-untyped-call]
            if not started:
                started = True
                task_status.started()
            await anyio.sleep(delay)
            delay = min(delay * 2, self._health.retry_interval)

    def _handle(self, data: Any) -> None:
        try:
            event = json.loads(data)
            kind, digest, replica = str(event["k"]), str(event["h"]), event["r"]
            blob = base64.b64decode(event["b"]) if "b" in event else None
        except (ValueError, TypeError, KeyError):
            return
        if replica == self._replica:
            return
        opened = None if blob is None else self._unseal(digest, blob)
        wakeup = self._wakeups.pop(digest, None)
        if wakeup is not None:
            wakeup.entry = None if opened is None else opened[1]
            wakeup.event.set()
        self._on_event(kind, digest, opened)
