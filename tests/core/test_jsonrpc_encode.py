"""`jsonrpc.encode` with orjson installed: the same JSON as the stdlib's, the same refusals."""

from __future__ import annotations

import dataclasses
import datetime
import json
import math
from typing import Any

import pytest

from mcpconn._core import jsonrpc


def stdlib(params: Any) -> Any:
    text = json.dumps({"params": params}, ensure_ascii=False, allow_nan=False)
    return json.loads(text)["params"]


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
