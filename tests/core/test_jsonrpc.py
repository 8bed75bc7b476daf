"""JSON-RPC 2.0 parsing, error objects and ids as MCP uses them."""

from __future__ import annotations

import pickle
from typing import Any

import pytest

from mcpconn._core import jsonrpc as _jsonrpc
from mcpconn._core.jsonrpc import (
    INTERNAL_ERROR,
    INVALID_PARAMS,
    INVALID_REQUEST,
    METHOD_NOT_FOUND,
    PARSE_ERROR,
    ErrorResponse,
    IdAllocator,
    Notification,
    Request,
    Response,
    error_from_object,
    parse_message,
    parse_object,
)
from mcpconn._exceptions import InvalidMessage, JSONRPCError, ProtocolError


def test_error_codes() -> None:
    assert (PARSE_ERROR, INVALID_REQUEST, METHOD_NOT_FOUND, INVALID_PARAMS, INTERNAL_ERROR) == (
        -32700,
        -32600,
        -32601,
        -32602,
        -32603,
    )


# --- parse ------------------------------------------------------------------------


def test_parse_request() -> None:
    assert parse_message('{"jsonrpc":"2.0","id":3,"method":"ping"}') == Request(3, "ping")
    raw = b'{"jsonrpc":"2.0","id":"a","method":"tools/call","params":{"name":"x"}}'
    assert parse_message(raw) == Request("a", "tools/call", {"name": "x"})


def test_hot_path_notification_is_an_ordinary_frozen_one() -> None:
    """The listener's fast construction gives the same value, hash and immutability."""
    got = parse_message('{"jsonrpc":"2.0","method":"m","params":{"a":1}}')
    assert type(got) is Notification
    assert got == Notification("m", {"a": 1})
    assert repr(got) == repr(Notification("m", {"a": 1}))
    bare = parse_message('{"jsonrpc":"2.0","method":"m"}')
    assert bare == Notification("m") and hash(bare) == hash(Notification("m"))
    with pytest.raises(AttributeError):
        got.method = "other"  # type: ignore[misc]


def test_parse_notification() -> None:
    raw = '{"jsonrpc":"2.0","method":"notifications/progress","params":{"progress":1}}'
    assert parse_message(raw) == Notification("notifications/progress", {"progress": 1})
    assert parse_message('{"jsonrpc":"2.0","method":"x","params":null}') == Notification("x")


def test_parse_response() -> None:
    raw = '{"jsonrpc":"2.0","id":1,"result":{"tools":[]},"extra":1}'
    assert parse_message(raw) == Response(1, {"tools": []})


def test_null_result_reads_as_empty_object() -> None:
    assert parse_message('{"jsonrpc":"2.0","id":1,"result":null}') == Response(1, {})


@pytest.mark.parametrize("result", ["[]", "1", '"ok"', "true"])
def test_non_object_result_is_invalid(result: str) -> None:
    with pytest.raises(InvalidMessage, match="result must be an object"):
        parse_message('{"jsonrpc":"2.0","id":1,"result":' + result + "}")


def test_parse_error_response() -> None:
    raw = '{"jsonrpc":"2.0","id":5,"error":{"code":-32601,"message":"nope","data":{"m":"x"}}}'
    message = parse_message(raw)
    assert isinstance(message, ErrorResponse)
    assert message.id == 5
    assert (message.error.code, message.error.message, message.error.data) == (
        METHOD_NOT_FOUND,
        "nope",
        {"m": "x"},
    )


def test_error_response_without_id() -> None:
    for raw in (
        '{"jsonrpc":"2.0","id":null,"error":{"code":-32700,"message":"bad"}}',
        '{"jsonrpc":"2.0","error":{"code":-32700,"message":"bad"}}',
    ):
        message = parse_message(raw)
        assert isinstance(message, ErrorResponse)
        assert message.id is None
        assert message.error.code == PARSE_ERROR


def test_integral_float_id_is_an_int() -> None:
    assert parse_message('{"jsonrpc":"2.0","id":2.0,"result":{}}') == Response(2, {})


@pytest.mark.parametrize(
    ("raw", "match"),
    [
        ("not json", "not JSON"),
        ("", "not JSON"),
        (b"\xff\xfe\x00", "not JSON"),
        ('{"jsonrpc":"2.0","id":1,"result":{}', "not JSON"),
        ('[{"jsonrpc":"2.0","id":1,"method":"ping"}]', "batches"),
        ("[]", "batches"),
        ("42", "must be an object"),
        ('"x"', "must be an object"),
        ("null", "must be an object"),
        ('{"id":1,"method":"ping"}', "not JSON-RPC 2.0"),
        ('{"jsonrpc":"1.0","id":1,"method":"ping"}', "not JSON-RPC 2.0"),
        ('{"jsonrpc":2.0,"id":1,"method":"ping"}', "not JSON-RPC 2.0"),
        ('{"jsonrpc":"2.0","id":1,"method":7}', "method must be a string"),
        ('{"jsonrpc":"2.0","id":true,"method":"ping"}', "id must be"),
        ('{"jsonrpc":"2.0","id":null,"method":"ping"}', "id must be"),
        ('{"jsonrpc":"2.0","id":1.5,"method":"ping"}', "id must be"),
        ('{"jsonrpc":"2.0","id":[1],"result":{}}', "id must be"),
        ('{"jsonrpc":"2.0","id":{},"error":{}}', "id must be"),
        ('{"jsonrpc":"2.0","method":"x","params":[1,2]}', "params must be an object"),
        ('{"jsonrpc":"2.0","method":"x","params":"p"}', "params must be an object"),
        ('{"jsonrpc":"2.0","id":1,"method":"x","result":{}}', "both a request and a response"),
        ('{"jsonrpc":"2.0","id":1,"result":{},"error":{}}', "both result and error"),
        ('{"jsonrpc":"2.0","result":{}}', "needs an id"),
        ('{"jsonrpc":"2.0","id":1}', "neither method, result nor error"),
        ("[" * 100_000 + "]" * 100_000, "not JSON"),  # deeper than the recursion limit
        ('{"a":' + "1" * 5000 + "}", "not JSON"),  # more digits than int() takes
    ],
)
def test_invalid_messages(raw: str | bytes, match: str) -> None:
    with pytest.raises(InvalidMessage, match=match) as info:
        parse_message(raw)
    assert isinstance(info.value, ProtocolError)


def test_parse_object_takes_python_values() -> None:
    assert parse_object({"jsonrpc": "2.0", "method": "m"}) == Notification("m")
    with pytest.raises(InvalidMessage):
        parse_object(object())


def test_wrong_input_type_is_invalid_message() -> None:
    with pytest.raises(InvalidMessage):
        parse_message(12)  # type: ignore[arg-type]


# --- error objects ------------------------------------------------------------------


@pytest.mark.parametrize(
    ("error", "code", "message"),
    [
        ({"code": -32000, "message": "boom"}, -32000, "boom"),
        ({"code": -32000.0, "message": "boom"}, -32000, "boom"),
        ({"code": "E1", "message": "boom"}, INTERNAL_ERROR, "boom"),
        ({"code": True, "message": "boom"}, INTERNAL_ERROR, "boom"),
        ({"code": 1.5, "message": "boom"}, INTERNAL_ERROR, "boom"),
        ({"code": -1}, -1, "(no message)"),
        ({"code": -1, "message": ["a"]}, -1, "['a']"),
        ({}, INTERNAL_ERROR, "(no message)"),
    ],
)
def test_error_from_object(error: dict[str, Any], code: int, message: str) -> None:
    result = error_from_object(error)
    assert isinstance(result, JSONRPCError)
    assert (result.code, result.message) == (code, message)


@pytest.mark.parametrize("garbage", [None, "oops", 3, [1, 2], True])
def test_error_from_garbage(garbage: object) -> None:
    result = error_from_object(garbage)
    assert result.code == INTERNAL_ERROR
    assert "malformed JSON-RPC error" in result.message
    assert result.data == garbage


def test_garbage_error_is_still_an_error_response() -> None:
    message = parse_message('{"jsonrpc":"2.0","id":9,"error":"it broke"}')
    assert isinstance(message, ErrorResponse)
    assert message.id == 9
    assert message.error.code == INTERNAL_ERROR


def test_huge_garbage_is_not_quoted_in_full() -> None:
    result = error_from_object("x" * 10_000)
    assert len(result.message) < 300
    result = error_from_object({"code": 1, "message": ["y" * 10_000]})
    assert len(result.message) < 300


def test_jsonrpc_error_pickles() -> None:
    error = error_from_object({"code": -1, "message": "m", "data": [1]})
    again = pickle.loads(pickle.dumps(error))
    assert (again.code, again.message, again.data) == (-1, "m", [1])


# --- ids ----------------------------------------------------------------------------


def test_ids_start_at_one_and_increase() -> None:
    ids = IdAllocator()
    assert [ids.next() for _ in range(5)] == [1, 2, 3, 4, 5]
    assert IdAllocator().next() == 1  # each allocator is its own sequence


def test_module_exports_sorted_and_complete() -> None:
    assert sorted(_jsonrpc.__all__) == sorted(set(_jsonrpc.__all__))
    for name in _jsonrpc.__all__:
        assert hasattr(_jsonrpc, name)
