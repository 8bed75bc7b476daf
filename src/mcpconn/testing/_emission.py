"""What the mock server says unasked: notifications and requests on the listener streams.

Mixed into `MockServer` (over `Registry`, which knows the streams). Emission
never blocks: each stream keeps a bounded log; `flood` is the bulk path with
backpressure; `close_streams` ends streams the way each era ends them cleanly.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import anyio
import anyio.lowlevel

from . import _rpc
from ._events import EventStream, encode_json
from ._registry import Registry

__all__ = ["Emission"]


class Emission(Registry):
    """`emit`, `send`, `flood` and `close_streams` of `MockServer`."""

    event_log_size: int

    def emit(
        self, method: str, params: dict[str, Any] | None = None, *, principal: str | None = None
    ) -> int:
        """Send a notification to every listener stream (of ``principal``, or all).

        Listener streams are GET streams, legacy SSE streams and 2026
        ``subscriptions/listen`` streams (those only get what they subscribed
        to). Returns how many streams took it: open ones, or ones a client can
        resume with ``Last-Event-ID``. Never blocks; each stream keeps the last
        ``event_log_size`` events (use `flood()` for bulk with backpressure).
        """
        message: dict[str, Any] = {"jsonrpc": "2.0", "method": method}
        if params is not None:
            message["params"] = params
        return self._deliver(self._targets(principal), method, params, encode_json(message))

    def send(self, message: dict[str, Any], *, principal: str | None = None) -> int:
        """Put any JSON-RPC message (e.g. a server-to-client ``ping`` request) on listeners.

        2026 listen streams are skipped (no server-to-client requests there).
        The client's answers land in `client_responses`.
        """
        data = encode_json(message)
        count = 0
        for stream in self._targets(principal):
            if stream.accepts is None:
                stream.push(data)
                count += 1
        return count

    async def flood(
        self,
        method: str = "notifications/message",
        params: dict[str, Any] | None = None,
        *,
        count: int,
        principal: str | None = None,
    ) -> int:
        """Emit ``count`` notifications as fast as the listeners read them (no drops).

        Without ``params`` each carries ``{"seq": i}``. Waits while an open
        stream is half an event log behind. Returns the total deliveries.
        """
        high_water = max(1, self.event_log_size // 2)
        delivered = 0
        for i in range(count):
            targets = self._targets(principal)
            for stream in targets:
                if stream.writers and stream.last_seq - stream.written > high_water:
                    await stream.wait_for_space(high_water)
            delivered += self.emit(
                method, {"seq": i} if params is None else params, principal=principal
            )
            if i % 64 == 63:
                await anyio.lowlevel.checkpoint()
        return delivered

    def _deliver(
        self,
        targets: Sequence[EventStream],
        method: str,
        params: dict[str, Any] | None,
        data: bytes,
    ) -> int:
        count = 0
        for stream in targets:
            if stream.accepts is not None:
                if not stream.accepts(method, params):
                    continue
                assert stream.transform is not None
                stream.push(stream.transform(method, params))
            else:
                stream.push(data)
            count += 1
        self._recorder.notifications += count
        return count

    def close_streams(self, principal: str | None = None) -> int:
        """End listener streams cleanly (clients resume with ``Last-Event-ID``)."""
        count = 0
        for key, streams in list(self._listeners.items()):
            if principal is not None and key != principal:
                continue
            for stream in list(streams):
                if stream.subscription_id is not None:
                    # 2026: a graceful end is the listen request's own result.
                    stream.push(_rpc.listen_result(stream.subscription_id))
                    stream.finish()
                else:
                    stream.attach()  # the writer ends its response; the log stays
                count += 1
        return count
