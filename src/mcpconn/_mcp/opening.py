"""Opening the session: try the planned eras, run the chosen era's handshake, adopt it.

Mixed into `Session`. The plan, the fallback verdicts and the handshakes are
plain functions in `handshake`; here the session builds the era's wire, runs
``server/discover`` or ``initialize`` (then ``notifications/initialized`` and
what `Wanted` keeps in force) and adopts the `ServerHello`. A failed attempt
closes its transport before the next era is tried.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import anyio
from anyio.abc import TaskGroup

from .._core import jsonrpc as _jsonrpc
from .._core.eras import EraRules
from .._exceptions import MCPConnError, RequestTimeout
from . import handshake as _handshake
from . import wanted as _wanted
from .calls import CallOptions
from .handlers import SessionHandlers
from .handshake import ServerHello, ToolLearner
from .transports import HTTPChannel, Transport
from .transports.eras import EraCache

if TYPE_CHECKING:
    from .._config import ServerConfig

__all__ = ["Opening"]


class Opening:
    """The opening half of `Session` (see the module docstring)."""

    rules: EraRules
    protocol_version: str
    server_info: dict[str, Any]
    capabilities: dict[str, Any]
    instructions: str | None
    _config: ServerConfig
    _handlers: SessionHandlers
    _channel: HTTPChannel
    _tg: TaskGroup
    _transport: Transport | None
    _learn_tools: ToolLearner | None

    if TYPE_CHECKING:

        async def _roundtrip(
            self,
            method: str,
            params: dict[str, Any] | None,
            options: CallOptions | None = None,
            sent: list[_jsonrpc.RequestId] | None = None,
        ) -> dict[str, Any]: ...

        def _dispatch(self, message: _jsonrpc.Message) -> None: ...

        def _fail_all(self, error: MCPConnError) -> None: ...

    async def _open(self, era_cache: EraCache | None) -> None:
        await _handshake.open_first_era(self._config, era_cache, self._open_era)

    async def _open_era(self, rules: EraRules) -> None:
        config = self._config
        wire = _handshake.make_transport(
            rules,
            self._channel,
            config,
            task_group=self._tg,
            on_lost=self._fail_all,
            capabilities=self._client_capabilities(),
        )
        transport = wire.transport
        self._transport, self._learn_tools, self.rules = transport, wire.learn_tools, rules
        try:
            with anyio.fail_after(config.timeouts.request):
                await transport.start(self._dispatch)
                if rules.handshake == "discover":
                    self._adopt(await _handshake.discover(transport, self._roundtrip, config))
                else:
                    await self._initialize(transport)
        except TimeoutError:
            await transport.aclose()
            self._transport = None
            raise RequestTimeout(f"the {rules.name} handshake got no answer in time") from None
        except BaseException:
            with anyio.move_on_after(config.timeouts.close, shield=True):
                await transport.aclose()
            self._transport = None
            raise

    async def _initialize(self, transport: Transport) -> None:
        capabilities = self._client_capabilities()
        hello = await _handshake.initialize(transport, self._roundtrip, self._config, capabilities)
        self._adopt(hello)
        await transport.send_message(_jsonrpc.Notification("notifications/initialized", None))
        await _wanted.apply(self._handlers.wanted, self.rules, self.capabilities, self._roundtrip)

    def _client_capabilities(self) -> dict[str, Any]:
        return dict(self._handlers.capabilities or {})

    def _adopt(self, hello: ServerHello) -> None:
        self.protocol_version = hello.protocol_version
        self.server_info = hello.server_info
        self.capabilities = hello.capabilities
        self.instructions = hello.instructions
