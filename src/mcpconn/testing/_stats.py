"""What the client did to the server: bounded request records plus counters that never drop.

Records never hold a token: only whether one was present and whether it had
expired by the server's clock.
"""

from __future__ import annotations

from collections import Counter, deque
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from types import MappingProxyType
from typing import Any

import anyio

__all__ = ["MockStats", "RequestRecord", "Recorder"]


@dataclass(frozen=True)
class RequestRecord:
    """One HTTP request as the server saw it."""

    principal: str | None
    method: str
    path: str
    rpc_method: str | None
    status: int
    token_expired: bool
    token_present: bool
    at: float


@dataclass(frozen=True)
class MockStats:
    """A snapshot of the server's counters (aggregates count every request ever seen)."""

    requests_total: int
    expired_tokens_seen: int
    unauthorized_total: int
    open_streams: int
    open_connections: int
    sessions: int
    notifications_emitted: int
    by_principal: Mapping[str | None, int] = field(default_factory=dict)
    by_rpc_method: Mapping[str | None, int] = field(default_factory=dict)
    by_status: Mapping[int, int] = field(default_factory=dict)
    by_http_method: Mapping[str, int] = field(default_factory=dict)
    expired_by_principal: Mapping[str | None, int] = field(default_factory=dict)
    open_streams_by_principal: Mapping[str | None, int] = field(default_factory=dict)

    def to_json(self) -> dict[str, object]:
        """A JSON-friendly dict (None principals become ``""``)."""

        def keyed(m: Mapping[Any, int]) -> dict[str, int]:
            return {("" if k is None else str(k)): v for k, v in m.items()}

        return {
            "requests_total": self.requests_total,
            "expired_tokens_seen": self.expired_tokens_seen,
            "unauthorized_total": self.unauthorized_total,
            "open_streams": self.open_streams,
            "open_connections": self.open_connections,
            "sessions": self.sessions,
            "notifications_emitted": self.notifications_emitted,
            "by_principal": keyed(self.by_principal),
            "by_rpc_method": keyed(self.by_rpc_method),
            "by_status": keyed(self.by_status),
            "by_http_method": keyed(self.by_http_method),
            "expired_by_principal": keyed(self.expired_by_principal),
            "open_streams_by_principal": keyed(self.open_streams_by_principal),
        }


Predicate = Callable[["Recorder"], bool]


class Recorder:
    """Counts requests and open streams; wakes waiters when their condition holds."""

    def __init__(self, max_records: int = 10_000) -> None:
        self.records: deque[RequestRecord] = deque(maxlen=max_records)
        self.total = 0
        self.expired = 0
        self.unauthorized = 0
        self.notifications = 0
        self.by_principal: Counter[str | None] = Counter()
        self.by_rpc_method: Counter[str | None] = Counter()
        self.by_status: Counter[int] = Counter()
        self.by_http_method: Counter[str] = Counter()
        self.expired_by_principal: Counter[str | None] = Counter()
        self.streams_by_principal: Counter[str | None] = Counter()
        self.open_streams = 0
        self._waiters: list[tuple[Predicate, anyio.Event]] = []

    def record(self, rec: RequestRecord) -> None:
        self.records.append(rec)
        self.total += 1
        self.by_principal[rec.principal] += 1
        self.by_rpc_method[rec.rpc_method] += 1
        self.by_status[rec.status] += 1
        self.by_http_method[rec.method] += 1
        if rec.token_expired:
            self.expired += 1
            self.expired_by_principal[rec.principal] += 1
        if rec.status == 401:
            self.unauthorized += 1
        self._check()

    def stream_opened(self, principal: str | None) -> None:
        self.open_streams += 1
        self.streams_by_principal[principal] += 1
        self._check()

    def stream_closed(self, principal: str | None) -> None:
        self.open_streams -= 1
        self.streams_by_principal[principal] -= 1
        if self.streams_by_principal[principal] <= 0:
            del self.streams_by_principal[principal]
        self._check()

    def changed(self) -> None:
        """Something outside the recorder that `MockStats` shows changed (a session went)."""
        self._check()

    def _check(self) -> None:
        if not self._waiters:
            return
        still = []
        for predicate, event in self._waiters:
            if predicate(self):
                event.set()
            else:
                still.append((predicate, event))
        self._waiters = still

    async def wait_until(self, predicate: Predicate) -> None:
        if predicate(self):
            return
        event = anyio.Event()
        self._waiters.append((predicate, event))
        await event.wait()

    def snapshot(self, *, open_connections: int, sessions: int) -> MockStats:
        return MockStats(
            requests_total=self.total,
            expired_tokens_seen=self.expired,
            unauthorized_total=self.unauthorized,
            open_streams=self.open_streams,
            open_connections=open_connections,
            sessions=sessions,
            notifications_emitted=self.notifications,
            by_principal=MappingProxyType(dict(self.by_principal)),
            by_rpc_method=MappingProxyType(dict(self.by_rpc_method)),
            by_status=MappingProxyType(dict(self.by_status)),
            by_http_method=MappingProxyType(dict(self.by_http_method)),
            expired_by_principal=MappingProxyType(dict(self.expired_by_principal)),
            open_streams_by_principal=MappingProxyType(dict(self.streams_by_principal)),
        )
