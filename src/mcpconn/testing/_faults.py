"""Fault injection rules for the mock server, changeable while it runs.

A rule pairs a `Fault` (what goes wrong) with a filter (path, HTTP method,
JSON-RPC method, principal) and a budget (``times``). The server asks the set
for the first matching rule of each request; a rule whose budget is spent
drops out. Faults are values, so a scenario can be written down as data.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field, replace
from typing import Literal, TypedDict, Unpack

__all__ = ["Fault", "FaultKind", "FaultRule", "FaultSet"]

FaultKind = Literal[
    "status",
    "expire_session",
    "cut",
    "cut_mid_event",
    "stall",
    "garbage",
    "oversized",
    "non_json",
    "not_jsonrpc",
    "wrong_content_type",
    "delay",
    "disconnect",
]

#: Kinds that change how a response *stream* is written rather than replacing it.
STREAM_KINDS = frozenset({"cut", "cut_mid_event"})


@dataclass(frozen=True)
class Fault:
    """One thing that goes wrong. Build it with the class methods."""

    kind: FaultKind
    status_code: int = 200
    headers: tuple[tuple[str, str], ...] = ()
    body: bytes = b""
    #: For stream faults: message events written before the fault strikes.
    after_events: int = 0
    #: For `oversized`: bytes in the one huge SSE line.
    size: int = 0
    #: For `delay`: seconds before the normal response.
    seconds: float = 0.0
    #: For `stall`: True sends headers first, then nothing.
    after_headers: bool = False
    #: For 401/403 faults: the WWW-Authenticate error and description (the
    #: server adds ``resource_metadata``).
    auth_error: str | None = None
    auth_description: str | None = None
    scope: str | None = None
    #: For `delay`: True does the request's work at once (an ``initialize`` opens
    #: its session) and holds only the answer for ``seconds``.
    late_answer: bool = False

    # -- statuses -----------------------------------------------------------------
    @classmethod
    def status(
        cls,
        code: int,
        *,
        retry_after: float | None = None,
        headers: dict[str, str] | None = None,
        body: bytes = b"",
    ) -> Fault:
        """Answer ``code`` instead of serving (401/403 get a proper challenge)."""
        hdrs = dict(headers or {})
        if retry_after is not None:
            hdrs["retry-after"] = f"{retry_after:g}"
        if code == 401:
            return cls.unauthorized()._with(headers=tuple(hdrs.items()), body=body)
        if code == 403:
            return cls.insufficient_scope()._with(headers=tuple(hdrs.items()), body=body)
        return cls("status", status_code=code, headers=tuple(hdrs.items()), body=body)

    @classmethod
    def unauthorized(cls, description: str = "token rejected (injected)") -> Fault:
        return cls(
            "status", status_code=401, auth_error="invalid_token", auth_description=description
        )

    @classmethod
    def insufficient_scope(cls, scope: str = "mcp:admin") -> Fault:
        return cls(
            "status",
            status_code=403,
            auth_error="insufficient_scope",
            auth_description="the token lacks a required scope",
            scope=scope,
        )

    @classmethod
    def rate_limited(cls, retry_after: float | None = 1.0, *, code: int = 429) -> Fault:
        return cls.status(code, retry_after=retry_after)

    @classmethod
    def method_not_allowed(cls) -> Fault:
        return cls("status", status_code=405, headers=(("allow", "POST, DELETE"),))

    @classmethod
    def session_expired(cls) -> Fault:
        """Forget the request's session for real, then answer 404."""
        return cls("expire_session", status_code=404)

    # -- streams ------------------------------------------------------------------
    @classmethod
    def cut(cls, after_events: int = 0) -> Fault:
        """End the response stream cleanly after N message events (a POST becomes SSE)."""
        return cls("cut", after_events=after_events)

    @classmethod
    def cut_mid_event(cls, after_events: int = 0) -> Fault:
        """After N events, write half an event and drop the connection (no final chunk)."""
        return cls("cut_mid_event", after_events=after_events)

    @classmethod
    def stall(cls, *, after_headers: bool = False) -> Fault:
        """Send nothing more (optionally after the headers) until the client leaves."""
        return cls("stall", after_headers=after_headers)

    @classmethod
    def disconnect(cls) -> Fault:
        """Close the connection without any response."""
        return cls("disconnect")

    @classmethod
    def delay(cls, seconds: float, *, late_answer: bool = False) -> Fault:
        """Serve normally, but only after ``seconds``.

        ``late_answer``: do the work first, then wait before answering (the server
        has acted on the request, e.g. opened a session, that the client may never
        hear of: a client that gives up meanwhile leaves it behind).
        """
        return cls("delay", seconds=seconds, late_answer=late_answer)

    # -- bad bytes ----------------------------------------------------------------
    @classmethod
    def garbage(cls) -> Fault:
        """A 200 event stream of bytes that are not SSE-framed JSON."""
        return cls("garbage")

    @classmethod
    def oversized(cls, size: int = 8 << 20) -> Fault:
        """A 200 event stream whose one data line is ``size`` bytes long."""
        return cls("oversized", size=size)

    @classmethod
    def non_json(cls) -> Fault:
        """A message whose data is not JSON."""
        return cls("non_json")

    @classmethod
    def not_jsonrpc(cls) -> Fault:
        """A message that is JSON but not JSON-RPC."""
        return cls("not_jsonrpc")

    @classmethod
    def wrong_content_type(cls) -> Fault:
        """A 200 text/html page instead of JSON or an event stream."""
        return cls("wrong_content_type", status_code=200)

    def _with(self, *, headers: tuple[tuple[str, str], ...], body: bytes) -> Fault:
        return replace(self, headers=headers, body=body)


@dataclass
class FaultRule:
    """A fault with its filter and budget. ``None`` filters match anything."""

    fault: Fault
    remaining: int | None = None
    path: str | None = None
    method: str | None = None
    rpc_method: str | None = None
    principal: str | None = None
    #: How many requests this rule has hit so far.
    hits: int = 0
    _owner: FaultSet | None = field(default=None, repr=False, compare=False)

    def matches(
        self, path: str, method: str, rpc_method: str | None, principal: str | None
    ) -> bool:
        return (
            (self.path is None or self.path == path)
            and (self.method is None or self.method == method)
            and (self.rpc_method is None or self.rpc_method == rpc_method)
            and (self.principal is None or self.principal == principal)
        )

    @property
    def exhausted(self) -> bool:
        return self.remaining is not None and self.remaining <= 0

    def remove(self) -> None:
        if self._owner is not None:
            self._owner.remove(self)


class _Where(TypedDict, total=False):
    """`FaultSet.add`'s keywords: how many requests, and which."""

    times: int | None
    path: str | None
    method: str | None
    rpc_method: str | None
    principal: str | None


class FaultSet:
    """The live rules of one server. First matching rule wins."""

    def __init__(self) -> None:
        self._rules: list[FaultRule] = []

    def __len__(self) -> int:
        return len(self._rules)

    @property
    def rules(self) -> list[FaultRule]:
        return list(self._rules)

    def add(
        self,
        fault: Fault,
        *,
        times: int | None = None,
        path: str | None = None,
        method: str | None = None,
        rpc_method: str | None = None,
        principal: str | None = None,
    ) -> FaultRule:
        """Inject ``fault`` into the next ``times`` matching requests (None: until removed)."""
        if times is not None and times < 1:
            raise ValueError("times must be at least 1 (or None for unlimited)")
        rule = FaultRule(
            fault,
            remaining=times,
            path=path,
            method=method.upper() if method else None,
            rpc_method=rpc_method,
            principal=principal,
            _owner=self,
        )
        self._rules.append(rule)
        return rule

    @contextmanager
    def injected(self, fault: Fault, **where: Unpack[_Where]) -> Iterator[FaultRule]:
        """`add()` for the duration of a ``with`` block (the same keywords)."""
        rule = self.add(fault, **where)
        try:
            yield rule
        finally:
            self.remove(rule)

    def remove(self, rule: FaultRule) -> None:
        if rule in self._rules:
            self._rules.remove(rule)

    def clear(self) -> None:
        self._rules.clear()

    def take(
        self, path: str, method: str, rpc_method: str | None, principal: str | None
    ) -> Fault | None:
        """The fault for this request, spending one unit of its rule's budget."""
        for rule in self._rules:
            if rule.matches(path, method, rpc_method, principal):
                rule.hits += 1
                if rule.remaining is not None:
                    rule.remaining -= 1
                    if rule.remaining <= 0:
                        self._rules.remove(rule)
                return rule.fault
        return None
