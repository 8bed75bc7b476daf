"""Is Redis there? Bounded calls, a circuit that opens on failure, one log line.

Every Redis call of the shared token store goes through `Health.call`: at most
``concurrency`` at a time per replica, each bounded by ``op_timeout``. A
failure marks Redis down (one warning), and for ``retry_interval`` afterwards
calls fail at once (`Unavailable`) instead of each waiting out the timeout.
`Health.probe` PINGs while Redis is down and marks it up again (one more
line). Down/up lines are rate-limited to one per ``log_interval`` each, for a
flapping Redis.
"""

from __future__ import annotations

import logging
import math
from collections.abc import Awaitable, Callable
from typing import Any, TypeVar

import anyio
from redis.exceptions import RedisError

__all__ = ["ERRORS", "Health", "Unavailable"]

logger = logging.getLogger("mcpconn.redis_store")

T = TypeVar("T")

ERRORS = (RedisError, OSError, TimeoutError)


class Unavailable(Exception):
    """Redis failed or is known to be down: act locally."""


class Health:
    def __init__(
        self,
        *,
        op_timeout: float,
        retry_interval: float,
        log_interval: float,
        concurrency: int,
        queue_timeout: float,
    ) -> None:
        self.op_timeout = op_timeout
        # A burst of refreshes queues here instead of opening a connection each:
        # op_timeout then measures Redis, not this process's own backlog.
        self._slots = anyio.Semaphore(concurrency)
        self._queue_timeout = queue_timeout
        self.retry_interval = retry_interval
        self.log_interval = log_interval
        self.healthy = True
        self._retry_at = -math.inf
        self._logged_at = {"down": -math.inf, "up": -math.inf}
        self._went_down = anyio.Event()

    async def call(self, op: Callable[[], Awaitable[T]]) -> T:
        if not self.healthy and anyio.current_time() < self._retry_at:
            raise Unavailable
        with anyio.move_on_after(self._queue_timeout) as queued:
            await self._slots.acquire()
        if queued.cancelled_caught:
            raise Unavailable  # overloaded here; Redis itself may be fine
        try:
            with anyio.fail_after(self.op_timeout):
                result = await op()
        except ERRORS as exc:
            self.mark_down(exc)
            raise Unavailable from exc
        finally:
            self._slots.release()
        self.mark_up()
        return result

    def mark_down(self, exc: BaseException) -> None:
        self._retry_at = anyio.current_time() + self.retry_interval
        if self.healthy:
            self.healthy = False
            self._went_down.set()
            self._log(
                "down",
                "Redis token store unavailable (%s); this replica falls back to its own "
                "tokens and provider calls until Redis answers again",
                type(exc).__name__,
            )

    def mark_up(self) -> None:
        if not self.healthy:
            self.healthy = True
            self._log("up", "Redis token store reachable again; tokens are shared again")

    def _log(self, what: str, message: str, *args: object) -> None:
        now = anyio.current_time()
        quiet = now - self._logged_at[what] < self.log_interval
        if not quiet:
            self._logged_at[what] = now
        logger.log(logging.DEBUG if quiet else logging.WARNING, message, *args)

    async def probe(self, ping: Callable[[], Awaitable[Any]]) -> None:
        """Forever: while Redis is down, ``ping`` it every ``retry_interval``."""
        while True:
            await self._went_down.wait()
            self._went_down = anyio.Event()
            while not self.healthy:
                await anyio.sleep(self.retry_interval)
                try:
                    with anyio.fail_after(self.op_timeout):
                        await ping()
                except ERRORS:
                    continue
                self.mark_up()
