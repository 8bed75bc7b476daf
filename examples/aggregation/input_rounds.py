"""Multi-round-trip input (MRTR, 2026-07-28) passed up to the client and brought back.

A 2026 client cannot be sent server-to-client requests, so a downstream server's question
goes up as an ``input_required`` result and comes back on the client's retry. The retry
names the round by an unguessable ``requestState`` of ours, bound to (principal, server,
tool), so one user can never answer, or read, another user's round.
"""

from __future__ import annotations

import dataclasses
import secrets
from typing import Any

import anyio
import mcp_types as types

import mcpconn

from .limits import BRIDGE_TIMEOUT, MAX_PENDING

Owner = tuple[str, str, str]  # (principal, server, tool)


@dataclasses.dataclass(frozen=True)
class Pending:
    """An MRTR round passed up to a 2026 client: whose it is, and the downstream's state."""

    owner: Owner
    state: str | None


class Bridge:
    """A 2026 client's tool call whose session-era downstream server asks a question.

    The downstream call runs on in the aggregator's task group; each server request it
    makes goes up as one MRTR round, and the client's retry brings the answer back.
    """

    def __init__(self, owner: Owner) -> None:
        self.owner = owner
        self._events, self._next = anyio.create_memory_object_stream[tuple[str, Any]](1)
        self._answers, self._answered = anyio.create_memory_object_stream[dict[str, Any]](1)

    async def ask(self, request: mcpconn.ServerRequest) -> dict[str, Any]:
        await self._events.send(("ask", {"method": request.method, "params": request.params}))
        return await self._answered.receive()

    async def answer(self, response: dict[str, Any]) -> None:
        await self._answers.send(response)

    async def finish(self, result: Any) -> None:
        await self._events.send(("result", result))

    async def next(self) -> tuple[str, Any]:
        with anyio.fail_after(BRIDGE_TIMEOUT):
            return await self._next.receive()


class InputRounds:
    """The unanswered rounds, by the ``requestState`` we gave the client (bounded)."""

    def __init__(self) -> None:
        self._pending: dict[str, Pending | Bridge] = {}

    def remember(self, pending: Pending | Bridge) -> str:
        key = secrets.token_urlsafe(16)  # unguessable, and bound to (principal, tool)
        self._pending[key] = pending
        while len(self._pending) > MAX_PENDING:  # forget the oldest unanswered rounds
            self._pending.pop(next(iter(self._pending)))
        return key

    def take(self, key: str, owner: Owner) -> Pending | Bridge | None:
        """The round ``key`` names, once, and only to its owner."""
        pending = self._pending.pop(key, None)
        return pending if pending is not None and pending.owner == owner else None

    def forget(self, bridge: Bridge) -> None:
        """Its downstream call ended: no retry may reach it any more."""
        self._pending = {k: v for k, v in self._pending.items() if v is not bridge}

    def passed_up(self, owner: Owner, need: mcpconn.InputRequired) -> types.InputRequiredResult:
        """A 2026 downstream's questions, as our own round for the client to answer."""
        key = self.remember(Pending(owner, need.request_state))
        return types.InputRequiredResult.model_validate(
            {"inputRequests": need.input_requests, "requestState": key}
        )

    async def next_round(self, bridge: Bridge, answer: dict[str, Any] | None) -> Any:
        """Deliver the client's answer (if any); then the result, or the next question."""
        if answer is not None:
            await bridge.answer(answer)
        kind, value = await bridge.next()
        if kind == "result":
            return value
        return types.InputRequiredResult.model_validate(
            {"inputRequests": {"ask": value}, "requestState": self.remember(bridge)}
        )
