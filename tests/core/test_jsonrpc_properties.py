"""JSON-RPC held to properties: encode and parse round-trip, garbage raises only
`InvalidMessage`, and the optional orjson decoder reads exactly what the stdlib's does."""

from __future__ import annotations

import json
import re

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from mcpconn._core import jsonrpc as _jsonrpc
from mcpconn._core.bounds import INT64_MAX, INT64_MIN
from mcpconn._core.jsonrpc import (
    ErrorResponse,
    Message,
    Notification,
    Request,
    Response,
    encode,
    parse_message,
    parse_object,
)
from mcpconn._exceptions import InvalidMessage, JSONRPCError

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
