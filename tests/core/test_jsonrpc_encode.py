"""`jsonrpc.encode`: compact UTF-8 JSON; with orjson installed, the same bytes and refusals
as the stdlib's."""

from __future__ import annotations

import dataclasses
import datetime
import decimal
import enum
import importlib.util
import json
import math
import uuid
from typing import Any

import orjson
import pytest

from mcpconn._core import jsonrpc
from mcpconn._exceptions import JSONRPCError


def stdlib(params: Any) -> Any:
    text = json.dumps({"params": params}, ensure_ascii=False, allow_nan=False)
    return json.loads(text)["params"]


@pytest.mark.parametrize(
    ("message", "expected"),
    [
        (jsonrpc.Request(1, "ping"), {"jsonrpc": "2.0", "id": 1, "method": "ping"}),
        (
            jsonrpc.Request("r", "tools/call", {"name": "t"}),
            {"jsonrpc": "2.0", "id": "r", "method": "tools/call", "params": {"name": "t"}},
        ),
        (
            jsonrpc.Notification("notifications/initialized"),
            {"jsonrpc": "2.0", "method": "notifications/initialized"},
        ),
        (jsonrpc.Response(2, {}), {"jsonrpc": "2.0", "id": 2, "result": {}}),
        (
            jsonrpc.ErrorResponse(3, JSONRPCError(jsonrpc.METHOD_NOT_FOUND, "Method not found")),
            {"jsonrpc": "2.0", "id": 3, "error": {"code": -32601, "message": "Method not found"}},
        ),
        (
            jsonrpc.ErrorResponse(None, JSONRPCError(jsonrpc.PARSE_ERROR, "bad", {"at": 1})),
            {
                "jsonrpc": "2.0",
                "id": None,
                "error": {"code": -32700, "message": "bad", "data": {"at": 1}},
            },
        ),
    ],
)
def test_encode(message: jsonrpc.Message, expected: dict[str, Any]) -> None:
    raw = jsonrpc.encode(message)
    assert isinstance(raw, bytes)
    assert raw == json.dumps(expected, separators=(",", ":")).encode()  # compact
    assert json.loads(raw) == expected
    assert jsonrpc.to_object(message) == expected


def test_encode_is_utf8_not_escaped() -> None:
    raw = jsonrpc.encode(jsonrpc.Notification("m", {"text": "h\u00e9 \U0001f600"}))
    assert "h\u00e9 \U0001f600".encode() in raw


def test_encode_lone_surrogate_is_escaped() -> None:
    raw = jsonrpc.encode(jsonrpc.Notification("m", {"text": "\ud800"}))
    assert b"\\ud800" in raw
    assert json.loads(raw)["params"]["text"] == "\ud800"


def test_encode_refuses_nan() -> None:
    with pytest.raises(ValueError, match="JSON"):
        jsonrpc.encode(jsonrpc.Notification("m", {"x": float("nan")}))


@dataclasses.dataclass
class Point:
    x: int


class Name(str):
    pass


@pytest.mark.parametrize(
    "params",
    [
        {"text": "x", "n": 1, "f": 0.1, "ok": True, "list": [1, "2", {"a": []}]},
        {"big": 2**70, "neg": -(2**64)},  # beyond 64 bits: the stdlib writes them exactly
        {"lone": "\ud800"},  # a lone surrogate: escaped by the stdlib
        {"none": None, "nested": {"also": None}},
        {1: "an int key"},
        {"sub": Name("a str subclass")},
        {"uni": "čšž ✓ 🎉"},
    ],
)
def test_encode_writes_what_the_stdlib_writes(params: Any) -> None:
    data = jsonrpc.encode(jsonrpc.Request(7, "tools/call", params))
    decoded = json.loads(data)
    assert decoded["params"] == stdlib(params)
    assert decoded["id"] == 7 and decoded["method"] == "tools/call"


@pytest.mark.parametrize("bad", [math.nan, math.inf, -math.inf])
def test_non_finite_numbers_are_refused(bad: float) -> None:
    with pytest.raises(ValueError, match="not JSON compliant"):
        jsonrpc.encode(jsonrpc.Request(1, "m", {"x": [1, bad]}))


@pytest.mark.parametrize("other", [datetime.datetime(2026, 1, 1), Point(1), object()])
def test_what_the_stdlib_cannot_write_is_refused_as_before(other: object) -> None:
    with pytest.raises(TypeError):
        jsonrpc.encode(jsonrpc.Request(1, "m", {"x": other}))


class Colour(enum.Enum):
    RED = "red"


class Level(enum.IntEnum):
    HIGH = 3


class Mode(enum.StrEnum):
    FAST = "fast"


class Ratio(float, enum.Enum):
    HALF = 0.5


class Celsius(float):  # what numpy's float64 is to the encoders: a float subclass
    pass


#: numpy values where numpy is installed (the benchmarks' extra); the float subclass
#: and the refusals above cover the same paths without it.
NUMPY_REFUSED: list[object] = []
NUMPY_WRITTEN: list[object] = []  # float64 is a float subclass: the stdlib writes it
if importlib.util.find_spec("numpy") is not None:
    import numpy

    NUMPY_REFUSED = [numpy.int64(3), numpy.float32(1.5), numpy.bool_(True), numpy.array([1])]
    NUMPY_WRITTEN = [numpy.float64(2.5)]

#: orjson's raw JSON value, in the versions that have it.
FRAGMENT = [orjson.Fragment(b"[1]")] if hasattr(orjson, "Fragment") else []


@pytest.fixture(params=["orjson", "stdlib"])
def path(request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch) -> str:
    """Each test once as installed (orjson) and once as without the extra."""
    if request.param == "stdlib":
        monkeypatch.setattr(jsonrpc, "_orjson", None)
        monkeypatch.setattr(jsonrpc, "loads", json.loads)
    return str(request.param)


def encode_args(arguments: object) -> bytes:
    return jsonrpc.encode(jsonrpc.Request(1, "tools/call", {"name": "t", "arguments": arguments}))


@pytest.mark.parametrize(
    "refused",
    [
        Colour.RED,  # orjson writes an Enum's value
        uuid.UUID(int=7),  # and a UUID as its text
        *FRAGMENT,  # and a fragment as it is
        datetime.datetime(2026, 1, 1),
        datetime.date(2026, 1, 1),
        datetime.time(12),
        Point(1),
        decimal.Decimal("1.5"),
        b"bytes",
        frozenset({1}),
        object(),
        *NUMPY_REFUSED,
    ],
    ids=lambda v: type(v).__name__,
)
def test_a_value_the_stdlib_refuses_is_refused_alike_with_and_without_orjson(
    refused: object, path: str
) -> None:
    """A user's tool arguments fail the same way whether or not orjson is installed."""
    for arguments in ({"x": refused}, [1, {"deep": [refused]}], {"t": (refused,)}):
        with pytest.raises(TypeError, match="is not JSON serializable") as info:
            encode_args(arguments)
        assert type(refused).__name__ in str(info.value)


@pytest.mark.parametrize(
    "written",
    [
        Level.HIGH,
        Mode.FAST,
        Ratio.HALF,
        Celsius(21.5),
        Name("text"),
        (1, "two"),
        {1: "an int key", "k": [None, True]},
        [[[[[[1]]]]]] * 3,
        *NUMPY_WRITTEN,
    ],
    ids=lambda v: type(v).__name__,
)
def test_a_value_the_stdlib_writes_is_written_alike_with_and_without_orjson(
    written: object, path: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    data = encode_args({"x": written})
    monkeypatch.setattr(jsonrpc, "_orjson", None)
    assert data == encode_args({"x": written})  # the stdlib's bytes, whichever path wrote
    assert json.loads(data)["params"]["arguments"] == stdlib({"x": written})


@pytest.mark.parametrize("depth", [254, 300, 900])
def test_deep_arguments_are_written_alike_past_orjsons_depth_limit(depth: int, path: str) -> None:
    nested: Any = 1
    for _ in range(depth):
        nested = [nested]
    data = encode_args(nested)
    assert (
        data
        == json.dumps(
            {
                "jsonrpc": "2.0",
                "id": 1,
                "method": "tools/call",
                "params": {"name": "t", "arguments": nested},
            },
            separators=(",", ":"),
        ).encode()
    )


def test_plain_arguments_are_written_by_orjson() -> None:
    """The fast path is taken for exact JSON types (else the check would cost for nothing)."""
    arguments = {"text": "x", "n": [1, 2.5, None, True], "t": ("a",), "d": {"e": {}}}
    assert jsonrpc._plain(jsonrpc.to_object(jsonrpc.Request(1, "m", arguments)))
    for other in (Colour.RED, uuid.UUID(int=1), Level.HIGH, Name("n"), Celsius(1.0)):
        assert not jsonrpc._plain({"a": [1, {"b": other}]})


def test_a_short_message_keeps_only_its_own_bytes() -> None:
    """orjson's output keeps the 4 KiB buffer it was written into: a request body held for
    its round trip (a hundred handshakes at once) is copied to its size."""
    import tracemalloc

    message = jsonrpc.Request(1, "server/discover", {"_meta": {"k": "v"}})
    tracemalloc.start()
    try:
        before = tracemalloc.get_traced_memory()[0]
        kept = [jsonrpc.encode(message) for _ in range(50)]
        held = (tracemalloc.get_traced_memory()[0] - before) / len(kept)
    finally:
        tracemalloc.stop()
    assert json.loads(kept[0])["params"] == {"_meta": {"k": "v"}}
    assert held < 512  # not orjson's 4 KiB each
    big = jsonrpc.encode(jsonrpc.Request(2, "x", {"text": "y" * 10_000}))
    assert json.loads(big)["params"]["text"] == "y" * 10_000
