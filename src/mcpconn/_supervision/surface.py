"""The MCP methods an aggregator forwards, as `Connection` methods, and the negotiated state.

Each is a thin wrapper over `Connection.request` (which waits for READY, maps
errors and applies the per-call options), so every era gets the same rules.
What must stay in force across sessions (the log level, the resource
subscriptions) is kept in the connection's `Wanted` and re-applied by every
session; a call here also applies it to the live session at once.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, TypedDict, Unpack

from .._core.eras import EraRules
from .._mcp.output_schema import check_output
from .._mcp.wanted import Wanted, check_level, sends_set_level, sends_subscribe

if TYPE_CHECKING:
    from .._mcp.session import Session

__all__ = ["Negotiated", "ProtocolSurface"]

NoteCallback = Callable[[dict[str, Any]], None]
#: Whether the live session puts a wanted setting in force by a request (`wanted`).
SendsRequest = Callable[[EraRules, Mapping[str, Any]], bool]


class CallKeywords(TypedDict, total=False):
    """The per-call options every forwarding method passes on (see `Connection.request`)."""

    timeout: float | None
    on_progress: NoteCallback | None
    meta: Mapping[str, Any] | None
    on_notification: NoteCallback | None
    context: Any
    input_responses: Mapping[str, Any] | None
    request_state: str | None


@dataclass(frozen=True, slots=True)
class Negotiated:
    """What the last handshake settled, kept after its session is gone."""

    server_info: dict[str, Any]
    server_capabilities: dict[str, Any]
    instructions: str | None
    protocol_version: str
    era: str
    session_id: str | None

    @classmethod
    def of(cls, session: Session) -> Negotiated:
        # the session's own dicts, not copies: a handshake replaces them, never edits
        # them, and the properties below hand out copies (one fewer pair per connection)
        return cls(
            server_info=session.server_info,
            server_capabilities=session.capabilities,
            instructions=session.instructions,
            protocol_version=session.protocol_version,
            era=session.era,
            session_id=session.session_id,
        )


class ProtocolSurface:
    """Mixed into `Connection`: forwarding helpers and read-only negotiated state."""

    if TYPE_CHECKING:
        # what the connection provides (read from its runner)
        @property
        def _session(self) -> Session | None: ...

        @property
        def _wanted(self) -> Wanted: ...

        @property
        def _negotiated(self) -> Negotiated | None: ...

        async def request(
            self, method: str, params: dict[str, Any] | None = None, **options: Unpack[CallKeywords]
        ) -> dict[str, Any]: ...

        async def _list(self, kind: str, refresh: bool) -> list[dict[str, Any]]: ...

    # ---- negotiated state (None until the first READY) ---------------------------

    @property
    def server_info(self) -> dict[str, Any] | None:
        n = self._negotiated
        return None if n is None else dict(n.server_info)

    @property
    def server_capabilities(self) -> dict[str, Any] | None:
        n = self._negotiated
        return None if n is None else dict(n.server_capabilities)

    @property
    def instructions(self) -> str | None:
        n = self._negotiated
        return None if n is None else n.instructions

    @property
    def protocol_version(self) -> str | None:
        n = self._negotiated
        return None if n is None else n.protocol_version

    @property
    def era(self) -> str | None:
        """``"streamable-http"``, ``"stateless"`` (2026-07-28) or ``"sse"`` (legacy)."""
        n = self._negotiated
        return None if n is None else n.era

    @property
    def session_id(self) -> str | None:
        """The live session's ``Mcp-Session-Id`` (None in 2026 and on legacy SSE)."""
        session = self._session
        if session is not None:
            return session.session_id
        n = self._negotiated
        return None if n is None else n.session_id

    # ---- forwarding helpers -------------------------------------------------------

    async def call_tool(
        self,
        name: str,
        arguments: dict[str, Any] | None = None,
        *,
        validate_output: bool = False,
        **options: Unpack[CallKeywords],
    ) -> dict[str, Any]:
        """``tools/call``; the result as the server sent it (``isError`` included).

        ``validate_output=True`` checks ``structuredContent`` against the tool's
        ``outputSchema`` from the (cached) tool list (`output_schema`).
        """
        params: dict[str, Any] = {"name": name, "arguments": arguments or {}}
        result = await self.request("tools/call", params, **options)
        if validate_output:
            tools = await self._list("tools", False)
            tool = next((t for t in tools if t.get("name") == name), None)
            schema = tool.get("outputSchema") if tool is not None else None
            check_output(result, schema if isinstance(schema, dict) else None)
        return result

    async def get_prompt(
        self,
        name: str,
        arguments: dict[str, Any] | None = None,
        **options: Unpack[CallKeywords],
    ) -> dict[str, Any]:
        """``prompts/get``; the result (``messages`` inside)."""
        params: dict[str, Any] = {"name": name}
        if arguments is not None:
            params["arguments"] = arguments
        return await self.request("prompts/get", params, **options)

    async def read_resource(
        self,
        uri: str,
        **options: Unpack[CallKeywords],
    ) -> dict[str, Any]:
        """``resources/read``; the result (``contents`` inside)."""
        return await self.request("resources/read", {"uri": uri}, **options)

    async def complete(
        self,
        ref: dict[str, Any],
        argument: dict[str, Any],
        *,
        context_arguments: dict[str, Any] | None = None,
        timeout: float | None = None,
    ) -> dict[str, Any]:
        """``completion/complete``; the result's ``completion`` object."""
        params: dict[str, Any] = {"ref": ref, "argument": argument}
        if context_arguments is not None:
            params["context"] = {"arguments": context_arguments}
        result = await self.request("completion/complete", params, timeout=timeout)
        completion = result.get("completion")
        return completion if isinstance(completion, dict) else {}

    async def list_resource_templates(self, *, refresh: bool = False) -> list[dict[str, Any]]:
        """All resource templates, following pagination; cached like `list_tools`."""
        return await self._list("resourceTemplates", refresh)

    async def subscribe_resource(self, uri: str) -> None:
        """Keep ``uri`` subscribed on this and every later session (see the module docstring)."""
        if not self._wanted.subscribe(uri):
            return
        self._wanted.mark_changed()  # 2026: the listener re-listens with the new filter
        if self._live_session(sends_subscribe):
            await self.request("resources/subscribe", {"uri": uri})

    async def unsubscribe_resource(self, uri: str) -> None:
        if not self._wanted.unsubscribe(uri):
            return
        self._wanted.mark_changed()
        if self._live_session(sends_subscribe):
            await self.request("resources/unsubscribe", {"uri": uri})

    async def set_log_level(self, level: str) -> None:
        """Ask for log messages at ``level`` and above, now and on every later session."""
        self._wanted.log_level = check_level(level)
        if self._live_session(sends_set_level):
            await self.request("logging/setLevel", {"level": level})

    async def notify_roots_changed(self) -> None:
        """``notifications/roots/list_changed`` (a no-op in 2026, which removed it)."""
        session = self._session
        if session is None or not session.rules.roots_list_changed:
            return  # a new session asks for the roots afresh
        await session.notify("notifications/roots/list_changed")

    def _live_session(self, sends: SendsRequest) -> bool:
        """Whether the live session puts the setting in force by a request now."""
        session = self._session
        return session is not None and sends(session.rules, session.capabilities)
