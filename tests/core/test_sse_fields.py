"""The SSE decoder, field by field: line ends, the BOM, ids, event types, retry, UTF-8.

Each case is one rule of the WHATWG event-stream format (see test_sse for the spec's
examples, the limits and the properties).
"""

from __future__ import annotations

import pytest
from sse_reference import decode, ev

from mcpconn._core.sse import MAX_RETRY_MS, SSEDecoder


@pytest.mark.parametrize("eol", [b"\n", b"\r", b"\r\n"])
def test_every_line_end(eol: bytes) -> None:
    stream = b"event: e" + eol + b"data: a" + eol + b"data: b" + eol + eol
    assert decode(stream) == [("e", "a\nb", "", None)]


def test_cr_at_chunk_end_then_lf_is_one_line_end() -> None:
    decoder = SSEDecoder()
    assert decoder.feed(b"data: a\r") == []
    assert decoder.feed(b"\n") == []  # the LF of the CRLF, not a blank line
    assert decoder.buffered_bytes == 2  # "a" + its newline
    assert [ev(e) for e in decoder.feed(b"\r\n")] == [("message", "a", "", None)]


def test_cr_at_chunk_end_then_cr_is_a_blank_line() -> None:
    decoder = SSEDecoder()
    assert decoder.feed(b"data: a\r") == []
    assert [e.data for e in decoder.feed(b"\rdata: b\r")] == ["a"]
    assert [e.data for e in decoder.feed(b"\n\n")] == ["b"]


def test_empty_chunk_keeps_pending_cr() -> None:
    decoder = SSEDecoder()
    decoder.feed(b"data: a\r")
    assert decoder.feed(b"") == []
    assert decoder.feed(b"\n") == []
    assert [e.data for e in decoder.feed(b"\n")] == ["a"]


def test_bom_stripped_once_even_split() -> None:
    bom = b"\xef\xbb\xbf"
    assert decode(bom + b"data: a\n\n", [1, 2]) == [("message", "a", "", None)]
    # A second BOM is part of the field name, which then matches nothing.
    assert decode(bom + bom + b"data: a\n\n") == []
    # A BOM prefix that turns out not to be one is data.
    assert decode(b"\xefdata: a\n\ndata: b\n\n", [1]) == [("message", "b", "", None)]


def test_comments_and_unknown_fields_ignored() -> None:
    stream = b": hello\n:\nfoo: bar\ndata: x\nDATA: y\n\n"
    assert decode(stream) == [("message", "x", "", None)]


def test_field_without_colon_has_empty_value() -> None:
    assert decode(b"data\ndata\ndata: x\n\n") == [("message", "\n\nx", "", None)]


def test_event_type_applies_to_one_event() -> None:
    stream = b"event: endpoint\ndata: /messages?s=1\n\ndata: next\n\n"
    assert decode(stream) == [
        ("endpoint", "/messages?s=1", "", None),
        ("message", "next", "", None),
    ]


def test_event_type_without_data_is_dropped() -> None:
    assert decode(b"event: x\n\ndata: y\n\n") == [("message", "y", "", None)]


def test_id_persists_and_nul_is_ignored() -> None:
    decoder = SSEDecoder()
    events = decoder.feed(b"id: 7\ndata: a\n\ndata: b\n\nid: 8\x00\ndata: c\n\n")
    assert [(e.data, e.id) for e in events] == [("a", "7"), ("b", "7"), ("c", "7")]
    assert decoder.last_event_id == "7"


def test_id_without_blank_line_is_not_committed() -> None:
    decoder = SSEDecoder()
    decoder.feed(b"data: a\n\nid: 9\n")
    assert decoder.last_event_id == ""
    decoder.close()
    assert decoder.last_event_id == ""


def test_priming_event_sets_last_event_id_without_dispatch() -> None:
    decoder = SSEDecoder()
    assert decoder.feed(b"id: prime-1\n\n") == []  # no data field at all
    assert decoder.last_event_id == "prime-1"
    assert decoder.feed(b"id: prime-2\ndata:\n\n") == []  # the official SDK's form
    assert decoder.last_event_id == "prime-2"
    assert [ev(e) for e in decoder.feed(b"data: {}\n\n")] == [("message", "{}", "prime-2", None)]


def test_priming_event_dispatched_in_strict_mode() -> None:
    decoder = SSEDecoder(dispatch_empty_data=True)
    assert [ev(e) for e in decoder.feed(b"id: p\ndata:\n\n")] == [("message", "", "p", None)]


def test_initial_last_event_id() -> None:
    decoder = SSEDecoder(last_event_id="41")
    assert decoder.last_event_id == "41"
    assert [e.id for e in decoder.feed(b"data: x\n\n")] == ["41"]


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        (b"retry: 1500", 1500),
        (b"retry:0", 0),
        (b"retry: 007", 7),
        (b"retry: 15a", None),
        (b"retry: -1", None),
        (b"retry: 1.5", None),
        (b"retry:", None),
        (b"retry:  15", None),  # a second space is part of the value
        ("retry: \u0661\u0662".encode(), None),  # Arabic-Indic digits are not ASCII digits
        (b"retry: " + b"9" * 5000, None),  # too many digits for int(): ignored
        (b"retry: " + b"9" * 400, None),  # an int, but no float: ignored, not an overflow
        (b"retry: %d" % MAX_RETRY_MS, MAX_RETRY_MS),
        (b"retry: %d" % (MAX_RETRY_MS + 1), None),  # beyond the longest hint we believe
        (b"retry: " + b"0" * 400 + b"25", 25),  # leading zeros do not count as digits
        ("retry: \u00b2".encode(), None),  # passes str.isdigit, fails int()
    ],
)
def test_retry_field(value: bytes, expected: int | None) -> None:
    decoder = SSEDecoder()
    decoder.feed(value + b"\n")
    assert decoder.retry == expected


def test_retry_persists_and_is_reported_per_event() -> None:
    decoder = SSEDecoder()
    events = decoder.feed(b"retry: 10\ndata: a\n\ndata: b\n\nretry: x\n\n")
    assert [(e.data, e.retry) for e in events] == [("a", 10), ("b", None)]
    assert decoder.retry == 10
    assert decoder.feed(b"retry: 20\n\n") == []  # a retry-only event updates retry
    assert decoder.retry == 20


def test_invalid_utf8_is_replaced() -> None:
    stream = b"event: \xff\ndata: a\xe2\x82\ndata: \xc3\xa9\n\n"
    assert decode(stream) == [("\ufffd", "a\ufffd\n\u00e9", "", None)]


def test_multibyte_split_across_chunks() -> None:
    stream = "data: h\u00e9llo \U0001f600\n\n".encode()
    for cut in range(1, len(stream)):
        assert decode(stream, [cut]) == [("message", "h\u00e9llo \U0001f600", "", None)]


def test_close_discards_unterminated_and_resets_for_next_stream() -> None:
    decoder = SSEDecoder()
    decoder.feed(b"id: 1\ndata: a\n\ndata: partial\nretry: 5\ndata: more")
    assert decoder.close() == []
    assert decoder.buffered_bytes == 0
    assert (decoder.last_event_id, decoder.retry) == ("1", 5)
    # The next stream starts fresh: its BOM is stripped, no stale data.
    assert [ev(e) for e in decoder.feed(b"\xef\xbb\xbfdata: b\n\n")] == [
        ("message", "b", "1", None)
    ]


def test_many_events_in_one_chunk_and_one_byte_at_a_time() -> None:
    stream = b"".join(b'id: %d\ndata: {"n":%d}\n\n' % (i, i) for i in range(200))
    expected = [("message", f'{{"n":{i}}}', str(i), None) for i in range(200)]
    assert decode(stream) == expected
    assert decode(stream, list(range(len(stream)))) == expected
