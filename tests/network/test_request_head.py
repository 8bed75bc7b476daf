"""`request_head`: the JSON-RPC POST's head written without h11 validating every header.

The bytes are read back by an h11 server (an independent parser); h11's client
side, shown only the framing, frames the body and keeps (or drops) keep-alive as
it would for the whole head; a header that would inject a line is refused, and
a credential never stays in the cache of checked lines.
"""

from __future__ import annotations

import re

import h11
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from mcpconn._http import head as head_module
from mcpconn._http.head import request_head

HEADERS = [
    ("Accept", "application/json, text/event-stream"),
    ("Connection", "keep-alive"),
    ("Mcp-Method", "tools/call"),
    ("Authorization", "Bearer secret-token-1"),
]


def _server_reads(raw: bytes, body: bytes) -> tuple[h11.Request, bytes]:
    server = h11.Connection(h11.SERVER)
    server.receive_data(raw + body)
    request = server.next_event()
    assert isinstance(request, h11.Request)
    data = server.next_event()
    assert isinstance(data, h11.Data)
    assert isinstance(server.next_event(), h11.EndOfMessage)
    return request, bytes(data.data)


def test_the_head_reads_back_with_every_header_and_frames_the_body() -> None:
    body = b'{"jsonrpc":"2.0"}'
    event, raw = request_head(b"POST", b"/mcp?x=1", HEADERS, b"127.0.0.1:8080", len(body))
    client = h11.Connection(h11.CLIENT)
    client.send(event)
    sent = raw + client.send(h11.Data(data=body)) + client.send(h11.EndOfMessage())
    request, data = _server_reads(raw, body)
    assert sent.endswith(body)
    assert data == body
    assert request.method == b"POST" and request.target == b"/mcp?x=1"
    assert dict(request.headers) == {
        b"host": b"127.0.0.1:8080",
        b"content-length": b"%d" % len(body),
        b"accept": b"application/json, text/event-stream",
        b"connection": b"keep-alive",
        b"mcp-method": b"tools/call",
        b"authorization": b"Bearer secret-token-1",
    }
    assert client.our_state is h11.DONE


def test_connection_close_reaches_h11_so_the_socket_is_not_kept() -> None:
    event, _ = request_head(b"POST", b"/", [("Connection", "close")], b"h", 0)
    client = h11.Connection(h11.CLIENT)
    client.send(event)
    client.send(h11.EndOfMessage())
    client.receive_data(b"HTTP/1.1 200 OK\r\ncontent-length: 0\r\n\r\n")
    assert isinstance(client.next_event(), h11.Response)
    assert isinstance(client.next_event(), h11.EndOfMessage)
    assert client.our_state is h11.MUST_CLOSE


@pytest.mark.parametrize(
    ("name", "value"),
    [
        ("Mcp-Name", "echo\r\nX-Injected: 1"),
        ("Mcp-Name", "echo\n"),
        ("Mcp-Name", "nul\x00"),
        ("Mcp-Name", " padded"),
        ("Mcp-Name", "caf\u00e9"),
        ("Bad Name", "x"),
        ("Bad:Name", "x"),
        ("", "x"),
        ("Authorization", "Bearer a\r\nX-Injected: 1"),
        ("Connection", "close\r\nX: 1"),
    ],
)
def test_a_header_that_would_break_the_head_is_refused(name: str, value: str) -> None:
    with pytest.raises(h11.LocalProtocolError):
        request_head(b"POST", b"/", [(name, value)], b"h", 0)
    assert (name, value) not in head_module._checked


def test_a_credential_is_never_kept_among_the_checked_lines() -> None:
    request_head(b"POST", b"/", HEADERS, b"h", 2)
    assert ("Authorization", "Bearer secret-token-1") not in head_module._checked
    assert ("Mcp-Method", "tools/call") in head_module._checked
    assert not any("secret-token" in value for _, value in head_module._checked)


def test_the_cache_of_checked_lines_stays_bounded() -> None:
    for i in range(head_module._MAX_REMEMBERED * 2 + 3):
        request_head(b"POST", b"/", [("Mcp-Name", f"tool-{i}")], b"h", 0)
    assert len(head_module._checked) <= head_module._MAX_REMEMBERED


def test_h11s_event_is_remembered_per_framing_but_never_for_a_target_with_a_query() -> None:
    first, _ = request_head(b"POST", b"/mcp", HEADERS, b"h:1", 17)
    again, _ = request_head(b"POST", b"/mcp", HEADERS, b"h:1", 17)
    longer, _ = request_head(b"POST", b"/mcp", HEADERS, b"h:1", 18)
    assert again is first and longer is not first
    assert dict(longer.headers)[b"content-length"] == b"18"
    request_head(b"POST", b"/mcp?key=secret-in-query", HEADERS, b"h:1", 17)
    assert not any(b"secret-in-query" in target for _, target, _ in head_module._events)
    for i in range(head_module._MAX_REMEMBERED + 3):
        request_head(b"POST", b"/", [], b"h", i)
    assert len(head_module._events) <= head_module._MAX_REMEMBERED


_RFC_NAME = re.compile(rb"[-!#$%&'*+.^_`|~0-9a-zA-Z]+")
_RFC_VALUE = re.compile(rb"(?:[\x21-\x7e\x80-\xff]+(?:[ \t]+[\x21-\x7e\x80-\xff]+)*)?")
_SOME_ASCII = st.text(st.characters(max_codepoint=127), max_size=12)


@settings(max_examples=400, deadline=None)
@given(
    name=st.one_of(_SOME_ASCII, st.sampled_from(["Mcp-Name", "X-A_b.c~1", "Authorization"])),
    value=st.one_of(_SOME_ASCII, st.sampled_from([" x", "x\t", "a \t b", "Bearer abc.def"])),
)
def test_a_line_is_refused_exactly_when_rfc_9110_grammar_refuses_it(name: str, value: str) -> None:
    """The translate-based check (no regex over a credential per request) accepts exactly
    the lines the RFC 9110 token / field-value grammar accepts."""
    expected = (
        _RFC_NAME.fullmatch(name.encode()) is not None
        and _RFC_VALUE.fullmatch(value.encode()) is not None
    )
    if name.lower() in head_module._FOR_H11:
        return  # framing headers go to h11, which validates them itself
    try:
        request_head(b"POST", b"/", [(name, value)], b"h", 0)
    except h11.LocalProtocolError:
        assert not expected
    else:
        assert expected
