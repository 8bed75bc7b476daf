"""The bounded SSE decoder against the WHATWG event-stream rules and its own limits."""

from __future__ import annotations

import contextlib
import re
import tracemalloc

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from mcpconn._core import sse as _sse
from mcpconn._core.sse import MAX_RETRY_MS, ServerSentEvent, SSEDecoder
from mcpconn._exceptions import ProtocolError, SSELimitExceeded

Ev = tuple[str, str, str, int | None]


def ev(event: ServerSentEvent) -> Ev:
    return (event.event, event.data, event.id, event.retry)


def decode(stream: bytes, chunks: list[int] | None = None, **kwargs: object) -> list[Ev]:
    """Feed ``stream`` cut at ``chunks`` (offsets) and return every event as a tuple."""
    decoder = SSEDecoder(**kwargs)  # type: ignore[arg-type]
    cuts = sorted({c for c in (chunks or []) if 0 < c < len(stream)})
    out: list[Ev] = []
    start = 0
    for cut in [*cuts, len(stream)]:
        out += [ev(e) for e in decoder.feed(stream[start:cut])]
        start = cut
    out += [ev(e) for e in decoder.close()]
    return out


def reference(
    stream: bytes, *, dispatch_empty_data: bool = False
) -> tuple[list[Ev], str, int | None]:
    """The spec's algorithm, literally: decode everything, split lines, interpret."""
    text = stream.decode("utf-8", "replace")
    text = text.removeprefix("\ufeff")
    lines = re.split(r"\r\n|\r|\n", text)[:-1]  # the last piece is unterminated
    events: list[Ev] = []
    data: list[str] | None = None
    event_type = ""
    id_buffer = last_id = ""
    retry = event_retry = None
    for line in lines:
        if line == "":
            last_id = id_buffer
            if data is not None:
                joined = "\n".join(data)
                if joined or dispatch_empty_data:
                    events.append((event_type or "message", joined, last_id, event_retry))
            data, event_type, event_retry = None, "", None
            continue
        if line.startswith(":"):
            continue
        name, _, value = line.partition(":")
        value = value.removeprefix(" ")
        if name == "data":
            data = [*(data or []), value]
        elif name == "event":
            event_type = value
        elif name == "id" and "\0" not in value:
            id_buffer = value
        elif name == "retry" and value and all("0" <= c <= "9" for c in value):
            with contextlib.suppress(ValueError):  # too many digits for int()
                if int(value) <= MAX_RETRY_MS:  # our one bound on top of the spec
                    retry = event_retry = int(value)
    return events, last_id, retry


# --- WHATWG examples -------------------------------------------------------


def test_spec_example_multiline_data() -> None:
    stream = b"data: YHOO\ndata: +2\ndata: 10\n\n"
    assert decode(stream) == [("message", "YHOO\n+2\n10", "", None)]


def test_spec_example_ids_and_unterminated_last_event() -> None:
    stream = (
        b": test stream\n\ndata: first event\nid: 1\n\n"
        b"data:second event\nid\n\ndata:  third event\n"
    )
    decoder = SSEDecoder()
    events = [ev(e) for e in decoder.feed(stream)]
    assert events == [("message", "first event", "1", None), ("message", "second event", "", None)]
    assert decoder.close() == []
    assert decoder.last_event_id == ""  # the bare `id` reset it


def test_spec_example_empty_data_events_strict() -> None:
    stream = b"data\n\ndata\ndata\n\ndata:"
    assert decode(stream, dispatch_empty_data=True) == [
        ("message", "", "", None),
        ("message", "\n", "", None),
    ]
    # MCP default: an event whose data is the empty string is not a message.
    assert decode(stream) == [("message", "\n", "", None)]


def test_spec_example_one_space_removed() -> None:
    assert decode(b"data:test\n\ndata: test\n\n") == [("message", "test", "", None)] * 2
    assert decode(b"data:  two\n\n") == [("message", " two", "", None)]


# --- line ends, BOM, fields --------------------------------------------------


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


# --- limits ------------------------------------------------------------------


def test_line_at_limit_passes_and_one_more_fails() -> None:
    assert decode(b"data: " + b"x" * 10 + b"\n\n", max_line_bytes=16) == [
        ("message", "x" * 10, "", None)
    ]
    with pytest.raises(SSELimitExceeded) as info:
        decode(b"data: " + b"x" * 11 + b"\n\n", max_line_bytes=16)
    assert (info.value.what, info.value.limit) == ("line", 16)
    assert isinstance(info.value, ProtocolError)


def test_long_line_detected_before_its_newline() -> None:
    decoder = SSEDecoder(max_line_bytes=100)
    decoder.feed(b"data: " + b"x" * 90)
    with pytest.raises(SSELimitExceeded):
        decoder.feed(b"x" * 5)  # 101 bytes pending, no newline yet
    assert decoder.buffered_bytes == 0


def test_long_unterminated_tail_in_a_chunk_with_newlines() -> None:
    decoder = SSEDecoder(max_line_bytes=100)
    with pytest.raises(SSELimitExceeded):
        decoder.feed(b"data: a\n\n" + b"y" * 101)


def test_one_byte_chunks_never_buffer_past_the_limit() -> None:
    decoder = SSEDecoder(max_line_bytes=64)
    with pytest.raises(SSELimitExceeded):  # noqa: PT012
        for _ in range(1000):
            decoder.feed(b"z")
            assert decoder.buffered_bytes <= 64


def test_event_data_limit_across_lines() -> None:
    ok = b"data: 12345\ndata: 1234\n\n"  # "12345\n1234" is 10 bytes
    assert decode(ok, max_event_bytes=10) == [("message", "12345\n1234", "", None)]
    with pytest.raises(SSELimitExceeded) as info:
        decode(b"data: 12345\ndata: 12345\n\n", max_event_bytes=10)
    assert (info.value.what, info.value.limit) == ("event", 10)


def test_event_limit_is_per_event() -> None:
    stream = b"data: 1234567890\n\n" * 50
    assert len(decode(stream, max_event_bytes=10)) == 50


def test_real_memory_tracks_buffered_bytes() -> None:
    """Many tiny lines or chunks must not cost an object each: the limits count bytes."""
    lines = [b"data: x\n" * 1000] * 20  # one event of 20k one-byte data lines
    pieces = [b"ab"] * 10_000  # a 20 kB line arriving two bytes at a time
    decoder = SSEDecoder()
    tracemalloc.start()
    try:
        before = tracemalloc.get_traced_memory()[0]
        for chunk in lines:
            decoder.feed(chunk)
        for chunk in pieces:
            decoder.feed(chunk)
        held = tracemalloc.get_traced_memory()[0] - before
    finally:
        tracemalloc.stop()
    assert decoder.buffered_bytes == 40_000 + 20_000
    assert held < 2 * decoder.buffered_bytes


def test_failure_is_sticky() -> None:
    decoder = SSEDecoder(max_line_bytes=8)
    with pytest.raises(SSELimitExceeded):
        decoder.feed(b"123456789")
    with pytest.raises(SSELimitExceeded):
        decoder.feed(b"data: a\n\n")
    assert decoder.close() == []
    with pytest.raises(SSELimitExceeded):
        decoder.feed(b"data: a\n\n")


def test_bad_limits_rejected() -> None:
    with pytest.raises(ValueError, match="positive"):
        SSEDecoder(max_line_bytes=0)


@pytest.mark.parametrize("eol", [b"\n", b"\r\n"])
def test_usual_fields_and_bytearray_chunks(eol: bytes) -> None:
    """The fast paths (``data: ``, ``id: ``, ``event: message``, the transport's
    bytearrays, CRLF folded to LF) give what the general rules give."""
    lines = [b"id: 1", b"event: message", b"data: {}", b"", b"id:2", b"event: messages"]
    lines += [b"data:x", b"data", b"", b"event: message", b"data:  y", b"", b""]
    stream = eol.join(lines)
    expected = [("message", "{}", "1", None), ("messages", "x\n", "2", None)]
    expected.append(("message", " y", "2", None))
    assert decode(stream) == expected
    decoder = SSEDecoder()
    got = [
        ev(e) for i in range(0, len(stream), 7) for e in decoder.feed(bytearray(stream[i : i + 7]))
    ]
    assert got == expected


def test_module_exports() -> None:
    assert _sse.__all__ == ["MAX_RETRY_MS", "SSEDecoder", "ServerSentEvent"]


# --- properties ----------------------------------------------------------------

FRAGMENTS = [
    b"data",
    b"data:",
    b"data: ",
    b"id:",
    b"id: ",
    b"event:",
    b"event: ",
    b"event: message",
    b"message",
    b"retry:",
    b"retry: ",
    b":",
    b" ",
    b"\r",
    b"\n",
    b"\r\n",
    b"\n\n",
    b"x",
    b"12",
    b"\xef\xbb\xbf",
    b"\x00",
    b"\xff",
    b"\xe2\x82",
    "\u00e9\U0001f600".encode(),
]
streams = st.one_of(
    st.lists(st.sampled_from(FRAGMENTS), max_size=60).map(b"".join),
    st.binary(max_size=300),
)
cut_points = st.lists(st.integers(min_value=0, max_value=400), max_size=30)


@settings(max_examples=300, deadline=None)
@given(stream=streams, cuts=cut_points, strict=st.booleans())
def test_chunking_never_changes_the_events(stream: bytes, cuts: list[int], strict: bool) -> None:
    whole = SSEDecoder(dispatch_empty_data=strict)
    whole_events = [ev(e) for e in whole.feed(stream)]
    expected, last_id, retry = reference(stream, dispatch_empty_data=strict)
    assert whole_events == expected
    assert (whole.last_event_id, whole.retry) == (last_id, retry)
    assert decode(stream, cuts, dispatch_empty_data=strict) == expected


@settings(max_examples=300, deadline=None)
@given(stream=streams, cuts=cut_points)
def test_limits_hold_for_any_input(stream: bytes, cuts: list[int]) -> None:
    max_line, max_event = 8, 12
    bound = max_event + 2 * max_line + 1
    decoder = SSEDecoder(max_line_bytes=max_line, max_event_bytes=max_event)
    raised = False
    start = 0
    for cut in [*sorted(c for c in cuts if c < len(stream)), len(stream)]:
        try:
            decoder.feed(stream[start:cut])
        except SSELimitExceeded:
            raised = True
            break
        finally:
            assert decoder.buffered_bytes <= bound
        start = max(start, cut)
    decoder.close()
    # Whether a limit is broken depends on the stream, never on its chunking.
    try:
        SSEDecoder(max_line_bytes=max_line, max_event_bytes=max_event).feed(stream)
    except SSELimitExceeded:
        assert raised
    else:
        assert not raised
