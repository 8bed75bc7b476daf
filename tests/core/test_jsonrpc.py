"""JSON-RPC 2.0 parsing, encoding and ids as MCP uses them."""

from __future__ import annotations

import json
import pickle
import re
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from mcpconn._core import jsonrpc as _jsonrpc
from mcpconn._core.bounds import INT64_MAX, INT64_MIN
from mcpconn._core.jsonrpc import (
    INTERNAL_ERROR,
    INVALID_PARAMS,
    INVALID_REQUEST,
    METHOD_NOT_FOUND,
    PARSE_ERROR,
    ErrorResponse,
    IdAllocator,
    Message,
    Notification,
    Request,
    Response,
    encode,
    error_from_object,
    parse_message,
    parse_object,
    to_object,
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


# --- encode -------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("message", "expected"),
    [
        (Request(1, "ping"), {"jsonrpc": "2.0", "id": 1, "method": "ping"}),
        (
            Request("r", "tools/call", {"name": "t"}),
            {"jsonrpc": "2.0", "id": "r", "method": "tools/call", "params": {"name": "t"}},
        ),
        (
            Notification("notifications/initialized"),
            {"jsonrpc": "2.0", "method": "notifications/initialized"},
        ),
        (Response(2, {}), {"jsonrpc": "2.0", "id": 2, "result": {}}),
        (
            ErrorResponse(3, JSONRPCError(METHOD_NOT_FOUND, "Method not found")),
            {"jsonrpc": "2.0", "id": 3, "error": {"code": -32601, "message": "Method not found"}},
        ),
        (
            ErrorResponse(None, JSONRPCError(PARSE_ERROR, "bad", {"at": 1})),
            {
                "jsonrpc": "2.0",
                "id": None,
                "error": {"code": -32700, "message": "bad", "data": {"at": 1}},
            },
        ),
    ],
)
def test_encode(message: Message, expected: dict[str, Any]) -> None:
    raw = encode(message)
    assert isinstance(raw, bytes)
    assert raw == json.dumps(expected, separators=(",", ":")).encode()  # compact
    assert json.loads(raw) == expected
    assert to_object(message) == expected


def test_encode_is_utf8_not_escaped() -> None:
    raw = encode(Notification("m", {"text": "h\u00e9 \U0001f600"}))
    assert "h\u00e9 \U0001f600".encode() in raw


def test_encode_lone_surrogate_is_escaped() -> None:
    raw = encode(Notification("m", {"text": "\ud800"}))
    assert b"\\ud800" in raw
    assert json.loads(raw)["params"]["text"] == "\ud800"


def test_encode_refuses_nan() -> None:
    with pytest.raises(ValueError, match="JSON"):
        encode(Notification("m", {"x": float("nan")}))


# --- ids ----------------------------------------------------------------------------


def test_ids_start_at_one_and_increase() -> None:
    ids = IdAllocator()
    assert [ids.next() for _ in range(5)] == [1, 2, 3, 4, 5]
    assert IdAllocator().next() == 1  # each allocator is its own sequence


def test_module_exports_sorted_and_complete() -> None:
    assert sorted(_jsonrpc.__all__) == sorted(set(_jsonrpc.__all__))
    for name in _jsonrpc.__all__:
        assert hasattr(_jsonrpc, name)


# --- properties ---------------------------------------------------------------------

# Kept small: generating deep JSON is what makes these tests slow.
keys = st.sampled_from(["", "a", "b", "id", "\u00e9"]) | st.text(max_size=4)
json_values = st.recursive(
    st.none()
    | st.booleans()
    | st.integers()
    | st.floats(allow_nan=False, allow_infinity=False)
    | st.text(max_size=6),
    lambda children: st.lists(children, max_size=3) | st.dictionaries(keys, children, max_size=3),
    max_leaves=6,
)
ids = st.one_of(st.integers(INT64_MIN, INT64_MAX), st.text(max_size=6))
# What a sanitized error keeps as is: text without control characters, 64-bit codes.
clean_text = st.text(
    st.characters(blacklist_categories=("Cc", "Cf", "Zl", "Zp", "Cs")), max_size=16
)
clean_json = st.recursive(
    st.none()
    | st.booleans()
    | st.integers(INT64_MIN, INT64_MAX)
    | st.floats(allow_nan=False, allow_infinity=False)
    | clean_text,
    lambda children: (
        st.lists(children, max_size=3) | st.dictionaries(clean_text, children, max_size=3)
    ),
    max_leaves=6,
)
params = st.none() | st.dictionaries(keys, json_values, max_size=3)
messages = st.one_of(
    st.builds(Request, ids, st.text(max_size=16), params),
    st.builds(Notification, st.text(max_size=16), params),
    st.builds(Response, ids, st.dictionaries(keys, json_values, max_size=3)),
    st.builds(
        ErrorResponse,
        st.none() | ids,
        st.builds(JSONRPCError, st.integers(INT64_MIN, INT64_MAX), clean_text, clean_json),
    ),
)
message_like = st.dictionaries(
    st.sampled_from(["jsonrpc", "id", "method", "params", "result", "error", "x"]),
    st.one_of(st.just("2.0"), json_values),
    max_size=6,
)


@settings(max_examples=200, deadline=None)
@given(message=messages)
def test_encode_parse_round_trip(message: Message) -> None:
    parsed = parse_message(encode(message))
    if isinstance(message, ErrorResponse):
        assert isinstance(parsed, ErrorResponse)
        assert parsed.id == message.id
        assert (parsed.error.code, parsed.error.message, parsed.error.data) == (
            message.error.code,
            message.error.message,
            message.error.data,
        )
    else:
        assert parsed == message


@settings(max_examples=300, deadline=None)
@given(raw=st.one_of(st.binary(max_size=200), st.text(max_size=200)))
def test_arbitrary_bytes_and_text_raise_only_invalid_message(raw: bytes | str) -> None:
    try:
        message = parse_message(raw)
    except InvalidMessage:
        return
    assert isinstance(message, Request | Notification | Response | ErrorResponse)


@settings(max_examples=200, deadline=None)
@given(obj=st.one_of(message_like, json_values))
def test_arbitrary_json_raises_only_invalid_message(obj: object) -> None:
    try:
        message = parse_message(json.dumps(obj))
    except InvalidMessage:
        return
    assert isinstance(message, Request | Notification | Response | ErrorResponse)
    assert parse_object(obj) == message or isinstance(message, ErrorResponse)


@settings(max_examples=300, deadline=None)
@given(
    head=st.binary(max_size=40),
    run=st.integers(min_value=0, max_value=40),
    tail=st.binary(max_size=40),
    digits=st.text("0123456789", min_size=40, max_size=40),
)
def test_long_digit_runs_found_at_every_offset(
    head: bytes, run: int, tail: bytes, digits: str
) -> None:
    """The sampled scan finds a run of 19+ digits wherever it starts, and nothing else."""
    raw = head + digits[:run].encode() + tail
    assert _jsonrpc._has_long_run(raw) == bool(re.search(rb"[0-9]{19}", raw))


@pytest.mark.parametrize(
    "text",
    [
        '{"jsonrpc":"2.0","method":"notifications/message","params":{"level":"info"}}',
        '{"jsonrpc":"2.0","id":123456789012345678901234567890,"result":{}}',  # beyond 64 bits
        '{"jsonrpc":"2.0","method":"m","params":{"x":NaN}}',  # the stdlib's extension
        '{"jsonrpc":"2.0","method":"m","params":{"s":"\\ud800"}}',  # a lone surrogate
        '{"jsonrpc":"2.0","method":"m","method":"n"}',  # duplicate keys: the last wins
        '{"jsonrpc":"2.0","id":1,"result":' + "[" * 3000 + "]" * 3000 + "}",
        '{"jsonrpc":"2.0","id":1,"result":{"f":[0.1,1e400,-0.0,123456789012345678]}}',
        "\ufeff{}",
        '{"jsonrpc":"2.0","id":1,"result":{"t":"caf\u00e9"}}',
        "not json",
        "",
    ],
)
def test_orjson_and_the_stdlib_decode_alike(text: str, monkeypatch: pytest.MonkeyPatch) -> None:
    """The optional orjson decoder accepts and refuses exactly what ``json.loads`` does."""
    outcomes = []
    for decoder in (json.loads, _jsonrpc._loads_orjson):
        monkeypatch.setattr(_jsonrpc, "loads", decoder)
        for data in (text, text.encode("utf-8", "surrogatepass")):
            try:
                outcomes.append(repr(_jsonrpc.parse_message(data)))
            except InvalidMessage:
                outcomes.append("invalid")
    assert outcomes[:2] == outcomes[2:]
