"""What the embedder wants in force on every session: a log level, resource subscriptions.

A connection outlives its sessions, so it keeps one `Wanted` and every session
re-applies it, the way its era's rules say (`EraRules.log_level`,
`EraRules.subscriptions`): after each initialize and re-initialize
``logging/setLevel`` when the server declares ``logging``, and one
``resources/subscribe`` per URI when it declares ``resources.subscribe`` (the
session waits for the replies, so READY means they are in force); or, in
2026-07-28, the level rides every request's ``_meta`` and the subscriptions the
listener's ``resourceSubscriptions`` filter (a change re-listens).
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable, Mapping
from typing import Any, Protocol

from .._config import LOG_LEVELS
from .._core.eras import EraRules
from .._exceptions import JSONRPCError

__all__ = [
    "Wanted",
    "apply",
    "check_level",
    "declares_logging",
    "declares_subscribe",
    "sends_set_level",
    "sends_subscribe",
]

logger = logging.getLogger("mcpconn.session")

_NONE: frozenset[str] = frozenset()

Roundtrip = Callable[[str, dict[str, Any] | None], Awaitable[dict[str, Any]]]


def check_level(level: str) -> str:
    if level not in LOG_LEVELS:
        raise ValueError(f"unknown log level {level!r}; one of {LOG_LEVELS}")
    return level


def declares_logging(capabilities: Mapping[str, Any]) -> bool:
    return isinstance(capabilities.get("logging"), dict)


def declares_subscribe(capabilities: Mapping[str, Any]) -> bool:
    resources = capabilities.get("resources")
    return isinstance(resources, dict) and resources.get("subscribe") is True


def sends_set_level(rules: EraRules, capabilities: Mapping[str, Any]) -> bool:
    """A level is put in force by ``logging/setLevel`` on this session."""
    return rules.log_level == "set-level" and declares_logging(capabilities)


def sends_subscribe(rules: EraRules, capabilities: Mapping[str, Any]) -> bool:
    """Resources are subscribed by ``resources/subscribe`` on this session."""
    return rules.subscriptions == "subscribe" and declares_subscribe(capabilities)


class Watcher(Protocol):
    """What hears of an edit of the subscriptions: it is stopped (a listen's reader)."""

    def stop(self) -> None: ...


class Wanted:
    """The level and subscriptions one connection asks for; watchers hear of an edit."""

    __slots__ = ("_subscriptions", "_watchers", "log_level")

    def __init__(self, log_level: str | None = None) -> None:
        self.log_level = log_level
        # Made at the first: most connections never subscribe (an empty set is 216 bytes).
        self._subscriptions: set[str] | None = None
        self._watchers: list[Watcher] | None = None

    @property
    def subscriptions(self) -> frozenset[str] | set[str]:
        """The resource URIs to keep subscribed (read-only: `subscribe`, `unsubscribe`)."""
        return self._subscriptions or _NONE

    def subscribe(self, uri: str) -> bool:
        """Add ``uri``; False if it was there already."""
        subscriptions = self._subscriptions
        if subscriptions is None:
            subscriptions = self._subscriptions = set()
        elif uri in subscriptions:
            return False
        subscriptions.add(uri)
        return True

    def unsubscribe(self, uri: str) -> bool:
        """Remove ``uri``; False if it was not there."""
        subscriptions = self._subscriptions
        if not subscriptions or uri not in subscriptions:
            return False
        subscriptions.discard(uri)
        return True

    def mark_changed(self) -> None:
        watchers, self._watchers = self._watchers, None
        for watcher in watchers or ():
            watcher.stop()

    def watch(self, watcher: Watcher) -> None:
        """Stop ``watcher`` (sync, once) at the next edit of the subscriptions: a waiting
        listener costs no task and no waiter queue (and, an object rather than a
        callback, no bound method kept meanwhile)."""
        if self._watchers is None:
            self._watchers = []
        self._watchers.append(watcher)

    def unwatch(self, watcher: Watcher) -> None:
        if self._watchers and watcher in self._watchers:
            self._watchers.remove(watcher)

    def meta_level(self, rules: EraRules) -> str | None:
        """The level every request's ``_meta`` carries in ``rules``' era (None: none)."""
        return self.log_level if rules.log_level == "request-meta" else None

    def listen_filter(self, base: Mapping[str, Any]) -> dict[str, Any]:
        """The 2026-07-28 ``subscriptions/listen`` filter with our resource URIs."""
        out = dict(base)
        if self.subscriptions:
            out["resourceSubscriptions"] = sorted(self.subscriptions)
        return out


async def apply(
    wanted: Wanted, rules: EraRules, capabilities: Mapping[str, Any], roundtrip: Roundtrip
) -> None:
    """After ``initialize``: put the level and subscriptions in force by request."""
    steps: list[tuple[str, dict[str, Any]]] = []
    if wanted.log_level is not None and sends_set_level(rules, capabilities):
        steps.append(("logging/setLevel", {"level": wanted.log_level}))
    if wanted.subscriptions and sends_subscribe(rules, capabilities):
        steps.extend(("resources/subscribe", {"uri": uri}) for uri in sorted(wanted.subscriptions))
    for method, params in steps:
        try:
            await roundtrip(method, params)
        except JSONRPCError as exc:  # the server refused this one: the session still works
            logger.warning("%s was refused (JSON-RPC error %d)", method, exc.code)
