"""One call's own options: its ``_meta``, its notifications, its context, 2026 multi-round-trip.

An aggregator forwards each downstream call on behalf of one upstream request,
so everything a call carries or causes is tied to it here: the caller's
``meta`` merged into ``_meta`` (our protocol keys win, except a per-call log
level), every notification that arrived on this request's own response stream
(`CallStream`), the opaque ``context`` handed to any server request that stream
carried, and the 2026-07-28 ``resultType`` rules: ``input_required`` is never
a final answer (`complete_rounds` raises `InputRequired` or drives the rounds
through the request handlers).
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass, replace
from typing import Any, Literal

import anyio

from .._core import jsonrpc as _jsonrpc
from .._exceptions import InputRequired, InvalidMessage, MCPConnError
from .trace import trace_meta

__all__ = [
    "LOG_LEVEL_KEY",
    "UNSCOPED",
    "CallOptions",
    "CallStream",
    "NotificationCallback",
    "Pending",
    "ProgressCallback",
    "complete_rounds",
    "merge_params",
    "result_type",
]

logger = logging.getLogger("mcpconn.session")

LOG_LEVEL_KEY = "io.modelcontextprotocol/logLevel"
ProgressCallback = Callable[[dict[str, Any]], None]
NotificationCallback = Callable[[dict[str, Any]], None]
#: Answers one input request (method, params, key, context) with its result; None: no handler.
InputAnswer = Callable[[str, dict[str, Any] | None, str, Any], Awaitable[dict[str, Any] | None]]
ResultType = Literal["complete", "input_required"]
#: "drive" answers at most this many input requests per round; more go to the caller.
MAX_INPUT_REQUESTS = 64


@dataclass(frozen=True)
class CallOptions:
    """What one call carries besides its method and params (all optional)."""

    meta: Mapping[str, Any] | None = None
    on_progress: ProgressCallback | None = None
    on_notification: NotificationCallback | None = None
    context: Any = None
    input_responses: Mapping[str, Any] | None = None
    request_state: str | None = None


NO_OPTIONS = CallOptions()


def merge_params(
    params: Mapping[str, Any] | None,
    options: CallOptions,
    *,
    log_level: str | None,
    progress_token: _jsonrpc.RequestId | None,
) -> dict[str, Any] | None:
    """``params`` with this call's ``_meta`` and MRTR fields merged in.

    Order of precedence, lowest first: the active trace context, our
    per-request log level (2026), the params' own ``_meta``, the caller's
    ``meta``, then our ``progressToken`` when we route progress. The transport
    stamps the other protocol keys last.
    """
    meta: dict[str, Any] = trace_meta()
    if log_level is not None:
        meta[LOG_LEVEL_KEY] = log_level
    own = params.get("_meta") if params else None
    if isinstance(own, Mapping):
        meta.update(own)
    if options.meta:
        meta.update(options.meta)
    if progress_token is not None:
        meta["progressToken"] = progress_token
    if not meta and options.input_responses is None and options.request_state is None:
        return dict(params) if params is not None else None
    out = dict(params or {})
    if meta:
        out["_meta"] = meta
    if options.input_responses is not None:
        out["inputResponses"] = dict(options.input_responses)
    if options.request_state is not None:
        out["requestState"] = options.request_state
    return out


class CallStream:
    """Delivers what arrives on one request's own response stream to that call's callback."""

    __slots__ = ("options", "token")

    def __init__(self, options: CallOptions, token: _jsonrpc.RequestId | None) -> None:
        self.options = options
        #: The ``progressToken`` this call's progress carries (ours or the caller's).
        self.token = token

    def notify(self, note: dict[str, Any]) -> None:
        callback = self.options.on_notification
        if callback is None:
            return
        try:
            callback(note)
        except Exception:
            logger.exception("an on_notification callback raised")


class _Unscoped:
    """What an unscoped request (a handshake's) runs ``with``: static methods, so the
    ``with`` keeps no bound ``__exit__`` on the waiting frame (a nullcontext's would)."""

    __slots__ = ()

    @staticmethod
    def __enter__() -> None:
        return None

    @staticmethod
    def __exit__(*exc_info: object) -> None:
        return None


UNSCOPED = _Unscoped()


class Pending:
    """One request's answer; its Event is made only if someone has to wait for it (the
    answer usually arrives on the request's own stream, before anyone waits)."""

    __slots__ = ("_event", "answered", "error", "result")

    def __init__(self) -> None:
        self.answered = False
        self._event: anyio.Event | None = None
        self.result: dict[str, Any] | None = None
        self.error: MCPConnError | None = None

    def is_set(self) -> bool:
        return self.answered

    def set(self) -> None:
        self.answered = True
        if self._event is not None:
            self._event.set()

    async def wait(self) -> None:
        if not self.answered:
            if self._event is None:
                self._event = anyio.Event()
            await self._event.wait()


def progress_token_of(options: CallOptions, params: Mapping[str, Any] | None) -> Any:
    """The caller's own ``progressToken`` (from ``meta`` or the params' ``_meta``), if any."""
    if options.meta and "progressToken" in options.meta:
        return options.meta["progressToken"]
    own = params.get("_meta") if params else None
    return own.get("progressToken") if isinstance(own, Mapping) else None


def result_type(result: Mapping[str, Any]) -> ResultType:
    """``complete`` (absent too) or ``input_required``; any other value is not MCP we know."""
    value = result.get("resultType", "complete")
    if value == "complete":
        return "complete"
    if value == "input_required":
        return "input_required"
    # never quoted: a hostile server could put anything there, our token included
    raise InvalidMessage(f"unknown resultType (a {type(value).__name__}, not MCP we speak)")


def _input_required(result: Mapping[str, Any], why: str) -> InputRequired:
    requests = result.get("inputRequests")
    state = result.get("requestState")
    return InputRequired(
        why,
        input_requests=requests if isinstance(requests, dict) else {},
        request_state=state if isinstance(state, str) else None,
    )


async def complete_rounds(
    send: Callable[[CallOptions], Awaitable[dict[str, Any]]],
    options: CallOptions,
    *,
    mode: Literal["raise", "drive"],
    max_rounds: int,
    answer: InputAnswer,
) -> dict[str, Any]:
    """Send, and while the result asks for input either raise or answer and retry.

    Each retry is a new request (the session gives it a new id) carrying the
    answers as ``inputResponses`` and ``requestState`` echoed verbatim.
    """
    result = await send(options)
    rounds = 0
    while result_type(result) == "input_required":
        if mode == "raise":
            raise _input_required(result, "the server needs input to complete the request")
        if rounds >= max_rounds:
            raise _input_required(result, f"still asking for input after {rounds} rounds")
        requests = result.get("inputRequests")
        requests = requests if isinstance(requests, dict) else {}
        if len(requests) > MAX_INPUT_REQUESTS:
            raise _input_required(result, f"more than {MAX_INPUT_REQUESTS} input requests")
        responses: dict[str, Any] = {}
        for key, request in requests.items():
            if not isinstance(request, dict) or not isinstance(request.get("method"), str):
                raise InvalidMessage("an input request is not a request object")
            params = request.get("params")
            try:
                response = await answer(
                    request["method"],
                    params if isinstance(params, dict) else None,
                    str(key),
                    options.context,
                )
            except MCPConnError:
                raise
            except Exception:
                logger.exception("the handler for an input request raised")
                failed = "a handler failed to answer an input request"
                raise _input_required(result, failed) from None
            if response is None:
                raise _input_required(result, "no handler answers an input request")
            responses[str(key)] = response
        state = result.get("requestState")
        rounds += 1
        options = replace(
            options,
            input_responses=responses,
            request_state=state if isinstance(state, str) else None,
        )
        result = await send(options)
    return result
