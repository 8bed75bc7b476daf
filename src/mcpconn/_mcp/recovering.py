"""The session's recovery loop: send, and on failure carry out what the core decides.

Mixed into `Session`. The decision is `mcpconn._core.recovery.recover` (the
era's rules x the error x the steps this call already took); here is only the
doing: initialize again (single-flight across concurrent callers, then
``on_reinitialized``), count a re-issue, or re-read the tools, then try again.
A close lets a re-initialize in flight finish first: the session it opens on
the server is the one to DELETE.
"""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING, Any

import anyio

from .._core import jsonrpc as _jsonrpc
from .._core.recovery import Recovery, recover
from .._exceptions import MCPConnError
from .calls import CallOptions
from .lists import paginate
from .parts import Roundtrip, SessionPart
from .transports import Transport

if TYPE_CHECKING:
    pass

__all__ = ["Recovering"]

logger = logging.getLogger("mcpconn.session")


def _keep(result: dict[str, Any]) -> dict[str, Any]:
    return result


class Recovering(SessionPart):
    """The recovery half of `Session` (see the module docstring)."""

    if not TYPE_CHECKING:  # `Session` names every attribute; mypy checks them there
        __slots__ = ()

    _generation: int
    _reinit_lock_made: anyio.Lock | None

    if TYPE_CHECKING:

        def _count(self, name: str) -> None: ...

        @property
        def _reinit_lock(self) -> anyio.Lock: ...  # made on demand by the session

        def _require_transport(self) -> Transport: ...

        async def _initialize(
            self, transport: Transport, roundtrip: Roundtrip | None = None
        ) -> None: ...

    async def _with_rules(
        self,
        method: str,
        params: dict[str, Any] | None,
        options: CallOptions,
        sent: list[_jsonrpc.RequestId],
    ) -> dict[str, Any]:
        tried: list[Recovery] = []
        while True:
            generation = self._generation
            try:
                result = await self._roundtrip(method, params, options, sent)
            except MCPConnError as exc:
                step = recover(self.rules, exc, method=method, tried=tried)
                if step is None:
                    raise
                tried.append(step)
                await self._carry_out(step, generation)
                continue
            if method == "tools/list" and self._learn_tools is not None:
                result = self._learn_tools(result)
            return result

    async def _carry_out(self, step: Recovery, generation: int) -> None:
        if step is Recovery.REINITIALIZE:
            await self._reinitialize(generation)
        elif step is Recovery.REISSUE:
            self._count("reissued")
        else:  # RELIST_TOOLS: every page, to learn the tools' x-mcp-header maps
            await paginate(self._roundtrip, "tools/list", self._learn_tools or _keep)

    async def _reinitialize(self, generation: int) -> None:
        """Single-flight: the first caller re-initializes, the others reuse its session."""
        async with self._reinit_lock:
            if self._generation != generation:
                return
            transport = self._require_transport()
            with anyio.fail_after(self._config.timeouts.request):
                await self._initialize(transport)
            self._generation += 1
            self._count("reinit")
            logger.info("%r re-initialized after the server forgot the session", self)
        callback = self._handlers.on_reinitialized
        if callback is not None:
            try:
                callback()
            except Exception:
                logger.exception("on_reinitialized raised")

    async def _finish_reinitialize(self, close_by: float) -> None:
        """Wait (until the close's ``close_by``) for a re-initialize in flight: the server
        opened a session that only its answer names, and a close must DELETE that one."""
        lock = self._reinit_lock_made
        if lock is not None and lock.locked():
            with anyio.CancelScope(deadline=close_by):
                async with lock:
                    pass
