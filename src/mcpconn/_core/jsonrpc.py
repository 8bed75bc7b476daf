"""JSON-RPC 2.0 messages as MCP uses them: parse, build, allocate ids.

Parsing is strict where being lax would mismatch responses, and lenient where
real servers are sloppy but the meaning is clear:

* A batch (a JSON array) is rejected with `InvalidMessage`: MCP removed batching
  in 2025-06-18 and no version lets a server *answer* with one unasked.
* ``"jsonrpc": "2.0"`` is required. Ids are ints or strings; ``true`` is not an
  id, and an integral float id (``1.0``) is read as the int it means.
* ``params`` must be an object (MCP never sends arrays) or absent; ``null`` is
  read as absent.
* A ``result`` must be an object: every MCP result is one. ``null`` is read as
  ``{}`` (some servers answer ``ping`` so); anything else is `InvalidMessage`.
  The shell knows which request a stream or body belongs to, so it can fail
  that request with the error instead of leaving it to time out.
* An ``error`` member never makes a message invalid: `error_from_object` turns
  any garbage into a `JSONRPCError` with code `INTERNAL_ERROR`.
* Numbers are read with bounds (`bounds.json_int`): an id or an error code
  outside the signed 64-bit range is not one.

Server text that reaches an error (a JSON-RPC error's ``message`` and ``data``,
a quoted ``jsonrpc`` member or id) passes `sanitize` with ``secrets``, the
credentials sent on the request this message answers: bounded, no control
characters, no secret and nothing JWT-shaped.

`parse_message` raises `InvalidMessage` and nothing else. It does not bound the
input's size: the shell caps bodies and SSE events (`Limits`) before they get
here. Deep nesting is bounded by Python's recursion limit and reported as
`InvalidMessage`.
"""

from __future__ import annotations

import json
from collections.abc import Collection
from dataclasses import dataclass
from typing import Any

from .._exceptions import InvalidMessage, JSONRPCError
from .bounds import json_int
from .sanitize import sanitize, sanitize_json

try:  # the optional ``orjson`` extra: a faster decoder, used when installed
    import orjson as _orjson
except ImportError:  # pragma: no cover - the stdlib decoder otherwise
    _orjson = None  # type: ignore[assignment]


_DIGITS_AS_ZERO = bytes.maketrans(b"123456789", b"000000000")
_LONG_RUN = b"0" * 19
#: Every 6th byte: 19 digits in a row always cover three of those in a row.
_STRIDE = 6


def _has_long_run(raw: bytes) -> bool:
    """Whether ``raw`` has 19 digits in a row, found at C speed (no regex).

    First on a sample of every `_STRIDE`-th byte, a sixth of the work: text whose
    sample has no three digits in a row (nearly all text) cannot hold such a run.
    """
    if b"000" not in raw[::_STRIDE].translate(_DIGITS_AS_ZERO):
        return False
    return _LONG_RUN in raw.translate(_DIGITS_AS_ZERO)


def _loads_orjson(data: str | bytes) -> Any:
    # orjson reads integers beyond 64 bits as floats (lossy), so text with 19+ digits
    # in a row goes to the stdlib. What orjson refuses and the stdlib accepts (NaN,
    # lone surrogates) the stdlib decides too, so both decoders give the same results.
    if type(data) is bytes:
        raw = data
    else:
        try:
            raw = data.encode() if isinstance(data, str) else bytes(data)
        except (UnicodeEncodeError, TypeError):
            return json.loads(data)
    if not _has_long_run(raw):
        try:
            return _orjson.loads(raw)
        except ValueError:
            pass
    return json.loads(data)


#: The JSON decoder `parse_message` uses: orjson's when installed, else ``json.loads``.
loads = json.loads if _orjson is None else _loads_orjson

__all__ = [
    "INTERNAL_ERROR",
    "INVALID_PARAMS",
    "INVALID_REQUEST",
    "METHOD_NOT_FOUND",
    "PARSE_ERROR",
    "ErrorResponse",
    "IdAllocator",
    "Message",
    "Notification",
    "Request",
    "RequestId",
    "Response",
    "encode",
    "error_from_object",
    "parse_message",
    "parse_object",
    "to_object",
]

PARSE_ERROR = -32700
INVALID_REQUEST = -32600
METHOD_NOT_FOUND = -32601
INVALID_PARAMS = -32602
INTERNAL_ERROR = -32603

RequestId = int | str

_MAX_QUOTED = 64  # characters of a garbage member quoted in an error message
#: Characters kept of a server's error message and of each string in its data.
MAX_ERROR_TEXT = 512
Secrets = Collection[str]


@dataclass(frozen=True, slots=True)
class Request:
    id: RequestId
    method: str
    params: dict[str, Any] | None = None


@dataclass(frozen=True, slots=True)
class Notification:
    method: str
    params: dict[str, Any] | None = None


@dataclass(frozen=True, slots=True)
class Response:
    id: RequestId
    result: dict[str, Any]


@dataclass(frozen=True, slots=True)
class ErrorResponse:
    #: ``None`` when the server could not tell which request failed (e.g. a parse error).
    id: RequestId | None
    error: JSONRPCError


Message = Request | Notification | Response | ErrorResponse

# A listener builds one Notification per message: through its slots, not the frozen
# dataclass __init__ (two object.__setattr__ calls through a Python frame), half the cost.
_new_object = object.__new__
_set_method = Notification.__dict__["method"].__set__
_set_params = Notification.__dict__["params"].__set__


class IdAllocator:
    """Request ids for one session: 1, 2, 3, ... (never 0, never reused).

    Starting at 1 keeps every id truthy, which sloppy servers sometimes test.
    """

    __slots__ = ("_last",)

    def __init__(self) -> None:
        self._last = 0

    def next(self) -> int:
        self._last += 1
        return self._last


def _quote(value: object, secrets: Secrets) -> str:
    if isinstance(value, str):
        return repr(sanitize(value, secrets, limit=_MAX_QUOTED))
    return sanitize(value, secrets, limit=_MAX_QUOTED)


def error_from_object(obj: object, secrets: Secrets = ()) -> JSONRPCError:
    """The `JSONRPCError` an ``error`` member means; never raises, whatever it holds.

    Its message and data are sanitized (``secrets``: the credentials we sent).
    """
    if not isinstance(obj, dict):
        text = f"malformed JSON-RPC error: {_quote(obj, secrets)}"
        return JSONRPCError(INTERNAL_ERROR, text, sanitize_json(obj, secrets))
    code = json_int(obj.get("code"))
    if code is None:
        code = INTERNAL_ERROR
    message = obj.get("message")
    if isinstance(message, str):
        message = sanitize(message, secrets, limit=MAX_ERROR_TEXT)
    else:
        message = "(no message)" if message is None else _quote(message, secrets)
    data = sanitize_json(obj.get("data"), secrets, limit=MAX_ERROR_TEXT)
    return JSONRPCError(code, message, data)


def _id(value: object, secrets: Secrets) -> RequestId:
    if isinstance(value, str):
        return value
    if isinstance(value, bool):
        raise InvalidMessage(f"JSON-RPC id must be a number or string, not {value!r}")
    number = json_int(value)
    if number is not None:
        return number
    raise InvalidMessage(
        f"JSON-RPC id must be a 64-bit integer or a string, not {_quote(value, secrets)}"
    )


def _params(obj: dict[Any, Any]) -> dict[str, Any] | None:
    params = obj.get("params")
    if params is None or isinstance(params, dict):
        return params
    raise InvalidMessage(f"JSON-RPC params must be an object, not {type(params).__name__}")


def parse_object(obj: object, secrets: Secrets = ()) -> Message:
    """Classify one decoded JSON value; raise `InvalidMessage` if it is not a message.

    ``secrets``: the credentials sent on the request this answers (see `sanitize`).
    """
    if type(obj) is dict and obj.get("jsonrpc") == "2.0":
        # The hot path (a listener's notifications): a well-formed notification passes
        # these checks and nothing else; anything unusual takes the full path below.
        method = obj.get("method")
        if type(method) is str and "id" not in obj and "result" not in obj and "error" not in obj:
            params = obj.get("params")
            if params is None or type(params) is dict:
                note = _new_object(Notification)
                _set_method(note, method)
                _set_params(note, params)
                return note
    if isinstance(obj, list):
        raise InvalidMessage("JSON-RPC batches are not supported")
    if not isinstance(obj, dict):
        raise InvalidMessage(f"a JSON-RPC message must be an object, not {type(obj).__name__}")
    if obj.get("jsonrpc") != "2.0":
        raise InvalidMessage(f"not JSON-RPC 2.0 (jsonrpc={_quote(obj.get('jsonrpc'), secrets)})")
    has_result = "result" in obj
    has_error = "error" in obj
    if "method" in obj:
        method = obj["method"]
        if not isinstance(method, str):
            raise InvalidMessage("JSON-RPC method must be a string")
        if has_result or has_error:
            raise InvalidMessage("a JSON-RPC message cannot be both a request and a response")
        if "id" not in obj:
            return Notification(method, _params(obj))
        return Request(_id(obj["id"], secrets), method, _params(obj))
    if has_result and has_error:
        raise InvalidMessage("a JSON-RPC response cannot have both result and error")
    if has_error:
        error_id = obj.get("id")
        return ErrorResponse(
            None if error_id is None else _id(error_id, secrets),
            error_from_object(obj["error"], secrets),
        )
    if has_result:
        if "id" not in obj:
            raise InvalidMessage("a JSON-RPC response needs an id")
        response_id = _id(obj["id"], secrets)
        result = obj["result"]
        if result is None:
            result = {}
        elif not isinstance(result, dict):
            raise InvalidMessage(
                f"a JSON-RPC result must be an object, not {type(result).__name__}"
            )
        return Response(response_id, result)
    raise InvalidMessage("JSON-RPC message has neither method, result nor error")


def parse_message(data: str | bytes, secrets: Secrets = ()) -> Message:
    """Decode and classify one JSON-RPC message; raises `InvalidMessage` only.

    ``secrets``: the credentials sent on the request this answers (see `sanitize`).
    """
    try:
        obj = loads(data)
    except (ValueError, RecursionError) as exc:  # JSONDecodeError, UnicodeDecodeError
        # The reader's own words (a position, a byte value), bounded all the same.
        raise InvalidMessage(f"not JSON: {sanitize(str(exc), secrets)}") from None
    except TypeError as exc:
        raise InvalidMessage(f"not JSON text: {type(data).__name__}") from exc
    return parse_object(obj, secrets)


def to_object(message: Message) -> dict[str, Any]:
    """The JSON object for ``message``; ``params``/``data`` are left out when ``None``."""
    obj: dict[str, Any] = {"jsonrpc": "2.0"}
    if isinstance(message, Request):
        obj["id"] = message.id
        obj["method"] = message.method
        if message.params is not None:
            obj["params"] = message.params
    elif isinstance(message, Notification):
        obj["method"] = message.method
        if message.params is not None:
            obj["params"] = message.params
    elif isinstance(message, Response):
        obj["id"] = message.id
        obj["result"] = message.result
    else:
        error: dict[str, Any] = {"code": message.error.code, "message": message.error.message}
        if message.error.data is not None:
            error["data"] = message.error.data
        obj["id"] = message.id
        obj["error"] = error
    return obj


_SCALARS = frozenset({str, int, float, bool, type(None)})


def _plain(value: Any) -> bool:
    """Whether ``value`` holds exact JSON types only (dict, list, tuple and scalars).

    orjson also writes what the stdlib refuses (`Enum`, `UUID`, datetimes, dataclasses,
    ``orjson.Fragment``): anything else goes to the stdlib, so installing orjson changes
    no argument's fate. Under 1 us on a small tool call, ~45 ns a value on big ones;
    dict keys need no look (orjson refuses every key but an exact ``str``).
    """
    kind = type(value)
    if kind is dict:
        value = value.values()
    elif kind is not list and kind is not tuple:
        return kind in _SCALARS
    for item in value:  # noqa: SIM110 - a plain loop: no generator per container
        if type(item) not in _SCALARS and not _plain(item):
            return False
    return True


#: What orjson allocates for any output (its bytes object keeps it all).
_ORJSON_BUFFER = 4096


def encode(message: Message) -> bytes:
    """Compact UTF-8 JSON. NaN/Infinity raise ``ValueError``: they are not JSON.

    orjson's when installed, for exact JSON types only (`_plain`); whatever it refuses
    (big integers, lone surrogates, non-string keys) or writes as ``null`` (NaN too)
    goes to the stdlib, which decides as it does without orjson.
    """
    obj = to_object(message)
    if _orjson is not None:
        try:
            out: bytes | None = _orjson.dumps(obj) if _plain(obj) else None
        except (TypeError, RecursionError):  # RecursionError: too deep for `_plain`
            out = None
        if out is not None and b"null" not in out:
            # orjson's bytes keep the buffer they were written into (4 KiB, whatever their
            # length) for as long as they live: a short message is copied to its size.
            return bytes(memoryview(out)) if len(out) < _ORJSON_BUFFER else out
    try:
        return json.dumps(obj, separators=(",", ":"), ensure_ascii=False, allow_nan=False).encode()
    except UnicodeEncodeError:  # a lone surrogate: let json escape it instead
        return json.dumps(obj, separators=(",", ":"), allow_nan=False).encode()
