"""Opening the session: try the planned eras, run the chosen era's handshake, adopt it.

Mixed into `Session`. The plan, the fallback verdicts and the handshakes are
plain functions in `handshake`; here the session builds the era's wire, runs
``server/discover`` or ``initialize`` (then ``notifications/initialized`` and
what `Wanted` keeps in force) and adopts the `ServerHello`. A failed attempt
closes its transport before the next era is tried.

Discovery reuse (2026, decided in `mcpconn._core.discovery`): a fresh kept
``server/discover`` answer stands in for a new one when the first
``subscriptions/listen``, opened here, is accepted (the session opens only
then); a refused token there is raised as from a discover (the connection's
business), any other failure forgets the answer and sends discover after all.
A discover answer with a usable ``ttlMs`` is kept for the next reconnect.
"""

from __future__ import annotations

import functools
import logging
from typing import TYPE_CHECKING, Any, NoReturn

import anyio

from .._core import discovery as _discovery
from .._core import jsonrpc as _jsonrpc
from .._core.eras import EraRules
from .._exceptions import MCPConnError, RequestTimeout
from . import handshake as _handshake
from . import wanted as _wanted
from .handshake import ServerHello
from .listening import FirstListen
from .parts import Roundtrip, SessionPart
from .transports import HTTPChannel, Transport
from .transports.eras import EraCache

if TYPE_CHECKING:
    from collections.abc import Callable

    from .tasks import Spawner


__all__ = ["Opening"]

logger = logging.getLogger("mcpconn.session")


def _deadline_passed() -> NoReturn:
    raise TimeoutError  # as ``anyio.fail_after`` would


class Opening(SessionPart):
    """The opening half of `Session` (see the module docstring)."""

    if not TYPE_CHECKING:  # `Session` names every attribute; mypy checks them there
        __slots__ = ()

    protocol_version: str
    server_info: dict[str, Any]
    capabilities: dict[str, Any]
    instructions: str | None
    _channel: HTTPChannel
    _tg: Spawner
    _transport: Transport | None
    #: Scopes the reuse of a private ``server/discover`` answer.
    _principal: str | None
    _era_cache: EraCache | None
    _first_listen: FirstListen | None

    if TYPE_CHECKING:

        def _dispatch(self, message: _jsonrpc.Message) -> None: ...

        def _fail_all(self, error: MCPConnError) -> None: ...

        async def _listen_stateless(
            self, transport: Transport, on_open: Callable[[], None] | None = None
        ) -> None: ...

    async def _open(self, era_cache: EraCache | None) -> None:
        self._era_cache = era_cache
        await _handshake.open_first_era(self._config, era_cache, self._open_era)

    async def _open_era(self, rules: EraRules) -> None:
        config = self._config
        transport = _handshake.make_transport(
            rules,
            self._channel,
            config,
            task_group=self._tg,
            on_lost=self._fail_all,
            capabilities=self._client_capabilities(),
        )
        self._transport, self.rules = transport, rules
        try:
            # a plain scope, not ``anyio.fail_after`` (two generators per handshake); the
            # handshake's requests have none of their own (`_handshake_roundtrip`)
            deadline = anyio.current_time() + config.timeouts.request
            with anyio.CancelScope(deadline=deadline) as scope:
                await transport.start(self._dispatch)
                if rules.handshake == "discover":
                    if not await self._reuse_discovery(rules, transport):
                        roundtrip = self._handshake_roundtrip
                        answer = await _handshake.discover(transport, roundtrip, config)
                        self._adopt(_handshake.hello_of(*answer))
                        self._keep_discovery(*answer)
                else:
                    await self._initialize(transport, self._handshake_roundtrip)
            if scope.cancelled_caught:
                _deadline_passed()
        except TimeoutError:
            await transport.aclose()
            self._transport = None
            raise RequestTimeout(f"the {rules.name} handshake got no answer in time") from None
        except BaseException:
            close_by = self._close_by()  # a drop_at's budget, if one stopped us
            with anyio.CancelScope(deadline=close_by, shield=True):
                await transport.aclose(close_by)
            self._transport = None
            raise

    async def _handshake_roundtrip(
        self, method: str, params: dict[str, Any] | None
    ) -> dict[str, Any]:
        """A request of the opening handshake: the handshake's one scope (its deadline,
        `_open_era`) bounds it, and an opening session is dropped by its `open_session`'s
        scope, never closed under a request: no scope of its own (nor a loop timer)."""
        return await self._roundtrip(method, params, scoped=False)

    async def _reuse_discovery(self, rules: EraRules, transport: Transport) -> bool:
        """Open on a fresh kept ``server/discover`` answer, proven by the first listen.

        False: nothing to reuse, or the proof failed other than by a refused
        token: send ``server/discover``.
        """
        cache, url = self._era_cache, self._config.url
        if cache is None or not _discovery.may_reuse(rules, listen=self._config.listen):
            return False
        found = cache.discovery(url, self._principal, anyio.current_time())
        if found is None:
            return False
        before, transport.protocol_version = transport.protocol_version, found.version
        first = FirstListen()
        self._tg.start_soon(first.run, functools.partial(self._listen_stateless, transport))
        try:
            await first.settled.wait()
        except BaseException:
            first.cancel()  # the handshake timed out or was cancelled
            raise
        if first.opened:
            self._adopt(_handshake.hello_of(found.version, found.result))
            self._first_listen = first
            return True
        if first.error is not None and _discovery.proof_refused(first.error):
            raise first.error  # what a discover would have met
        shown = type(first.error).__name__ if first.error is not None else "ended"
        logger.debug("%s: a kept server/discover answer failed its proof (%s)", url, shown)
        cache.forget_discovery(url, self._principal)
        transport.protocol_version = before
        return False

    def _keep_discovery(self, version: str, result: dict[str, Any]) -> None:
        cache = self._era_cache
        if cache is None:
            return
        found = _discovery.discovery_of(version, result, anyio.current_time())
        if found is not None:
            cache.keep_discovery(self._config.url, self._principal, found)

    async def _initialize(self, transport: Transport, roundtrip: Roundtrip | None = None) -> None:
        """``initialize`` and what follows it; ``roundtrip``: the handshake's, when opening
        (a re-initialize sends its requests the session's ordinary way)."""
        roundtrip = roundtrip or self._roundtrip
        capabilities = self._client_capabilities()
        if self._handlers.on_initialize is not None:
            self._handlers.on_initialize()
        hello = await _handshake.initialize(transport, roundtrip, self._config, capabilities)
        self._adopt(hello)
        await transport.send_message(_jsonrpc.Notification("notifications/initialized", None))
        await _wanted.apply(self._handlers.wanted, self.rules, self.capabilities, roundtrip)

    def _client_capabilities(self) -> dict[str, Any]:
        return dict(self._handlers.capabilities or {})

    def _adopt(self, hello: ServerHello) -> None:
        self.protocol_version = hello.protocol_version
        self.server_info = hello.server_info
        self.capabilities = hello.capabilities
        self.instructions = hello.instructions
