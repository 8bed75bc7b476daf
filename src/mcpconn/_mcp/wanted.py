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
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from typing import Any

import anyio

from .._config import LOG_LEVELS
from .._core.eras import EraRules
from .._exceptions import JSONRPCError
from .parts import Roundtrip

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


class Wanted:
    """The level and subscriptions one connection asks for; an edit re-listens.

    A listener runs inside `cancelled_on_change`: `mark_changed` (an edit of the
    subscriptions) cancels its scope, so it opens again with the new filter. No
    task and no event wait for the edit; the scopes are made per listen.
    """

    __slots__ = ("_listening", "log_level", "subscriptions")

    def __init__(self, log_level: str | None = None) -> None:
        self.log_level = log_level
        self.subscriptions: set[str] = set()
        self._listening: list[anyio.CancelScope] = []

    def mark_changed(self) -> None:
        for scope in self._listening:
            scope.cancel()

    @contextmanager
    def cancelled_on_change(self) -> Iterator[anyio.CancelScope]:
        """A cancel scope the next edit of the subscriptions cancels (see the class)."""
        scope = anyio.CancelScope()
        self._listening.append(scope)
        try:
            with scope:
                yield scope
        finally:
            self._listening.remove(scope)

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
